"""DDRNet: Deep Dual-resolution Networks (Hong et al., arXiv 2101.06085), variants 23-slim, 23 and 39.

A ResNet trunk runs to 1/8, then splits into a high-resolution branch (stays at 1/8, 2p channels) and a
low-resolution branch (1/16 → 1/64) that exchange features through bilateral fusions. DAPPM adds
multi-scale context on the 1/64 map; its output is added to the high branch and a light head predicts at
output stride 8.

Attribute names follow the authors' code (ydhongHIT/DDRNet) so that published checkpoints load:

* Cityscapes checkpoints (with the aux head ``seghead_extra``): ``model.load_state_dict(sd, strict=True)``
  for an ``aux=True`` model, or ``models.checkpoint.load_weights(model, path, name)`` for either kind
  (it drops the aux head for an ``aux=False`` model).
* ImageNet checkpoints of the classification variant: ``pretrained_backbone=<path>`` (or
  ``load_imagenet_trunk``) loads the whole dual-resolution trunk; DAPPM and the heads stay freshly initialised.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ._common import resize_like
from .checkpoint import load_state_dict_file
from .registry import ModelEntry, PaperFigures, register, register_alias

BN_MOMENTUM = 0.1


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """The paper's "RB": two 3×3 convs with a residual shortcut; the stride sits on the first conv."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, no_relu: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = _bn(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = _bn(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False), _bn(channels))
        self.no_relu = no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + identity
        return out if self.no_relu else F.relu(out)


class Bottleneck(nn.Module):
    """The paper's "RBB": 1×1 → 3×3 (stride) → 1×1 with expansion 2 (not ResNet's 4), no ReLU after the sum."""

    expansion = 2

    def __init__(self, in_channels: int, channels: int, stride: int = 1, no_relu: bool = True):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = _bn(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = _bn(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = _bn(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            _bn(out_channels))
        self.no_relu = no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out)) + identity
        return out if self.no_relu else F.relu(out)


def make_layer(block: type[BasicBlock] | type[Bottleneck], in_channels: int, channels: int, blocks: int,
               stride: int = 1) -> nn.Sequential:
    """A stage of ``blocks`` blocks. The last block of a multi-block stage skips its final ReLU: every stage
    returns pre-activation features and the ReLU is applied by each consumer, after the fusion sum (Eq. 1)."""
    layers = [block(in_channels, channels, stride)]
    for i in range(1, blocks):
        layers.append(block(channels * block.expansion, channels, 1, no_relu=(i == blocks - 1)))
    return nn.Sequential(*layers)


def _bn_relu_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    # Pre-activation unit of DAPPM; the Sequential indices (0 BN, 1 ReLU, 2 conv) are the checkpoint keys.
    return nn.Sequential(_bn(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False))


def _pool_bn_relu_conv(pool: nn.Module, in_channels: int, out_channels: int) -> nn.Sequential:
    # BN comes after the pooling (indices 0 pool, 1 BN, 2 ReLU, 3 conv).
    return nn.Sequential(pool, _bn(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, 1, bias=False))


class DAPPM(nn.Module):
    """Deep Aggregation Pyramid Pooling Module (paper §III.C, Eq. 2, Fig. 5).

    Pools the 1/64 map to 1/128, 1/256, 1/512 and 1×1 and fuses the scales hierarchically: each upsampled
    scale is added to the previous branch's output and refined by a 3×3 conv. The pool kernels are
    2^i + 1 = 5/9/17 (the text's 8/16/32 is a conversion error; the authors' figure and code use 5/9/17).
    """

    def __init__(self, in_channels: int, branch_channels: int, out_channels: int):
        super().__init__()
        self.scale1 = _pool_bn_relu_conv(nn.AvgPool2d(5, 2, 2), in_channels, branch_channels)
        self.scale2 = _pool_bn_relu_conv(nn.AvgPool2d(9, 4, 4), in_channels, branch_channels)
        self.scale3 = _pool_bn_relu_conv(nn.AvgPool2d(17, 8, 8), in_channels, branch_channels)
        self.scale4 = _pool_bn_relu_conv(nn.AdaptiveAvgPool2d((1, 1)), in_channels, branch_channels)
        self.scale0 = _bn_relu_conv(in_channels, branch_channels, 1)
        self.process1 = _bn_relu_conv(branch_channels, branch_channels, 3)
        self.process2 = _bn_relu_conv(branch_channels, branch_channels, 3)
        self.process3 = _bn_relu_conv(branch_channels, branch_channels, 3)
        self.process4 = _bn_relu_conv(branch_channels, branch_channels, 3)
        self.compression = _bn_relu_conv(5 * branch_channels, out_channels, 1)
        self.shortcut = _bn_relu_conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.scale0(x)]
        for scale, process in ((self.scale1, self.process1), (self.scale2, self.process2),
                               (self.scale3, self.process3), (self.scale4, self.process4)):
            outs.append(process(resize_like(scale(x), x) + outs[-1]))
        return self.compression(torch.cat(outs, 1)) + self.shortcut(x)


