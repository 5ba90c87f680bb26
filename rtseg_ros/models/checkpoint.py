"""Weights files: the rtseg_ros checkpoint format, safe reading, atomic saving, and the one strict loader.

Every path that puts weights into a network goes through here: the trainer (saving, resuming), the
Segmenter and ``rtseg-export`` (``build_with_weights``), and the published-checkpoint helpers of the model
files (``load_weights``). It sits in the models layer so that inference never depends on training code.

An rtseg_ros checkpoint is a plain dict saved with ``torch.save`` and readable with
``torch.load(weights_only=True)`` (tensors and plain Python values only):

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

Any other weights file is read as a published state_dict: bare or nested under ``state_dict``/``model``,
with trainer prefixes (``module.``, ``model.``) stripped and loss buffers (``loss.*``) dropped.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..fileio import write_atomic
from .pretrained import resolve_weights
from .registry import build_model, get_entry

FORMAT = "rtseg_ros/1"
REQUIRED_KEYS = ("model", "model_options", "num_classes", "aux", "dataset", "input_size", "mean", "std",
                 "state_dict")
# Left out of ``WeightedModel.meta``: what only resuming a training run needs.
RESUME_KEYS = ("state_dict", "optimizer", "scheduler", "scaler", "rng")
# DataParallel and HRNet-style trainers prefix every key; the latter also save their loss module's buffers.
TRAINER_PREFIXES = ("module.", "model.")
LOSS_PREFIXES = ("loss.", "module.loss.")

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """The file is missing, unreadable, not an rtseg_ros checkpoint, or does not fit the model asked for."""


# --------------------------------------------------------------------------------------------- reading
def read_checkpoint(path: str | Path, what: str = "weights file"):
    """``torch.load(weights_only=True)`` on CPU, with one-line messages a user understands (``what`` names
    the file in them). A file that holds Python objects other than tensors is refused, never unpickled.
    ``path`` may also name weights shipped with the package (``sgcpnet_camvid``), checked by sha256."""
    path = resolve_weights(path)
    if path.is_dir():
        raise FileNotFoundError(f"{what} {path} is a folder; give the checkpoint file inside it (e.g. {path}/best.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's text suggests weights_only=False; that would run whatever code the file carries.
        blocked = re.search(r"GLOBAL (\S+)", str(exc))
        if blocked:
            raise CheckpointError(f"{what} {path} is not a plain-tensor checkpoint and was not loaded: it holds the "
                                  f"Python object {blocked.group(1)}, and unpickling objects can run arbitrary "
                                  "code") from None
        raise CheckpointError(f"cannot read {what} {path}: corrupt, truncated or not a PyTorch checkpoint") from None
    except Exception as exc:  # truncated zip archives, ...
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"cannot read {what} {path}: corrupt, truncated or not a PyTorch checkpoint "
                              f"({type(exc).__name__}: {reason})") from None


def state_dict_of(obj, source: str) -> StateDict:
    """The flat state_dict in a loaded file: bare, or nested under ``state_dict``/``model``, trainer
    prefixes stripped and loss buffers dropped."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} does not contain a state_dict of tensors")
    return {_strip_prefixes(k): v for k, v in obj.items() if not k.startswith(LOSS_PREFIXES)}


def _strip_prefixes(key: str) -> str:
    for prefix in TRAINER_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def load_state_dict_file(path: str | Path) -> StateDict:
    """Read a weights file safely and return its flat state_dict."""
    return state_dict_of(read_checkpoint(path), str(path))


def load_checkpoint(path: str | Path) -> dict:
    """Read an rtseg_ros checkpoint safely (``weights_only=True``, on CPU); raises :class:`CheckpointError`."""
    path = Path(path)
    try:
        checkpoint = read_checkpoint(path, "checkpoint")
    except FileNotFoundError as exc:
        raise CheckpointError(str(exc)) from None
    _check_format(checkpoint, str(path))
    return checkpoint


def is_rtseg_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def _check_format(checkpoint, source: str) -> None:
    if not is_rtseg_checkpoint(checkpoint):
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{source} is not an rtseg_ros checkpoint (format {found!r}, expected {FORMAT!r}; "
                              "rtseg-train writes them)")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {source} lacks {', '.join(missing)}")


# --------------------------------------------------------------------------------------------- saving
def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Write ``checkpoint`` (with ``format`` added) to ``path`` atomically: a kill leaves the previous file."""
    return write_atomic(path, lambda f: torch.save({"format": FORMAT, **checkpoint}, f))


def make_checkpoint(*, model: str, model_options: dict, num_classes: int, aux: bool, dataset: dict,
                    input_size: list[int], mean, std, state_dict: StateDict, optimizer: dict, scheduler: dict,
                    scaler: dict, rng: dict, iteration: int, epoch: int, best_miou: float, config: dict) -> dict:
    """The checkpoint ``rtseg-train`` saves (``save_checkpoint`` adds ``format``): the keys of the table above,
    written here beside their reader. ``mean``/``std`` are stored as lists."""
    return {
        "model": model, "model_options": model_options, "num_classes": num_classes, "aux": aux, "dataset": dataset,
        "input_size": input_size, "mean": list(mean), "std": list(std), "state_dict": state_dict,
        "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "rng": rng, "iteration": iteration,
        "epoch": epoch, "best_miou": best_miou, "config": config,
    }


def inference_checkpoint(checkpoint: dict) -> dict:
    """``checkpoint`` without what only resuming a training run needs (optimizer, scheduler, RNG state), its
    floating-point tensors stored in fp16: what the package ships, an eighth of the size. Loading copies
    them into the network's own precision (``load_state_dict`` converts), so nothing else changes; the
    shipped models' val mIoU moved by at most 0.1 point (README, shipped weights)."""
    state = {key: value.half() if value.is_floating_point() else value
             for key, value in checkpoint["state_dict"].items()}
    kept = {k: v for k, v in checkpoint.items() if k not in RESUME_KEYS}
    return {**kept, "state_dict": state, "storage": "fp16"}


