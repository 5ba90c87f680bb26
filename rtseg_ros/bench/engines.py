"""``rtseg-bench --models`` on a CPU: the engines side by side in one run, per model and size.

Network forward only (logits at the output stride, the part the engines differ in), batch 1, random input,
median of timed calls after warm-up, all engines on the same number of threads:

- ``eager``: the network as built (fp32, NCHW, BN unfolded), the baseline;
- ``torch``: the package's torch path (BN folded, channels_last); ``torch_nchw`` / ``torch_nhwc`` (asked
  for by name): the same in NCHW or channels_last, how the torch path's memory format was chosen (README);
- ``onnxruntime``, ``openvino``: the package's ONNX export in the Segmenter's runners (fp32);
- ``int8``: the INT8 model (QDQ, ONNX Runtime's quantizer) in the engine ``backend:=auto`` picks for int8.
  Calibrated here on random inputs, which gives the speed (the same operators) but not the accuracy: see
  ``rtseg-export --int8`` for a real calibration.

With ``neighbour`` the same is measured while another process keeps the cores busy: a torch matrix loop
on all cores (another perception node, or a training run) or plain Python busy loops.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from tqdm import tqdm

from rtseg_ros.models import build_model, get_entry
from rtseg_ros.runtime.backends import importable, resolve_backend
from rtseg_ros.runtime.backends.cache import cached_onnx, onnx_path
from rtseg_ros.runtime.backends.int8 import quantize
from rtseg_ros.runtime.segmenter import Segmenter

ENGINES = ("eager", "torch", "onnxruntime", "openvino", "int8")
EXTRA_ENGINES = ("torch_nchw", "torch_nhwc")  # asked for by name (--engines)
FP32_ENGINES = ("torch", "onnxruntime", "openvino")
NEIGHBOURS = {
    "none": None,
    "torch": "import os, torch\ntorch.set_num_threads(os.cpu_count())\na = torch.randn(512, 512)\nwhile True: a @ a",
    "busy": "while True: pass",
}


@contextlib.contextmanager
def neighbour_process(kind: str):
    """Another process keeping every core busy while the block runs (``kind`` in ``NEIGHBOURS``)."""
    code = NEIGHBOURS[kind]
    if code is None:
        yield
        return
    count = os.cpu_count() if kind == "busy" else 1
    processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        time.sleep(2.0)  # let it start and spin up its threads
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


@torch.no_grad()
def median_ms(run, seconds: float, min_runs: int = 5, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run()
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def engine_runner(name: str, engine: str, size: tuple[int, int], cache_dir: str):
    """``run()`` of one engine on a random 1×3×H×W input, or None when its package is missing. Every
    engine of a model gets the same random weights (seeded), so the Segmenters share one ONNX export in
    ``cache_dir`` (keyed by weights) and the INT8 model calibrated from it."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, *size)
    torch.manual_seed(1)
    if engine == "eager":
        network = build_model(name, upsample_logits=False).eval()
        return lambda: network(x)
    if engine == "int8":
        if not importable("onnxruntime"):  # the quantizer
            return None
        backend, _ = resolve_backend("auto", "cpu", "int8")
        reference = Segmenter(name, backend="torch", input_size=size, keep_aspect=False, engine_cache_dir=cache_dir)
        int8 = onnx_path(reference.loaded, cache_dir, "int8")
        if not int8.is_file():
            fp32 = cached_onnx(reference.network, reference.loaded, cache_dir, "fp32")
            quantize(fp32, [torch.randn(1, 3, *size).numpy() for _ in range(4)], int8)
        torch.manual_seed(1)
        seg = Segmenter(name, backend=backend, precision="int8", input_size=size, keep_aspect=False,
                        engine_cache_dir=cache_dir)
    elif engine in EXTRA_ENGINES:
        seg = Segmenter(name, backend="torch", input_size=size, keep_aspect=False,
                        channels_last=engine == "torch_nhwc")
    else:
        if not importable(engine):
            return None
        seg = Segmenter(name, backend=engine, input_size=size, keep_aspect=False, engine_cache_dir=cache_dir)
    return lambda: seg._runner(x)


