"""The runtime's choices, named once for every command line and node parameter that offers them.

Kept free of torch so that parameter tables and ``--help`` load fast.
"""
from __future__ import annotations

BACKENDS = ("torch", "onnxruntime", "tensorrt")
# Precision name → torch dtype name (the Segmenter resolves them; TensorRT takes the name as a builder flag).
PRECISION_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
PRECISIONS = tuple(PRECISION_DTYPES)
