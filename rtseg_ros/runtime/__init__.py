"""Inference runtime: the Segmenter used by the node, the evaluator and the benchmarks (no rclpy here)."""
from .segmenter import SegmentationResult, Segmenter  # noqa: F401
