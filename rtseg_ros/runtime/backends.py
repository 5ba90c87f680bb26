"""ONNX Runtime and TensorRT runners: ``runner(x) -> logits`` on the Segmenter's device.

Both run the network exported without its final upsampling (logits at the output stride); the
Segmenter's own pre- and post-processing stay in torch on the same device.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg_ros.fileio import write_bytes_atomic
from rtseg_ros.runtime.choices import PRECISION_DTYPES
from rtseg_ros.runtime.export import export_onnx

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path(os.environ.get("RTSEG_CACHE", Path.home() / ".cache" / "rtseg_ros"))


def cached_onnx(network: nn.Module, loaded, cache_dir: str | Path | None, input_size: tuple[int, int],
                precision: str = "fp32") -> Path:
    """Export once per (model, classes, weights, precision):
    ``<cache>/<model>-<classes>c-<digest>-<precision>.onnx`` (dynamic H, W). A reduced-precision export
    has fp16/bf16 weights, input and output, which is what a strongly typed TensorRT network and
    ONNX Runtime then run in."""
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    path = cache / f"{loaded.name}-{loaded.dataset.num_classes}c-{loaded.weights_digest}-{precision}.onnx"
    if not path.is_file():
        dtype = getattr(torch, PRECISION_DTYPES[precision])
        export_onnx(copy.deepcopy(network).cpu().to(dtype), path, input_size, dtype=dtype)
    return path


# -- ONNX Runtime -----------------------------------------------------------------------------------

ONNXRUNTIME_PRECISIONS = ("fp32", "fp16")  # its CUDA provider lacks bf16 kernels for most of these networks


def onnxruntime_providers(device: torch.device, stream: torch.cuda.Stream | None) -> list:
    """The providers to ask for: on CUDA the CUDA provider on ``device``'s GPU, running on ``stream`` (the
    Segmenter's own; ONNX Runtime cannot adopt the default stream), so that no device-wide synchronisation
    is needed between the torch pre-/post-processing and the network."""
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    options = {"device_id": device.index}
    if stream is not None:
        options["user_compute_stream"] = str(stream.cuda_stream)
    return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]


def require_granted_provider(session, device: torch.device) -> None:
    """ONNX Runtime falls back to the CPU, with only a log line, when the CUDA provider cannot start
    (missing libraries, CUDA mismatch); ``session.get_providers()`` is what the session really uses."""
    granted = session.get_providers()
    if device.type == "cuda" and (not granted or granted[0] != "CUDAExecutionProvider"):
        raise RuntimeError(f"onnxruntime did not grant CUDAExecutionProvider on {device} (the session would run on "
                           f"{', '.join(granted) or 'nothing'}): install onnxruntime-gpu matching your CUDA, "
                           "or use device:=cpu")


class OnnxRuntimeRunner:
    def __init__(self, network: nn.Module, device: torch.device, loaded, precision: str = "fp32",
                 stream: torch.cuda.Stream | None = None, cache_dir=None):
        import onnxruntime as ort

        if precision not in ONNXRUNTIME_PRECISIONS:
            raise ValueError(f"backend 'onnxruntime' runs {' or '.join(ONNXRUNTIME_PRECISIONS)}, not {precision}: "
                             "use backend:=torch or backend:=tensorrt for it")
        self.device, self.dtype = device, getattr(torch, PRECISION_DTYPES[precision])
        self.path = cached_onnx(network, loaded, cache_dir, loaded.input_size, precision)
        self.session = ort.InferenceSession(str(self.path), providers=onnxruntime_providers(device, stream))
        require_granted_provider(self.session, device)
        self._outputs: dict[tuple, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype).contiguous()
        if self.device.type == "cpu":
            return torch.from_numpy(self.session.run(None, {"image": x.numpy()})[0]).float()
        np_dtype = np.float16 if self.dtype == torch.float16 else np.float32
        binding = self.session.io_binding()
        binding.bind_input("image", "cuda", self.device.index, np_dtype, tuple(x.shape), x.data_ptr())
        out = self._outputs.get(tuple(x.shape))
        if out is None:  # first frame of this shape: let ORT size the output, then keep a buffer for it
            binding.bind_output("logits", "cuda", self.device.index)
            self.session.run_with_iobinding(binding)
            out = self._outputs[tuple(x.shape)] = torch.empty(binding.get_outputs()[0].shape(), dtype=self.dtype,
                                                              device=self.device)
        binding.bind_output("logits", "cuda", self.device.index, np_dtype, tuple(out.shape), out.data_ptr())
        # ORT runs on the Segmenter's stream (user_compute_stream): ordered after the preprocessing already.
        self.session.run_with_iobinding(binding)
        return out.float()


# -- TensorRT ---------------------------------------------------------------------------------------

TENSORRT_MISSING = ("backend 'tensorrt' needs the TensorRT Python package, which is not importable here. "
                    "Install the one matching torch's CUDA major version, e.g. `pip install tensorrt-cu12` "
                    "(plain `pip install tensorrt` picks the newest CUDA), or use backend:=torch or "
                    "backend:=onnxruntime.")
# TensorRT tensor data type (``trt.DataType`` member name) → the torch dtype of its I/O buffer
TENSORRT_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16}


def torch_dtype_of(trt_dtype) -> torch.dtype:
    """The torch dtype of a buffer for a TensorRT tensor of ``trt_dtype`` (``engine.get_tensor_dtype``)."""
    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    if name not in TENSORRT_TORCH_DTYPES:
        raise RuntimeError(f"TensorRT engine has an I/O tensor of type {name}; expected one of "
                           f"{', '.join(TENSORRT_TORCH_DTYPES)}")
    return TENSORRT_TORCH_DTYPES[name]


def network_creation_flags(trt) -> int:
    """Strongly typed: the engine keeps the types of the ONNX export (an fp16/bf16 export gives an
    fp16/bf16 engine). The weak-typing precision flags (``BuilderFlag.FP16``/``BF16``) are deprecated since
    TensorRT 10.12 and gone in 11, where strong typing is the only mode and the flag is ignored."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def engine_cache_key(model: str, num_classes: int, weights_digest: str, input_shape: tuple[int, ...],
                     precision: str, tensorrt_version: str, gpu_name: str) -> dict:
    """Everything a serialized engine depends on; a cached engine is reused only if all of it matches."""
    return {"model": model, "classes": num_classes, "weights": weights_digest, "input_shape": list(input_shape),
            "precision": precision, "tensorrt": tensorrt_version, "gpu": gpu_name}


