"""Turn (model name, weights file) into a ready network plus what the pipeline needs to know about it.

Building and loading are ``models.checkpoint.build_with_weights``'s; this adds the dataset (class names,
palette), input size and normalisation the Segmenter needs, from the checkpoint or the model's defaults.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg_ros.data.labels import DATASET_NAMES, DatasetInfo, get_dataset_info
from rtseg_ros.models import get_entry
from rtseg_ros.models.checkpoint import build_with_weights


@dataclass
class LoadedModel:
    name: str
    model: nn.Module
    dataset: DatasetInfo
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_note: str  # what was loaded, for logs and diagnostics
    # content hash of the weights, for ONNX and engine cache keys ("random-<hash>" for random initialisation:
    # two random networks differ, so their exports must not share a cache entry)
    weights_digest: str


def _digest(state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        h.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _dataset_from_checkpoint(meta: dict) -> DatasetInfo:
    known = get_dataset_info(meta["name"]) if meta.get("name") in DATASET_NAMES else None
    palette = np.asarray(meta["palette"], np.uint8)
    lookup = known.id_to_train_id if known is not None else np.arange(256, dtype=np.uint8)
    return DatasetInfo(meta["name"], tuple(meta["class_names"]), palette, lookup, meta.get("convention", ""))


def load_model(model: str | None, weights: str | Path | None, dataset: str = "cityscapes",
               num_classes: int | None = None, upsample_logits: bool = True) -> LoadedModel:
    """Build ``model`` and load ``weights``: an ``rtseg-train`` checkpoint (which names its model, classes,
    palette, input size and normalisation; ``model`` and ``num_classes`` may be left out) or a plain
    state_dict the model zoo loads. ``upsample_logits=False``: the network returns logits at its output
    stride (the Segmenter upsamples itself)."""
    info = get_dataset_info(dataset)
    built = build_with_weights(model, weights, num_classes, default_num_classes=info.num_classes,
                               upsample_logits=upsample_logits)
    meta, entry = built.meta, get_entry(built.name)
    if meta is not None:
        return LoadedModel(built.name, built.network, _dataset_from_checkpoint(meta["dataset"]),
                           tuple(meta["input_size"]), tuple(meta["mean"]), tuple(meta["std"]),
                           f"{weights} (rtseg-train, iteration {meta.get('iteration')})", _digest(built.state_dict))
    if built.state_dict is None:
        note, digest = "random initialisation (no weights given)", "random-" + _digest(built.network.state_dict())
    else:
        note, digest = f"{weights} (state_dict)", _digest(built.state_dict)
    return LoadedModel(built.name, built.network, info, entry.input_size, entry.mean, entry.std, note, digest)
