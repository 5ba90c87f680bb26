"""Joint image + label augmentation with ``torchvision.transforms.v2``.

Images travel as ``tv_tensors.Image`` (uint8 C×H×W) and labels as ``tv_tensors.Mask`` (uint8 H×W), so
every geometric transform moves both the same way and masks are always resampled with nearest
neighbour; photometric transforms leave masks alone.
"""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..data.labels import IGNORE_INDEX

INTERPOLATION = {"nearest": v2.InterpolationMode.NEAREST, "bilinear": v2.InterpolationMode.BILINEAR,
                 "bicubic": v2.InterpolationMode.BICUBIC}


class RandomScale(v2.Transform):
    """Resize by a random factor of ``base_size`` (or of the input size when ``base_size`` is None).

    The factor is uniform in ``scale`` or, with ``step``, one of ``lo, lo + step, ... <= hi`` (the HRNet /
    DDRNet trainer); ``min_short_side`` raises it so the short side keeps at least that many pixels.
    """

    def __init__(self, scale: tuple[float, float], step: float | None = None, min_short_side: int | None = None,
                 base_size: tuple[int, int] | None = None, interpolation: str = "bilinear"):
        super().__init__()
        self.scale, self.step, self.min_short_side = tuple(scale), step, min_short_side
        self.base_size = tuple(base_size) if base_size else None
        self.interpolation = INTERPOLATION[interpolation]

    def make_params(self, flat_inputs: list) -> dict:
        height, width = self.base_size or v2.query_size(flat_inputs)
        lo, hi = self.scale
        if self.step:
            choices = int((hi - lo) / self.step + 1e-6) + 1
            factor = lo + self.step * int(torch.randint(choices, ()))
        else:
            factor = lo + (hi - lo) * float(torch.rand(()))
        if self.min_short_side:
            factor = max(factor, self.min_short_side / min(height, width))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt, params: dict):
        return F.resize(inpt, params["size"], interpolation=self.interpolation, antialias=True)


class ChannelNoise(v2.Transform):
    """Add one Gaussian offset per colour channel to a float image in [0, 1] (FarSee-Net's colour noise)."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def make_params(self, flat_inputs: list) -> dict:
        return {"offset": torch.randn(3, 1, 1) * self.std}

    def transform(self, inpt, params: dict):
        if isinstance(inpt, tv_tensors.Image):
            return tv_tensors.wrap((inpt + params["offset"]).clamp_(0, 1), like=inpt)
        return inpt


def pad_fill(pad_image, mean) -> dict:
    """Fill values for padded areas: the recipe's RGB value (or ``"mean"``: the mean pixel) and 255 for labels."""
    image_fill = [round(255 * m) for m in mean] if pad_image == "mean" else [int(v) for v in pad_image]
    return {tv_tensors.Image: image_fill, tv_tensors.Mask: IGNORE_INDEX}


def build_train_transform(augment: dict, crop: tuple[int, int], mean, std) -> v2.Compose:
    """The recipe's augmentation: scale, rotate, crop (padding labels with ignore), flip, photometric, normalise."""
    fill = pad_fill(augment["pad_image"], mean)
    steps: list = [RandomScale(augment["scale"], augment["scale_step"], augment["min_short_side"],
                               augment["base_size"], augment["interpolation"])]
    if augment["rotation"]:
        steps.append(v2.RandomRotation(augment["rotation"], interpolation=v2.InterpolationMode.BILINEAR, fill=fill))
    steps.append(v2.RandomCrop(list(crop), pad_if_needed=True, fill=fill))
    if augment["flip"]:
        steps.append(v2.RandomHorizontalFlip(augment["flip"]))
    if augment["color_jitter"]:
        steps.append(v2.ColorJitter(**augment["color_jitter"]))
    if augment["blur"]:  # CSFCN's code: PIL blur with radius ~ U[0, 1)
        steps.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.0))], p=augment["blur"]))
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    if augment["channel_noise"]:
        steps.append(ChannelNoise(augment["channel_noise"]))
    steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)


def build_eval_transform(input_size: tuple[int, int] | None, mean, std) -> v2.Compose:
    """Image only: optional resize to the network input size (labels stay at full resolution), normalise."""
    steps: list = [v2.Resize(list(input_size), antialias=True)] if input_size else []
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)
