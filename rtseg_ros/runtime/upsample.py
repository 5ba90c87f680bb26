"""Bilinear upsampling of logits to the output size, then argmax (and confidence), in bands of rows.

Upsampling a whole frame's logits costs classes × H × W × 4 bytes (19 classes at 4096×4096: 1.3 GB, and
softmax for the confidence as much again). ``BandedUpsample`` makes the same labels with memory bounded
by a band: the logits are first upsampled along the width only (network rows × output width, small), then
each band of output rows interpolates between its two source rows, takes argmax and confidence, and writes
into the output buffers. Source coordinates follow PyTorch's ``F.interpolate(mode="bilinear")`` exactly
(half-pixel centres, or corners aligned); only the order of the floating-point operations differs, so the
labels equal the whole-frame path's except where two classes tie within rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

BAND_BYTES = 8 * 2**20  # floats of one band of upsampled logits (its temporaries take about three times this)


def source_rows(in_size: int, out_size: int, align_corners: bool, device) -> tuple[torch.Tensor, ...]:
    """For each output row: the two source rows it lies between and the weight of the second, as PyTorch's
    bilinear interpolation computes them (``area_pixel_compute_source_index``)."""
    dst = torch.arange(out_size, dtype=torch.float64)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1)) if out_size > 1 else torch.zeros_like(dst)
    else:
        src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp_(min=0.0)
    first = src.floor().long().clamp_(max=in_size - 1)
    second = (first + 1).clamp_(max=in_size - 1)
    weight = (src - first).float()
    return first.to(device), second.to(device), weight.to(device)


class BandedUpsample:
    """Labels (and confidence) of ``logits`` (1×C×h×w) upsampled to ``out_hw``, a band of rows at a time."""

    def __init__(self, classes: int, in_hw: tuple[int, int], out_hw: tuple[int, int], align_corners: bool,
                 device, band_bytes: int = BAND_BYTES):
        self.out_hw, self.align_corners = tuple(out_hw), align_corners
        self.rows = max(1, band_bytes // (4 * classes * out_hw[1]))
        self.first, self.second, self.weight = source_rows(in_hw[0], out_hw[0], align_corners, device)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor | None = None) -> None:
        height, width = self.out_hw
        across = F.interpolate(logits, size=(logits.shape[2], width), mode="bilinear",
                               align_corners=self.align_corners)  # 1×C×h×W: exact along the width
        for top in range(0, height, self.rows):
            rows = slice(top, min(top + self.rows, height))
            upper = across.index_select(2, self.first[rows])
            lower = across.index_select(2, self.second[rows])
            band = torch.lerp(upper, lower, self.weight[rows].view(1, 1, -1, 1))
            best, index = band.max(1)
            labels[rows].copy_(index[0])
            if confidence is not None:  # max softmax = 1 / sum(exp(logit - max))
                total = band.sub_(best.unsqueeze(1)).exp_().sum(1)
                confidence[rows].copy_(total.reciprocal_().mul_(255).round_()[0])
