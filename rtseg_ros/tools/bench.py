"""``rtseg-bench``: speed and memory, always beside a baseline measured in the same run.

  --pipeline  the Segmenter against a naive loop (per-frame tensors, OpenCV/NumPy pre- and
              post-processing on the CPU, eager fp32, full-resolution logits brought back), same frames
  --models    network forward speed by the papers' protocol (batch 1, warm-up, synchronised timing),
              per model, precision and CUDA-graph setting
  --node      the running ROS node: end-to-end latency vs bare rclpy transport and the Segmenter alone,
              at fixed input rates (--rates); with --peak, the highest rate losing < 5 % of frames
Prints a Markdown table and writes JSON (``--json``).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from rtseg_ros.runtime.segmenter import Segmenter
from rtseg_ros.tools.export import parse_size


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB (Linux ``/proc``); this process by default."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def synthetic_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Road-scene frames from the synthetic generator (BGR, like most cameras)."""
    from rtseg_ros.data.synth import generate_scene

    rng = np.random.default_rng(seed)
    return [cv2.cvtColor(generate_scene(rng, *size)[0], cv2.COLOR_RGB2BGR) for _ in range(count)]


def summarise(times_ms: list[float]) -> dict:
    ordered = sorted(times_ms)
    return {"fps": 1000.0 / statistics.fmean(ordered), "mean_ms": statistics.fmean(ordered),
            "p50_ms": ordered[len(ordered) // 2], "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


class NaiveLoop:
    """What a first ROS node usually does: everything per frame, on the CPU, in eager fp32."""

    def __init__(self, segmenter: Segmenter):
        self.model = segmenter.loaded.model.eval()  # the unfolded network, same weights
        self.model.upsample_logits = True
        self.mean, self.std = np.array(segmenter.loaded.mean), np.array(segmenter.loaded.std)
        self.palette = segmenter.dataset.palette_lut()
        self.device, self.segmenter = segmenter.device, segmenter

    @torch.no_grad()
    def __call__(self, bgr: np.ndarray, alpha: float = 0.5):
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        height, width = self.segmenter.net_hw
        x = (cv2.resize(rgb, (width, height)).astype(np.float32) / 255.0 - self.mean) / self.std
        x = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32)).to(self.device)
        logits = self.model(x)
        logits = torch.nn.functional.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)
        labels = logits.cpu().numpy()[0].argmax(0).astype(np.uint8)
        color = self.palette[labels]
        overlay = (rgb * (1 - alpha) + color * alpha).round().astype(np.uint8)
        return labels, color, overlay


def bench_pipeline(model: str, size: tuple[int, int], frames: int, device: str, precision: str,
                   input_size: tuple[int, int] | None, warmup: int = 2) -> dict:
    segmenter = Segmenter(model, device=device, precision=precision, input_size=input_size)
    naive = NaiveLoop(segmenter)
    images = synthetic_frames(min(frames, 8), size)
    outputs = ("labels", "color", "overlay")
    segmenter(images[0], "bgr8", outputs=outputs)  # sizes net_hw for the naive loop too
    results = {}
    for name, run in (("naive", lambda im: naive(im)), ("segmenter", lambda im: segmenter(im, "bgr8", outputs=outputs))):
        for i in range(warmup):
            run(images[i % len(images)])
        memory_start, times = rss_mib(), []
        for i in tqdm(range(frames), desc=f"{model} {name}", leave=False):
            start = time.perf_counter()
            run(images[i % len(images)])
            if segmenter.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(1e3 * (time.perf_counter() - start))
        results[name] = {**summarise(times), "rss_start_mib": memory_start, "rss_end_mib": rss_mib()}
    agreement = float(np.mean([(segmenter(im, "bgr8").labels == naive(im)[0]).mean() for im in images[:2]]))
    return {"model": model, "frame": list(size), "network_input": list(segmenter.net_hw), "device": device,
            "precision": precision, "frames": frames, "threads": torch.get_num_threads(), **results,
            "speedup": results["segmenter"]["fps"] / results["naive"]["fps"], "label_agreement": agreement}


