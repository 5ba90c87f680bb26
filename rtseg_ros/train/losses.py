"""Segmentation losses: cross-entropy and OHEM cross-entropy (ignore 255), main + weighted auxiliary heads."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.labels import IGNORE_INDEX


def _to_label_size(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return logits.float()


class CrossEntropy(nn.Module):
    """Mean per-pixel cross-entropy over pixels whose label is not ``ignore_index``."""

    def __init__(self, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("class_weights", torch.tensor(class_weights) if class_weights else None,
                             persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(_to_label_size(logits, target), target, weight=self.class_weights,
                               ignore_index=self.ignore_index)


class OhemCrossEntropy(CrossEntropy):
    """Online hard example mining (the HRNet / DDRNet trainer's form).

    Over the batch's valid pixels, the threshold is ``max(p_sorted[min_kept], thresh)`` where ``p`` is the
    softmax probability of the true class; the loss is the mean cross-entropy of the pixels with ``p`` at or
    below it. So every pixel the network is at most ``thresh`` sure about counts, and at least ``min_kept`` of
    the hardest ones do.
    """

    def __init__(self, thresh: float = 0.7, min_kept: int = 100000, class_weights: Sequence[float] | None = None,
                 ignore_index: int = IGNORE_INDEX):
        super().__init__(class_weights, ignore_index)
        self.thresh, self.min_kept = thresh, max(1, int(min_kept))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = _to_label_size(logits, target)
        pixel_losses = F.cross_entropy(logits, target, weight=self.class_weights, ignore_index=self.ignore_index,
                                       reduction="none").flatten()
        valid = target.flatten() != self.ignore_index
        if not valid.any():
            return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
        with torch.no_grad():
            true_class = target.clone()
            true_class[true_class == self.ignore_index] = 0
            prob = logits.softmax(1).gather(1, true_class.unsqueeze(1)).flatten()[valid]
            kth = prob.sort().values[min(self.min_kept, prob.numel() - 1)]
            threshold = torch.clamp(kth, min=self.thresh)
        return pixel_losses[valid][prob <= threshold].mean()


class SegmentationLoss(nn.Module):
    """``main(out_0) + Σ w_i · aux(out_i)``; accepts a tensor (no aux heads) or the model's train-mode tuple."""

    def __init__(self, main: nn.Module, aux: nn.Module | None = None, aux_weights: Sequence[float] = ()):
        super().__init__()
        self.main, self.aux, self.aux_weights = main, aux or main, tuple(aux_weights)

    def forward(self, outputs: torch.Tensor | tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        if len(outputs) - 1 != len(self.aux_weights):
            raise ValueError(f"model returned {len(outputs) - 1} auxiliary outputs but {len(self.aux_weights)} "
                             "auxiliary loss weights are configured")
        loss = self.main(outputs[0], target)
        for weight, aux_logits in zip(self.aux_weights, outputs[1:]):
            loss = loss + weight * self.aux(aux_logits, target)
        return loss


def build_loss(cfg: dict, aux_weights: Sequence[float]) -> SegmentationLoss:
    """From the config's ``loss`` section; ``aux_weights`` already resolved (one per auxiliary output)."""
    def make(name: str) -> nn.Module:
        if name == "ohem":
            return OhemCrossEntropy(cfg["ohem_thresh"], cfg["ohem_min_kept"], cfg["class_weights"])
        return CrossEntropy(cfg["class_weights"])

    return SegmentationLoss(make(cfg["name"]), make(cfg["aux_name"] or cfg["name"]), aux_weights)
