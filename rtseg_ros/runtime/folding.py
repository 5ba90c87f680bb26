"""Fold BatchNorm into the convolution that feeds it, for inference.

Which conv feeds which BN is read from one traced forward pass (forward hooks compare the BN's input
tensor with each conv's output), not guessed from module names, so pre-activation BNs (BN → ReLU →
conv) are left alone. The folded model is checked against the original on the same input.
"""
from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger(__name__)


def _conv_bn_pairs(model: nn.Module, sample: torch.Tensor) -> list[tuple[str, str]]:
    conv_outputs: dict[int, tuple[str, torch.Tensor]] = {}  # tensors kept alive so ids stay unique
    pairs: list[tuple[str, str]] = []
    hooks = []
    modules = dict(model.named_modules())

    def on_conv(name):
        def hook(_module, _inputs, output):
            conv_outputs[id(output)] = (name, output)
        return hook

    def on_any(name):
        def hook(module, inputs, _output):
            for tensor in inputs:
                if isinstance(tensor, torch.Tensor) and id(tensor) in conv_outputs:
                    if isinstance(module, nn.BatchNorm2d):
                        pairs.append((conv_outputs[id(tensor)][0], name))
        return hook

    for name, module in modules.items():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(on_conv(name)))
        if not list(module.children()):
            hooks.append(module.register_forward_hook(on_any(name)))
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    # A conv or BN module called more than once (shared weights) cannot be folded. A conv output that
    # also feeds a functional op besides its BN is not visible to hooks: the numerical check catches it.
    counts: dict[str, int] = {}
    for conv, bn in pairs:
        counts[conv] = counts.get(conv, 0) + 1
        counts[bn] = counts.get(bn, 0) + 1
    return sorted({(c, b) for c, b in pairs if counts[c] == 1 and counts[b] == 1})


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def fold_batchnorm(model: nn.Module, sample: torch.Tensor, atol: float = 1e-4) -> tuple[nn.Module, int]:
    """Return (a copy of ``model`` with conv→BN pairs folded, number of BNs folded).

    Falls back to the unfolded model (with a warning) if the folded one disagrees with it.
    """
    model = model.eval()
    folded = copy.deepcopy(model)
    pairs = _conv_bn_pairs(folded, sample)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        _set_module(folded, conv_name, fuse_conv_bn_eval(conv, bn))
        _set_module(folded, bn_name, nn.Identity())
    with torch.no_grad():
        reference, result = model(sample), folded(sample)
    error = (reference - result).abs().max().item() / max(reference.abs().max().item(), 1e-12)
    if error > atol:
        log.warning("BatchNorm folding changed the output (relative error %.2e); using the unfolded model", error)
        return model, 0
    return folded, len(pairs)
