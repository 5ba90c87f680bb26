"""Small helpers shared by the network files."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_state_dict_file


def resize_like(logits: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of ``logits`` to ``ref``'s spatial size."""
    return F.interpolate(logits, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def load_backbone_weights(backbone: nn.Module, path: str | Path, drop: tuple[str, ...] = ("fc.", "classifier.")) -> None:
    """Load torchvision-format ImageNet weights into ``backbone`` (never downloads).

    Keys starting with one of ``drop`` (the classifier) are ignored; every other key must match.
    """
    state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith(drop)}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit the backbone: missing {sorted(missing)[:5]}..., "
            f"unexpected {sorted(unexpected)[:5]}..."
        )
