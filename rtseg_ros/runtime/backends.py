"""ONNX Runtime and TensorRT runners: ``runner(x) -> logits`` on the Segmenter's device.

Both run the network exported without its final upsampling (logits at the output stride); the
Segmenter's own pre- and post-processing stay in torch on the same device.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg_ros.fileio import write_bytes_atomic
from rtseg_ros.runtime.export import export_onnx

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path(os.environ.get("RTSEG_CACHE", Path.home() / ".cache" / "rtseg_ros"))


def cached_onnx(network: nn.Module, loaded, cache_dir: str | Path | None, input_size: tuple[int, int]) -> Path:
    """Export once per (model, weights): ``<cache>/<model>-<classes>c-<digest>.onnx`` (dynamic H, W)."""
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    path = cache / f"{loaded.name}-{loaded.dataset.num_classes}c-{loaded.weights_digest}.onnx"
    if loaded.weights_digest == "random" or not path.is_file():
        export_onnx(network.float().cpu(), path, input_size)
    return path


class OnnxRuntimeRunner:
    def __init__(self, network: nn.Module, device: torch.device, loaded, cache_dir=None):
        import onnxruntime as ort

        self.device = device
        self.path = cached_onnx(network, loaded, cache_dir, loaded.input_size)
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError("onnxruntime has no CUDA provider here: pip install onnxruntime-gpu, "
                                   "or use device:=cpu")
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.path), providers=providers)
        self._outputs: dict[tuple, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        if self.device.type == "cpu":
            return torch.from_numpy(self.session.run(None, {"image": x.numpy()})[0])
        device_id = self.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input("image", "cuda", device_id, np.float32, tuple(x.shape), x.data_ptr())
        out = self._outputs.get(tuple(x.shape))
        if out is None:  # first frame of this shape: let ORT size the output, then keep a buffer for it
            binding.bind_output("logits", "cuda", device_id)
            self.session.run_with_iobinding(binding)
            out = self._outputs[tuple(x.shape)] = torch.empty(binding.get_outputs()[0].shape(), device=self.device)
        binding.bind_output("logits", "cuda", device_id, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        self.session.run_with_iobinding(binding)
        return out


# -- TensorRT ---------------------------------------------------------------------------------------

TENSORRT_MISSING = ("backend 'tensorrt' needs the TensorRT Python package, which is not importable here. "
                    "Install it with `pip install tensorrt` (its CUDA major version must match your driver), "
                    "or use backend:=torch or backend:=onnxruntime.")


def engine_cache_key(model: str, weights_digest: str, input_shape: tuple[int, ...], precision: str,
                     tensorrt_version: str, gpu_name: str) -> dict:
    """Everything a serialized engine depends on; a cached engine is reused only if all of it matches."""
    return {"model": model, "weights": weights_digest, "input_shape": list(input_shape), "precision": precision,
            "tensorrt": tensorrt_version, "gpu": gpu_name}


def engine_paths(cache_dir: Path, key: dict) -> tuple[Path, Path]:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    shape = "x".join(map(str, key["input_shape"][-2:]))
    stem = f"{key['model']}-{shape}-{key['precision']}-{digest}"
    return cache_dir / f"{stem}.engine", cache_dir / f"{stem}.json"


def cached_engine_matches(engine: Path, sidecar: Path, key: dict) -> bool:
    """True if ``engine`` exists and its sidecar records exactly ``key`` (model, weights, shape, precision,
    TensorRT version, GPU)."""
    if not (engine.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text()) == key
    except (OSError, json.JSONDecodeError):
        return False


def build_engine(onnx_path: Path, input_shape: tuple[int, ...], precision: str, engine: Path, sidecar: Path, key: dict) -> bytes:
    import tensorrt as trt

    log.warning("building TensorRT engine for %s at %s, %s (may take minutes; cached in %s afterwards)",
                key["model"], "x".join(map(str, input_shape)), precision, engine.parent)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    profile = builder.create_optimization_profile()
    profile.set_shape("image", input_shape, input_shape, input_shape)
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    data = bytes(serialized)
    write_bytes_atomic(engine, data)
    write_bytes_atomic(sidecar, json.dumps(key, sort_keys=True).encode())
    return data


class TensorRTRunner:
    """One fixed-shape engine per network input size, built on first use or loaded from the cache."""

    def __init__(self, network: nn.Module, device: torch.device, loaded, precision: str, cache_dir=None):
        try:
            import tensorrt as trt
        except ImportError:
            raise RuntimeError(TENSORRT_MISSING) from None
        if device.type != "cuda":
            raise RuntimeError("backend 'tensorrt' runs on CUDA only: set device:=cuda")
        self.trt, self.device, self.loaded, self.precision = trt, device, loaded, precision
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE / "engines"
        self.onnx_path = cached_onnx(network, loaded, self.cache_dir, loaded.input_size)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engines: dict[tuple, tuple] = {}

    def engine_for(self, input_shape: tuple[int, ...]):
        key = engine_cache_key(self.loaded.name, self.loaded.weights_digest, input_shape, self.precision,
                               self.trt.__version__, torch.cuda.get_device_name(self.device))
        engine_path, sidecar = engine_paths(self.cache_dir, key)
        engine = None
        if cached_engine_matches(engine_path, sidecar, key):
            engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if engine is None:
                log.warning("cached TensorRT engine %s failed to deserialize; rebuilding", engine_path)
        elif engine_path.exists():
            log.warning("cached TensorRT engine %s does not match this model/TensorRT/GPU; rebuilding", engine_path)
        if engine is None:
            data = build_engine(self.onnx_path, input_shape, self.precision, engine_path, sidecar, key)
            engine = self.runtime.deserialize_cuda_engine(data)
        return engine

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape not in self._engines:
            engine = self.engine_for(shape)
            context = engine.create_execution_context()
            context.set_input_shape("image", shape)
            out = torch.empty(tuple(context.get_tensor_shape("logits")), device=self.device)
            self._engines[shape] = (engine, context, out)
        _, context, out = self._engines[shape]
        x = x.contiguous()
        context.set_tensor_address("image", x.data_ptr())
        context.set_tensor_address("logits", out.data_ptr())
        context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream)
        return out
