"""``backend:=auto`` on a CPU: the fastest installed engine for this network, input shape and machine, measured.

No fixed order is right for every network here (rtseg-bench: OpenVINO is fastest for DDRNet, ONNX Runtime
for SGCPNet). So on first use each installed engine that runs the precision is built and timed on the
network's input shape (one warm-up call, then ``MEASURE_S`` or at least ``MIN_RUNS`` calls; about a second
or two in all, said in the reason), and the fastest is kept. The timings are cached as a small JSON file
beside the compiled engines, keyed by the weights, shape, precision, threads, every candidate engine's
version and the CPU's name, so a new engine version or another machine measures again; random weights are
measured every time (they are never cached).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rtseg_ros.common import cpuinfo_field
from rtseg_ros.fileio import write_bytes_atomic
from rtseg_ros.runtime.backends import cache, importable
from rtseg_ros.runtime.choices import AUTO_ORDER, BACKEND_PRECISIONS

MEASURE_S = 0.3  # timed seconds per engine, after its warm-up call
MIN_RUNS = 3


def candidates(precision: str) -> tuple[str, ...]:
    """The CPU engines auto chooses among: importable, running ``precision``, in AUTO_ORDER's order."""
    return tuple(name for name in AUTO_ORDER["cpu"] if importable(name) and precision in BACKEND_PRECISIONS[name])


def cpu_name() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def engine_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in names:
        if name == "torch":
            versions[name] = torch.__version__
        elif name == "onnxruntime":
            import onnxruntime

            versions[name] = onnxruntime.__version__
        elif name == "openvino":
            import openvino

            versions[name] = openvino.get_version()
    return versions


def choice_key(loaded, input_hw: tuple[int, int], precision: str, threads: int, names: tuple[str, ...]) -> dict:
    """Everything the measured choice depends on."""
    return {"model": loaded.name, "classes": loaded.dataset.num_classes, "weights": loaded.weights_digest,
            "input_hw": list(input_hw), "precision": precision, "threads": threads, "candidates": list(names),
            "versions": engine_versions(names), "cpu": cpu_name(), "cores": os.cpu_count()}


def choice_path(loaded, cache_dir, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return cache.engine_folder(loaded, cache_dir) / f"{loaded.name}-{key['classes']}c-auto-{digest}.json"


def read_choice(path: Path, key: dict) -> dict | None:
    """The cached measurement for exactly ``key``, or None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("key") != key or record.get("backend") not in key["candidates"]:
        return None
    cache.touch(path)
    return record


def write_choice(path: Path, key: dict, timings_ms: dict[str, float], backend: str, loaded, cache_dir) -> None:
    if cache.is_random(loaded):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"key": key, "backend": backend, "timings_ms": timings_ms}
    write_bytes_atomic(path, json.dumps(record, indent=1).encode())
    cache.written(path, loaded, cache_dir)


def time_runner(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """Median milliseconds of ``run(x)`` after one warm-up call."""
    run(x)
    times, deadline = [], time.perf_counter() + MEASURE_S
    while len(times) < MIN_RUNS or time.perf_counter() < deadline:
        started = time.perf_counter()
        run(x)
        times.append(1e3 * (time.perf_counter() - started))
    return statistics.median(times)


def reason(timings_ms: dict[str, float], input_hw: tuple[int, int], cached: bool, took_s: float = 0.0) -> str:
    figures = ", ".join(f"{name} {ms:.1f} ms" for name, ms in sorted(timings_ms.items(), key=lambda kv: kv[1]))
    how = "cached measurement" if cached else f"measured in {took_s:.1f} s"
    return f"auto on cpu: fastest at {input_hw[1]}x{input_hw[0]} here ({figures}; {how})"
