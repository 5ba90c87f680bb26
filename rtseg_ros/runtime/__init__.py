"""Inference runtime: the Segmenter used by the node, the evaluator and the benchmarks (no rclpy here)."""


def __getattr__(name: str):
    # ``from rtseg_ros.runtime import Segmenter`` without loading torch for ``runtime.choices`` users.
    if name in ("Segmenter", "SegmentationResult"):
        from . import segmenter

        return getattr(segmenter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
