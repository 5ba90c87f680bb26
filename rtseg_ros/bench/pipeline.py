"""``rtseg-bench --pipeline``: the Segmenter against a naive loop (per-frame tensors, OpenCV/NumPy pre- and
post-processing on the CPU, eager fp32, full-resolution logits brought back), on the same frames."""
from __future__ import annotations

import copy
import statistics
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from rtseg_ros.bench.models import fp32_math
from rtseg_ros.common import percentiles, rss_mib
from rtseg_ros.runtime.segmenter import Segmenter


def synthetic_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Road-scene frames from the synthetic generator (BGR, like most cameras)."""
    from rtseg_ros.data.synth import generate_scene

    rng = np.random.default_rng(seed)
    return [cv2.cvtColor(generate_scene(rng, *size)[0], cv2.COLOR_RGB2BGR) for _ in range(count)]


def summarise(times_ms: list[float]) -> dict:
    mean = statistics.fmean(times_ms)
    return {"fps": 1000.0 / mean, "mean_ms": mean, **{f"{k}_ms": v for k, v in percentiles(times_ms).items()}}


class NaiveLoop:
    """What a first ROS node usually does: everything per frame, on the CPU, in eager fp32."""

    def __init__(self, segmenter: Segmenter):
        # Its own copy of the network as built (BN unfolded, same weights, fp32) on the benchmark's device:
        # the Segmenter moves only its folded copy there, and must keep its own settings untouched.
        # The Segmenter's network returns logits at its output stride; the naive loop's, at the frame's.
        self.model = copy.deepcopy(segmenter.loaded.model).eval().to(segmenter.device)
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
    segmenter = Segmenter(model, device=device, backend="torch", precision=precision, input_size=input_size)
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
            run(images[i % len(images)])  # both loops return host arrays: the frame's GPU work is done
            times.append(1e3 * (time.perf_counter() - start))
        results[name] = {**summarise(times), "rss_start_mib": memory_start, "rss_end_mib": rss_mib()}
    agreement = float(np.mean([(segmenter(im, "bgr8").labels == naive(im)[0]).mean() for im in images[:2]]))
    return {"model": model, "frame": list(size), "network_input": list(segmenter.net_hw), "device": device,
            "precision": precision, "fp32_math": fp32_math(device), "frames": frames, "threads": torch.get_num_threads(), **results,
            "speedup": results["segmenter"]["fps"] / results["naive"]["fps"], "label_agreement": agreement}


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
