"""``bag_player``: replay a Cityscapes-style rosbag (``rtseg-make-bag``) repeatably, for evaluation and benchmarks.

The bag is read into memory before the first frame goes out, so disk speed never shapes the timing. Frames
(the messages sharing one header stamp) are published at a fixed rate or with their recorded timing, as the
serialized bytes stored in the bag: no per-pixel work. With ``restamp`` (default) each frame's header stamp
becomes the time it is published, so downstream latency (``segment_node``'s diagnostics, the evaluator) is
measured from the moment of publishing. When the bag is done, ``~/done`` (``std_msgs/String`` JSON, transient
local) says how many frames went out, and the player exits unless ``loop`` is set.

Topics: the bag's own names (``/camera/image_raw``, ``/camera/camera_info``, ``/camera/labels_gt`` for
``rtseg-make-bag`` bags), remappable with ``-r``; ``~/done``.
"""
from __future__ import annotations

import importlib
import json
import sys
import threading
import time

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from rtseg_ros.eval.bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC, LABELS_TOPIC, BagError, load_frames, restamped
from rtseg_ros.ros.node_main import node_main
from rtseg_ros.ros.params import Param, declare
from rtseg_ros.ros.qos import LATCHED_QOS, player_qos

PARAMETERS = (
    Param("bag", "", "rosbag2 folder to replay (required)"),
    Param("rate_hz", 0.0, "frames per second; 0: the bag's recorded timing", range=(0.0, 10000.0)),
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


def schedule(log_times_ns: list[int], rate_hz: float) -> list[float]:
    """Seconds after the start at which each frame is due: ``i / rate_hz``, or the recorded offsets."""
    if rate_hz > 0:
        return [index / rate_hz for index in range(len(log_times_ns))]
    return [(t - log_times_ns[0]) / 1e9 for t in log_times_ns]


class BagPlayer(Node):
    def __init__(self, node_name: str = "bag_player", **kwargs):
        super().__init__(node_name, **kwargs)
        self.config = c = declare(self, PARAMETERS)
        if not c["bag"]:
            raise ValueError("parameter bag is required: bag_player --ros-args -p bag:=/path/to/bag")
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
        self.published = 0
        size_mb = sum(len(raw) for f in self.contents.frames for _, raw in f.messages) / 2**20
        rate = f"{c['rate_hz']:g} Hz" if c["rate_hz"] > 0 else "recorded timing"
        self.get_logger().info(f"loaded {len(self.contents.frames)} frames ({size_mb:.0f} MB) of "
                               f"{', '.join(self.contents.topics)} from {c['bag']}; replaying at {rate}")

    def wait_for_subscribers(self) -> bool:
        c = self.config
        wanted = {c["image_topic"]: c["wait_for_subscribers"]}
        if c["wait_for_evaluator"]:
            if c["labels_topic"] not in self.publishers_by_topic:
                self.get_logger().error(f"wait_for_evaluator is set but the bag has no {c['labels_topic']}")
                return False
            wanted[c["labels_topic"]] = 1
        deadline = time.monotonic() + c["wait_timeout_s"]
        while missing := {t: n for t, n in wanted.items() if self.publishers_by_topic[t].get_subscription_count() < n}:
            if time.monotonic() > deadline:
                listing = ", ".join(f"{t} has {self.publishers_by_topic[t].get_subscription_count()} of {n}"
                                    for t, n in missing.items())
                self.get_logger().error(f"not enough subscribers after {c['wait_timeout_s']:g} s ({listing}); "
                                        "giving up")
                return False
            time.sleep(0.05)
        return True

    def play(self, stop: threading.Event) -> None:
        """Publish every frame on schedule (once, or until ``stop`` with ``loop``)."""
        frames = self.contents.frames
        due = schedule([f.log_time_ns for f in frames], self.config["rate_hz"])
        period = due[-1] + (due[-1] / max(len(due) - 1, 1) if len(due) > 1 else 0.1)
        start, lap, late = time.monotonic(), 0, 0
        while not stop.is_set():
            for frame, offset in zip(frames, due):
                wait = start + lap * period + offset - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    return
                late += wait < -0.005
                stamp = self.get_clock().now().nanoseconds if self.config["restamp"] else frame.stamp_ns
                for topic, raw in frame.messages:
                    self.publishers_by_topic[topic].publish(restamped(raw, stamp) if self.config["restamp"] else raw)
                self.published += 1
            if not self.config["loop"]:
                break
            lap += 1
        elapsed = time.monotonic() - start
        self.get_logger().info(f"published {self.published} frames in {elapsed:.1f} s; "
                               f"{late} went out more than 5 ms late")
        self.done_pub.publish(String(data=json.dumps({"frames": self.published, "bag": str(self.contents.path)})))


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
        node.play(stop)
        time.sleep(1.0)  # let reliable readers fetch the last samples and ~/done before the writer goes
    except (KeyboardInterrupt, ExternalShutdownException):
        stop.set()
    finally:
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=5.0)  # a thread still inside rcl when the process exits aborts it
    return 0


def main(argv: list[str] | None = None) -> int:
    return node_main(argv, "bag_player", "Replay a Cityscapes-style rosbag for evaluation.", __doc__,
                     "bag_player --ros-args -p bag:=val_bag -p rate_hz:=10", PARAMETERS, BagPlayer,
                     (BagError, ValueError, ImportError, AttributeError), replay)


if __name__ == "__main__":
    sys.exit(main())
