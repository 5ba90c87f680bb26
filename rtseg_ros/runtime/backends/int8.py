"""INT8 post-training static quantization with ONNX Runtime's quantizer, calibrated on real frames.

The result is a QDQ ONNX model (int8 weights per output channel, uint8 activations with ranges from the
calibration frames), stored where ``precision:=int8`` looks for it (``cache.onnx_path(..., "int8")``):
OpenVINO and ONNX Runtime both run it with their INT8 kernels.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtseg_ros.fileio import atomic_path
from rtseg_ros.runtime.backends.cache import cached_onnx, onnx_path

DEFAULT_CALIBRATION_FRAMES = 64
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# Only the inputs of convolutions and matrix products get quantize/dequantize pairs: the engines fuse them
# into INT8 kernels, and quantizing more (DDRNet's standalone BatchNormalization in its DAPPM) crashed
# OpenVINO 2026.4's CPU compiler here while gaining nothing.
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def calibration_inputs(segmenter, dataset, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over ``dataset`` (a ``data.datasets`` reader), each as the network
    input the Segmenter makes of it (resized and normalised as at run time)."""
    if len(dataset) == 0:
        raise ValueError("the calibration folder has no frames")
    indices = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    return [segmenter.network_input(dataset[int(i)]["image"]).numpy()
            for i in tqdm(indices, desc="calibration frames", unit="frame", leave=False)]


def quantize(fp32_onnx: Path, inputs: list[np.ndarray], out: Path, method: str = "minmax") -> Path:
    """Quantize ``fp32_onnx`` to a QDQ INT8 model at ``out`` (written atomically), with activation ranges
    from ``inputs``."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.frames = iter(inputs)

        def get_next(self):
            frame = next(self.frames, None)
            return None if frame is None else {"image": frame}

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a line per tensor to the root logger
    try:
        # Without ONNX Runtime's pre-processing (quant_pre_process), which its docs advise: it rewrites
        # HardSwish into HardSigmoid and Mul, which made OpenVINO run SGCPNet 2x slower (fp32 and INT8).
        with atomic_path(out) as tmp:
            quantize_static(str(fp32_onnx), str(tmp), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method], calibration_providers=["CPUExecutionProvider"],
                            op_types_to_quantize=QUANTIZED_OPS)
    finally:
        root.setLevel(level)
    return out


def make_int8(segmenter, dataset, count: int = DEFAULT_CALIBRATION_FRAMES, method: str = "minmax",
              cache_dir=None) -> Path:
    """Calibrate and store the INT8 model of ``segmenter``'s network (a torch-backend Segmenter with the
    weights to quantize) where ``precision:=int8`` finds it for the same weights and cache folder."""
    inputs = calibration_inputs(segmenter, dataset, count)
    fp32 = cached_onnx(segmenter.network, segmenter.loaded, cache_dir, "fp32")
    return quantize(fp32, inputs, onnx_path(segmenter.loaded, cache_dir, "int8"), method)
