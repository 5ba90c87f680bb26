"""Training configuration: built-in defaults ← recipe YAML ← command-line overrides.

Recipes live in ``rtseg_ros/train/recipes/<model>_<dataset>.yaml`` (package data, so every install has them) and follow each paper's recipe (``specs`` §3);
they only list what differs from :data:`DEFAULTS`. Any key can be overridden with ``key.path=value``
(the value is parsed as YAML, so ``optimizer.lr=0.005`` is a float and ``train.crop=[256,512]`` a list).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..data.labels import DATASET_NAMES
from ..models.registry import get_entry
from ..runtime.choices import DEVICES

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


# ---- the schema: what each value of DEFAULTS may be, checked before anything starts -------------------
@dataclass(frozen=True)
class Rule:
    """What one config value may be: ``what`` completes "<key> must be ..." in the error message."""

    what: str
    accepts: Callable[[object], bool]
    numeric_text: bool = False  # take text that spells a number as that number (YAML 1.1 reads 1e-3 as text)


def _is_number(value, integer: bool = False) -> bool:
    kinds = int if integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)


def number(lo: float = 0, hi: float = math.inf, integer: bool = False) -> Rule:
    kind = "an integer" if integer else "a finite number"
    bounds = f">= {lo}" if hi == math.inf else f"in [{lo}, {hi}]"
    return Rule(f"{kind} {bounds}", lambda v: _is_number(v, integer) and lo <= v <= hi, numeric_text=not integer)


def numbers(count: int | None = None, lo: float = 0, hi: float = math.inf, integer: bool = False) -> Rule:
    item = number(lo, hi, integer)
    return Rule(f"a list of {count or 'any number of'} values, each {item.what}",
                lambda v: isinstance(v, list) and (count is None or len(v) == count) and all(map(item.accepts, v)))


def choice(*options) -> Rule:
    # the type test keeps 1 from passing as True (and 0 as False)
    return Rule("one of " + ", ".join(map(repr, options)), lambda v: any(v == o and type(v) is type(o) for o in options))


def optional(rule: Rule) -> Rule:
    return Rule(f"{rule.what}, or null", lambda v: v is None or rule.accepts(v), rule.numeric_text)


TEXT = Rule("a non-empty string", lambda v: isinstance(v, str) and v != "")
FLAG = choice(True, False)
MAPPING = Rule("a mapping of key: value", lambda v: isinstance(v, dict))
SIZE = numbers(2, lo=1, integer=True)  # (H, W) in pixels
SCALE_RANGE = Rule("a list [low, high] of finite numbers with 0 < low <= high",
                   lambda v: numbers(2).accepts(v) and 0 < v[0] <= v[1])

SCHEMA: dict[str, Rule] = {  # "section.key" -> Rule, one per value of DEFAULTS (a test keeps them in step)
    "model.name": optional(TEXT), "model.aux": optional(FLAG), "model.options": MAPPING,
    "model.pretrained_backbone": optional(TEXT),
    "data.dataset": choice(*DATASET_NAMES), "data.root": optional(TEXT), "data.train_split": TEXT,
    "data.val_split": TEXT, "data.num_workers": number(integer=True), "data.check": FLAG,
    "data.mean": optional(numbers(3, hi=1)), "data.std": optional(numbers(3, lo=1e-6)),
    "train.batch_size": number(1, integer=True), "train.iters": optional(number(1, integer=True)),
    "train.epochs": optional(number(1, integer=True)), "train.crop": SIZE,
    "train.stop_at": optional(number(1, integer=True)),
    "optimizer.lr": number(), "optimizer.momentum": number(hi=1), "optimizer.nesterov": FLAG,
    "optimizer.weight_decay": number(), "optimizer.decay_norm_and_bias": FLAG,
    "scheduler.name": choice("poly", "step"), "scheduler.power": number(),
    "scheduler.warmup_iters": number(integer=True), "scheduler.warmup_ratio": number(hi=1),
    "scheduler.step_epochs": optional(number(1e-6)), "scheduler.gamma": number(),
    "loss.name": choice("ce", "ohem"), "loss.ohem_thresh": number(hi=1), "loss.ohem_min_kept": number(integer=True),
    "loss.aux_name": optional(choice("ce", "ohem")), "loss.aux_weights": optional(numbers()),
    "loss.class_weights": optional(numbers()),
    "augment.base_size": optional(SIZE), "augment.scale": SCALE_RANGE, "augment.scale_step": optional(number(1e-6)),
    "augment.min_short_side": optional(number(1, integer=True)),
    "augment.interpolation": choice("nearest", "bilinear", "bicubic"),
    "augment.pad_image": Rule("'mean' or a list of 3 values in [0, 255]",
                              lambda v: v == "mean" or numbers(3, hi=255).accepts(v)),
    "augment.flip": number(hi=1), "augment.rotation": number(hi=180), "augment.color_jitter": optional(MAPPING),
    "augment.channel_noise": number(), "augment.blur": number(hi=1),
    "eval.every": number(integer=True), "eval.input_size": optional(SIZE), "eval.batch_size": number(1, integer=True),
    "eval.max_images": optional(number(1, integer=True)),
    "checkpoint.every": number(integer=True),
    "log.every": number(integer=True), "log.num_images": number(integer=True), "log.tensorboard": FLAG,
    "runtime.seed": number(hi=2**32 - 1, integer=True), "runtime.device": choice(*DEVICES),
    "runtime.amp": choice("auto", True, False), "runtime.amp_dtype": choice("float16", "bfloat16"),
    "runtime.channels_last": choice("auto", True, False), "runtime.deterministic": FLAG, "runtime.sync_bn": FLAG,
    "runtime.dist_backend": TEXT,
}


def check_schema(cfg: dict) -> dict:
    """A copy of the merged ``cfg`` with every value checked against :data:`SCHEMA` (numbers written as text,
    such as ``1e-3``, converted); the first value that does not fit raises :class:`ConfigError`."""
    out = copy.deepcopy(cfg)
    for dotted, rule in SCHEMA.items():
        section, key = dotted.split(".")
        given = value = out[section][key]
        if rule.numeric_text and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if not rule.accepts(value):
            raise ConfigError(f"{dotted} must be {rule.what}, got {given!r}")
        out[section][key] = value
    return out


RECIPES = Path(__file__).resolve().parent / "recipes"


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def find_recipe(name: str, dataset: str | None = None) -> Path | None:
    """The recipe ``<name>_<dataset>.yaml``, or ``<name>.yaml`` without a dataset; None when there is none."""
    path = RECIPES / (f"{name}_{dataset}.yaml" if dataset else f"{name}.yaml")
    return path if path.is_file() else None


def find_model_recipe(model: str, dataset: str) -> Path | None:
    """The recipe for ``model`` (a registry name or an alias of one) on ``dataset``, or None."""
    return find_recipe(model, dataset) or find_recipe(get_entry(model).name, dataset)


def load_yaml(path: str | Path) -> dict:
    """A config file, or a shipped recipe by name (``sgcpnet_camvid_cpu``)."""
    path = Path(path) if Path(path).is_file() else find_recipe(str(path)) or Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (nor a recipe of that name: {', '.join(available_recipes())})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
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
        if isinstance(out[key], dict) and not isinstance(value, dict) and dotted not in FREE_FORM:
            raise ConfigError(f"{dotted} is a section, not a value; set its keys ({', '.join(out[key])}) "
                              f"as {dotted}.KEY=VALUE")
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
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"override {text!r}: the value {raw!r} is not valid YAML ({reason}); quote text, "
                          "write lists as [a,b]") from None
    for part in reversed(dotted.strip().split(".")):
        value = {part: value}
    return value


def resolve(*layers: dict) -> dict:
    """Merge the layers over :data:`DEFAULTS`, check every value against :data:`SCHEMA`, then the
    combinations the schema cannot express."""
    cfg = DEFAULTS
    for layer in layers:
        cfg = merge(cfg, layer)
    cfg = check_schema(cfg)
    if not cfg["model"]["name"]:
        raise ConfigError("no model given (--model NAME or model.name in the config)")
    if cfg["scheduler"]["name"] == "step" and not cfg["scheduler"]["step_epochs"]:
        raise ConfigError("scheduler 'step' needs scheduler.step_epochs")
    if not (cfg["train"]["iters"] or cfg["train"]["epochs"]):
        raise ConfigError("set train.iters or train.epochs (or --max-iters / --epochs)")
    return cfg


def save_yaml(cfg: dict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False))