def bench_engines(models: list[str], sizes: list[tuple[int, int]], engines=ENGINES, neighbours=("none",),
                  seconds: float = 3.0) -> list[dict]:
    """One row per model, size and neighbour: each engine's median ms, the fastest fp32 engine and what
    ``backend:=auto`` picks by its own short measurement at start-up (``auto``, ``auto_ms``). The idle row ("none") is always measured, first: the baseline
    of the loaded ones."""
    neighbours = ["none", *(kind for kind in neighbours if kind != "none")]
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        todo = [(m, s) for m in models for s in sizes]
        for name, size in tqdm(todo, desc="models", unit="model×size"):
            runners = {engine: engine_runner(name, engine, size, cache_dir) for engine in engines}
            torch.manual_seed(1)  # the engines' weights: what backend:=auto measures and picks for them
            auto = Segmenter(name, backend="auto", input_size=size, keep_aspect=False,
                             engine_cache_dir=cache_dir).backend_name
            for kind in neighbours:
                with neighbour_process(kind):
                    ms = {engine: median_ms(run, seconds) for engine, run in runners.items() if run is not None}
                fp32 = {engine: ms[engine] for engine in FP32_ENGINES if engine in ms}
                fastest = min(fp32, key=fp32.get) if fp32 else None
                rows.append({"model": name, "size": list(size), "neighbour": kind, "threads": torch.get_num_threads(),
                             "ms": ms, "fastest_fp32": fastest, "auto": auto, "auto_ms": ms.get(auto),
                             "paper_resolution": list(get_entry(name).paper.resolution or ())})
    return rows


def engines_table(rows: list[dict], engines=ENGINES) -> str:
    """Markdown: one row per model/size/neighbour, the engines' median ms, auto against the fastest fp32."""
    present = [e for e in (*ENGINES, *EXTRA_ENGINES) if e in engines and any(e in r["ms"] for r in rows)]
    lines = ["| model | input | neighbour | " + " | ".join(f"{e} ms" for e in present)
             + " | fastest fp32 | auto | auto ÷ fastest fp32 | int8 speed-up over fastest fp32 |",
             "|---|---|---|" + "---:|" * len(present) + "---|---|---:|---:|"]
    for r in rows:
        ms = r["ms"]
        cells = [f"{ms[e]:.1f}" if e in ms else "-" for e in present]
        best = ms.get(r["fastest_fp32"])
        auto = f"{r['auto_ms'] / best:.2f}×" if best and r["auto_ms"] else "-"
        int8 = f"{best / ms['int8']:.2f}×" if best and "int8" in ms else "-"
        lines.append(f"| {r['model']} | {r['size'][0]}×{r['size'][1]} | {r['neighbour']} | " + " | ".join(cells)
                     + f" | {r['fastest_fp32'] or '-'} | {r['auto']} | {auto} | {int8} |")
    return "\n".join(lines)


def load_table(rows: list[dict], engines=ENGINES) -> str:
    """Markdown: how much each engine's latency rises with a neighbour, against the idle row of the same run."""
    idle = {(r["model"], tuple(r["size"])): r for r in rows if r["neighbour"] == "none"}
    present = [e for e in (*ENGINES, *EXTRA_ENGINES) if e in engines and any(e in r["ms"] for r in rows)]
    lines = ["| model | input | neighbour | " + " | ".join(f"{e} (× idle)" for e in present) + " |",
             "|---|---|---|" + "---:|" * len(present)]
    for r in rows:
        base = idle.get((r["model"], tuple(r["size"])))
        if r["neighbour"] == "none" or base is None:
            continue
        cells = [f"{r['ms'][e]:.1f} ({r['ms'][e] / base['ms'][e]:.1f}×)" if e in r["ms"] and e in base["ms"] else "-"
                 for e in present]
        lines.append(f"| {r['model']} | {r['size'][0]}×{r['size'][1]} | {r['neighbour']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
