"""SGCPNet (Hao et al., "Real-time Semantic Segmentation via Spatial-detail Guided Context Propagation")
and BCPNet (the same authors' earlier "Bi-direction Context Propagation Network"): one architecture.

A truncated MobileNetV3-Small encoder reaches 1/32; two 3×3 stride-2 max-pools push the context on to
1/128; the SGCP module (a one-repeat BiFPN cell plus a second top-down path, 64 channels, levels 1/8 …
1/128) propagates that context back to 1/8, where a 1×1 classifier predicts. Output stride 8, 0.61 M
parameters, no auxiliary head.

Module names follow the authors' code (github.com/zhouyuan888888/SGCPNet, ``models/SGCPNet.py``): the
trunk stages are ``l1``…``l5``, the HFR convs ``conv3``/``conv4``/``conv5``, the decoder ``sgcp.td_bu.unit.0``
(top-down 1 + bottom-up) and ``sgcp.td`` (top-down 2), so their checkpoints load with ``strict=True``.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._common import load_backbone_weights, resize_like
from .registry import ModelEntry, PaperFigures, register

# ---------------------------------------------------------------------------------------------------
# Encoder: MobileNetV3-Small as ported by xiaolai-sqlai (early revision), the trunk the authors used.
# It differs from torchvision's: SE sits on the block *output* with BN inside, and every stride-1 block
# has a residual (a 1×1 conv + BN shortcut where the width changes).
# ---------------------------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        squeezed = channels // reduction
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, squeezed, 1, bias=False),
            nn.BatchNorm2d(squeezed),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.Hardsigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.se(x)


class Bottleneck(nn.Module):
    """Expand 1×1 → depthwise k×k (stride s) → project 1×1 → [SE] → (+ shortcut when s = 1)."""

    def __init__(self, kernel: int, in_ch: int, expand_ch: int, out_ch: int, activation: type[nn.Module],
                 use_se: bool, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, expand_ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(expand_ch)
        self.act1 = activation()
        self.conv2 = nn.Conv2d(expand_ch, expand_ch, kernel, stride, kernel // 2, groups=expand_ch, bias=False)
        self.bn2 = nn.BatchNorm2d(expand_ch)
        self.act2 = activation()
        self.conv3 = nn.Conv2d(expand_ch, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.se = SqueezeExcite(out_ch) if use_se else nn.Identity()
        self.shortcut: Optional[nn.Module] = None
        if stride == 1:
            self.shortcut = nn.Identity() if in_ch == out_ch else nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return out if self.shortcut is None else out + self.shortcut(x)


# kernel, in, expand, out, activation, SE, stride
MBV3_SMALL_BLOCKS = [
    (3, 16, 16, 16, nn.ReLU, True, 2),         # b0: 1/4  (Layer-2)
    (3, 16, 72, 24, nn.ReLU, False, 2),        # b1
    (3, 24, 88, 24, nn.ReLU, False, 1),        # b2: 1/8  (Layer-3)
    (5, 24, 96, 40, nn.Hardswish, True, 2),    # b3
    (5, 40, 240, 40, nn.Hardswish, True, 1),
    (5, 40, 240, 40, nn.Hardswish, True, 1),
    (5, 40, 120, 48, nn.Hardswish, True, 1),   # b6: conv shortcut 40 -> 48
    (5, 48, 144, 48, nn.Hardswish, True, 1),   # b7: 1/16 (Layer-4)
    (5, 48, 288, 96, nn.Hardswish, True, 2),   # b8
    (5, 96, 576, 96, nn.Hardswish, True, 1),
    (5, 96, 576, 96, nn.Hardswish, True, 1),   # b10: 1/32 (Layer-5)
]


class MobileNetV3SmallTrunk(nn.Module):
    """Stem + 11 bottlenecks of xiaolai-sqlai's MobileNetV3-Small, with its checkpoint's key names
    (``conv1``, ``bn1``, ``bneck.N``), so its ImageNet file (``mbv3_small*.pth.tar``) loads directly."""

    # The ImageNet checkpoint's classification tail (96->576 conv, FC layers), not part of the trunk.
    CLASSIFIER_KEYS = ("conv2.", "bn2.", "linear3.", "bn3.", "linear4.")

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.hs1 = nn.Hardswish()
        self.bneck = nn.Sequential(*(Bottleneck(*cfg) for cfg in MBV3_SMALL_BLOCKS))
        # The port's own initialisation, used when no ImageNet weights are loaded.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bneck(self.hs1(self.bn1(self.conv1(x))))


def _trunk_stages(backbone: str, pretrained_backbone: Optional[str | Path]) -> list[nn.Module]:
    """The five encoder stages (1/2, 1/4, 1/8 @24, 1/16 @48, 1/32 @96 channels)."""
    if backbone == "mbv3_small":
        trunk = MobileNetV3SmallTrunk()
        if pretrained_backbone is not None:
            load_backbone_weights(trunk, pretrained_backbone, drop=trunk.CLASSIFIER_KEYS)
        blocks = list(trunk.bneck)
        return [nn.Sequential(trunk.conv1, trunk.bn1, trunk.hs1), blocks[0], nn.Sequential(*blocks[1:3]),
                nn.Sequential(*blocks[3:8]), nn.Sequential(*blocks[8:])]
    # "tv_mbv3_small": torchvision's MobileNetV3-Small (SE on the expanded channels, no residual on
    # the 40->48 block). Same strides and widths, 870,560 instead of 431,180 parameters: a deviation
    # from the paper, offered because its ImageNet weights are easy to obtain.
    from torchvision.models import mobilenet_v3_small

    features = mobilenet_v3_small().features[:12]  # without the 96->576 conv
    if pretrained_backbone is not None:
        load_backbone_weights(nn.ModuleDict({"features": features}), pretrained_backbone,
                              drop=("classifier.", "features.12."))
    return [features[0], features[1], features[2:4], features[4:9], features[9:12]]


# ---------------------------------------------------------------------------------------------------
# Decoder: the SGCP module.
# ---------------------------------------------------------------------------------------------------

WIDTH = 64


def _wrapped_conv(in_ch: int, out_ch: int, kernel: int, bias: bool = True, groups: int = 1) -> nn.Sequential:
    # The official code wraps each decoder conv in a module whose only child is ``conv``; keeping that
    # level keeps its checkpoint keys (``...depthwise_conv.conv.weight``) loadable as they are.
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=bias,
                                                    groups=groups)))


def _decoder_bn() -> nn.BatchNorm2d:
    return nn.BatchNorm2d(WIDTH, momentum=0.01, eps=1e-3)  # EfficientDet's BN settings


def _projection(in_ch: int) -> nn.Sequential:
    """1×1 conv (bias) + BN, no activation: brings a backbone level to the module's width."""
    return nn.Sequential(_wrapped_conv(in_ch, WIDTH, 1), _decoder_bn())