def bench_models(models: list[str], sizes: list[tuple[int, int]], device: str, precisions: list[str],
                 graphs: list[bool], seconds: float = 3.0) -> list[dict]:
    """Forward-only FPS, batch 1, random input, warm-up, synchronised (DDRNet/PIDNet speed protocol), of the
    optimised network (BN folded, channels_last, each precision, CUDA graph on/off) beside the network as
    built (eager fp32, NCHW, BN unfolded) at the same size in the same run."""
    from rtseg_ros.models import build_model, get_entry
    from rtseg_ros.runtime.folding import fold_batchnorm

    rows = []
    for name in models:
        eager = build_model(name).eval()
        eager.upsample_logits = True
        folded, _ = fold_batchnorm(eager, torch.randn(1, 3, 128, 256))
        eager.to(device)
        paper = get_entry(name).paper
        for size in sizes:
            x = torch.randn(1, 3, *size, device=device)
            eager_fps = _fps(lambda: eager(x), device, seconds)
            for precision in precisions:
                dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
                net = copy.deepcopy(folded).to(device, dtype).to(memory_format=torch.channels_last)
                xc = x.to(dtype).contiguous(memory_format=torch.channels_last)
                for use_graph in graphs if device.startswith("cuda") else [False]:
                    fps = _fps(_graphed(net, xc) if use_graph else (lambda: net(xc)), device, seconds)
                    rows.append({"model": name, "size": list(size), "precision": precision, "cuda_graph": use_graph,
                                 "fps": fps, "ms": 1e3 / fps, "eager_fp32_fps": eager_fps, "speedup": fps / eager_fps,
                                 "paper_fps": paper.fps, "paper_resolution": list(paper.resolution or ()),
                                 "paper_gpu": paper.gpu, "device": _device_name(device)})
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
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({torch.get_num_threads()} threads)"


def pipeline_table(rows: list[dict]) -> str:
    lines = ["| model | frame | net input | device | naive FPS | Segmenter FPS | speed-up | p95 ms naive / ours | RSS MiB start→end (ours) | label agreement |",
             "|---|---|---|---|---:|---:|---:|---|---|---:|"]
    for r in rows:
        n, s = r["naive"], r["segmenter"]
        lines.append(f"| {r['model']} | {r['frame'][0]}×{r['frame'][1]} | {r['network_input'][0]}×{r['network_input'][1]} | "
                     f"{r['device']} {r['precision']} | {n['fps']:.2f} | {s['fps']:.2f} | {r['speedup']:.2f}× | "
                     f"{n['p95_ms']:.0f} / {s['p95_ms']:.0f} | {s['rss_start_mib']:.0f}→{s['rss_end_mib']:.0f} | "
                     f"{100 * r['label_agreement']:.2f} % |")
    return "\n".join(lines)


def models_table(rows: list[dict]) -> str:
    lines = ["| model | input | precision | CUDA graph | FPS | ms | eager fp32 FPS (same run) | speed-up | paper FPS (GPU, H×W) | device |",
             "|---|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        paper = (f"{r['paper_fps']} ({r['paper_gpu']}, {'×'.join(map(str, r['paper_resolution']))})"
                 if r["paper_fps"] else "-")
        lines.append(f"| {r['model']} | {r['size'][0]}×{r['size'][1]} | {r['precision']} | "
                     f"{'on' if r['cuda_graph'] else 'off'} | {r['fps']:.1f} | {r['ms']:.2f} | {r['eager_fp32_fps']:.1f} | "
                     f"{r['speedup']:.2f}× | {paper} | {r['device']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rtseg-bench", description=__doc__.split("``: ")[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--pipeline", action="store_true", help="Segmenter vs naive loop on the same frames")
    mode.add_argument("--models", nargs="*", metavar="MODEL", help="forward speed per model (none named: all)")
    mode.add_argument("--node", action="store_true", help="the ROS node vs bare transport and the Segmenter")
    parser.add_argument("--model", default="farsee", help="model for --pipeline/--node (default farsee)")
    parser.add_argument("--size", type=parse_size, nargs="+",
                        help="frame size(s) H x W (default: 1024x2048; --node: 480x640 720x1280 1024x2048)")
    parser.add_argument("--input-size", type=parse_size, help="network input H x W (default: the model's)")
    parser.add_argument("--frames", type=int, default=20, help="timed frames per configuration (default 20)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--graphs", nargs="+", default=["off"], choices=("on", "off"), help="CUDA graphs (--models)")
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0], help="input rates in Hz (--node, default 10)")
    parser.add_argument("--peak", action="store_true",
                        help="--node: search the highest input rate with < 5 %% of frames lost, per size")
    parser.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="segment_node parameter for --node (repeatable), e.g. device:=cuda")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = args.size or [(1024, 2048)]

    if args.pipeline:
        rows = [bench_pipeline(args.model, size, args.frames, args.device, p, args.input_size)
                for size in sizes for p in args.precision]
        print(pipeline_table(rows))
    elif args.models is not None:
        from rtseg_ros.models import available_models

        rows = bench_models(args.models or available_models(), sizes, args.device, args.precision,
                            [g == "on" for g in args.graphs])
        print(models_table(rows))
    else:
        from rtseg_ros.tools.bench_node import SIZES, bench_node, markdown_table, peak_rate, peak_table

        params = {"model": args.model, **dict(p.split(":=", 1) for p in args.node_param)}
        if args.peak:
            rows = peak_rate(args.size or SIZES, node_params=params)
            print(peak_table(rows))
        else:
            rows = [row for rate in args.rates
                    for row in bench_node(args.size or SIZES, rate_hz=rate, frames=args.frames, node_params=params)]
            print(markdown_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
