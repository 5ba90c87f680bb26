"""Small helpers shared by the network files."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def resize_like(logits: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of ``logits`` to ``ref``'s spatial size."""
    return F.interpolate(logits, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely (``weights_only=True``) and return its flat state_dict."""
    return extract_state_dict(read_checkpoint(path), str(path))


def read_checkpoint(path: str | Path, what: str = "weights file"):
    """``torch.load(weights_only=True)`` on CPU, with messages a user understands (``what`` names the file
    in them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip archives, ...
        raise ValueError(f"cannot read {what} {path}: corrupt, truncated, not a PyTorch checkpoint, or it holds "
                         f"objects other than tensors ({type(exc).__name__}: {exc})") from exc
    return obj


def extract_state_dict(obj, source: str) -> dict[str, torch.Tensor]:
    """The flat state_dict in a loaded checkpoint: bare, or nested under ``state_dict``/``model``, with
    the ``module.``/``model.`` prefixes that DataParallel and some trainers add stripped."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source} does not contain a state_dict of tensors")
    # HRNet-style trainers also save their loss module's buffers (e.g. ``loss.criterion.weight``).
    return {_strip_prefix(k): v for k, v in obj.items() if not k.startswith(("loss.", "module.loss."))}


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


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
