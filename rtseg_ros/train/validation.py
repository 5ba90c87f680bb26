"""Validation during training: the confusion matrix over the val split (every rank's shard, summed) and the
pictures of ground truth above prediction that the run log shows."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..data.labels import colorize
from ..eval.metrics import ConfusionMatrix
from .distributed import Runtime


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, runtime: Runtime, autocast, info,
             num_images: int = 0) -> tuple[ConfusionMatrix, list[np.ndarray]]:
    """Confusion matrix over the loader (all ranks' shards summed) and up to ``num_images`` pictures of
    ground truth above prediction, coloured with the dataset palette."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, device=runtime.device)
    pictures = []
    for images, labels, _ in loader:
        images, labels = images.to(runtime.device), labels.to(runtime.device)
        with autocast():
            logits = model(images)
        if logits.shape[-2:] != labels.shape[-2:]:  # eval input resized: score at label resolution
            logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        prediction = logits.argmax(1)
        matrix.update(prediction, labels)
        for gt, pred in zip(labels, prediction):
            if len(pictures) < num_images:
                pictures.append(np.concatenate([colorize(gt.byte().cpu().numpy(), info),
                                                colorize(pred.byte().cpu().numpy(), info)], axis=0))
    model.train(was_training)
    return matrix.all_reduce(), pictures
