"""``rtseg-bench --accuracy``: what each engine and precision does to the labels on real frames.

The shipped weights on a dataset's val split (CamVid, by default every frame), through the Segmenter as the
node runs them: mIoU and pixel accuracy per (engine, precision), and the share of labels equal to the torch
path's fp32 labels, all in one run. INT8 needs the INT8 model ``rtseg-export --int8`` made for the same
weights in ``engine_cache_dir`` (rows without it are skipped, saying so). Also which reduced-precision
instructions this CPU has, read from ``/proc/cpuinfo``.
"""
from __future__ import annotations

import torch
from tqdm import tqdm

from rtseg_ros.common import cpuinfo_field
from rtseg_ros.data.datasets import open_dataset
from rtseg_ros.eval.metrics import ConfusionMatrix
from rtseg_ros.runtime.backends import importable
from rtseg_ros.runtime.segmenter import Segmenter

CONFIGS = (("torch", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"), ("torch", "bf16"),
           ("openvino", "int8"), ("onnxruntime", "int8"))
CPU_FLAGS = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8",
             "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "avx512_fp16": "AVX512-FP16"}


def cpu_precision_support() -> list[str]:
    """The reduced-precision instruction sets this CPU reports (empty where /proc/cpuinfo is absent)."""
    flags = (cpuinfo_field("flags") or "").split()
    return [name for flag, name in CPU_FLAGS.items() if flag in flags]


def bench_accuracy(weights: str, data_root: str, dataset: str = "camvid", split: str = "val", every: int = 1,
                   configs=CONFIGS, engine_cache_dir: str | None = None) -> list[dict]:
    """One row per (backend, precision) that runs here."""
    frames = open_dataset(dataset, data_root, split)
    indices = range(0, len(frames), every)
    segmenters = {}
    for backend, precision in configs:
        if backend != "torch" and not importable(backend):
            continue
        try:
            segmenters[(backend, precision)] = Segmenter(weights=weights, backend=backend, precision=precision,
                                                         engine_cache_dir=engine_cache_dir)
        except RuntimeError as exc:  # e.g. no INT8 model made for these weights
            print(f"skipped {backend} {precision}: {exc}")
    classes = next(iter(segmenters.values())).dataset.num_classes
    scores = {key: ConfusionMatrix(classes) for key in segmenters}
    equal = {key: 0 for key in segmenters}
    pixels = 0
    for index in tqdm(indices, desc=f"{split} frames", unit="frame"):
        sample = frames[index]
        target = torch.from_numpy(sample["label"])
        labels = {key: torch.from_numpy(seg(sample["image"]).labels.copy()) for key, seg in segmenters.items()}
        reference = labels.get(("torch", "fp32"))
        for key, predicted in labels.items():
            scores[key].update(predicted, target)
            if reference is not None:
                equal[key] += int((predicted == reference).sum())
        pixels += target.numel()
    return [{"weights": weights, "backend": backend, "precision": precision, "frames": len(indices),
             "miou": scores[(backend, precision)].miou(), "pixel_accuracy": scores[(backend, precision)].pixel_accuracy(),
             "equal_to_torch_fp32": equal[(backend, precision)] / pixels if ("torch", "fp32") in segmenters else None}
            for backend, precision in segmenters]


def accuracy_table(rows: list[dict]) -> str:
    lines = [f"CPU reduced-precision support: {', '.join(cpu_precision_support()) or 'none reported'}", "",
             "| weights | engine | precision | val mIoU | pixel accuracy | labels equal to torch fp32 |",
             "|---|---|---|---:|---:|---:|"]
    for r in rows:
        equal = f"{100 * r['equal_to_torch_fp32']:.2f} %" if r["equal_to_torch_fp32"] is not None else "-"
        lines.append(f"| {r['weights']} | {r['backend']} | {r['precision']} | {100 * r['miou']:.2f} % | "
                     f"{100 * r['pixel_accuracy']:.2f} % | {equal} |")
    return "\n".join(lines)
