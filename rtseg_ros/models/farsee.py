"""FarSee-Net (Zhang & Zhang, arXiv 2003.03913): ResNet-18 front-end + Cascaded Factorized ASPP back-end.

The paper's Fig. 3 (the back-end drawing) is lost; the layer-level reading implemented here is the
canonical one of ``specs/farsee.md`` §2.2. The network is meant to see a sub-sampled image (512×1024 for
Cityscapes 1024×2048 frames) and its logits are resized to the label resolution afterwards.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from ._common import load_backbone_weights
from .registry import ModelEntry, PaperFigures, register


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1,
                 groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2),
                  dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResNet18Trunk(ResNet):
    """torchvision ResNet-18 without ``avgpool``/``fc`` (plain output stride 32, no dilation).

    Keeping torchvision's module names lets ImageNet checkpoints load as they are.
    """

    def __init__(self) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2])
        del self.avgpool, self.fc

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        layer2 = self.layer2(self.layer1(x))  # stride 8, 128 ch (He et al.'s conv3_x)
        layer3 = self.layer3(layer2)  # stride 16, 256 ch
        layer4 = self.layer4(layer3)  # stride 32, 512 ch
        return {"layer2": layer2, "layer3": layer3, "layer4": layer4}


class FactorizedASPP(nn.Module):
    """ASPP whose 3×3 atrous convs are factorized into a 1×1 channel-reducing conv followed by a
    depthwise 3×3 atrous conv (about 8.8× cheaper for 512→256), plus a plain 1×1 branch; concatenated."""

    def __init__(self, in_channels: int, branch_channels: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        branches = [conv_bn_relu(in_channels, branch_channels)]
        for rate in rates:
            branches.append(nn.Sequential(
                conv_bn_relu(in_channels, branch_channels),
                conv_bn_relu(branch_channels, branch_channels, 3, dilation=rate, groups=branch_channels),
            ))
        self.branches = nn.ModuleList(branches)
        self.out_channels = branch_channels * len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class SubPixelUp(nn.Module):
    """Feature-space super-resolution: 1×1 conv to ``out_channels·t²`` channels, then PixelShuffle(t).

    A hidden sub-pixel layer is followed by BN+ReLU (the paper puts them after every conv); the
    classifier one has a bias and no normalization.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int, bias: bool, bn_relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * factor * factor, 1, bias=bias)
        self.shuffle = nn.PixelShuffle(factor)
        self.post = (nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)) if bn_relu
                     else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.shuffle(self.conv(x)))


# Low-level tap -> (channels, factor of sub-pixel #1). The factor brings the stride-32 high-level
# feature onto the tap's grid: ×2 to layer3 (stride 16), ×4 to layer2 (stride 8).
_LOW_LEVEL_TAPS = {"layer3": (256, 2), "layer2": (128, 4)}


class FarSeeNet(nn.Module):
    """FarSee-Net. ``forward`` returns logits at the input resolution, at ``out_size`` if given (the
    paper supervises sub-sampled inputs with full-resolution labels), or at stride 4 of the input
    (stride 2 with ``low_level="layer2"``) when ``upsample_logits`` is False.

    ``low_level="layer2"`` is the literal reading of the paper's "conv3_x" tap; the default
    ``"layer3"`` is the spec's canonical reading. ``up1_bn_relu=False, classifier_bias=False`` gives
    the zh320 re-implementation's layout. There are no auxiliary heads: with ``aux=True`` training
    returns the one-element tuple ``(main,)``.
    """

    def __init__(self, num_classes: int = 19, aux: bool = False, low_level: str = "layer3",
                 rates1: tuple[int, ...] = (6, 12, 18), rates2: tuple[int, ...] = (6, 12),
                 aspp1_channels: int = 256, aspp2_channels: int = 128, up1_channels: int = 512,
                 low_channels: int = 48, fuse_channels: int = 512, up1_bn_relu: bool = True,
                 classifier_bias: bool = True, pretrained_backbone: Optional[str | Path] = None) -> None:
        super().__init__()
        if low_level not in _LOW_LEVEL_TAPS:
            raise ValueError(f"low_level must be one of {sorted(_LOW_LEVEL_TAPS)}, got {low_level!r}")
        tap_channels, up1_factor = _LOW_LEVEL_TAPS[low_level]
        self.low_level = low_level
        self.aux = aux
        self.upsample_logits = True

        self.backbone = ResNet18Trunk()
        if pretrained_backbone is not None:
            load_backbone_weights(self.backbone, pretrained_backbone)
        self.faspp1 = FactorizedASPP(512, aspp1_channels, rates1)
        self.up1 = SubPixelUp(self.faspp1.out_channels, up1_channels, up1_factor, bias=False,
                              bn_relu=up1_bn_relu)
        self.low_proj = conv_bn_relu(tap_channels, low_channels)
        self.faspp2 = FactorizedASPP(up1_channels + low_channels, aspp2_channels, rates2)
        self.fuse = nn.Sequential(
            conv_bn_relu(self.faspp2.out_channels, fuse_channels),
            conv_bn_relu(fuse_channels, fuse_channels, 3),
        )
        self.classifier = SubPixelUp(fuse_channels, num_classes, 4, bias=classifier_bias, bn_relu=False)

    def forward(self, x: torch.Tensor, out_size: Optional[tuple[int, int]] = None):
        features = self.backbone(x)
        low = self.low_proj(features[self.low_level])
        high = self.up1(self.faspp1(features["layer4"]))
        # Equal grids (and then an exact identity) when H and W are multiples of 32; otherwise the
        # ceil-rounded strides disagree by a row or column. Resizing unconditionally keeps the traced
        # and exported graphs valid for every input size.
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.classifier(self.fuse(self.faspp2(torch.cat([high, low], dim=1))))
        if out_size is not None:
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        elif self.upsample_logits:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.training and self.aux:
            return (logits,)
        return logits


def farsee(num_classes: int = 19, aux: bool = False, **options) -> FarSeeNet:
    return FarSeeNet(num_classes=num_classes, aux=aux, **options)


register(ModelEntry(
    name="farsee",
    builder=farsee,
    description="FarSee-Net: ResNet-18 + cascaded factorized ASPP + sub-pixel upsampling, on a half-size input",
    input_size=(512, 1024),
    output_stride=4,
    paper=PaperFigures(
        miou_val=70.29,
        miou_test=70.2,
        fps=68.5,
        gpu="Titan X (Maxwell)",
        resolution=(512, 1024),
        note="Cityscapes; 512x768 input: 69.84 val / 68.4 test mIoU at 84.0 fps; no params/FLOPs reported",
    ),
))
