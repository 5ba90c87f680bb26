"""``rtseg-bench --models``: network forward speed by the papers' protocol (batch 1, warm-up, synchronised
timing), per model, precision and CUDA-graph setting, beside the network as built in the same run."""
from __future__ import annotations

import contextlib
import copy
import time

import torch

from rtseg_ros.models import build_model, get_entry
from rtseg_ros.runtime.folding import fold_batchnorm
from rtseg_ros.runtime.segmenter import DTYPES


def fp32_math(device: str) -> str:
    """Which math "fp32" means on ``device``: on CUDA, cuDNN runs fp32 convolutions in TF32 unless
    ``torch.backends.cudnn.allow_tf32`` is False (PyTorch's default: True); recorded with every row."""
    if not str(device).startswith("cuda"):
        return "ieee"
    return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"


@contextlib.contextmanager
def cudnn_benchmark():
    """cuDNN's autotuner on for the block: every measurement here runs one fixed shape, so cuDNN times its
    convolution algorithms once per shape (in the warm-up, before any timing or graph capture) and then runs
    the fastest, as the papers' speed protocol does. Restored afterwards: the flag is process-wide."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def bench_models(models: list[str], sizes: list[tuple[int, int]], device: str, precisions: list[str],
                 graphs: list[bool], seconds: float = 3.0) -> list[dict]:
    """Forward-only FPS, batch 1, random input, warm-up, synchronised (DDRNet/PIDNet speed protocol), of the
    optimised network (BN folded, channels_last, each precision, CUDA graph on/off) beside the network as
    built (eager fp32, NCHW, BN unfolded) at the same size in the same run; cuDNN autotuned (fixed shapes)."""
    rows = []
    with torch.cuda.device(torch.device(device)) if device.startswith("cuda") else contextlib.nullcontext(), \
            cudnn_benchmark():
        for name in models:
            rows.extend(_bench_model(name, sizes, device, precisions, graphs, seconds))
    return rows


def _bench_model(name: str, sizes, device: str, precisions, graphs, seconds: float) -> list[dict]:
    rows = []
    eager = build_model(name).eval()
    folded, _ = fold_batchnorm(eager, torch.randn(1, 3, 128, 256))
    eager.to(device)
    paper = get_entry(name).paper
    for size in sizes:
        x = torch.randn(1, 3, *size, device=device)
        eager_fps = _fps(lambda: eager(x), device, seconds)
        for precision in precisions:
            dtype = DTYPES[precision]
            net = copy.deepcopy(folded).to(device, dtype).to(memory_format=torch.channels_last)
            xc = x.to(dtype).contiguous(memory_format=torch.channels_last)
            for use_graph in graphs if device.startswith("cuda") else [False]:
                fps = _fps(_graphed(net, xc) if use_graph else (lambda: net(xc)), device, seconds)
                rows.append({"model": name, "size": list(size), "precision": precision, "backend": "torch",
                             "cuda_graph": use_graph,
                             "fps": fps, "ms": 1e3 / fps, "eager_fp32_fps": eager_fps, "speedup": fps / eager_fps,
                             "paper_fps": paper.fps, "paper_resolution": list(paper.resolution or ()),
                             "paper_gpu": paper.gpu, "device": _device_name(device),
                             "fp32_math": fp32_math(device), "cudnn_benchmark": torch.backends.cudnn.benchmark})
    return rows


def bench_tensorrt(models: list[str], sizes: list[tuple[int, int]], device: str, precisions: list[str],
                   seconds: float = 3.0) -> list[dict]:
    """Forward-only FPS of each network's TensorRT engine (built on first use, cached), by the same protocol
    as ``bench_models``: the Segmenter's own runner on a random input, on its stream and device. The random
    weights are seeded, so that every size and every run shares one ONNX export and a cached engine is
    reused (their keys hold the weights' digest)."""
    from rtseg_ros.runtime.segmenter import Segmenter, device_context

    rows = []
    for name in models:
        paper = get_entry(name).paper
        for size in sizes:
            for precision in precisions:
                torch.manual_seed(0)
                seg = Segmenter(name, device=device, backend="tensorrt", precision=precision, input_size=size)
                with device_context(seg.device, seg.stream):
                    x = torch.randn(1, 3, *size, device=seg.device)
                    fps = _fps(lambda: seg._runner(x), device, seconds)
                rows.append({"model": name, "size": list(size), "precision": precision, "backend": "tensorrt",
                             "cuda_graph": False, "fps": fps, "ms": 1e3 / fps, "eager_fp32_fps": None,
                             "speedup": None, "paper_fps": paper.fps, "paper_resolution": list(paper.resolution or ()),
                             "paper_gpu": paper.gpu, "device": _device_name(device), "fp32_math": fp32_math(device)})
    return rows


@torch.no_grad()
def _fps(run, device: str, seconds: float) -> float:
    for _ in range(10):
        run()
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        count += 1
    _sync(device)
    return count / (time.perf_counter() - start)


def _graphed(net, x):
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                net(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            net(x)
    return graph.replay


def _sync(device: str) -> None:
    if device.startswith("cuda"):  # the papers' protocol: the whole device, once per timed block
        torch.cuda.synchronize(torch.device(device))


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({torch.get_num_threads()} threads)"


def models_table(rows: list[dict]) -> str:
    lines = ["| model | input | precision | CUDA graph | FPS | ms | eager fp32 FPS (same run) | speed-up | paper FPS (GPU, H×W) | device |",
             "|---|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        paper = (f"{r['paper_fps']} ({r['paper_gpu']}, {'×'.join(map(str, r['paper_resolution']))})"
                 if r["paper_fps"] else "-")
        precision = r["precision"] if r.get("backend", "torch") == "torch" else f"{r['precision']} ({r['backend']})"
        eager = "-" if r["eager_fp32_fps"] is None else f"{r['eager_fp32_fps']:.1f}"
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}×"
        lines.append(f"| {r['model']} | {r['size'][0]}×{r['size'][1]} | {precision} | "
                     f"{'on' if r['cuda_graph'] else 'off'} | {r['fps']:.1f} | {r['ms']:.2f} | {eager} | "
                     f"{speedup} | {paper} | {r['device']} |")
    return "\n".join(lines)
