"""TensorRT: one strongly typed, fixed-shape engine per network input size, built from the package's ONNX
export on first use and cached (``backends.cache``), run with ``execute_async_v3`` on the Segmenter's
stream."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from rtseg_ros.fileio import write_bytes_atomic
from rtseg_ros.runtime.backends.cache import (cached_engine_matches, cached_onnx, engine_cache_key, engine_folder,
                                              engine_paths, written)
from rtseg_ros.runtime.choices import BACKEND_PRECISIONS, missing_engine

log = logging.getLogger(__name__)
TENSORRT_PRECISIONS = BACKEND_PRECISIONS["tensorrt"]


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


def timing_cache_path(cache_dir: Path, key: dict) -> Path:
    """The builder's timing cache (the measured speed of each kernel it tried), one per TensorRT version and
    GPU, since its entries hold only for those; shared by every network, size and precision built there."""
    device = "".join(c if c.isalnum() else "_" for c in key["device"])
    return cache_dir / f"tensorrt-{key['engine_version']}-{device}.timing"


def build_engine(trt, onnx_path: Path, input_shape: tuple[int, ...], engine: Path, sidecar: Path, key: dict) -> bytes:
    """Build a strongly typed fixed-shape engine from ``onnx_path`` (whose types set the precision), timing
    kernels through the timing cache beside the engine (kept, so that the next build skips what was
    measured: most of a build's time)."""
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
    timing_path = timing_cache_path(engine.parent, key)
    timing = None
    if timing_path.is_file():
        try:  # a cache TensorRT cannot read (truncated, another version) gives None or raises
            timing = config.create_timing_cache(timing_path.read_bytes())
        except RuntimeError:
            timing = None
        if timing is None:
            log.warning("TensorRT could not read the timing cache %s; timing every kernel again", timing_path)
    if timing is None:
        timing = config.create_timing_cache(b"")
    if not config.set_timing_cache(timing, False):  # False: refuse a cache made by another TensorRT or GPU
        log.warning("TensorRT refused the timing cache %s (another version or GPU); timing every kernel", timing_path)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    data = bytes(serialized)
    write_bytes_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
    write_bytes_atomic(engine, data)
    write_bytes_atomic(sidecar, json.dumps(key, sort_keys=True).encode())
    return data


class TensorRTRunner:
    """One fixed-shape engine per network input size, built on first use or loaded from the cache; run
    with ``execute_async_v3`` on the Segmenter's stream. The caller makes ``device`` the current device
    (TensorRT allocates and runs on the current one)."""

    def __init__(self, network: nn.Module, device: torch.device, loaded, precision: str,
                 stream: torch.cuda.Stream | None = None, cache_dir=None, threads: int = 0):
        try:
            import tensorrt as trt
        except ImportError:
            raise RuntimeError(missing_engine("tensorrt")) from None
        if device.type != "cuda":
            raise RuntimeError("backend 'tensorrt' runs on CUDA only: set device:=cuda")
        if precision not in TENSORRT_PRECISIONS:
            raise ValueError(f"backend 'tensorrt' runs {', '.join(TENSORRT_PRECISIONS)}, not {precision}")
        self.trt, self.device, self.loaded, self.precision = trt, device, loaded, precision
        self.stream = stream or torch.cuda.current_stream(device)
        self.cache_dir, self.engines = cache_dir, engine_folder(loaded, cache_dir)
        self.onnx_path = cached_onnx(network, loaded, cache_dir, precision)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engines: dict[tuple, tuple] = {}

    def engine_for(self, input_shape: tuple[int, ...]):
        key = engine_cache_key(self.loaded.name, self.loaded.dataset.num_classes, self.loaded.weights_digest,
                               input_shape, self.precision, "tensorrt", self.trt.__version__,
                               torch.cuda.get_device_name(self.device))
        engine_path, sidecar = engine_paths(self.engines, key, ".engine")
        engine = None
        if cached_engine_matches(engine_path, sidecar, key):
            engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if engine is None:
                log.warning("cached TensorRT engine %s failed to deserialize; rebuilding", engine_path)
        elif engine_path.exists():
            log.warning("cached TensorRT engine %s does not match this model/TensorRT/GPU; rebuilding", engine_path)
        if engine is None:
            data = build_engine(self.trt, self.onnx_path, input_shape, engine_path, sidecar, key)
            written(engine_path, self.loaded, self.cache_dir)
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
        # False when the enqueue failed (TensorRT logs why): the logits buffer would still hold the last
        # frame's output, so that must not be returned as this frame's.
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"TensorRT failed to run the {self.loaded.name} engine at "
                               f"{'x'.join(map(str, shape))} (execute_async_v3 returned False; TensorRT's log says why)")
        return logits.float()
