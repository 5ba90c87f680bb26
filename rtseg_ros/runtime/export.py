"""ONNX export of a segmentation network, with a numerical parity check against PyTorch."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg_ros.fileio import atomic_path

DEFAULT_OPSET = 17


def export_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int], opset: int = DEFAULT_OPSET,
                dynamic_size: bool = True, dtype: torch.dtype = torch.float32) -> Path:
    """Export ``model`` (eval mode, its parameters in ``dtype``) to ``path``; input ``image`` B×3×H×W
    ``dtype``, output ``logits``.

    Written to a temporary file first and renamed, so an interrupted export leaves no broken file.
    """
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
