"""``bag_player``: replay a Cityscapes-style rosbag (``rtseg-make-bag``) repeatably, for evaluation and benchmarks.

The bag is read into memory before the first frame goes out, so disk speed never shapes the timing. Frames
(the messages sharing one header stamp) go out as the serialized bytes stored in the bag (no per-pixel work),
paced by ``pacing``:

- ``lockstep``: frame i+1 goes out once the prediction for frame i (same header stamp) has arrived on
  ``predictions_topic``, or after ``lockstep_timeout_s`` (counted): every frame is scored, for accuracy;
- ``rate``: ``rate_hz`` frames per second, whatever the node keeps up with (latency and drop measurements);
- ``recorded``: the bag's recorded timing.

With ``restamp`` (default) each frame's header stamp becomes the time it is published, so downstream latency
(``segment_node``'s diagnostics, the evaluator) is measured from the moment of publishing. ``~/info``
(``std_msgs/String`` JSON, transient local) says at start how many frames the bag holds; ``~/done`` says how
many went out, also when the replay is interrupted (``"complete": false``). The player exits after ``~/done``
unless ``loop`` is set.

Topics: the bag's own names (``/camera/image_raw``, ``/camera/camera_info``, ``/camera/labels_gt`` for
``rtseg-make-bag`` bags), remappable with ``-r``; ``~/info``, ``~/done``; lockstep subscribes to
``predictions_topic``.
"""
from __future__ import annotations

import importlib
import json
import sys
import threading
import time

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from rtseg_ros.common import stamp_to_ns
from rtseg_ros.data.rosbag import BagError, load_frames, restamped
from rtseg_ros.ros.node_main import node_main
from rtseg_ros.ros.pacing import PACINGS, check_pacing, schedule
from rtseg_ros.ros.params import Param, declare
from rtseg_ros.ros.qos import LATCHED_QOS, RELIABLE_QUEUE_QOS, player_qos
from rtseg_ros.topics import CAMERA_INFO_TOPIC, IMAGE_TOPIC, LABELS_TOPIC, PREDICTIONS_TOPIC

PARAMETERS = (
    Param("bag", "", "rosbag2 folder to replay (required)"),
    Param("pacing", "recorded", "recorded: the bag's timing; rate: rate_hz frames per second; lockstep: each "
          "frame once the previous one's prediction has arrived (every frame scored)", choices=PACINGS),
    Param("rate_hz", 0.0, "frames per second with pacing:=rate", range=(0.0, 10000.0)),
    Param("predictions_topic", PREDICTIONS_TOPIC, "with pacing:=lockstep: where predictions arrive "
          "(header stamps as sent)"),
    Param("lockstep_timeout_s", 10.0, "with pacing:=lockstep: send the next frame after this long without the "
          "prediction (counted as a timeout)", range=(0.001, 3600.0)),
    Param("loop", False, "start again at the end (no ~/done then)"),
    Param("limit", 0, "replay only the first N frames; 0: all", range=(0, 10**9)),
    Param("restamp", True, "stamp each frame with the time it is published (else keep the recorded stamps)"),
    Param("wait_for_subscribers", 1, "wait until the image topic has this many subscribers before the first "
          "frame; 0: start at once", range=(0, 100)),
    Param("wait_for_evaluator", False, "also wait for a subscriber on the labels topic (an evaluator)"),
    Param("start_delay_s", 1.0, "pause between finding the subscribers and the first frame: DDS discovery is not "
          "symmetric, and the other ends (e.g. segment_node's output to the evaluator) may still be matching",
          range=(0.0, 3600.0)),
    Param("wait_timeout_s", 60.0, "give up waiting for subscribers after this long (exit 1)", range=(0.0, 3600.0)),
    Param("image_topic", IMAGE_TOPIC, "image topic in the bag (required)"),
    Param("camera_info_topic", CAMERA_INFO_TOPIC, "camera_info topic in the bag (published when present)"),
    Param("labels_topic", LABELS_TOPIC, "ground-truth labels topic in the bag (published when present)"),
    Param("qos", "reliable", "reliability of the published topics; reliable publishers also serve best-effort "
          "subscribers", choices=("reliable", "best_effort")),
)


