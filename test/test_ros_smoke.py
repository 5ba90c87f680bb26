"""The PyPI ROS 2 wheels give a working rclpy: an Image goes through real DDS and comes back intact."""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (pip install '.[ros]')")
from sensor_msgs.msg import Image  # noqa: E402


def test_image_round_trip_through_dds():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("rtseg_smoke", context=context)
        received = []
        node.create_subscription(Image, "smoke_image", received.append, 10)
        publisher = node.create_publisher(Image, "smoke_image", 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)

        pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=pixels.tobytes())
        msg.header.frame_id = "camera"
        msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            publisher.publish(msg)
            executor.spin_once(timeout_sec=0.1)
        assert received, "no message came back through DDS within 20 s"
        got = received[0]
        assert (got.header.frame_id, got.header.stamp.sec, got.header.stamp.nanosec) == ("camera", 12, 345)
        assert (got.height, got.width, got.encoding, got.step) == (48, 64, "rgb8", 192)
        np.testing.assert_array_equal(np.frombuffer(got.data, np.uint8).reshape(48, 64, 3), pixels)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
