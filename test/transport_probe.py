"""Two-process probe for test_transport.py: ``pub N H W`` sends N best-effort rgb8 frames once a subscriber
matches; ``sub N H W`` prints how many full frames arrived (JSON) within the timeout. Each run is its own
process so that the environment (FASTDDS_DEFAULT_PROFILES_FILE) applies to it alone."""
import json
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def main(role: str, count: int, height: int, width: int, timeout_s: float = 30.0) -> None:
    rclpy.init()
    node = rclpy.create_node(f"transport_probe_{role}")
    if role == "pub":
        publisher = node.create_publisher(Image, "probe_image", QOS)
        deadline = time.monotonic() + timeout_s
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # discovery is not symmetric: let the reader match this writer too
        msg = Image(height=height, width=width, encoding="rgb8", step=3 * width, data=bytes(3 * width * height))
        for index in range(count):
            msg.header.frame_id = str(index)
            publisher.publish(msg)
            time.sleep(0.1)
        time.sleep(1.0)
    else:
        received = []
        node.create_subscription(Image, "probe_image", lambda m: received.append(len(m.data)), QOS)
        deadline = time.monotonic() + timeout_s
        while len(received) < count and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        print(json.dumps({"received": len(received), "full": sum(n == 3 * width * height for n in received)}))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:5]))