# --------------------------------------------------------------------------------------------- loading
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


def load_weights(model: nn.Module, weights: str | Path | Mapping[str, torch.Tensor], name: str,
                 num_classes: int | None = None, allow_aux: bool = True, source: str | None = None,
                 **options) -> StateDict:
    """Load ``weights`` (a file or a state_dict) into ``model``, the registered network ``name`` built with
    ``options``, strictly: every key and shape must match. The one exception: auxiliary-head weights (those
    an ``aux=True`` build has and ``model`` lacks) are dropped when ``allow_aux``, since inference does not
    need them. Anything else becomes one :class:`CheckpointError` naming the model and class count.
    Returns the state_dict loaded."""
    if isinstance(weights, Mapping):
        state, source = dict(weights), source or "the weights"
    else:
        state, source = load_state_dict_file(weights), source or str(weights)
    own = model.state_dict()
    extra = set(state) - set(own)
    if extra and allow_aux:
        with torch.device("meta"):
            aux_keys = set(build_model(name, aux=True, **options).state_dict())
        if extra <= aux_keys:
            state = {k: v for k, v in state.items() if k not in extra}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = []
        if wrong:
            k = wrong[0]
            details.append(f"{len(wrong)} shape mismatches, e.g. {k}: file {tuple(state[k].shape)} "
                           f"vs model {tuple(own[k].shape)}")
        if missing:
            details.append(f"{len(missing)} missing keys, e.g. {missing[0]}")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[0]}")
        classes = f" with {num_classes} classes" if num_classes is not None else ""
        raise CheckpointError(f"{source} does not fit model {name!r}{classes}: " + "; ".join(details))
    model.load_state_dict(state, strict=True)
    return state


@dataclass
class WeightedModel:
    """A network built for its weights, as ``build_with_weights`` returns it."""

    network: nn.Module  # eval mode, without auxiliary heads
    name: str  # registry name
    num_classes: int
    meta: dict | None  # an rtseg_ros checkpoint without weights and resume state; None otherwise
    state_dict: StateDict | None  # the weights loaded; None: random initialisation


def build_with_weights(model: str | None = None, weights: str | Path | dict | None = None,
                       num_classes: int | None = None, default_num_classes: int = 19,
                       upsample_logits: bool = True) -> WeightedModel:
    """Build a network and load its weights, settling model and class count in one place (as torchvision's
    builders do): an rtseg_ros checkpoint names both, and ``model``/``num_classes``, when given, must agree
    with it; a published state_dict needs ``model`` and has ``num_classes`` classes (default
    ``default_num_classes``); no ``weights`` gives a randomly initialised ``model``.

    ``weights`` is a file or an already read checkpoint dict; ``upsample_logits`` is ``build_model``'s."""
    checkpoint = weights
    source = "checkpoint" if isinstance(weights, dict) else str(weights)
    if weights is not None and not isinstance(weights, dict):
        checkpoint = read_checkpoint(weights)
    if is_rtseg_checkpoint(checkpoint):
        _check_format(checkpoint, source)
        if not _is_registered(checkpoint["model"]):
            raise CheckpointError(f"checkpoint model {checkpoint['model']!r} is not a registered model")
        check_compatible(checkpoint, model or checkpoint["model"], num_classes or checkpoint["num_classes"])
        name, classes = get_entry(checkpoint["model"]).name, int(checkpoint["num_classes"])
        network = build_model(name, num_classes=classes, aux=False, upsample_logits=upsample_logits,
                              **checkpoint["model_options"])
        state = load_weights(network, checkpoint["state_dict"], name, classes, allow_aux=bool(checkpoint["aux"]),
                             source=f"{source} (rtseg_ros checkpoint)", **checkpoint["model_options"])
        meta = {k: v for k, v in checkpoint.items() if k not in RESUME_KEYS}
        return WeightedModel(network.eval(), name, classes, meta, state)
    if model is None:
        raise CheckpointError("no model given: name a model (e.g. model:=farsee) or pass an rtseg-train checkpoint")
    name, classes = get_entry(model).name, num_classes or default_num_classes
    network = build_model(name, num_classes=classes, upsample_logits=upsample_logits)
    state = None
    if checkpoint is not None:
        state = load_weights(network, state_dict_of(checkpoint, source), name, classes, source=source)
    return WeightedModel(network.eval(), name, classes, None, state)