class SegHead(nn.Module):
    """BN–ReLU–conv3×3–BN–ReLU–conv1×1 (with bias): the main head and the auxiliary head."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.bn1 = _bn(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 3, 1, 1, bias=False)
        self.bn2 = _bn(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.relu(self.bn1(x)))
        return self.conv2(F.relu(self.bn2(x)))


# layers: blocks in conv2, conv3, conv4, conv5_1. conv4_fusions: DDRNet-39 splits conv4 into two halves,
# each followed by a bilateral fusion. planes p: low-branch widths p..16p, high branch 2p.
VARIANTS = {
    "ddrnet23_slim": dict(layers=(2, 2, 2, 2), conv4_fusions=1, planes=32, spp_planes=128, head_planes=64),
    "ddrnet23": dict(layers=(2, 2, 2, 2), conv4_fusions=1, planes=64, spp_planes=128, head_planes=128),
    "ddrnet39": dict(layers=(3, 4, 6, 3), conv4_fusions=2, planes=64, spp_planes=128, head_planes=256),
}

# Keys of the ImageNet classification variant that the segmentation net does not have (paper Table I/II:
# high-to-low fusion of conv5_2, 1×1 conv + GAP, fc), and segmentation-only modules ImageNet cannot provide.
_CLASSIFIER_ONLY = ("down5.", "last_layer.", "linear.")
_SEGMENTATION_ONLY = ("spp.", "final_layer.", "seghead_extra.")


class DDRNet(nn.Module):
    """DDRNet for semantic segmentation, output stride 8 (see the module docstring for checkpoints).

    Eval: main logits at input resolution (or at 1/8 with ``upsample_logits = False``). Train with
    ``aux=True``: ``(main, aux)``; the aux head sits on the high branch after the (last) conv4 fusion
    and is weighted 0.4 in the loss. Training needs batch >= 2 unless BatchNorm is frozen.
    """

    def __init__(self, layers: tuple[int, int, int, int], conv4_fusions: int, planes: int, spp_planes: int,
                 head_planes: int, num_classes: int = 19, aux: bool = False,
                 pretrained_backbone: str | Path | None = None):
        super().__init__()
        p, high = planes, 2 * planes
        self.upsample_logits = True
        self.conv1 = nn.Sequential(  # stem: two stride-2 3×3 convs; the official ones keep their bias
            nn.Conv2d(3, p, 3, 2, 1), _bn(p), nn.ReLU(inplace=True),
            nn.Conv2d(p, p, 3, 2, 1), _bn(p), nn.ReLU(inplace=True))
        self.layer1 = make_layer(BasicBlock, p, p, layers[0])
        self.layer2 = make_layer(BasicBlock, p, 2 * p, layers[1], stride=2)

        # conv4: low branch to 1/16, high branch at 1/8, then a bilateral fusion (twice for DDRNet-39).
        # Names are (low stage, high stage, high→low bridge, low→high bridge), as in the checkpoints.
        suffixes = [""] if conv4_fusions == 1 else [f"_{i + 1}" for i in range(conv4_fusions)]
        self._conv4 = [(f"layer3{s}", f"layer3{s}_", f"down3{s}", f"compression3{s}") for s in suffixes]
        blocks = layers[2] // conv4_fusions
        for i, (low_name, high_name, down_name, compression_name) in enumerate(self._conv4):
            first = i == 0
            setattr(self, low_name, make_layer(BasicBlock, 2 * p if first else 4 * p, 4 * p, blocks,
                                               stride=2 if first else 1))
            setattr(self, high_name, make_layer(BasicBlock, 2 * p if first else high, high, blocks))
            setattr(self, down_name, nn.Sequential(nn.Conv2d(high, 4 * p, 3, 2, 1, bias=False), _bn(4 * p)))
            setattr(self, compression_name, nn.Sequential(nn.Conv2d(4 * p, high, 1, bias=False), _bn(high)))

        # conv5_1: low branch to 1/32; the high→low bridge needs two stride-2 convs (1/8 → 1/32).
        self.layer4 = make_layer(BasicBlock, 4 * p, 8 * p, layers[3], stride=2)
        self.layer4_ = make_layer(BasicBlock, high, high, layers[3])
        self.compression4 = nn.Sequential(nn.Conv2d(8 * p, high, 1, bias=False), _bn(high))
        self.down4 = nn.Sequential(
            nn.Conv2d(high, 4 * p, 3, 2, 1, bias=False), _bn(4 * p), nn.ReLU(inplace=True),
            nn.Conv2d(4 * p, 8 * p, 3, 2, 1, bias=False), _bn(8 * p))

        # One bottleneck per branch: high stays at 1/8 (→ 4p); low goes to 1/64 (→ 16p) for DAPPM.
        self.layer5_ = make_layer(Bottleneck, high, high, 1)
        self.layer5 = make_layer(Bottleneck, 8 * p, 8 * p, 1, stride=2)
        self.spp = DAPPM(16 * p, spp_planes, 4 * p)
        self.final_layer = SegHead(4 * p, head_planes, num_classes)
        self.seghead_extra = SegHead(high, head_planes, num_classes) if aux else None

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if pretrained_backbone is not None:
            load_imagenet_trunk(self, pretrained_backbone)

    @staticmethod
    def _bilateral_fusion(low_stage: nn.Module, high_stage: nn.Module, down: nn.Module, compression: nn.Module,
                          low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run one stage of each branch, then exchange: low += down(high), high += up(compression(low))."""
        low = low_stage(F.relu(low))
        high = high_stage(F.relu(high))
        return low + down(F.relu(high)), high + resize_like(compression(F.relu(low)), high)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        # DAPPM's global branch applies BatchNorm to a 1×1 map, which at batch 1 holds one value per channel:
        # no batch statistics exist. Fail up front with the reason instead of PyTorch's error deep inside.
        if self.training and x.shape[0] < 2 and self.spp.scale4[1].training:
            raise ValueError("DDRNet in train mode needs a batch of at least 2 images: the DAPPM global-pool "
                             "branch applies BatchNorm to a 1x1 map (one value per channel at batch 1). "
                             "Use batch >= 2, or put the BatchNorm layers in eval mode (frozen BN).")
        image = x
        x = self.layer2(F.relu(self.layer1(self.conv1(x))))  # 1/8: both branches start here
        low = high = x
        for names in self._conv4:
            low, high = self._bilateral_fusion(*(getattr(self, n) for n in names), low, high)
        aux_input = high
        low, high = self._bilateral_fusion(self.layer4, self.layer4_, self.down4, self.compression4, low, high)
        high = self.layer5_(F.relu(high))
        context = self.spp(self.layer5(F.relu(low)))
        # Final low-to-high fusion: both sides have 4p channels, so a plain sum suffices.
        logits = self.final_layer(resize_like(context, high) + high)
        if self.upsample_logits:
            logits = resize_like(logits, image)
        if self.training and self.seghead_extra is not None:
            return logits, resize_like(self.seghead_extra(aux_input), image)
        return logits


