"""OpenVINO: the package's ONNX export (or its INT8 model) compiled for one input shape on an OpenVINO
device (the CPU, or an Intel GPU OpenVINO sees), cached like the TensorRT engines.

The compiled model is exported to ``<cache>/…-<precision>-<digest>.ov`` with a JSON sidecar of its key
(model, classes, weights, input shape, precision, OpenVINO version, device name, and the compile settings,
which the file keeps), and imported instead of compiled again while the whole key matches. Importing takes
the settings again: without them OpenVINO would apply its defaults (bf16 on such CPUs).

Precision is OpenVINO's inference precision hint: on a CPU with AMX or AVX-512 BF16, OpenVINO would run
"fp32" models in bf16 by default; here fp32 means f32, and bf16/fp16 are asked for by name.
"""
from __future__ import annotations

import functools
import json
import logging

import torch
from torch import nn

from rtseg_ros.fileio import write_bytes_atomic
from rtseg_ros.runtime.backends.cache import (cached_engine_matches, cached_onnx, engine_cache_key, engine_folder,
                                              engine_paths, written)
from rtseg_ros.runtime.choices import BACKEND_PRECISIONS, missing_engine

log = logging.getLogger(__name__)
# precision (each of BACKEND_PRECISIONS["openvino"]) → (the ONNX file compiled, OpenVINO's INFERENCE_PRECISION_HINT)
OPENVINO_PRECISIONS = {"fp32": ("fp32", "f32"), "bf16": ("fp32", "bf16"), "fp16": ("fp32", "f16"),
                       "int8": ("int8", "f32")}


def compile_config(precision: str, threads: int, supported: set[str]) -> dict:
    """One frame at a time, as fast as possible, on ``threads`` threads (0: OpenVINO's default), and
    degrading gently when another process takes the cores: threads not pinned (a pinned thread whose core a
    neighbour holds waits for that core instead of moving) and TBB's auto partitioner (work re-balanced
    between threads instead of each waiting for its fixed share); README, "CPU engines", loaded figures.
    ``supported``: the device's SUPPORTED_PROPERTIES (older OpenVINO and the GPU plugin lack some)."""
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
              "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision][1]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    for name, value in (("ENABLE_CPU_PINNING", "NO"), ("TBB_PARTITIONER", "AUTO")):
        if name in supported:
            config[name] = value
    return config


@functools.cache
def openvino_core():
    """The process's one OpenVINO Core, never released. OpenVINO 2026.4's CPU plugin gives the thread
    that loads a model an alternate signal stack inside the Core; with two Cores released in the order they
    were made, the thread is left pointing at freed memory, and the next signal it handles (SIGINT, a child
    process exiting) kills the process with SIGSEGV (seen here in the test suite; reproduced in
    test_backends). One Core for everything keeps that stack valid, and saves loading plugins per runner."""
    import openvino

    return openvino.Core()


def openvino_device_name(core, device: str) -> str:
    """The full name of OpenVINO ``device`` ("CPU", "GPU", "GPU.1"), refused in one line if OpenVINO does
    not see it."""
    if device.split(".")[0] not in {d.split(".")[0] for d in core.available_devices}:
        raise RuntimeError(f"OpenVINO sees no device {device!r} here (it sees {', '.join(core.available_devices)}): "
                           "set openvino_device:=CPU")
    return core.get_property(device, "FULL_DEVICE_NAME")


class OpenVinoRunner:
    """One compiled model and infer request per network input shape; the output is a view of OpenVINO's
    buffer, valid until the next call (the Segmenter consumes it before)."""

    def __init__(self, network: nn.Module, device: torch.device, loaded, precision: str = "fp32",
                 stream=None, cache_dir=None, threads: int = 0, openvino_device: str = "CPU"):
        try:
            import openvino
        except ImportError:
            raise RuntimeError(missing_engine("openvino")) from None
        if device.type != "cpu":
            raise ValueError("backend 'openvino' runs with device:=cpu (its own device is openvino_device, "
                             "e.g. GPU for an Intel GPU)")
        if precision not in BACKEND_PRECISIONS["openvino"]:
            raise ValueError(f"backend 'openvino' runs {', '.join(BACKEND_PRECISIONS['openvino'])}, not {precision}")
        self.ov, self.core = openvino, openvino_core()
        self.loaded, self.precision, self.openvino_device = loaded, precision, openvino_device
        self.device_name = openvino_device_name(self.core, openvino_device)
        self.config = compile_config(precision, threads,
                                     set(self.core.get_property(openvino_device, "SUPPORTED_PROPERTIES")))
        self.cache_dir, self.engines = cache_dir, engine_folder(loaded, cache_dir)
        self.onnx_path = cached_onnx(network, loaded, cache_dir, OPENVINO_PRECISIONS[precision][0])
        self._requests: dict[tuple, object] = {}

    def compiled_for(self, input_shape: tuple[int, ...]):
        key = engine_cache_key(self.loaded.name, self.loaded.dataset.num_classes, self.loaded.weights_digest,
                               input_shape, self.precision, "openvino", self.ov.__version__, self.device_name,
                               self.config)
        blob, sidecar = engine_paths(self.engines, key, ".ov")
        if cached_engine_matches(blob, sidecar, key):
            try:
                return self.core.import_model(blob.read_bytes(), self.openvino_device, self.config)
            except RuntimeError as exc:
                log.warning("cached OpenVINO model %s failed to import (%s); compiling again", blob, exc)
        model = self.core.read_model(str(self.onnx_path))
        model.reshape({"image": list(input_shape)})
        compiled = self.core.compile_model(model, self.openvino_device, self.config)
        write_bytes_atomic(blob, compiled.export_model().getvalue())
        write_bytes_atomic(sidecar, json.dumps(key, sort_keys=True).encode())
        written(blob, self.loaded, self.cache_dir)
        return compiled

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        request = self._requests.get(shape)
        if request is None:
            request = self._requests[shape] = self.compiled_for(shape).create_infer_request()
        request.infer({0: x.float().contiguous().numpy()}, share_inputs=True, share_outputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data)
