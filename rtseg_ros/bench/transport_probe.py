"""One side of a bare ROS 2 image transport between two processes (``rtseg-bench --transport``, tests).

``python -m rtseg_ros.bench.transport_probe pub|sub --size HxW --count N --rate HZ --qos Q [--raw]``

- ``pub`` waits for a subscriber, then publishes N rgb8 frames at HZ, each stamped with the wall clock
  when it is handed to rclpy (``header.frame_id`` = its index).
- ``sub`` prints one JSON line when N frames arrived or none came for ``--idle-s``: frames received,
  complete ones, distinct indices, and latency percentiles (receipt − stamp: one host, one clock). With
  ``--raw`` it takes the serialized CDR message (no conversion to a Python ``Image``) and reads the stamp
  and the pixel bytes' length from it, as a node with a zero-copy view of the pixels would.

Each side is its own process so that its environment (``FASTDDS_DEFAULT_PROFILES_FILE``) applies to it alone.
"""
from __future__ import annotations

import argparse
import json
import time

import rclpy
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from rtseg_ros.common import cdr_header, parse_size, percentiles
from rtseg_ros.ros.qos import PROBE_QOS


def publish(node, topic: str, qos: QoSProfile, height: int, width: int, count: int, rate_hz: float,
            timeout_s: float) -> None:
    publisher = node.create_publisher(Image, topic, qos)
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # discovery is not symmetric: let the reader match this writer too
    msg = Image(height=height, width=width, encoding="rgb8", step=3 * width, data=bytes(3 * width * height))
    start = time.monotonic()
    for index in range(count):
        time.sleep(max(0.0, start + index / rate_hz - time.monotonic()))
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        msg.header.frame_id = str(index)
        publisher.publish(msg)
    time.sleep(1.0)


def subscribe(node, topic: str, qos: QoSProfile, height: int, width: int, count: int, raw: bool,
              timeout_s: float, idle_s: float) -> dict:
    latencies_ms, indices, full = [], set(), 0
    expected = 3 * width * height

    def on_image(msg) -> None:
        nonlocal full
        received = time.time_ns()
        if raw:
            stamp, frame_id = cdr_header(msg)
            size = len(msg)
            full += size >= expected
        else:
            stamp, frame_id = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, msg.header.frame_id
            full += len(msg.data) == expected
        latencies_ms.append((received - stamp) / 1e6)
        indices.add(frame_id)

    node.create_subscription(Image, topic, on_image, qos, raw=raw)
    deadline, last = time.monotonic() + timeout_s, None
    while len(latencies_ms) < count and time.monotonic() < deadline:
        before = len(latencies_ms)
        rclpy.spin_once(node, timeout_sec=0.05)
        if len(latencies_ms) > before:
            last = time.monotonic()
        elif last is not None and time.monotonic() - last > idle_s:
            break
    return {"received": len(latencies_ms), "full": full, "distinct": len(indices),
            **{f"{k}_ms": v for k, v in (percentiles(latencies_ms) if latencies_ms else {}).items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rtseg_ros.bench.transport_probe", description=__doc__)
    parser.add_argument("role", choices=("pub", "sub"))
    parser.add_argument("--size", type=parse_size, default=(1024, 2048), help="H x W (default 1024x2048)")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="publisher rate in Hz")
    parser.add_argument("--qos", choices=tuple(PROBE_QOS), default="best_effort")
    parser.add_argument("--raw", action="store_true", help="sub: take serialized messages (no conversion)")
    parser.add_argument("--topic", default="rtseg_transport_probe")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up (default 60)")
    parser.add_argument("--idle-s", type=float, default=3.0, help="sub: stop when no frame came for this long")
    args = parser.parse_args(argv)
    qos = PROBE_QOS[args.qos]
    rclpy.init()
    node = rclpy.create_node(f"rtseg_transport_probe_{args.role}")
    try:
        if args.role == "pub":
            publish(node, args.topic, qos, *args.size, args.count, args.rate, args.timeout)
        else:
            print(json.dumps(subscribe(node, args.topic, qos, *args.size, args.count, args.raw, args.timeout,
                                       args.idle_s)), flush=True)
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    main()
