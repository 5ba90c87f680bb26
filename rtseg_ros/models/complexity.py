"""Parameter and MAC counting, as the specs define them.

MACs = ``torch.utils.flop_counter.FlopCounterMode`` total / 2 for one forward pass in eval mode
(convolutions and matmuls only; BN, activations, adds, pooling and interpolation are not counted).
The count runs on the meta device, so 1024×2048 costs no compute.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: tuple[int, int], batch: int = 1) -> int:
    """Multiply-accumulates of one eval-mode forward pass at ``input_size`` (H, W)."""
    meta_model = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(batch, 3, *input_size, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta_model(x)
    return counter.get_total_flops() // 2
