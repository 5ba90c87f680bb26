"""ONNX export of a segmentation network, with a numerical parity check against PyTorch."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg_ros.fileio import atomic_path

DEFAULT_OPSET = 17
# Conv (and most operators) take bfloat16 only from opset 22: a bf16 graph at an older opset is not valid ONNX
# (onnx.checker refuses it; test_runtime checks both).
BF16_OPSET = 22
# The size the cached engine exports are traced at. The graph is dynamic in H and W (every network's export is
# checked at other sizes against PyTorch), so the size only sets how long tracing takes: an fp16/bf16 network
# traced on a CPU without native fp16 took 124 s (farsee, 512×1024) and 191 s (ddrnet23_slim, 1024×2048);
# 128×256 takes seconds and is a multiple of every network's output stride.
TRACE_SIZE = (128, 256)


def default_opset(dtype: torch.dtype) -> int:
    return BF16_OPSET if dtype == torch.bfloat16 else DEFAULT_OPSET


def export_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int], opset: int | None = None,
                dynamic_size: bool = True, dtype: torch.dtype = torch.float32) -> Path:
    """Export ``model`` (eval mode, its parameters in ``dtype``) to ``path``; input ``image`` B×3×H×W
    ``dtype``, output ``logits``. ``opset``: default ``DEFAULT_OPSET``, or ``BF16_OPSET`` for bfloat16 (the
    oldest that holds it; an older one is refused in one line).

    Written to a temporary file first and renamed, so an interrupted export leaves no broken file.
    """
    if opset is None:
        opset = default_opset(dtype)
    if dtype == torch.bfloat16 and opset < BF16_OPSET:
        raise ValueError(f"a bfloat16 ONNX export needs opset {BF16_OPSET} or newer (Conv takes bfloat16 from "
                         f"opset {BF16_OPSET}), not {opset}")
    model = model.eval()
    sample = torch.zeros(1, 3, *input_size, dtype=dtype)
    dynamic_axes = {"image": {0: "batch"}, "logits": {0: "batch"}}
    if dynamic_size:
        dynamic_axes["image"].update({2: "height", 3: "width"})
        dynamic_axes["logits"].update({2: "out_height", 3: "out_width"})
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter handles data-dependent resize sizes without export-time
        # shape constraints and is several times faster than the dynamo exporter.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        # Its symbolic functions stop at opset 20; above that it warns and writes those ops, which opsets 21
        # and 22 kept as they were but for the types they accept (22: bfloat16). onnx.checker checks the
        # result in test_runtime, and ONNX Runtime runs it against PyTorch there.
        warnings.filterwarnings("ignore", message="Exporting to ONNX opset version")
        torch.onnx.export(model, (sample,), str(tmp), opset_version=opset, input_names=["image"],
                          output_names=["logits"], dynamic_axes=dynamic_axes, dynamo=False)
    return Path(path)


def onnx_parity(model: nn.Module, onnx_path: str | Path, x: torch.Tensor) -> float:
    """Largest |onnxruntime − torch| over the output, divided by the largest |torch| value."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    if got.shape != expected.shape:
        raise AssertionError(f"ONNX output shape {got.shape} != PyTorch {expected.shape}")
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))
