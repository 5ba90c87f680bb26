"""Benchmarks behind ``rtseg-bench`` (top layer: may import every other package).

``pipeline`` (Segmenter vs a naive loop), ``models`` (network forward speed), ``node`` (the running
segment_node vs bare rclpy transport; its rclpy part, ``node_measure``, is imported only when run) and
``cli`` (the command line).
"""

import os

SIZES = ((480, 640), (720, 1280), (1024, 2048))  # (H, W): the frame sizes --node and --transport send


def domain_id(given: int | None = None) -> int:
    """The DDS domain of a benchmark run: ``given``, else ``ROS_DOMAIN_ID``, else 0."""
    return int(os.environ.get("ROS_DOMAIN_ID", "0")) if given is None else given
