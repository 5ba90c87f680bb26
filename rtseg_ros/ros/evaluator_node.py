"""``evaluator_node``: score a running segmentation node against replayed ground truth.

Predictions (``segment_node``'s ``~/labels``) are matched to ground-truth labels by header stamp. The report
(``report.json``, ``report.md``, confusion matrix, per-class IoU, latency histogram and sample overlays) is
written when the player's ``~/done`` has arrived and every frame has its prediction or ``drain_timeout_s``
has passed, after ``idle_timeout_s`` without ground truth (for ``ros2 bag play``), or on Ctrl-C.

Latency is the prediction's arrival minus its ground truth's arrival here: the player publishes image and
ground truth in the same instant, so this is transport + segmentation, without comparing clocks. A ground
truth whose prediction never comes is a dropped frame (latest-frame-wins nodes drop frames they cannot keep
up with). Class names and colours come from the node's ``~/class_info`` when it is published, so the report
uses the classes the model was trained with.

The report's ``frames`` say what happened to the bag's frames: ``in_bag`` (the player's latched ``~/info``),
``published`` (its ``~/done``), ``evaluated``, ``dropped`` (played, never answered) and ``never_played``; a
replay that was interrupted (no ``~/done``, or ``"complete": false``) has ``complete: false`` and says so.

Topics (absolute defaults, remap with ``-r``): ``/camera/labels_gt`` and ``/segment_node/labels`` (mono8; the
ground truth is subscribed only once a labels publisher is matched, so a player that waits for the evaluator
starts when predictions can arrive), ``/camera/image_raw`` (only for the sample overlays; best effort), ``/segment_node/class_info``,
``/bag_player/info``, ``/bag_player/done``.
"""
from __future__ import annotations

import json
import sys
import time

import cv2
import numpy as np
import rclpy
import torch
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from rtseg_ros.common import stamp_to_ns
from rtseg_ros.data.encodings import BadFrame, FrameDecoder, to_rgb
from rtseg_ros.data.labels import DATASET_NAMES, get_dataset_info
from rtseg_ros.eval.metrics import ConfusionMatrix
from rtseg_ros.eval.report import Samples, build_report, write_report
from rtseg_ros.ros.conversions import dataset_from_class_info
from rtseg_ros.ros.node_main import node_main
from rtseg_ros.ros.params import Param, declare
from rtseg_ros.ros.qos import LATCHED_QOS, RELIABLE_QUEUE_QOS, SENSOR_DATA_QOS
from rtseg_ros.topics import (CLASS_INFO_TOPIC, IMAGE_TOPIC, LABELS_TOPIC, PLAYER_DONE_TOPIC, PLAYER_INFO_TOPIC,
                              PREDICTIONS_TOPIC)

PARAMETERS = (
    Param("out_dir", "eval_out", "folder for report.json, report.md and the plots"),
    Param("dataset", "cityscapes", "class table used until (or unless) ~/class_info arrives",
          choices=DATASET_NAMES),
    Param("samples", 6, "sample rows in samples.png; 0: none, and the image topic is not subscribed",
          range=(0, 64)),
    Param("drain_timeout_s", 10.0, "a ground truth without prediction this long is a dropped frame; after ~/done, "
          "wait at most this long for the last predictions", range=(0.0, 3600.0)),
    Param("idle_timeout_s", 0.0, "finish this long after the last ground truth when no ~/done comes "
          "(ros2 bag play); 0: only on ~/done or Ctrl-C", range=(0.0, 3600.0)),
    Param("exit_when_done", True, "exit after writing the report"),
)
# The player stamps each frame as it publishes it (restamp, its default), so this is the end-to-end latency of
# segment_node plus transport, on the one host clock; ground-truth arrival is no reference, since reliable
# ground truth can be delivered late in a burst.
LATENCY_DEFINITION = "prediction arrival at the evaluator - the frame's header stamp (bag_player: its publish time)"


def labels_of(msg: Image, decoder: FrameDecoder) -> np.ndarray:
    pixels, encoding = decoder.image(msg)
    if encoding != "mono8":
        raise BadFrame("encoding", f"labels must be mono8, got {msg.encoding}")
    return pixels[..., 0].copy()


def frame_accounting(in_bag: int | None, published: int | None, player_complete: bool,
                     lockstep_timeouts: int | None, ground_truth: int, evaluated: int, dropped: int) -> dict:
    """What happened to the bag's frames. ``published`` is None when the player's ``~/done`` never came (the
    replay was cut short): the frames played are then at least the ground truths received."""
    played = published if published is not None else ground_truth
    never_played = in_bag - played if in_bag is not None else None
    complete = published is not None and player_complete and not never_played
    return {"in_bag": in_bag, "published": published, "never_played": never_played, "complete": complete,
            "lockstep_timeouts": lockstep_timeouts, "ground_truth_received": ground_truth, "evaluated": evaluated,
            "dropped": dropped}


