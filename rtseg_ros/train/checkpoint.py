"""The checkpoint file: everything the node, ``rtseg-eval`` and ``rtseg-export`` need, in one file.

A checkpoint is a plain dict saved with ``torch.save`` and readable with ``torch.load(weights_only=True)``
(tensors and plain Python values only):

=================  ==================================================================================
``format``         ``"rtseg_ros/1"``
``model``          registry name; ``model_options`` the builder options (no file paths)
``num_classes``    output classes; ``aux`` whether the saved weights include auxiliary heads
``dataset``        ``DatasetInfo.to_dict()``: name, class_names, palette, convention
``input_size``     ``[H, W]`` the network input it was validated at; ``mean``/``std`` on RGB in [0, 1]
``state_dict``     model weights
resume state       ``optimizer``, ``scheduler``, ``scaler``, ``rng``, ``iteration`` (completed), ``epoch``,
                   ``best_miou`` (-1 before the first validation) and ``config`` (the resolved config)
=================  ==================================================================================

Writes are atomic (temp file in the same folder, fsync, ``os.replace``): a kill leaves the previous file.
"""
from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models._common import read_checkpoint
from ..models.registry import build_model, get_entry

FORMAT = "rtseg_ros/1"
REQUIRED_KEYS = ("model", "model_options", "num_classes", "aux", "dataset", "input_size", "mean", "std",
                 "state_dict")
# Left out of the meta that build_model_from_checkpoint returns.
RESUME_KEYS = ("state_dict", "optimizer", "scheduler", "scaler", "rng")


class CheckpointError(ValueError):
    """The file is missing, unreadable, not an rtseg_ros checkpoint, or belongs to another model."""


def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Write ``checkpoint`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **checkpoint}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read an rtseg_ros checkpoint safely (``weights_only=True``, on CPU); raises :class:`CheckpointError`."""
    path = Path(path)
    try:
        checkpoint = read_checkpoint(path, "checkpoint")
    except (FileNotFoundError, ValueError) as exc:
        raise CheckpointError(str(exc)) from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not an rtseg_ros checkpoint (format {found!r}, expected {FORMAT!r}; "
                              "rtseg-train writes them)")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return checkpoint


def check_compatible(checkpoint: dict, model_name: str, num_classes: int) -> None:
    """Raise :class:`CheckpointError` naming both sides unless ``checkpoint`` is for this model and class count."""
    wanted = get_entry(model_name).name
    have = get_entry(checkpoint["model"]).name if _is_registered(checkpoint["model"]) else checkpoint["model"]
    if have != wanted or int(checkpoint["num_classes"]) != int(num_classes):
        raise CheckpointError(
            f"checkpoint is for model {checkpoint['model']!r} with {checkpoint['num_classes']} classes "
            f"({checkpoint['dataset'].get('name', '?')}), but model {model_name!r} with {num_classes} classes "
            "was requested")


def _is_registered(name: str) -> bool:
    try:
        get_entry(name)
        return True
    except KeyError:
        return False


def build_model_from_checkpoint(checkpoint: str | Path | dict, device: str | torch.device = "cpu"
                                ) -> tuple[nn.Module, dict]:
    """Build the checkpoint's network without auxiliary heads, load its weights, return ``(model in eval
    mode, meta)``; ``meta`` is the checkpoint without its weights and resume state."""
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    if not _is_registered(checkpoint["model"]):
        raise CheckpointError(f"checkpoint model {checkpoint['model']!r} is not a registered model")
    model = build_model(checkpoint["model"], num_classes=int(checkpoint["num_classes"]), aux=False,
                        **checkpoint["model_options"])
    try:
        missing, unexpected = model.load_state_dict(checkpoint["state_dict"], strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"checkpoint weights do not fit model {checkpoint['model']!r} "
                              f"with options {checkpoint['model_options']}: {exc}") from exc
    # Only an aux-trained checkpoint may carry extra (auxiliary-head) weights; nothing may be missing.
    if missing or (unexpected and not checkpoint["aux"]):
        raise CheckpointError(f"checkpoint weights do not fit model {checkpoint['model']!r}: "
                              f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    meta = {k: v for k, v in checkpoint.items() if k not in RESUME_KEYS}
    return model.to(device).eval(), meta


def rng_state() -> dict:
    """torch (CPU and CUDA), NumPy and Python RNG states in ``weights_only``-loadable form."""
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": _to_lists(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value