def message_class(msgtype: str):
    """``sensor_msgs/msg/Image`` → the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class BagPlayer(Node):
    def __init__(self, node_name: str = "bag_player", **kwargs):
        super().__init__(node_name, **kwargs)
        self.config = c = declare(self, PARAMETERS)
        if not c["bag"]:
            raise ValueError("parameter bag is required: bag_player --ros-args -p bag:=/path/to/bag")
        if problem := check_pacing(c["pacing"], c["rate_hz"]):
            raise ValueError(problem)
        topics = {c["image_topic"]: True, c["camera_info_topic"]: False, c["labels_topic"]: False}
        self.contents = load_frames(c["bag"], topics, limit=c["limit"])
        if not self.contents.frames:
            raise BagError(f"bag {c['bag']} has no messages on {c['image_topic']}")
        # depth 1 like a camera driver for images; the ground truth keeps a few so an evaluator loses none
        self.publishers_by_topic = {
            topic: self.create_publisher(message_class(msgtype), topic, player_qos(
                c["qos"] == "reliable", depth=1 if topic != c["labels_topic"] else 50))
            for topic, msgtype in self.contents.topics.items()}
        self.done_pub = self.create_publisher(String, "~/done", LATCHED_QOS)
        self.info_pub = self.create_publisher(String, "~/info", LATCHED_QOS)
        self.published = 0
        self.lockstep_timeouts = 0
        self.predicted = threading.Condition()  # lockstep: the stamps of predictions arrived, under its lock
        self.predicted_stamps: set[int] = set()
        self.predictions_sub = self.create_subscription(
            Image, c["predictions_topic"], self._on_prediction, RELIABLE_QUEUE_QOS) if c["pacing"] == "lockstep" \
            else None
        self.info_pub.publish(String(data=json.dumps({"frames": len(self.contents.frames),
                                                      "bag": str(self.contents.path), "pacing": c["pacing"]})))
        size_mb = sum(len(raw) for f in self.contents.frames for _, raw in f.messages) / 2**20
        rate = {"rate": f"{c['rate_hz']:g} Hz", "recorded": "recorded timing",
                "lockstep": f"lockstep with {c['predictions_topic']}"}[c["pacing"]]
        self.get_logger().info(f"loaded {len(self.contents.frames)} frames ({size_mb:.0f} MB) of "
                               f"{', '.join(self.contents.topics)} from {c['bag']}; replaying at {rate}")

    def _on_prediction(self, msg: Image) -> None:
        with self.predicted:
            self.predicted_stamps.add(stamp_to_ns(msg.header.stamp))
            self.predicted.notify_all()

    def wait_for_prediction(self, stamp: int, stop: threading.Event) -> bool:
        """Lockstep: return when the prediction stamped ``stamp`` has arrived, after lockstep_timeout_s
        (counted), or when ``stop`` is set; False when the predictions' publisher has gone (the node ended)."""
        deadline = time.monotonic() + self.config["lockstep_timeout_s"]
        with self.predicted:
            while stamp not in self.predicted_stamps and not stop.is_set():
                if self.predictions_sub.get_publisher_count() == 0:
                    self.get_logger().error(f"{self.config['predictions_topic']} lost its publisher after "
                                            f"{self.published} frames; stopping the replay")
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    self.lockstep_timeouts += 1
                    self.get_logger().warning(f"no prediction for frame {self.published} within "
                                              f"{self.config['lockstep_timeout_s']:g} s; sending the next one")
                    break
                self.predicted.wait(min(left, 0.1))
            self.predicted_stamps.clear()  # later predictions only answer later frames
        return True

    def wait_for_subscribers(self) -> bool:
        c = self.config
        wanted = {c["image_topic"]: c["wait_for_subscribers"]}
        if c["wait_for_evaluator"]:
            if c["labels_topic"] not in self.publishers_by_topic:
                self.get_logger().error(f"wait_for_evaluator is set but the bag has no {c['labels_topic']}")
                return False
            wanted[c["labels_topic"]] = 1
        deadline = time.monotonic() + c["wait_timeout_s"]

        def missing() -> list[str]:
            lacking = [f"{t} has {self.publishers_by_topic[t].get_subscription_count()} of {n} subscribers"
                       for t, n in wanted.items() if self.publishers_by_topic[t].get_subscription_count() < n]
            if self.predictions_sub is not None and self.predictions_sub.get_publisher_count() == 0:
                lacking.append(f"{c['predictions_topic']} has no publisher (lockstep)")
            return lacking

        while lacking := missing():
            if time.monotonic() > deadline:
                listing = ", ".join(lacking)
                self.get_logger().error(f"not enough subscribers after {c['wait_timeout_s']:g} s ({listing}); "
                                        "giving up")
                return False
            time.sleep(0.05)
        return True

    def play(self, stop: threading.Event) -> bool:
        """Publish every frame on schedule (once, or until ``stop`` with ``loop``); False when lockstep lost
        the node before the end."""
        frames = self.contents.frames
        lockstep = self.config["pacing"] == "lockstep"
        due = [0.0] * len(frames) if lockstep else \
            schedule([f.log_time_ns for f in frames], self.config["rate_hz"])
        period = due[-1] + (due[-1] / max(len(due) - 1, 1) if len(due) > 1 else 0.1)
        start, lap, late = time.monotonic(), 0, 0
        while not stop.is_set():
            for frame, offset in zip(frames, due):
                wait = 0.0 if lockstep else start + lap * period + offset - time.monotonic()
                if stop.wait(max(wait, 0.0)):
                    return False
                late += wait < -0.005
                stamp = self.get_clock().now().nanoseconds if self.config["restamp"] else frame.stamp_ns
                for topic, raw in frame.messages:
                    self.publishers_by_topic[topic].publish(restamped(raw, stamp) if self.config["restamp"] else raw)
                self.published += 1
                if lockstep and not self.wait_for_prediction(stamp, stop):
                    return False
            if not self.config["loop"]:
                break
            lap += 1
        elapsed = time.monotonic() - start
        timing = f"{self.lockstep_timeouts} lockstep timeouts" if lockstep else \
            f"{late} went out more than 5 ms late"
        self.get_logger().info(f"published {self.published} frames in {elapsed:.1f} s; {timing}")
        return True

    def say_done(self, complete: bool) -> None:
        """``~/done``: the frames sent, whether the replay ran to its end, and the lockstep timeouts."""
        self.done_pub.publish(String(data=json.dumps({
            "frames": self.published, "bag": str(self.contents.path), "complete": complete,
            "lockstep_timeouts": self.lockstep_timeouts})))


def replay(node: BagPlayer) -> int:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)  # parameter services, QoS events
    spinner.start()
    stop = threading.Event()
    try:
        if not node.wait_for_subscribers():
            return 1
        time.sleep(node.config["start_delay_s"])
        node.say_done(complete=node.play(stop) and not stop.is_set())
        time.sleep(1.0)  # let reliable readers fetch the last samples and ~/done before the writer goes
    except (KeyboardInterrupt, ExternalShutdownException):
        stop.set()
        try:  # an interrupted replay says how far it got: it must not look complete
            node.say_done(complete=False)
            time.sleep(0.5)
        except Exception:  # the context may already be shut down
            pass
    finally:
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=5.0)  # a thread still inside rcl when the process exits aborts it
    return 0


def main(argv: list[str] | None = None) -> int:
    return node_main(argv, "bag_player", "Replay a Cityscapes-style rosbag for evaluation.", __doc__,
                     "bag_player --ros-args -p bag:=val_bag -p pacing:=rate -p rate_hz:=10", PARAMETERS, BagPlayer,
                     (BagError, ValueError, ImportError, AttributeError), replay)


if __name__ == "__main__":
    sys.exit(main())