class Evaluator(Node):
    def __init__(self, node_name: str = "evaluator", **kwargs):
        super().__init__(node_name, **kwargs)
        self.config = declare(self, PARAMETERS)
        self.info = get_dataset_info(self.config["dataset"])
        self.class_info: dict = {}
        self.matrix: ConfusionMatrix | None = None
        self.samples = Samples(self.config["samples"])
        self.decoder = FrameDecoder()
        # stamp → (labels, arrival monotonic s, index)   |   stamp → (labels, arrival)
        self.truth: dict[int, tuple[np.ndarray, float, int]] = {}
        self.predictions: dict[int, tuple[np.ndarray, float]] = {}
        self.images: dict[int, np.ndarray] = {}  # only frames kept as samples
        self.latency_ms: list[float] = []
        self.counts = {"ground_truth": 0, "evaluated": 0, "images": 0, "resized_predictions": 0, "expired_truth": 0,
                       "expired_predictions": 0}
        self.published: int | None = None  # from the player's ~/done
        self.in_bag: int | None = None  # from the player's ~/info
        self.player_done: dict = {}
        self.done_at = self.last_truth_at = None
        self.finished = False

        self.prediction_sub = self.create_subscription(Image, PREDICTIONS_TOPIC, self._on_prediction, RELIABLE_QUEUE_QOS)
        self.truth_sub = None  # created once predictions can reach us, see _on_timer
        self.create_subscription(String, CLASS_INFO_TOPIC, self._on_class_info, LATCHED_QOS)
        self.create_subscription(String, PLAYER_DONE_TOPIC, self._on_done, LATCHED_QOS)
        self.create_subscription(String, PLAYER_INFO_TOPIC, self._on_player_info, LATCHED_QOS)
        if self.config["samples"]:
            self.create_subscription(Image, IMAGE_TOPIC, self._on_image, SENSOR_DATA_QOS)
        self.create_timer(0.1, self._on_timer)
        self.get_logger().info(f"waiting for ground truth and predictions; report goes to {self.config['out_dir']}")

    # -- inputs --------------------------------------------------------------------------------------
    def _on_class_info(self, msg: String) -> None:
        self.class_info = json.loads(msg.data)
        if self.matrix is None:
            self.info = dataset_from_class_info(msg.data)

    def _on_done(self, msg: String) -> None:
        self.player_done = json.loads(msg.data)
        self.published = int(self.player_done["frames"])
        self.done_at = time.monotonic()

    def _on_player_info(self, msg: String) -> None:
        self.in_bag = int(json.loads(msg.data)["frames"])

    def _on_image(self, msg: Image) -> None:
        index = self.counts["images"]
        self.counts["images"] += 1
        if self.samples.wants(index):
            try:
                self.images[stamp_to_ns(msg.header.stamp)] = to_rgb(*self.decoder.image(msg))
            except BadFrame:
                pass  # samples are a courtesy; the metrics do not depend on them
            while len(self.images) > 4 * max(self.samples.limit, 1):
                self.images.pop(next(iter(self.images)))

    def _on_truth(self, msg: Image) -> None:
        now = time.monotonic()
        try:
            labels = labels_of(msg, self.decoder)
        except BadFrame as exc:
            self.get_logger().error(f"ground truth at stamp {stamp_to_ns(msg.header.stamp)} skipped: {exc}")
            return
        self.truth[stamp_to_ns(msg.header.stamp)] = (labels, now, self.counts["ground_truth"])
        self.counts["ground_truth"] += 1
        self.last_truth_at = now
        self._match(stamp_to_ns(msg.header.stamp))

    def _on_prediction(self, msg: Image) -> None:
        now, stamp = time.monotonic(), stamp_to_ns(msg.header.stamp)
        latency_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6
        try:
            self.predictions[stamp] = (labels_of(msg, self.decoder), now, latency_ms)
        except BadFrame as exc:
            self.get_logger().error(f"prediction at stamp {stamp} skipped: {exc}")
            return
        self._match(stamp)

    # -- scoring -------------------------------------------------------------------------------------
    def _match(self, stamp: int) -> None:
        if stamp not in self.truth or stamp not in self.predictions:
            return
        truth, _, index = self.truth.pop(stamp)
        prediction, _, latency_ms = self.predictions.pop(stamp)
        if prediction.shape != truth.shape:  # a node publishing at network resolution
            prediction = cv2.resize(prediction, truth.shape[::-1], interpolation=cv2.INTER_NEAREST)
            self.counts["resized_predictions"] += 1
        if self.matrix is None:
            self.matrix = ConfusionMatrix(self.info.num_classes)
        try:
            self.matrix.update(torch.from_numpy(prediction), torch.from_numpy(truth))
        except ValueError as exc:
            self.get_logger().error(f"frame {stamp} not scored: {exc} (do the node's classes match the bag's?)")
            return
        self.latency_ms.append(latency_ms)
        self.counts["evaluated"] += 1
        image = self.images.pop(stamp, None)
        if image is not None and image.shape[:2] == truth.shape and self.samples.wants(index):
            self.samples.add(index, image, prediction, truth)

    def _expire(self, now: float) -> None:
        """Forget unmatched frames older than drain_timeout_s, counting them, so memory stays bounded when
        the node drops frames or stops answering."""
        horizon = now - self.config["drain_timeout_s"]
        for stamp in [s for s, (_, arrived, _) in self.truth.items() if arrived < horizon]:
            del self.truth[stamp]
            self.counts["expired_truth"] += 1
        for stamp in [s for s, (_, arrived, _) in self.predictions.items() if arrived < horizon]:
            del self.predictions[stamp]
            self.counts["expired_predictions"] += 1

    def _on_timer(self) -> None:
        """Every 0.1 s: subscribe to the ground truth when ready, expire unmatched frames, finish when done."""
        if self.finished:
            return
        self._expire(time.monotonic())
        # Ground truth is subscribed only once the node's labels publisher is matched: a player waiting for
        # this subscription (wait_for_evaluator) then never starts before predictions can reach us.
        if self.truth_sub is None and self.prediction_sub.get_publisher_count() > 0:
            self.truth_sub = self.create_subscription(Image, LABELS_TOPIC, self._on_truth, RELIABLE_QUEUE_QOS)
            self.get_logger().info("predictions publisher found; subscribed to the ground truth")
        now = time.monotonic()
        if self.done_at is not None:
            all_in = self.published is not None and self.counts["ground_truth"] >= self.published and not self.truth
            if all_in or now - self.done_at > self.config["drain_timeout_s"]:
                self.finish()
        elif self.config["idle_timeout_s"] and self.last_truth_at is not None \
                and now - self.last_truth_at > self.config["idle_timeout_s"]:
            self.finish()

    def finish(self) -> dict | None:
        """Write the report (once). Returns it, or None when no frame was scored."""
        if self.finished:
            return None
        self.finished = True
        if self.matrix is None:
            self.get_logger().error("no prediction matched any ground truth: is segment_node running and "
                                    "subscribed to the player's images? No report written.")
            return None
        frames = frame_accounting(self.in_bag, self.published, self.player_done.get("complete", True),
                                  self.player_done.get("lockstep_timeouts"), self.counts["ground_truth"],
                                  self.counts["evaluated"], len(self.truth) + self.counts["expired_truth"])
        frames.update(predictions_without_ground_truth=len(self.predictions) + self.counts["expired_predictions"],
                      predictions_resized=self.counts["resized_predictions"])
        meta = {key: self.class_info[key] for key in ("model", "weights") if key in self.class_info}
        report = build_report(self.matrix, self.info, frames, self.latency_ms, meta, LATENCY_DEFINITION)
        write_report(self.config["out_dir"], report, self.info, self.latency_ms, self.samples.picked())
        latency = report["latency_ms"]
        timing = f"latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms" if latency else "no latency"
        if frames["evaluated"]:
            self.get_logger().info(f"mIoU {100 * report['miou']:.1f} % over {frames['evaluated']} frames, "
                                   f"{frames['dropped']} dropped; {timing}; wrote {self.config['out_dir']}")
        else:
            self.get_logger().error(f"no frame was scored ({frames['dropped']} dropped; see the errors above); "
                                    f"wrote {self.config['out_dir']}")
        if not frames["complete"]:
            never = frames["never_played"]
            self.get_logger().warning(
                "INCOMPLETE replay: " + (f"{never} of the bag's {frames['in_bag']} frames were never played"
                                         if never is not None else "the player did not say it finished"))
        return report


def evaluate(node: Evaluator) -> int:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not (node.finished and node.config["exit_when_done"]):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        node.finish()
    return 0 if node.matrix is not None else 1


def main(argv: list[str] | None = None) -> int:
    return node_main(argv, "evaluator_node", "Score a segmentation node against replayed ground truth.", __doc__,
                     "evaluator_node --ros-args -p out_dir:=eval_out -r /segment_node/labels:=/my_node/labels",
                     PARAMETERS, Evaluator, (ValueError,), evaluate)


if __name__ == "__main__":
    sys.exit(main())
