"""Model registry: every network name maps to a builder plus the defaults that travel with it.

Model contract (every registered network follows it):

* ``Model(num_classes=19, aux=False, **options)`` is a plain ``nn.Module``.
* ``forward(x)`` takes ``B×3×H×W`` (any H, W) and returns
  - in eval mode, or in train mode with ``aux=False``: the main logits ``B×K×H×W``;
  - in train mode with ``aux=True``: a tuple ``(main, aux_1, ...)``, every entry ``B×K×H×W``.
* ``model.upsample_logits`` (default ``True``; ``build_model(..., upsample_logits=False)`` sets it): ``False``
  gives the main logits at the network's output stride instead (``B×K×ceil(H/s)×ceil(W/s)``, roughly); the runtime then upsamples
  itself, bilinearly with ``align_corners=model.logits_align_corners`` if the model sets it (CSFCN's
  head does), else ``False``. Auxiliary logits in training are always at input resolution.
* ``aux=False`` builds no auxiliary heads at all (parameter counts then exclude them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PaperFigures:
    """What the paper reports (Cityscapes unless said otherwise); used by docs and benchmarks."""

    miou_val: float | None = None
    miou_test: float | None = None
    fps: float | None = None
    gpu: str = ""
    resolution: tuple[int, int] | None = None  # (H, W) at which fps was measured
    params_m: float | None = None
    gflops: float | None = None  # as the paper states it (check the spec for its convention)
    camvid_miou_test: float | None = None
    note: str = ""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    input_size: tuple[int, int]  # default network input (H, W) for 1024×2048 Cityscapes frames
    output_stride: int
    mean: tuple[float, float, float] = IMAGENET_MEAN  # on RGB in [0, 1]
    std: tuple[float, float, float] = IMAGENET_STD
    aux_weights: tuple[float, ...] = ()  # loss weight of each auxiliary head, in forward's order
    paper: PaperFigures = field(default_factory=PaperFigures)
    official_checkpoint: str = ""  # which published checkpoint loads with strict=True, if any
    options: dict = field(default_factory=dict)  # default builder options for this name

    @property
    def has_aux(self) -> bool:
        return bool(self.aux_weights)


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def register_alias(alias: str, name: str) -> None:
    _ALIASES[alias] = name


def available_models() -> list[str]:
    """Registered names (aliases not included), in registration order."""
    return list(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        known = ", ".join(available_models() + [f"{a} (= {n})" for a, n in _ALIASES.items()])
        raise KeyError(f"unknown model {name!r}; known models: {known}")
    return _REGISTRY[key]


def build_model(name: str, num_classes: int = 19, aux: bool = False, upsample_logits: bool = True,
                **options) -> nn.Module:
    """Build a registered network. ``upsample_logits=False``: eval logits at the output stride (what the
    runtime's engines run). ``options`` override the entry's default builder options."""
    entry = get_entry(name)
    network = entry.builder(num_classes=num_classes, aux=aux, **{**entry.options, **options})
    network.upsample_logits = upsample_logits
    return network
