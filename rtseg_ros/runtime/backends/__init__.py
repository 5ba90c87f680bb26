"""Inference engines behind the Segmenter: ``runner(x) -> logits`` on its device.

Each runs the network exported without its final upsampling (logits at the output stride); the
Segmenter's own pre- and post-processing stay in torch. One engine per module: ONNX Runtime, OpenVINO,
TensorRT; ``cache`` keeps their files, ``int8`` calibrates INT8 models. ``backend:=auto`` is resolved here.
"""
from __future__ import annotations

import importlib

from rtseg_ros.runtime.choices import AUTO_ORDER, BACKENDS, ENGINE_MODULES, INT8_BACKENDS, missing_engine


def importable(backend: str) -> bool:
    """Whether ``backend``'s engine package imports here (torch always does)."""
    if backend not in ENGINE_MODULES:
        return True
    try:
        for module in ENGINE_MODULES[backend]:
            importlib.import_module(module)
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device_type: str, precision: str = "fp32") -> tuple[str, str]:
    """(the backend to run, why): ``backend`` itself, or for ``auto`` the first of ``AUTO_ORDER`` for the
    device whose package imports. INT8 needs an engine that runs INT8 models (never torch)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        if not importable(backend):
            raise RuntimeError(missing_engine(backend))
        return backend, "asked for by name"
    order = AUTO_ORDER["cuda" if device_type == "cuda" else "cpu"]
    if precision == "int8":
        order = tuple(name for name in order if name in INT8_BACKENDS)
    missing = []
    for name in order:
        if importable(name):
            skipped = f" ({', '.join(missing)} not importable)" if missing else ""
            return name, f"auto on {device_type}: first importable of {', '.join(order)}{skipped}"
        missing.append(name)
    raise RuntimeError(f"precision {precision} on {device_type} needs one of {', '.join(order)}, and none is "
                       f"importable: {missing_engine(order[0])}")


def make_runner(backend: str, network, device, loaded, precision: str, stream, cache_dir, threads: int,
                openvino_device: str = "CPU"):
    """The runner of a resolved ``backend`` (not torch: the Segmenter runs that itself)."""
    if backend == "onnxruntime":
        from rtseg_ros.runtime.backends.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(network, device, loaded, precision, stream, cache_dir, threads)
    if backend == "openvino":
        from rtseg_ros.runtime.backends.openvino_runner import OpenVinoRunner

        return OpenVinoRunner(network, device, loaded, precision, stream, cache_dir, threads, openvino_device)
    if backend == "tensorrt":
        from rtseg_ros.runtime.backends.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(network, device, loaded, precision, stream, cache_dir, threads)
    raise ValueError(f"no runner for backend {backend!r}")