def engine_paths(cache_dir: Path, key: dict) -> tuple[Path, Path]:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    shape = "x".join(map(str, key["input_shape"][-2:]))
    stem = f"{key['model']}-{key['classes']}c-{shape}-{key['precision']}-{digest}"
    return cache_dir / f"{stem}.engine", cache_dir / f"{stem}.json"


def cached_engine_matches(engine: Path, sidecar: Path, key: dict) -> bool:
    """True if ``engine`` exists and its sidecar records exactly ``key`` (model, classes, weights, shape,
    precision, TensorRT version, GPU)."""
    if not (engine.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text()) == key
    except (OSError, json.JSONDecodeError):
        return False


def build_engine(trt, onnx_path: Path, input_shape: tuple[int, ...], engine: Path, sidecar: Path, key: dict) -> bytes:
    """Build a strongly typed fixed-shape engine from ``onnx_path`` (whose types set the precision)."""
    log.warning("building TensorRT engine for %s at %s, %s (may take minutes; cached in %s afterwards)",
                key["model"], "x".join(map(str, input_shape)), key["precision"], engine.parent)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_creation_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    profile = builder.create_optimization_profile()
    profile.set_shape("image", input_shape, input_shape, input_shape)
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    data = bytes(serialized)
    write_bytes_atomic(engine, data)
    write_bytes_atomic(sidecar, json.dumps(key, sort_keys=True).encode())
    return data


class TensorRTRunner:
    """One fixed-shape engine per network input size, built on first use or loaded from the cache; run
    with ``execute_async_v3`` on the Segmenter's stream. The caller makes ``device`` the current device
    (TensorRT allocates and runs on the current one)."""

    def __init__(self, network: nn.Module, device: torch.device, loaded, precision: str,
                 stream: torch.cuda.Stream | None = None, cache_dir=None):
        try:
            import tensorrt as trt
        except ImportError:
            raise RuntimeError(TENSORRT_MISSING) from None
        if device.type != "cuda":
            raise RuntimeError("backend 'tensorrt' runs on CUDA only: set device:=cuda")
        self.trt, self.device, self.loaded, self.precision = trt, device, loaded, precision
        self.stream = stream or torch.cuda.current_stream(device)
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE / "engines"
        self.onnx_path = cached_onnx(network, loaded, self.cache_dir, loaded.input_size, precision)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engines: dict[tuple, tuple] = {}

    def engine_for(self, input_shape: tuple[int, ...]):
        key = engine_cache_key(self.loaded.name, self.loaded.dataset.num_classes, self.loaded.weights_digest,
                               input_shape, self.precision, self.trt.__version__,
                               torch.cuda.get_device_name(self.device))
        engine_path, sidecar = engine_paths(self.cache_dir, key)
        engine = None
        if cached_engine_matches(engine_path, sidecar, key):
            engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if engine is None:
                log.warning("cached TensorRT engine %s failed to deserialize; rebuilding", engine_path)
        elif engine_path.exists():
            log.warning("cached TensorRT engine %s does not match this model/TensorRT/GPU; rebuilding", engine_path)
        if engine is None:
            data = build_engine(self.trt, self.onnx_path, input_shape, engine_path, sidecar, key)
            engine = self.runtime.deserialize_cuda_engine(data)
        return engine

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape not in self._engines:
            engine = self.engine_for(shape)
            context = engine.create_execution_context()
            context.set_input_shape("image", shape)
            # I/O buffers in the engine's own tensor types (fp16/bf16 for a reduced-precision engine), at
            # fixed addresses set once.
            image = torch.empty(shape, dtype=torch_dtype_of(engine.get_tensor_dtype("image")), device=self.device)
            logits = torch.empty(tuple(context.get_tensor_shape("logits")),
                                 dtype=torch_dtype_of(engine.get_tensor_dtype("logits")), device=self.device)
            context.set_tensor_address("image", image.data_ptr())
            context.set_tensor_address("logits", logits.data_ptr())
            self._engines[shape] = (engine, context, image, logits)
        _, context, image, logits = self._engines[shape]
        image.copy_(x)
        context.execute_async_v3(self.stream.cuda_stream)
        return logits.float()
