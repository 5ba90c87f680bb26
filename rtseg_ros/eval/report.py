"""Evaluation reports: ``report.json``, ``report.md`` and PNG plots, shared by ``rtseg-eval`` and the evaluator
node so both say the same thing in the same words.

Plots: the row-normalised confusion matrix, per-class IoU, a latency histogram (when latencies were
measured) and sample rows (input | prediction overlay | ground truth). Every file is written atomically.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on robots and CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..common import percentiles  # noqa: E402
from ..data.labels import DatasetInfo, colorize  # noqa: E402
from ..fileio import write_bytes_atomic  # noqa: E402
from .metrics import ConfusionMatrix  # noqa: E402


class Samples:
    """Up to ``limit`` (image, prediction, ground truth) rows spread evenly over a stream of unknown length:
    frames whose index is a multiple of ``stride`` are kept, and the stride doubles whenever twice the limit
    is held, so memory stays bounded however long the stream is."""

    def __init__(self, limit: int = 6):
        self.limit, self.stride, self.items = limit, 1, []

    def wants(self, index: int) -> bool:
        return self.limit > 0 and index % self.stride == 0

    def add(self, index: int, image: np.ndarray, prediction: np.ndarray, truth: np.ndarray) -> None:
        self.items.append((index, image, prediction, truth))
        if len(self.items) >= 2 * self.limit:
            self.stride *= 2
            self.items = [item for item in self.items if item[0] % self.stride == 0]

    def picked(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        step = max(1, math.ceil(len(self.items) / max(self.limit, 1)))
        return [item[1:] for item in self.items[::step][: self.limit]]


def latency_summary(values_ms: list[float]) -> dict | None:
    if not values_ms:
        return None
    v = np.asarray(values_ms, float)
    return {"count": int(v.size), "mean": float(v.mean()), **percentiles(v, (50, 90, 95, 99)), "max": float(v.max())}


def build_report(matrix: ConfusionMatrix, info: DatasetInfo, frames: dict, latency_ms: list[float] | None = None,
                 meta: dict | None = None, latency_definition: str = "") -> dict:
    """The report as a plain dict. ``frames``: counts such as ``{"total", "evaluated", "dropped"}``."""
    summary = matrix.summary(info.class_names)
    return {
        **(meta or {}),
        "dataset": info.name,
        "frames": frames,
        "miou": summary["miou"],
        "pixel_accuracy": summary["pixel_accuracy"],
        "iou": summary["iou"],
        "latency_ms": latency_summary(latency_ms or []),
        "latency_definition": latency_definition if latency_ms else "",
        "confusion_matrix": matrix.matrix.tolist(),
    }


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def markdown(report: dict) -> str:
    frames = report["frames"]
    lines = ["# Segmentation evaluation", ""]
    if report.get("partial"):
        lines += [f"**Partial report**: {report['partial']}.", ""]
    for key in ("model", "weights", "source", "device", "backend", "precision"):
        if report.get(key):
            lines.append(f"- {key}: `{report[key]}`")
    lines.append("- frames: " + ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in frames.items()))
    lines += ["", f"**mIoU {_percent(report['miou'])} %**, pixel accuracy {_percent(report['pixel_accuracy'])} %", ""]
    latency = report["latency_ms"]
    if latency:
        lines += [f"Latency ({report['latency_definition']}), ms over {latency['count']} frames:", "",
                  "| mean | p50 | p90 | p95 | p99 | max |", "|---|---|---|---|---|---|",
                  "| " + " | ".join(f"{latency[k]:.1f}" for k in ("mean", "p50", "p90", "p95", "p99", "max")) + " |", ""]
    lines += ["| class | IoU % |", "|---|---|"]
    lines += [f"| {name} | {_percent(iou)} |" for name, iou in report["iou"].items()]
    return "\n".join(lines) + "\n"


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _confusion_png(matrix: np.ndarray, names: tuple[str, ...]) -> bytes:
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    figure, axes = plt.subplots(figsize=(0.45 * len(names) + 3, 0.45 * len(names) + 2))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("prediction")
    axes.set_ylabel("ground truth")
    axes.set_title("confusion matrix (each row sums to 1)")
    figure.colorbar(image, ax=axes, fraction=0.046)
    return _png(figure)


def _iou_png(report: dict, info: DatasetInfo) -> bytes:
    names = list(report["iou"])
    values = [0.0 if math.isnan(v) else 100 * v for v in report["iou"].values()]
    figure, axes = plt.subplots(figsize=(0.45 * len(names) + 2, 4))
    axes.bar(range(len(names)), values, color=info.palette / 255.0, edgecolor="black")
    axes.axhline(100 * report["miou"], color="red", linestyle="--", label=f"mIoU {_percent(report['miou'])} %")
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_ylabel("IoU %")
    axes.set_ylim(0, 100)
    axes.legend()
    return _png(figure)


def _latency_png(latency_ms: list[float], definition: str) -> bytes:
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(latency_ms, bins=min(50, max(5, len(latency_ms) // 4)), color="tab:blue")
    for (name, value), style in zip(percentiles(latency_ms).items(), ("--", ":")):
        axes.axvline(value, color="black", linestyle=style, label=f"{name} {value:.1f} ms")
    axes.set_xlabel(f"latency, ms ({definition})")
    axes.set_ylabel("frames")
    axes.legend()
    return _png(figure)


def _samples_png(samples: list, info: DatasetInfo, alpha: float = 0.5) -> bytes:
    rows = []
    for image, prediction, truth in samples:
        overlay = ((1 - alpha) * image + alpha * colorize(prediction, info)).astype(np.uint8)
        rows.append(np.hstack([image, overlay, colorize(truth, info)]))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0))) for row in rows]
    figure, axes = plt.subplots(figsize=(12, 12 * sum(r.shape[0] for r in rows) / width + 0.5))
    axes.imshow(np.vstack(rows))
    axes.set_axis_off()
    axes.set_title("input | prediction overlay | ground truth")
    return _png(figure)


def write_report(out_dir: str | Path, report: dict, info: DatasetInfo, latency_ms: list[float] | None = None,
                 samples: list | None = None) -> list[Path]:
    """Write ``report.json``, ``report.md`` and the plots into ``out_dir``; return the paths written."""
    out_dir = Path(out_dir)
    files = {"report.json": json.dumps(report, indent=2).encode(), "report.md": markdown(report).encode(),
             "confusion_matrix.png": _confusion_png(np.asarray(report["confusion_matrix"]), info.class_names),
             "iou.png": _iou_png(report, info)}
    if latency_ms:
        files["latency.png"] = _latency_png(latency_ms, report["latency_definition"])
    if samples:
        files["samples.png"] = _samples_png(samples, info)
    return [write_bytes_atomic(out_dir / name, data) for name, data in files.items()]
