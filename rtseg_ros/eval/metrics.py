"""Confusion-matrix segmentation metrics, shared by training-time validation and ``rtseg-eval``.

The definitions follow the official Cityscapes evaluator (``cityscapesscripts``
``evalPixelLevelSemanticLabeling``): ground-truth pixels labelled ``ignore_index`` are not counted,
IoU = TP / (TP + FP + FN) per class, a class with TP + FP + FN = 0 (absent from the ground truth and
never predicted) has IoU NaN, and mIoU is the mean over the classes whose IoU is not NaN.
"""
from __future__ import annotations

import math

import torch

from ..data.labels import IGNORE_INDEX


class ConfusionMatrix:
    """``num_classes × num_classes`` pixel counts; rows are ground truth, columns predictions."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: str | torch.device = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch (or one image) of predicted and ground-truth train ids of the same shape."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(prediction.shape)} != target shape {tuple(target.shape)}")
        target = target.reshape(-1).to(self.matrix.device, torch.int64)
        prediction = prediction.reshape(-1).to(self.matrix.device, torch.int64)
        valid = target != self.ignore_index
        target, prediction = target[valid], prediction[valid]
        k = self.num_classes
        if target.numel() and (int(target.max()) >= k or int(target.min()) < 0):
            raise ValueError(f"ground truth holds ids outside 0..{k - 1} and {self.ignore_index}")
        if prediction.numel() and (int(prediction.max()) >= k or int(prediction.min()) < 0):
            raise ValueError(f"predictions hold ids outside 0..{k - 1}")
        self.matrix += torch.bincount(target * k + prediction, minlength=k * k).reshape(k, k)

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> "ConfusionMatrix":
        """Sum the counts of every process (call on all ranks of an initialised process group)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix)
        return self

    def reset(self) -> None:
        self.matrix.zero_()

    def iou(self) -> torch.Tensor:
        """Per-class IoU (float64), NaN for classes neither present in the ground truth nor predicted."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))

    def miou(self) -> float:
        """Mean IoU over the classes whose IoU is defined (NaN when none is)."""
        return float(self.iou().nanmean())

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(self.matrix.diag().sum().double() / total) if total > 0 else math.nan

    def summary(self, class_names: list[str] | tuple[str, ...] | None = None) -> dict:
        """``{"miou", "pixel_accuracy", "iou": {class name: IoU}}`` as plain floats."""
        names = class_names or [str(i) for i in range(self.num_classes)]
        return {"miou": self.miou(), "pixel_accuracy": self.pixel_accuracy(),
                "iou": dict(zip(names, self.iou().tolist()))}
