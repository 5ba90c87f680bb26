"""What the engines keep on disk: ONNX exports, INT8 models and compiled engines, each under a key.

ONNX exports are keyed by what they are made of (model, classes, weights, precision); a compiled engine
(TensorRT plan, OpenVINO blob) also depends on the input shape, the engine's version and the device it was
compiled for, and carries a JSON sidecar with that whole key: it is reused only if every field matches.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from rtseg_ros.runtime.choices import PRECISION_DTYPES
from rtseg_ros.runtime.export import TRACE_SIZE, export_onnx

DEFAULT_CACHE = Path(os.environ.get("RTSEG_CACHE", Path.home() / ".cache" / "rtseg_ros"))


def onnx_path(loaded, cache_dir: str | Path | None, precision: str) -> Path:
    """``<cache>/<model>-<classes>c-<weights digest>-<precision>.onnx``."""
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    return cache / f"{loaded.name}-{loaded.dataset.num_classes}c-{loaded.weights_digest}-{precision}.onnx"


def int8_missing(loaded, path: Path) -> str:
    return (f"precision int8 needs an INT8 model calibrated for these weights ({loaded.weights_note}), and "
            f"{path} does not exist: make it once with `rtseg-export --weights <the same weights> --int8 "
            f"--calib-root <a dataset folder>` (with the same engine_cache_dir), or use precision:=fp32")


def cached_onnx(network: nn.Module, loaded, cache_dir: str | Path | None, precision: str = "fp32") -> Path:
    """The network's ONNX file for ``precision`` (dynamic H, W, traced at ``export.TRACE_SIZE`` whatever size
    it then runs at), exported on first use. A reduced-precision export has fp16/bf16 weights, input and
    output, which is what a strongly typed TensorRT network and ONNX Runtime then run in. INT8 models are not
    exported here but calibrated (``backends.int8``)."""
    path = onnx_path(loaded, cache_dir, precision)
    if precision == "int8":
        if not path.is_file():
            raise RuntimeError(int8_missing(loaded, path))
        return path
    if not path.is_file():
        dtype = getattr(torch, PRECISION_DTYPES[precision])
        export_onnx(copy.deepcopy(network).cpu().to(dtype), path, TRACE_SIZE, dtype=dtype)
    return path


def engine_cache_key(model: str, num_classes: int, weights_digest: str, input_shape: tuple[int, ...],
                     precision: str, engine: str, engine_version: str, device: str, settings: dict | None = None) -> dict:
    """Everything a compiled engine depends on; a cached one is reused only if all of it matches.
    ``engine``: "tensorrt" or "openvino"; ``device``: the GPU's or CPU's name as the engine reports it;
    ``settings``: compile options that end up in the compiled file (OpenVINO's threading)."""
    return {"model": model, "classes": num_classes, "weights": weights_digest, "input_shape": list(input_shape),
            "precision": precision, "engine": engine, "engine_version": engine_version, "device": device,
            "settings": dict(settings or {})}


def engine_paths(cache_dir: Path, key: dict, suffix: str) -> tuple[Path, Path]:
    """The compiled engine's file (``<stem><suffix>``) and its JSON sidecar."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    shape = "x".join(map(str, key["input_shape"][-2:]))
    stem = f"{key['model']}-{key['classes']}c-{shape}-{key['precision']}-{digest}"
    return cache_dir / f"{stem}{suffix}", cache_dir / f"{stem}.json"


def cached_engine_matches(engine: Path, sidecar: Path, key: dict) -> bool:
    """True if ``engine`` exists and its sidecar records exactly ``key``."""
    if not (engine.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text()) == key
    except (OSError, json.JSONDecodeError):
        return False
