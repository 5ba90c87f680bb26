"""Turn (model name, weights file) into a ready network plus what the pipeline needs to know about it."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg_ros.data.labels import DatasetInfo, get_dataset_info
from rtseg_ros.models import build_model, get_entry
from rtseg_ros.models._common import extract_state_dict, read_checkpoint
from rtseg_ros.train.checkpoint import FORMAT, build_model_from_checkpoint, check_compatible


@dataclass
class LoadedModel:
    name: str
    model: nn.Module
    dataset: DatasetInfo
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_note: str  # what was loaded, for logs and diagnostics
    weights_digest: str = "random"  # content hash of the weights, for engine cache keys


def _digest(state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        h.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _dataset_from_checkpoint(meta: dict) -> DatasetInfo:
    known = get_dataset_info(meta["name"]) if meta.get("name") in ("cityscapes", "camvid") else None
    palette = np.asarray(meta["palette"], np.uint8)
    lookup = known.id_to_train_id if known is not None else np.arange(256, dtype=np.uint8)
    return DatasetInfo(meta["name"], tuple(meta["class_names"]), palette, lookup, meta.get("convention", ""))


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor], name: str, num_classes: int,
                         source: str, **options) -> None:
    """Strict load; auxiliary-head weights are dropped when ``model`` was built without aux heads.

    Shape or key mismatches become one message naming the model and the class count.
    """
    own = model.state_dict()
    extra = set(state) - set(own)
    if extra:
        with torch.device("meta"):
            aux_keys = set(build_model(name, num_classes=num_classes, aux=True, **options).state_dict())
        if extra <= aux_keys:  # only auxiliary heads: inference does not need them
            state = {k: v for k, v in state.items() if k not in extra}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = []
        if wrong:
            k = wrong[0]
            details.append(f"{len(wrong)} shape mismatches, e.g. {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        if missing:
            details.append(f"{len(missing)} missing keys, e.g. {missing[0]}")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[0]}")
        raise ValueError(f"{source} does not fit model {name!r} with {num_classes} classes: " + "; ".join(details))
    model.load_state_dict(state, strict=True)


def load_model(model: str | None, weights: str | Path | None, dataset: str = "cityscapes",
               num_classes: int | None = None) -> LoadedModel:
    """Build ``model`` and load ``weights``: an ``rtseg-train`` checkpoint (which names its model, classes,
    palette, input size and normalisation; ``model`` and ``num_classes`` may be left out) or a plain
    state_dict the model zoo loads."""
    checkpoint = read_checkpoint(weights) if weights is not None else None
    if isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT:
        check_compatible(checkpoint, model or checkpoint["model"], num_classes or checkpoint["num_classes"])
        network, meta = build_model_from_checkpoint(checkpoint)
        return LoadedModel(get_entry(meta["model"]).name, network, _dataset_from_checkpoint(meta["dataset"]),
                           tuple(meta["input_size"]), tuple(meta["mean"]), tuple(meta["std"]),
                           f"{weights} (rtseg-train, iteration {meta.get('iteration')})",
                           _digest(checkpoint["state_dict"]))
    if model is None:
        raise ValueError("no model given: name a model (e.g. model:=farsee) or pass an rtseg-train checkpoint")
    entry = get_entry(model)
    info = get_dataset_info(dataset)
    classes = num_classes or info.num_classes
    network = build_model(entry.name, num_classes=classes)
    note, digest = "random initialisation (no weights given)", "random"
    if weights is not None:
        state = extract_state_dict(checkpoint, str(weights))
        load_state_dict_into(network, state, entry.name, classes, str(weights))
        note, digest = f"{weights} (state_dict)", _digest(state)
    return LoadedModel(entry.name, network, info, entry.input_size, entry.mean, entry.std, note, digest)
