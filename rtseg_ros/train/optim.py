"""SGD with the recipes' weight-decay scope, and the learning-rate schedules (poly or step, linear warm-up)."""
from __future__ import annotations

import torch
from torch import nn


def build_optimizer(model: nn.Module, cfg: dict) -> torch.optim.SGD:
    """``cfg`` is the config's ``optimizer`` section. With ``decay_norm_and_bias: false``, weight decay hits
    only conv/linear weights (tensors of 2+ dims), as CSFCN's code does."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg["decay_norm_and_bias"]:
        groups = [{"params": params}]
    else:
        groups = [{"params": [p for p in params if p.ndim >= 2]},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"],
                           weight_decay=cfg["weight_decay"])


def lr_factor(iteration: int, total: int, cfg: dict, iters_per_epoch: int) -> float:
    """Multiplier of the base LR at ``iteration`` (0-based) of ``total``; ``cfg`` is the ``scheduler`` section.

    Warm-up rises linearly from ``warmup_ratio`` to 1 over ``warmup_iters``; poly then decays as
    ``(1 - t / T)^power`` over the remaining iterations; step multiplies by ``gamma`` every ``step_epochs``.
    """
    warmup = min(int(cfg["warmup_iters"] or 0), total - 1)
    if iteration < warmup:
        return cfg["warmup_ratio"] + (1.0 - cfg["warmup_ratio"]) * iteration / warmup
    if cfg["name"] == "step":
        return cfg["gamma"] ** (iteration // max(1, round(cfg["step_epochs"] * iters_per_epoch)))
    return (1.0 - (iteration - warmup) / (total - warmup)) ** cfg["power"]


def build_scheduler(optimizer: torch.optim.Optimizer, total: int, cfg: dict, iters_per_epoch: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per iteration, after ``optimizer.step()``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, total, cfg, iters_per_epoch))
