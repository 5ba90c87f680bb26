"""Training configuration: built-in defaults ← recipe YAML ← command-line overrides.

Recipes live in ``config/train/<model>_<dataset>.yaml`` and follow each paper's recipe (``specs`` §3);
they only list what differs from :data:`DEFAULTS`. Any key can be overridden with ``key.path=value``
(the value is parsed as YAML, so ``optimizer.lr=0.005`` is a float and ``train.crop=[256,512]`` a list).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import yaml

from ..models.registry import get_entry

DEFAULTS: dict = {
    "model": {
        "name": None,
        "aux": None,  # None: train the auxiliary heads the registry entry has
        "options": {},  # builder options, e.g. variant switches
        "pretrained_backbone": None,  # torchvision-format ImageNet file (or its name in torch's hub cache)
    },
    "data": {
        "dataset": "cityscapes",  # cityscapes (any Cityscapes-layout folder) or camvid
        "root": None,
        "train_split": "train",
        "val_split": "val",
        "num_workers": 4,
        "check": True,  # read every label once before training to catch bad files early
        "mean": None,  # None: the registry entry's normalisation
        "std": None,
    },
    "train": {
        "batch_size": 8,  # total over all processes
        "iters": None,  # set iters or epochs; iters wins
        "epochs": None,
        "crop": [512, 1024],  # (H, W)
        "stop_at": None,  # stop (with last.pt written) after this iteration; the schedule is unchanged
    },
    "optimizer": {
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5e-4,
        "decay_norm_and_bias": True,  # False: weight decay only on conv/linear weights
    },
    "scheduler": {
        "name": "poly",  # poly or step
        "power": 0.9,
        "warmup_iters": 0,  # linear warm-up from lr * warmup_ratio; poly then spans the remaining iterations
        "warmup_ratio": 0.1,
        "step_epochs": None,  # step: multiply the lr by gamma every step_epochs epochs
        "gamma": 0.1,
    },
    "loss": {
        "name": "ce",  # ce or ohem
        "ohem_thresh": 0.7,  # OHEM keeps pixels whose true-class probability is below this ...
        "ohem_min_kept": 100000,  # ... but at least this many hardest pixels per process batch
        "aux_name": None,  # None: same as the main loss
        "aux_weights": None,  # None: the registry entry's weights
        "class_weights": None,
    },
    "augment": {
        "base_size": None,  # (H, W): resize every frame to this first (networks trained on down-sampled frames)
        "scale": [0.5, 2.0],  # random scale factor range
        "scale_step": None,  # draw the factor from {lo, lo + step, ...} instead of uniformly
        "min_short_side": None,  # raise the factor so the short side is at least this
        "interpolation": "bilinear",  # for images; labels always use nearest
        "pad_image": [0, 0, 0],  # RGB 0-255 fill where the crop extends past the image; labels get 255
        "flip": 0.5,
        "rotation": 0.0,  # degrees, uniform in [-r, r]
        "color_jitter": None,  # {brightness, contrast, saturation, hue}
        "channel_noise": 0.0,  # std of a per-channel additive offset, on the 0-1 scale
        "blur": 0.0,  # probability of a Gaussian blur
    },
    "eval": {
        "every": 1000,  # iterations between validations (0: only at the end)
        "input_size": None,  # (H, W) the network sees; logits are scored at label resolution. None: as stored
        "batch_size": 1,
        "max_images": None,  # validate on the first N images only
    },
    "checkpoint": {"every": 1000},  # iterations between last.pt writes (and at the end)
    "log": {"every": 20, "num_images": 4, "tensorboard": True},
    "runtime": {
        "seed": 0,
        "device": "auto",  # auto, cpu, cuda
        "amp": "auto",  # auto: on for CUDA only; true: also on CPU
        "amp_dtype": "float16",  # or bfloat16 (no loss scaling then)
        "channels_last": "auto",  # auto: on for CUDA
        "deterministic": False,  # deterministic kernels (slower on GPU); CPU runs are deterministic anyway
        "sync_bn": True,  # SyncBatchNorm under DDP (CUDA only)
        "dist_backend": "auto",  # nccl on CUDA, gloo otherwise
    },
}

FREE_FORM = ("model.options", "augment.color_jitter")  # sections whose keys are not checked (merged shallowly)


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def recipe_dirs() -> list[Path]:
    """Where recipes are looked up: the source tree, then the installed ``share/rtseg_ros/config/train``."""
    return [Path(__file__).resolve().parents[2] / "config" / "train",
            Path(sys.prefix) / "share" / "rtseg_ros" / "config" / "train"]


def available_recipes() -> list[str]:
    return sorted({p.stem for d in recipe_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def find_recipe(model: str, dataset: str) -> Path | None:
    for folder in recipe_dirs():
        path = folder / f"{model}_{dataset}.yaml"
        if path.is_file():
            return path
    return None


def find_model_recipe(model: str, dataset: str) -> Path | None:
    """The recipe for ``model`` (a registry name or an alias of one) on ``dataset``, or None."""
    return find_recipe(model, dataset) or find_recipe(get_entry(model).name, dataset)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def merge(base: dict, update: dict, prefix: str = "") -> dict:
    """Deep-merge ``update`` into a copy of ``base``; unknown keys raise :class:`ConfigError`."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if key not in out:
            raise ConfigError(f"unknown config key {dotted!r}; known here: {', '.join(out)}")
        if isinstance(out[key], dict) and isinstance(value, dict):
            if dotted in FREE_FORM:
                out[key] = {**out[key], **copy.deepcopy(value)}
            else:
                out[key] = merge(out[key], value, dotted + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict:
    """``"optimizer.lr=0.005"`` → ``{"optimizer": {"lr": 0.005}}``."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (e.g. optimizer.lr=0.005)")
    dotted, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    for part in reversed(dotted.strip().split(".")):
        value = {part: value}
    return value


def resolve(*layers: dict) -> dict:
    """Merge the layers over :data:`DEFAULTS` and sanity-check the result."""
    cfg = DEFAULTS
    for layer in layers:
        cfg = merge(cfg, layer)
    if not cfg["model"]["name"]:
        raise ConfigError("no model given (--model NAME or model.name in the config)")
    if cfg["loss"]["name"] not in ("ce", "ohem") or (cfg["loss"]["aux_name"] or "ce") not in ("ce", "ohem"):
        raise ConfigError("loss.name and loss.aux_name must be 'ce' or 'ohem'")
    if cfg["scheduler"]["name"] not in ("poly", "step"):
        raise ConfigError("scheduler.name must be 'poly' or 'step'")
    if cfg["scheduler"]["name"] == "step" and not cfg["scheduler"]["step_epochs"]:
        raise ConfigError("scheduler 'step' needs scheduler.step_epochs")
    if not (cfg["train"]["iters"] or cfg["train"]["epochs"]):
        raise ConfigError("set train.iters or train.epochs (or --max-iters / --epochs)")
    return cfg


def save_yaml(cfg: dict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False))
