"""CSFCN: Context and Spatial Feature Calibration Network (Li et al., IEEE TIP 32, 2023).

A ResNet-18 (or MobileNetV3-Large) encoder, then two decoder modules and an output layer at stride 8:

* CFC (context feature calibration) on the stride-32 feature: every pixel attends over ~100 context
  vectors pooled at 4 scales that keep the map's aspect ratio, and a tanh gate (CRB) rescales the result.
* SFC (spatial feature calibration) fuses the CFC output with the stride-8 feature: per-pixel offsets
  for G channel groups of each input resample both with ``grid_sample``, and two ``1 + tanh`` maps gate
  the sum. Its predictor starts at zero, so at initialisation SFC is a plain add-fusion.

Module names follow the authors' ``models/csfcn.py`` (github.com/kaigelee/CSFCN; ``CFC_CRB``,
``SFC_G2``, ``BiSeNetOutput``), so a state_dict of the official ``CSFCN`` — the paper's version: V1c
deep-stem ResNet-18, bilinear ×8 head — is expected to load with ``strict=True`` into
``build_model("csfcn")`` (``aux=False``), and one of the Nov-2023 code (PixelShuffle head) into
``head="pixel_shuffle"``. The official backbone file (``resnetv1c.py``) is unpublished; its
``resnet.conv1.{0,1,3,4,6}`` / ``resnet.bn1`` layout is inferred from the repo's ``resnetv1b.py`` and
``csfcn_tiny.py``. No official weights are published, so this was checked against key names only.
``csfcn_mnv3`` (CSFCN (M)) has no official code; its encoder keeps torchvision's ``features.*`` names.

ImageNet initialisation (``pretrained_backbone=<file>``): for the V1c stem, a file in this module's
layout (``conv1.0``…``conv1.6``, ``bn1``, ``layer1``…, as timm's deep stems) or mmcv's
``resnet18_v1c`` (``stem.0``…``stem.7``, renamed on load); timm's ``resnet18d`` does not fit (avg-pool
shortcuts). ``stem="torchvision"`` takes torchvision's ``resnet18`` file; ``csfcn_mnv3`` takes
torchvision's ``mobilenet_v3_large`` file.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.models.resnet import BasicBlock, ResNet

from ._common import load_backbone_weights
from .checkpoint import load_state_dict_file
from .registry import ModelEntry, PaperFigures, register


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, 'same' padding) → BN → ReLU, with the official ``conv``/``bn`` names."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            relu=nn.ReLU(inplace=True),
        ))


# ---------------------------------------------------------------------------------------------
# Encoders: each returns (stride-8, stride-16, stride-32) features.
# ---------------------------------------------------------------------------------------------

# mmcv's resnet18_v1c names the deep stem ``stem.0``…``stem.8`` (its last BN is our ``bn1``).
_MMCV_STEM_KEYS = {"stem.0.": "conv1.0.", "stem.1.": "conv1.1.", "stem.3.": "conv1.3.",
                   "stem.4.": "conv1.4.", "stem.6.": "conv1.6.", "stem.7.": "bn1."}


class ResNet18Encoder(ResNet):
    """torchvision ResNet-18 without ``avgpool``/``fc``, no dilation.

    ``stem="v1c"`` (default) swaps the 7×7 conv for the 3×3 deep stem 3→32→32→64 of "ResNet-V1c":
    the paper's FLOP totals only match with it (99.8 G vs 89.8 G at 1024×2048). ``stem="torchvision"``
    keeps the 7×7 conv, so torchvision's ImageNet file loads as it is.
    """

    def __init__(self, stem: str = "v1c") -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2])
        del self.avgpool, self.fc
        if stem == "v1c":
            self.conv1 = nn.Sequential(
                nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                nn.Conv2d(32, 64, 3, padding=1, bias=False),  # followed by ``bn1`` and ``relu``
            )
            for m in self.conv1.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif stem != "torchvision":
            raise ValueError(f"stem must be 'v1c' or 'torchvision', got {stem!r}")
        self.channels = (128, 256, 512)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        c2 = self.layer2(x)
        c3 = self.layer3(c2)
        return c2, c3, self.layer4(c3)

    def load_pretrained(self, path: str | Path) -> None:
        state = load_state_dict_file(path)
        if any(key.startswith("stem.") for key in state):
            state = {_rename_prefix(key, _MMCV_STEM_KEYS): value for key, value in state.items()}
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} does not fit the ResNet-18 encoder: missing {sorted(missing)[:5]}..., "
                             f"unexpected {sorted(unexpected)[:5]}...")


def _rename_prefix(key: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


class MobileNetV3Encoder(nn.Module):
    """torchvision MobileNetV3-Large ``features``. Taps: block 6 (stride 8, 40 ch), block 12 (stride 16,
    112 ch, for the auxiliary head) and the final 1×1 conv (stride 32, 960 ch; the 21.7 GFLOPs of the
    paper's CSFCN (M) need this tap, the 160-ch one before it gives ~18)."""

    _TAPS = (6, 12)

    def __init__(self) -> None:
        super().__init__()
        self.features = mobilenet_v3_large().features
        self.channels = (40, 112, 960)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        taps = []
        for index, block in enumerate(self.features):
            x = block(x)
            if index in self._TAPS:
                taps.append(x)
        return taps[0], taps[1], x

    def load_pretrained(self, path: str | Path) -> None:
        load_backbone_weights(self, path)


# ---------------------------------------------------------------------------------------------
# CFC: context feature calibration.
# ---------------------------------------------------------------------------------------------

def kar_pool_sizes(h, w, grids: tuple[int, ...] = (6, 3, 2, 1)) -> list:
    """Pooled sizes ``(n, max(1, round(n·w/h)))`` that keep the map's aspect ratio ("KAR").

    ``round`` halves to even, like Python's ``round`` in the released code. It is done in integer
    arithmetic so that ``h``, ``w`` may be ints (eager) or 0-d tensors (while tracing): an exported
    graph then follows the aspect ratio of whatever input it gets. 32×64 gives 6×12, 3×6, 2×4, 1×2.
    """
    sizes = []
    for n in grids:
        quotient = n * w // h
        twice_remainder = 2 * (n * w - quotient * h)
        m = quotient + (twice_remainder > h) + (twice_remainder == h) * (quotient % 2)
        sizes.append((n, m + (m == 0)))
    return sizes


def _bin_average_matrix(length, bins, like: torch.Tensor) -> torch.Tensor:
    """(bins × length) matrix averaging PyTorch's adaptive-pool bins: [⌊i·L/n⌋, ⌈(i+1)·L/n⌉)."""
    index = torch.arange(bins, device=like.device).unsqueeze(1)
    start = torch.div(index * length, bins, rounding_mode="floor")
    end = torch.div((index + 1) * length + bins - 1, bins, rounding_mode="floor")
    position = torch.arange(length, device=like.device)
    inside = (position >= start) & (position < end)
    return inside.to(like.dtype) / (end - start).to(like.dtype)


def adaptive_avg_pool2d_by_matmul(x: torch.Tensor, size) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` as two matmuls with averaging matrices built from the shapes.

    ONNX's pooling export only handles output sizes that divide the input (32→6 does not); this form
    exports for every size, and the sizes stay symbolic.
    """
    rows = _bin_average_matrix(x.shape[-2], size[0], x)
    cols = _bin_average_matrix(x.shape[-1], size[1], x)
    return rows @ x @ cols.transpose(0, 1)


class ContextRecalibration(nn.Module):
    """CRB: E' = E + E ⊙ tanh(W₂ ReLU(BN(W₁ g))); W₂ (3×3, no BN) starts at zero, so the block starts as
    identity. The gate input g is E in the released code, X + E in the paper's Eq. 3."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            ConvBNReLU(channels, channels // reduction, 1),
            nn.Conv2d(channels // reduction, channels, 3, padding=1, bias=False),
        )

    def forward(self, context: torch.Tensor, gate_input: torch.Tensor) -> torch.Tensor:
        return context * torch.tanh(self.conv(gate_input)) + context


class CFC(nn.Module):
    """DRL (3×3 conv, in→256) → pixel-to-context attention over the pooled pyramid → CRB → residual sum.

    Pooling runs directly on X for every scale, as in the released code (the paper calls it cascaded;
    the two differ only where bins do not divide evenly). Keys and values are plain biased 1×1
    ``Conv1d`` (the paper says conv+BN+ReLU), and the softmax over contexts has no temperature, as in
    the code.
    """

    def __init__(self, in_channels: int = 512, channels: int = 256, key_channels: int = 32,
                 grids: tuple[int, ...] = (6, 3, 2, 1), crb_input: str = "E") -> None:
        super().__init__()
        if crb_input not in ("E", "X+E"):
            raise ValueError(f"crb_input must be 'E' or 'X+E', got {crb_input!r}")
        self.grids = grids
        self.crb_input = crb_input
        self.reduce_channel = ConvBNReLU(in_channels, channels, 3)
        self.query_conv = nn.Conv2d(channels, key_channels, 1)
        self.key_conv = nn.Conv1d(channels, key_channels, 1)
        self.value_conv = nn.Conv1d(channels, channels, 1)
        self.local_attention = ContextRecalibration(channels)

    def pyramid_pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) → contexts Z (B, C, M), M = Σ n·m over the pooled sizes."""
        pool = adaptive_avg_pool2d_by_matmul if torch.jit.is_tracing() else F.adaptive_avg_pool2d
        sizes = kar_pool_sizes(x.shape[-2], x.shape[-1], self.grids)
        return torch.cat([pool(x, size).flatten(2) for size in sizes], dim=2)

    def affinity(self, x: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """Θ (B, N, M): softmax over the M contexts of query·key."""
        query = self.query_conv(x).flatten(2).transpose(1, 2)
        return torch.softmax(query @ self.key_conv(contexts), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce_channel(x)
        contexts = self.pyramid_pool(x)
        attention = self.affinity(x, contexts)
        context = (self.value_conv(contexts) @ attention.transpose(1, 2)).view_as(x)
        gate_input = context if self.crb_input == "E" else x + context
        return x + self.local_attention(context, gate_input)


# ---------------------------------------------------------------------------------------------
# SFC: spatial feature calibration.
# ---------------------------------------------------------------------------------------------

def grouped_warp(feature: torch.Tensor, offset: torch.Tensor, groups: int) -> torch.Tensor:
    """Resample each of ``groups`` contiguous channel groups of ``feature`` (B, C, H, W) at p + Δ(p).

    ``offset`` (B, 2·groups, H, W) holds (dx, dy) per group, divided by (W, H) in the [-1, 1] grid of
    ``align_corners=True``: one unit moves (W−1)/(2W) ≈ ½ pixel, as the released code (and SFNet's
    flow_warp). Δ = 0 is an exact identity.
    """
    batch, channels, h, w = feature.shape
    feature = feature.reshape(batch * groups, channels // groups, h, w)
    offset = offset.reshape(batch * groups, 2, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=feature.device, dtype=feature.dtype)
    ys = torch.linspace(-1.0, 1.0, h, device=feature.device, dtype=feature.dtype)
    grid = torch.stack((xs.view(1, 1, w) + offset[:, 0] / w, ys.view(1, h, 1) + offset[:, 1] / h), dim=-1)
    warped = F.grid_sample(feature, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return warped.reshape(batch, channels, h, w)


class SFC(nn.Module):
    """Fuses a stride-8 detail feature with a low-resolution semantic one.

    Both are brought to ``channels`` by 3×3 ConvBNReLU (the semantic one before upsampling, which is
    what the paper's FLOPs count); a predictor on their 1×1-reduced concatenation gives 2·G offset
    channels for the detail branch, 2·G for the semantic branch and 2 gate maps (semantic, detail) —
    the released code's channel order.
    """

    def __init__(self, high_channels: int = 128, low_channels: int = 256, channels: int = 128,
                 groups: int = 2, reduced_channels: int = 32) -> None:
        super().__init__()
        self.groups = groups
        self.conv_8 = ConvBNReLU(high_channels, channels, 3)
        self.conv_32 = ConvBNReLU(low_channels, channels, 3)
        self.cp1x1 = nn.Conv2d(channels, reduced_channels, 1, bias=False)
        self.sp1x1 = nn.Conv2d(channels, reduced_channels, 1, bias=False)
        self.conv_offset = nn.Sequential(
            ConvBNReLU(2 * reduced_channels, 2 * reduced_channels, 1),
            nn.Conv2d(2 * reduced_channels, 4 * groups + 2, 3, padding=1, bias=False),
        )

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        g = self.groups
        low = F.interpolate(self.conv_32(low), size=high.shape[-2:], mode="bilinear", align_corners=True)
        high = self.conv_8(high)
        prediction = self.conv_offset(torch.cat([self.cp1x1(high), self.sp1x1(low)], dim=1))
        high = grouped_warp(high, prediction[:, : 2 * g], g)
        low = grouped_warp(low, prediction[:, 2 * g: 4 * g], g)
        gates = 1.0 + torch.tanh(prediction[:, 4 * g:])
        return low * gates[:, 0:1] + high * gates[:, 1:2]


# ---------------------------------------------------------------------------------------------
# Heads and the network.
# ---------------------------------------------------------------------------------------------

class SegHead(nn.Module):
    """3×3 ConvBNReLU → 1×1 classifier (bias) → bilinear upsampling (``align_corners=True``, as the
    models were trained) to the requested size; official ``BiSeNetOutput`` names.

    ``pixel_shuffle=f`` is the Nov-2023 code's head: the classifier predicts K·f² channels and
    ``PixelShuffle(f)`` replaces the interpolation; the result is cropped to the requested size.
    """

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int, pixel_shuffle: int = 1) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, 3)
        self.conv_out = nn.Conv2d(mid_channels, num_classes * pixel_shuffle ** 2, 1)
        self.shuffle = nn.PixelShuffle(pixel_shuffle) if pixel_shuffle > 1 else None

    def forward(self, x: torch.Tensor, size=None) -> torch.Tensor:
        logits = self.conv_out(self.conv(x))
        if self.shuffle is not None:
            logits = self.shuffle(logits)
            return logits if size is None else logits[..., : size[0], : size[1]]
        if size is None:
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)


_HEAD_UPSCALE = {"bilinear": 1, "pixel_shuffle": 8}


class CSFCN(nn.Module):
    """CSFCN. ``forward`` returns logits at the input resolution, or at stride 8 with
    ``upsample_logits = False`` (stride 1, before cropping, for ``head="pixel_shuffle"``).

    Options (defaults = the paper's network as the spec reads it):
      ``backbone``: ``"resnet18"`` or ``"mobilenet_v3_large"`` (CSFCN (M));
      ``stem``: ``"v1c"`` deep stem or ``"torchvision"`` 7×7 (ResNet only);
      ``crb_input``: ``"E"`` (released code) or ``"X+E"`` (paper Eq. 3);
      ``groups``: SFC offset groups G (paper ablates 1, 2, 4, 8);
      ``head``: ``"bilinear"`` (paper) or ``"pixel_shuffle"`` (Nov-2023 code).
    ``aux=True`` adds one training head on the stride-16 feature (ConvBNReLU 3×3 → 64, classifier;
    loss weight 0.4). Neither the paper nor the code fixes it; this is PSPNet's placement, and the
    author's MGSeg code uses the same head on ResNet ``layer3``.
    """

    def __init__(self, num_classes: int = 19, aux: bool = False, backbone: str = "resnet18",
                 stem: str = "v1c", crb_input: str = "E", groups: int = 2, head: str = "bilinear",
                 pretrained_backbone: Optional[str | Path] = None) -> None:
        super().__init__()
        if head not in _HEAD_UPSCALE:
            raise ValueError(f"head must be one of {sorted(_HEAD_UPSCALE)}, got {head!r}")
        self.upsample_logits = True
        self.logits_align_corners = True  # how callers that upsample stride-8 logits should do it
        # Encoder attribute named as in the official checkpoints (``resnet.*``).
        if backbone == "resnet18":
            self.resnet = ResNet18Encoder(stem)
        elif backbone == "mobilenet_v3_large":
            if stem != "v1c":
                raise ValueError("stem applies to the ResNet-18 backbone only")
            self.mobilenet = MobileNetV3Encoder()
        else:
            raise ValueError(f"backbone must be 'resnet18' or 'mobilenet_v3_large', got {backbone!r}")
        high_channels, mid_channels, low_channels = self.backbone.channels

        self.cfc = CFC(low_channels, crb_input=crb_input)
        self.sfc = SFC(high_channels, groups=groups)
        self.conv_out32 = SegHead(128, 128, num_classes, _HEAD_UPSCALE[head])
        self.aux_head = SegHead(mid_channels, 64, num_classes) if aux else None
        self._init_decoder()
        if pretrained_backbone is not None:
            self.backbone.load_pretrained(pretrained_backbone)

    @property
    def backbone(self) -> nn.Module:
        return self.resnet if hasattr(self, "resnet") else self.mobilenet

    def _init_decoder(self) -> None:
        # The released code's inits: Xavier-normal in ConvBNReLU, Kaiming-normal (fan_out) elsewhere,
        # then the two zero-inits that make SFC an add-fusion and the CRB an identity at the start.
        # (Its model-wide Kaiming loop runs after the zero-inits and undoes them; not copied.)
        decoder = [self.cfc, self.sfc, self.conv_out32] + ([self.aux_head] if self.aux_head is not None else [])
        for part in decoder:
            for m in part.modules():
                if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            for m in part.modules():
                if isinstance(m, ConvBNReLU):
                    nn.init.xavier_normal_(m.conv.weight)
        nn.init.zeros_(self.cfc.local_attention.conv[1].weight)
        nn.init.zeros_(self.sfc.conv_offset[1].weight)

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        c2, c3, c4 = self.backbone(x)
        features = self.sfc(c2, self.cfc(c4))
        logits = self.conv_out32(features, size if self.upsample_logits else None)
        if self.training and self.aux_head is not None:
            return logits, self.aux_head(c3, size)
        return logits


def csfcn(num_classes: int = 19, aux: bool = False, **options) -> CSFCN:
    return CSFCN(num_classes=num_classes, aux=aux, **options)


def csfcn_mnv3(num_classes: int = 19, aux: bool = False, **options) -> CSFCN:
    return CSFCN(num_classes=num_classes, aux=aux, backbone="mobilenet_v3_large", **options)


_NO_CHECKPOINT = ("none published; state_dicts of the official models/csfcn.py (kaigelee/CSFCN) load "
                  "with strict=True, aux=False")

register(ModelEntry(
    name="csfcn",
    builder=csfcn,
    description=("CSFCN-100: ResNet-18 (V1c stem) + context (CFC) and spatial (SFC) feature calibration, "
                 "output stride 8; CSFCN-50/-75 are the same network on 512×1024 / 768×1536 inputs"),
    input_size=(1024, 2048),
    output_stride=8,
    aux_weights=(0.4,),
    paper=PaperFigures(
        miou_val=79.0,
        miou_test=78.7,
        fps=70.0,
        gpu="GTX 1080Ti",
        resolution=(1024, 2048),
        gflops=99.8,
        camvid_miou_test=77.8,
        note=("GFLOPs are multiply-accumulates; params not reported. CSFCN-75 (768x1536): 56.2 GFLOPs, "
              "122.2 fps, 77.2 test / 77.3 val; CSFCN-50 (512x1024): 24.9 GFLOPs, 229.1 fps, 73.8 test. "
              "CamVid 720x960 at 179.2 fps; 81.0 test with Cityscapes pretraining"),
    ),
    official_checkpoint=_NO_CHECKPOINT,
))

register(ModelEntry(
    name="csfcn_mnv3",
    builder=csfcn_mnv3,
    description="CSFCN (M): CSFCN with a MobileNetV3-Large encoder (40-ch stride-8 and 960-ch stride-32 taps)",
    input_size=(1024, 2048),
    output_stride=8,
    aux_weights=(0.4,),
    paper=PaperFigures(
        miou_val=75.31,
        miou_test=75.1,
        fps=63.4,
        gpu="GTX 1080Ti",
        resolution=(1024, 2048),
        gflops=21.7,
        note="GFLOPs are multiply-accumulates; params not reported; the paper's Table VIII calls it CSFCN-100",
    ),
    official_checkpoint="none (no official code for this variant)",
))