def _pool(kind: str, kernel: int) -> nn.Module:
    # Stride 2 with padding k//2 maps every size n to ceil(n/2), so the levels always line up.
    return nn.MaxPool2d(kernel, 2, kernel // 2) if kind == "max" else nn.AvgPool2d(kernel, 2, kernel // 2)


def _resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    # Nearest resize to the exact target size: handles odd sizes, and is an exact identity when the
    # sizes already agree, so it is applied unconditionally (no Python shape test in traced graphs).
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


def _fusion_weights(num_inputs: int, fusion: str) -> Optional[nn.Parameter]:
    return nn.Parameter(torch.ones(num_inputs)) if fusion == "weighted" else None


def sw_sum(weights: Optional[torch.Tensor], *inputs: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """SW-Sum: EfficientDet's fast normalised fusion, then swish (the code's form, not the paper's
    Eq. 2/3 with raw scalars). ``weights=None`` is the "plain sum" ablation; swish is kept."""
    if weights is None:
        fused = sum(inputs)
    else:
        w = F.relu(weights)
        w = w / (w.sum() + eps)
        fused = sum(w[i] * x for i, x in enumerate(inputs))
    return F.silu(fused)


class SeparableConv(nn.Module):
    """S-Conv: depthwise 3×3 (no bias) → pointwise 1×1 (bias) → BN, no activation (code order; the
    paper lists pointwise first)."""

    def __init__(self) -> None:
        super().__init__()
        self.depthwise_conv = _wrapped_conv(WIDTH, WIDTH, 3, bias=False, groups=WIDTH)
        self.pointwise_conv = _wrapped_conv(WIDTH, WIDTH, 1)
        self.bn = _decoder_bn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise_conv(self.depthwise_conv(x)))


class TopDownPath(nn.Module):
    """Context flows from 1/128 to 1/8: node_l = S-Conv(SW-Sum(lateral_l, up(node_{l+1}))).

    On its own this is the second top-down path (TD2, ``sgcp.td``), fed by the bottom-up outputs.
    In each fusion the lateral input comes first, the upsampled one second (checkpoint order).
    """

    def __init__(self, fusion: str) -> None:
        super().__init__()
        self.conv6_up, self.conv5_up, self.conv4_up, self.conv3_up = (SeparableConv() for _ in range(4))
        self.p6_w1, self.p5_w1, self.p4_w1, self.p3_w1 = (_fusion_weights(2, fusion) for _ in range(4))

    def top_down(self, p3, p4, p5, p6, p7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        t6 = self.conv6_up(sw_sum(self.p6_w1, p6, _resize_to(p7, p6)))
        t5 = self.conv5_up(sw_sum(self.p5_w1, p5, _resize_to(t6, p5)))
        t4 = self.conv4_up(sw_sum(self.p4_w1, p4, _resize_to(t5, p4)))
        t3 = self.conv3_up(sw_sum(self.p3_w1, p3, _resize_to(t4, p3)))
        return t3, t4, t5, t6

    def forward(self, p3, p4, p5, p6, p7) -> torch.Tensor:
        return self.top_down(p3, p4, p5, p6, p7)[0]


class TopDownBottomUpCell(TopDownPath):
    """Projections, the context pyramid (1/64, 1/128), top-down path 1 and the bottom-up path
    (``sgcp.td_bu.unit.0``).

    Returns ``(T3, B4, B5, B6, B7)``, or ``(T3,)`` without the bottom-up path (ablation).
    """

    def __init__(self, in_channels: tuple[int, int, int], bottom_up: bool, pool: str, pool_kernel: int,
                 fusion: str) -> None:
        super().__init__(fusion)
        c3, c4, c5 = in_channels
        self.p3_down_channel = _projection(c3)
        self.p4_down_channel = _projection(c4)
        self.p5_down_channel = _projection(c5)
        # Context pooling: project *before* pooling (the paper's text pools Layer-5† directly).
        self.p5_to_p6 = nn.Sequential(*_projection(c5), _pool(pool, pool_kernel))
        self.p6_to_p7 = _pool(pool, pool_kernel)
        self.bottom_up = bottom_up
        if bottom_up:
            # The skips bring back the *original* spatial maps through second, independent projections.
            self.p4_down_channel_2 = _projection(c4)
            self.p5_down_channel_2 = _projection(c5)
            self.conv4_down, self.conv5_down, self.conv6_down, self.conv7_down = (SeparableConv() for _ in range(4))
            self.p4_downsample, self.p5_downsample, self.p6_downsample, self.p7_downsample = (
                _pool(pool, pool_kernel) for _ in range(4))
            self.p4_w2, self.p5_w2, self.p6_w2 = (_fusion_weights(3, fusion) for _ in range(3))
            self.p7_w2 = _fusion_weights(2, fusion)

    def forward(self, f3, f4, f5) -> tuple[torch.Tensor, ...]:
        p6 = self.p5_to_p6(f5)
        p7 = self.p6_to_p7(p6)
        t3, t4, t5, t6 = self.top_down(self.p3_down_channel(f3), self.p4_down_channel(f4),
                                       self.p5_down_channel(f5), p6, p7)
        if not self.bottom_up:
            return (t3,)
        s4, s5 = self.p4_down_channel_2(f4), self.p5_down_channel_2(f5)
        # Inputs per node: skip, top-down node, pooled lower level (checkpoint order).
        b4 = self.conv4_down(sw_sum(self.p4_w2, s4, t4, _resize_to(self.p4_downsample(t3), s4)))
        b5 = self.conv5_down(sw_sum(self.p5_w2, s5, t5, _resize_to(self.p5_downsample(b4), s5)))
        b6 = self.conv6_down(sw_sum(self.p6_w2, p6, t6, _resize_to(self.p6_downsample(b5), p6)))
        b7 = self.conv7_down(sw_sum(self.p7_w2, p7, _resize_to(self.p7_downsample(b6), p7)))
        return t3, b4, b5, b6, b7


PATHS = ("td1", "td1_bu", "full")


class SGCPModule(nn.Module):
    """TD1 → BU → TD2 over levels 1/8 … 1/128; returns the 64-channel 1/8 map.

    ``paths`` selects the ablations of the paper's Table VI: ``"td1"`` and ``"td1_bu"`` output T3
    (the only 1/8 map they have; in ``"td1_bu"`` the bottom-up maps feed nothing, as the spec reads it).
    """

    def __init__(self, in_channels: tuple[int, int, int], paths: str = "full", pool: str = "max",
                 pool_kernel: int = 3, fusion: str = "weighted") -> None:
        super().__init__()
        # The official code keeps the first cell inside a one-element BiFPN repeat stack (``td_bu.unit``).
        cell = TopDownBottomUpCell(in_channels, paths != "td1", pool, pool_kernel, fusion)
        self.td_bu = nn.ModuleDict({"unit": nn.Sequential(cell)})
        self.td = TopDownPath(fusion) if paths == "full" else None

    def forward(self, f3, f4, f5) -> torch.Tensor:
        maps = self.td_bu.unit[0](f3, f4, f5)
        return maps[0] if self.td is None else self.td(*maps)


# ---------------------------------------------------------------------------------------------------
# The network.
# ---------------------------------------------------------------------------------------------------


class SGCPNet(nn.Module):
    """SGCPNet / BCPNet. Eval: logits at the input size (bilinear from stride 8), or at stride 8 with
    ``upsample_logits = False``. No auxiliary head: with ``aux=True`` training returns ``(main,)``.

    Options (defaults = the paper's model):

    * ``hfr``: the 1×1 "higher-dimension feature representation" convs 24→40, 48→112, 96→320 on every
      backbone stage (code; the paper's text places them on the last layer only). ``False`` is the
      no-HFR ablation, also what :func:`fold_hfr` produces exactly.
    * ``paths``: ``"full"`` (TD1+BU+TD2), ``"td1_bu"``, ``"td1"``: Table VI ablations.
    * ``pool`` (``"max"``/``"avg"``) and ``pool_kernel`` (3/5): applied to every pool, the context
      pools and the bottom-up ones (the paper only says "pooling").
    * ``fusion``: ``"weighted"`` (SW-Sum) or ``"sum"`` (plain-sum ablation, no fusion scalars).
    * ``backbone``: ``"mbv3_small"`` (the authors' trunk) or ``"tv_mbv3_small"`` (torchvision's
      MobileNetV3-Small trunk: a labelled deviation, 1,047,206 parameters; official keys do not fit).
    * ``pretrained_backbone``: local ImageNet checkpoint of the chosen trunk (xiaolai-sqlai format for
      ``"mbv3_small"``, torchvision format for ``"tv_mbv3_small"``); never downloaded.
    """

    def __init__(self, num_classes: int = 19, aux: bool = False, hfr: bool = True, paths: str = "full",
                 pool: str = "max", pool_kernel: int = 3, fusion: str = "weighted",
                 backbone: str = "mbv3_small", pretrained_backbone: Optional[str | Path] = None) -> None:
        super().__init__()
        for name, value, allowed in (("paths", paths, PATHS), ("pool", pool, ("max", "avg")),
                                     ("pool_kernel", pool_kernel, (3, 5)), ("fusion", fusion, ("weighted", "sum")),
                                     ("backbone", backbone, ("mbv3_small", "tv_mbv3_small"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        self.aux = aux
        self.upsample_logits = True

        self.l1, self.l2, self.l3, self.l4, self.l5 = _trunk_stages(backbone, pretrained_backbone)
        # HFR: linear lifts (no BN, no activation) to EfficientNet-B0's P3-P5 widths, the widths the
        # BiFPN code the decoder comes from expects.
        self.conv3 = nn.Conv2d(24, 40, 1) if hfr else None
        self.conv4 = nn.Conv2d(48, 112, 1) if hfr else None
        self.conv5 = nn.Conv2d(96, 320, 1) if hfr else None
        self.sgcp = SGCPModule((40, 112, 320) if hfr else (24, 48, 96), paths, pool, pool_kernel, fusion)
        self.classifier = nn.Conv2d(WIDTH, num_classes, 1)

    def forward(self, x: torch.Tensor):
        c3 = self.l3(self.l2(self.l1(x)))
        c4 = self.l4(c3)
        c5 = self.l5(c4)
        if self.conv3 is not None:
            c3, c4, c5 = self.conv3(c3), self.conv4(c4), self.conv5(c5)
        logits = self.classifier(self.sgcp(c3, c4, c5))  # stride 8
        if self.upsample_logits:
            logits = resize_like(logits, x)
        if self.training and self.aux:
            return (logits,)
        return logits


@torch.no_grad()
def fold_hfr(model: SGCPNet) -> SGCPNet:
    """A copy of ``model`` with each HFR conv folded into the 1×1 projections that consume it.

    Every HFR output feeds only 1×1 convs with nothing in between, so W = W₂W₁, b = W₂b₁ + b₂ is exact:
    the result is the no-HFR architecture (518,074 parameters, −10 % MACs) with the same outputs up to
    float rounding. A deployment optimisation; train with HFR (it is worth ~1.5 mIoU).
    """
    if model.conv3 is None:
        raise ValueError("model has no HFR convs to fold")
    folded = copy.deepcopy(model)
    cell = folded.sgcp.td_bu.unit[0]
    consumers = {
        "conv3": ["p3_down_channel"],
        "conv4": ["p4_down_channel", "p4_down_channel_2"],
        "conv5": ["p5_down_channel", "p5_to_p6", "p5_down_channel_2"],
    }
    for hfr_name, projection_names in consumers.items():
        hfr = getattr(folded, hfr_name)
        w1, b1 = hfr.weight.flatten(1), hfr.bias
        for projection_name in projection_names:
            if not hasattr(cell, projection_name):  # the "td1" ablation has no skip projections
                continue
            wrapper = getattr(cell, projection_name)[0]
            w2, b2 = wrapper.conv.weight.flatten(1), wrapper.conv.bias
            merged = nn.Conv2d(w1.shape[1], w2.shape[0], 1).to(w2)
            merged.weight.copy_((w2 @ w1)[:, :, None, None])
            merged.bias.copy_(w2 @ b1 + b2)
            wrapper.conv = merged
        setattr(folded, hfr_name, None)
    return folded


# ---------------------------------------------------------------------------------------------------
# Registry entries.
# ---------------------------------------------------------------------------------------------------


def sgcpnet(num_classes: int = 19, aux: bool = False, **options) -> SGCPNet:
    return SGCPNet(num_classes=num_classes, aux=aux, **options)


def bcpnet(num_classes: int = 19, aux: bool = False, **options) -> SGCPNet:
    return SGCPNet(num_classes=num_classes, aux=aux, **options)


_OFFICIAL = ("zhouyuan888888/SGCPNet models/SGCPNet.py (key list: test/data/official_state_dicts/sgcpnet.txt); "
             "loads with strict=True into the default configuration")
_FLOPS_NOTE = "paper FLOPs follow an early-thop count (~1.37x true conv MACs: 3.27 G at 1024x2048)"

register(ModelEntry(
    name="sgcpnet",
    builder=sgcpnet,
    description=("SGCPNet: MobileNetV3-Small trunk + SGCP context-propagation module (TD1-BU-TD2), "
                 "stride 8, 0.61 M params. Recipe: SGD m0.9 wd1e-5, LR 0.3 poly 0.9, crop 1024, batch 36, "
                 "350 epochs Cityscapes (28,700 it) / 250 CamVid, plain CE, no aux"),
    input_size=(1024, 2048),
    output_stride=8,
    paper=PaperFigures(
        miou_val=71.23,
        miou_test=70.9,
        fps=103.7,
        gpu="GTX 1080 Ti",
        resolution=(1024, 2048),
        params_m=0.61,
        gflops=4.5,
        camvid_miou_test=69.0,
        note=("SGCPNet1; val from Table V. SGCPNet2 at 768x1536: 69.5 test, 178.5 fps, 2.53 GFLOPs. "
              "CamVid 720x960: 278.4 fps. " + _FLOPS_NOTE),
    ),
    official_checkpoint=_OFFICIAL,
))

register(ModelEntry(
    name="bcpnet",
    builder=bcpnet,
    description=("BCPNet: the conference version of SGCPNet, same network (0.61 M params). Recipe differs: "
                 "LR 0.1 (not 0.3) and 200 epochs (16,400 it Cityscapes; CamVid crop 720, batch 48); "
                 "otherwise SGD m0.9 wd1e-5 poly 0.9, crop 1024, batch 36, plain CE, no aux"),
    input_size=(1024, 2048),  # evaluation resolution not stated; that of its 4.5 GFLOPs / 55 fps figure
    output_stride=8,
    paper=PaperFigures(
        miou_val=68.626,
        miou_test=68.4,
        fps=55.0,
        gpu="GTX TITAN X",
        resolution=(1024, 2048),
        params_m=0.61,
        gflops=4.5,
        camvid_miou_test=67.8,
        note=("val from the 1024-crop ablation (200 epochs); CamVid 181 fps at 720x960; 585.9 fps at 360x640. "
              + _FLOPS_NOTE),
    ),
    official_checkpoint=_OFFICIAL,
))