def load_imagenet_trunk(model: DDRNet, path: str | Path) -> None:
    """Load an official ImageNet checkpoint (classification variant, paper Table I/II) into ``model``.

    The classification variant shares the whole dual-resolution trunk, including both bottlenecks (only the
    low one's stride differs). Its classifier (``down5``, ``last_layer``, ``linear``) is ignored; DAPPM and the
    heads keep their initialisation. Any other missing, unexpected or mis-shaped key is an error.
    """
    state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith(_CLASSIFIER_ONLY)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch, e.g. weights of another variant
        raise ValueError(f"{path} does not fit this DDRNet: {exc}") from exc
    missing = [k for k in missing if not k.startswith(_SEGMENTATION_ONLY)]
    if missing or unexpected:
        raise ValueError(f"{path} is not a DDRNet ImageNet checkpoint for this variant: "
                         f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")


def ddrnet23_slim(num_classes: int = 19, aux: bool = False, pretrained_backbone: str | Path | None = None) -> DDRNet:
    """DDRNet-23-slim: ResNet-18 layout at half width (p = 32)."""
    return DDRNet(**VARIANTS["ddrnet23_slim"], num_classes=num_classes, aux=aux,
                  pretrained_backbone=pretrained_backbone)


def ddrnet23(num_classes: int = 19, aux: bool = False, pretrained_backbone: str | Path | None = None) -> DDRNet:
    """DDRNet-23: ResNet-18 layout (p = 64)."""
    return DDRNet(**VARIANTS["ddrnet23"], num_classes=num_classes, aux=aux, pretrained_backbone=pretrained_backbone)


def ddrnet39(num_classes: int = 19, aux: bool = False, pretrained_backbone: str | Path | None = None) -> DDRNet:
    """DDRNet-39: ResNet-34 layout (p = 64), conv4 split into two fused halves."""
    return DDRNet(**VARIANTS["ddrnet39"], num_classes=num_classes, aux=aux, pretrained_backbone=pretrained_backbone)


_PAPER_NOTE = ("arXiv 2101.06085 (this version). GFLOPs are MACs at 1024x2048. FPS: 2080Ti, PyTorch 1.3, "
               "FP32, batch 1, BN after convs excluded.")
_CHECKPOINT = ("ydhongHIT/DDRNet README (Google Drive): {} Cityscapes weights; strict=True with aux=True, "
               "or models.checkpoint.load_weights() for either. ImageNet weights: pretrained_backbone=<path>.")

register(ModelEntry(
    name="ddrnet23_slim", builder=ddrnet23_slim,
    description="DDRNet-23-slim: dual-resolution ResNet-18 at half width with DAPPM context, output stride 8",
    input_size=(1024, 2048), output_stride=8, aux_weights=(0.4,),
    paper=PaperFigures(miou_val=77.8, miou_test=77.4, fps=108.8, gpu="GTX 2080Ti", resolution=(1024, 2048),
                       params_m=5.7, gflops=36.3, camvid_miou_test=74.4,
                       note=_PAPER_NOTE + " CamVid 78.0 with Cityscapes pre-training; 230 FPS at 720x960."),
    official_checkpoint=_CHECKPOINT.format("DDRNet-23-slim"),
))
register(ModelEntry(
    name="ddrnet23", builder=ddrnet23,
    description="DDRNet-23: dual-resolution ResNet-18 with DAPPM context, output stride 8",
    input_size=(1024, 2048), output_stride=8, aux_weights=(0.4,),
    paper=PaperFigures(miou_val=79.5, miou_test=79.4, fps=38.5, gpu="GTX 2080Ti", resolution=(1024, 2048),
                       params_m=20.1, gflops=143.1, camvid_miou_test=76.3,
                       note=_PAPER_NOTE + " CamVid 79.9 with Cityscapes pre-training; 94 FPS at 720x960."),
    official_checkpoint=_CHECKPOINT.format("DDRNet-23"),
))
register(ModelEntry(
    name="ddrnet39", builder=ddrnet39,
    description="DDRNet-39: dual-resolution ResNet-34 with DAPPM context, output stride 8",
    input_size=(1024, 2048), output_stride=8, aux_weights=(0.4,),
    paper=PaperFigures(miou_test=80.4, fps=22.7, gpu="GTX 2080Ti", resolution=(1024, 2048),
                       params_m=32.3, gflops=281.2,
                       note=_PAPER_NOTE + " Test 81.9 with multi-scale + flip (140.6 GFLOPs at 1024x1024)."),
    official_checkpoint=_CHECKPOINT.format("DDRNet-39"),
))
register_alias("ddrnet", "ddrnet23_slim")
