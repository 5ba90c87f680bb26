"""``rtseg-bench --memory``: how much one frame grows the process's resident memory, per frame size, with the
Segmenter's banded upsampling (the default) and with whole-frame logits (``max_logits_mb=0``, the
baseline), same run, same frames; and how many labels the two disagree on.

Each configuration gets a fresh Segmenter, warmed on a small frame of the same shape (so the engine and the
network's activations are in place, as in a running node); the peak is the kernel's high-water mark (``VmHWM``, reset
through ``/proc/self/clear_refs`` before the frame), minus the resident size just before it, so it counts
everything the frame allocates: its input and output buffers, the network's activations and the logits.
Linux only.
"""
from __future__ import annotations

import gc

import numpy as np
import torch

from rtseg_ros.common import status_mib
from rtseg_ros.models import pretrained
from rtseg_ros.runtime.segmenter import Segmenter


def frame_growth_mib(segmenter: Segmenter, frame: np.ndarray, outputs: tuple[str, ...]) -> tuple[float, np.ndarray]:
    """Peak resident growth while ``segmenter`` handles its first ``frame``, and the labels."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current resident size
    before = status_mib("VmRSS")
    labels = segmenter(frame, "rgb8", outputs=outputs).labels.copy()
    return status_mib("VmHWM") - before, labels


def bench_memory(model: str, sizes, backend: str = "torch", outputs: tuple[str, ...] = ("labels",),
                 weights: str = "") -> list[dict]:
    """One row per (H, W): peak growth banded and whole-frame, the logits' size, labels that differ.
    ``weights`` empty: the model's shipped weights, as the node runs it."""
    model, weights = pretrained.choose(model, weights)
    rows = []
    for height, width in sizes:
        frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        small = np.ascontiguousarray(frame[::8, ::8])
        row: dict = {"size": f"{width}x{height}", "model": model, "backend": backend, "outputs": list(outputs)}
        labels = {}
        for mode, max_logits_mb in (("banded", 32.0), ("whole", 0.0)):
            torch.manual_seed(0)  # weights:=random: the same network both times
            segmenter = Segmenter(model, weights, backend=backend, max_logits_mb=max_logits_mb)
            segmenter(small, "rgb8", outputs=outputs)
            growth, labels[mode] = frame_growth_mib(segmenter, frame, outputs)
            row[f"{mode}_growth_mb"] = round(growth, 1)
            row["classes"] = segmenter.dataset.num_classes
            del segmenter
        row["logits_mb"] = round(4 * row["classes"] * height * width / 2**20, 1)
        row["labels_differing"] = int((labels["banded"] != labels["whole"]).sum())
        rows.append(row)
    return rows


def memory_table(rows: list[dict]) -> str:
    lines = ["| frame | full-resolution logits | growth, banded (default) | growth, whole-frame logits | labels differing |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['logits_mb']:.0f} MB | **{r['banded_growth_mb']:.0f} MB** | "
                     f"{r['whole_growth_mb']:.0f} MB | {r['labels_differing']} |")
    return "\n".join(lines)
