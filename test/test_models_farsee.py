"""FarSee-Net against specs/farsee.md §7 (V1 params, V2 MACs, V3 shapes, V4 structure) and the model contract."""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rtseg_ros.models import build_model, get_entry
from rtseg_ros.models.complexity import count_macs, count_params
from rtseg_ros.models.farsee import FarSeeNet
from rtseg_ros.runtime.export import export_onnx, onnx_parity

HEAD_MODULES = ("faspp1", "up1", "low_proj", "faspp2", "fuse", "classifier")


@pytest.fixture(scope="module")
def model():
    return build_model("farsee").eval()


def meta_model(**options):
    return build_model("farsee", **options).to("meta").eval()


def meta_forward(model, h, w, batch=2, **kwargs):
    with torch.no_grad():
        return model(torch.empty(batch, 3, h, w, device="meta"), **kwargs)


# ---------------------------------------------------------------- V1: parameters

def test_params_per_module(model):
    assert count_params(model.backbone) == 11_176_512
    expected = {"faspp1": 534_784, "up1": 2_098_176, "low_proj": 12_384, "faspp2": 218_624,
                "fuse": 2_557_952, "classifier": 155_952}
    assert {name: count_params(getattr(model, name)) for name in HEAD_MODULES} == expected
    assert count_params(model) == 16_754_384


@pytest.mark.parametrize("num_classes, params", [(11, 16_688_720), (19, 16_754_384), (21, 16_770_800),
                                                 (150, 17_829_632)])
def test_params_per_num_classes(num_classes, params):
    assert count_params(build_model("farsee", num_classes=num_classes)) == params == 16_598_432 + 8_208 * num_classes


@pytest.mark.parametrize("options, params", [
    ({"aux": True}, 16_754_384),  # the paper has no auxiliary heads
    ({"up1_bn_relu": False, "classifier_bias": False}, 16_753_056),  # zh320 re-implementation's "16.75 M"
    ({"low_level": "layer2"}, 23_039_696),  # literal "conv3_x" tap, sub-pixel #1 with t = 4
])
def test_params_variants(options, params):
    assert count_params(build_model("farsee", **options)) == params


def test_factorized_branch_is_about_8_8x_cheaper(model):
    factorized = sum(m.weight.numel() for m in model.faspp1.branches[1].modules() if isinstance(m, nn.Conv2d))
    assert factorized == 131_072 + 2_304
    assert round(512 * 256 * 9 / factorized, 3) == 8.845


# ---------------------------------------------------------------- V2: MACs

@pytest.mark.parametrize("size, gmacs", [((512, 1024), 26.319), ((512, 768), 19.739), ((768, 1536), 59.218),
                                         ((1024, 2048), 105.277)])
def test_macs(model, size, gmacs):
    assert count_macs(model, size) / 1e9 == pytest.approx(gmacs, rel=1e-3)


def test_macs_per_module(model):
    assert count_macs(model.backbone, (224, 224)) / 1e9 == pytest.approx(1.8136, rel=1e-3)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta_forward(meta_model(), 512, 1024, batch=1)
    per_module = {name: sum(counter.get_flop_counts()[f"FarSeeNet.{name}"].values()) / 2e9
                  for name in ("backbone",) + HEAD_MODULES}
    expected = {"backbone": 18.950, "faspp1": 0.272, "up1": 1.074, "low_proj": 0.025, "faspp2": 0.445,
                "fuse": 5.234, "classifier": 0.319}
    assert per_module == pytest.approx(expected, abs=1e-3)


def test_macs_layer2_variant():
    assert count_macs(build_model("farsee", low_level="layer2"), (512, 1024)) / 1e9 == pytest.approx(47.56, rel=1e-3)


# ---------------------------------------------------------------- V3: shapes

def test_intermediate_shapes():
    model = meta_model()
    shapes = {}
    for name in ("backbone.layer2", "backbone.layer3", "backbone.layer4", "up1.conv") + HEAD_MODULES:
        model.get_submodule(name).register_forward_hook(
            lambda module, args, out, name=name: shapes.update({name: tuple(out.shape)}))
    model.upsample_logits = False
    logits = meta_forward(model, 512, 1024)
    assert shapes == {
        "backbone.layer2": (2, 128, 64, 128), "backbone.layer3": (2, 256, 32, 64),
        "backbone.layer4": (2, 512, 16, 32), "faspp1": (2, 1024, 16, 32), "up1.conv": (2, 2048, 16, 32),
        "up1": (2, 512, 32, 64), "low_proj": (2, 48, 32, 64), "faspp2": (2, 384, 32, 64),
        "fuse": (2, 512, 32, 64), "classifier": (2, 19, 128, 256),
    }
    assert logits.shape == (2, 19, 128, 256)


@pytest.mark.parametrize("size, stride4", [((512, 1024), (128, 256)), ((512, 768), (128, 192)),
                                           ((1024, 2048), (256, 512)), ((360, 640), (92, 160)),
                                           ((713, 713), (180, 180)), ((720, 1280), (180, 320))])
def test_output_sizes(size, stride4):
    model = meta_model()
    assert meta_forward(model, *size).shape == (2, 19, *size)
    assert meta_forward(model, *size, out_size=(1024, 2048)).shape == (2, 19, 1024, 2048)
    model.upsample_logits = False
    # 4× the layer3 grid ceil(H/16)×ceil(W/16), also when H, W are not multiples of 32
    assert meta_forward(model, *size).shape == (2, 19, *stride4)
    assert meta_forward(model, *size, out_size=size).shape == (2, 19, *size)


def test_layer2_variant_output_stride_2():
    model = meta_model(low_level="layer2")
    model.upsample_logits = False
    assert meta_forward(model, 512, 1024).shape == (2, 19, 256, 512)


def test_small_odd_input_uses_fallback(model):
    """At 240×320 layer4 is 8×10, so sub-pixel #1 gives 16×20 against layer3's 15×20."""
    model.upsample_logits = False
    try:
        with torch.no_grad():
            out = model(torch.randn(1, 3, 240, 320))
    finally:
        model.upsample_logits = True
    assert out.shape == (1, 19, 60, 80)
    assert torch.isfinite(out).all()


# ---------------------------------------------------------------- V4: structure

def test_depthwise_convs(model):
    depthwise = [(m.in_channels, m.dilation, m.padding) for m in model.modules()
                 if isinstance(m, nn.Conv2d) and m.groups == m.in_channels and m.groups > 1]
    assert depthwise == [(256, (6, 6), (6, 6)), (256, (12, 12), (12, 12)), (256, (18, 18), (18, 18)),
                         (128, (6, 6), (6, 6)), (128, (12, 12), (12, 12))]


@pytest.mark.parametrize("num_classes", [19, 11])
def test_pixel_shuffles_and_classifier(num_classes):
    model = build_model("farsee", num_classes=num_classes)
    assert [m.upscale_factor for m in model.modules() if isinstance(m, nn.PixelShuffle)] == [2, 4]
    last_conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    assert last_conv.out_channels == 16 * num_classes and last_conv.bias is not None
    assert isinstance(model.up1.post[0], nn.BatchNorm2d)


def test_backbone_plain_output_stride_32(model):
    convs = {name: m for name, m in model.backbone.named_modules() if isinstance(m, nn.Conv2d)}
    assert all(m.dilation == (1, 1) for m in convs.values())
    strided = sorted(name for name, m in convs.items() if m.stride != (1, 1))
    assert strided == ["conv1"] + [f"layer{i}.0.{c}" for i in (2, 3, 4) for c in ("conv1", "downsample.0")]
    assert isinstance(model.backbone.maxpool, nn.MaxPool2d) and model.backbone.maxpool.stride == 2


def _torchvision_resnet18_layout():
    """Keys and shapes of torchvision's ``resnet18().state_dict()`` without ``fc.*``."""
    def bn(prefix, channels):
        return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,),
                f"{prefix}.running_mean": (channels,), f"{prefix}.running_var": (channels,),
                f"{prefix}.num_batches_tracked": ()}

    layout = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    in_channels = 64
    for layer, channels in zip((1, 2, 3, 4), (64, 128, 256, 512)):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            block_in = in_channels if block == 0 else channels
            layout.update({f"{p}.conv1.weight": (channels, block_in, 3, 3), **bn(f"{p}.bn1", channels),
                           f"{p}.conv2.weight": (channels, channels, 3, 3), **bn(f"{p}.bn2", channels)})
            if block == 0 and layer > 1:
                layout.update({f"{p}.downsample.0.weight": (channels, block_in, 1, 1),
                               **bn(f"{p}.downsample.1", channels)})
        in_channels = channels
    return layout


def test_backbone_keys_are_torchvision(model):
    expected = _torchvision_resnet18_layout()
    assert len(expected) == 120
    assert {k: tuple(v.shape) for k, v in model.backbone.state_dict().items()} == expected


# ---------------------------------------------------------------- behaviour and contract

def test_eval_is_deterministic(model):
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert first.shape == (1, 19, 64, 128)
    assert torch.equal(first, second)


def test_train_mode_gradients_reach_backbone():
    model = build_model("farsee").train()
    out = model(torch.randn(2, 3, 64, 96))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 19, 64, 96)
    out.square().mean().backward()
    assert model.backbone.conv1.weight.grad is not None
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_aux_true_returns_main_only_tuple_in_training():
    model = build_model("farsee", aux=True).train()
    out = model(torch.randn(2, 3, 64, 96))
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == (2, 19, 64, 96)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 96)).shape == (1, 19, 64, 96)


def test_unknown_low_level_rejected():
    with pytest.raises(ValueError, match="low_level"):
        FarSeeNet(low_level="layer1")


def test_registry_entry():
    entry = get_entry("farsee")
    assert entry.input_size == (512, 1024) and entry.output_stride == 4
    assert not entry.has_aux and entry.official_checkpoint == ""
    assert (entry.paper.miou_val, entry.paper.miou_test, entry.paper.fps) == (70.29, 70.2, 68.5)
    assert entry.paper.resolution == (512, 1024) and entry.paper.params_m is None


def test_pretrained_backbone_loads(tmp_path):
    source = build_model("farsee").backbone
    with torch.no_grad():
        for tensor in source.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(-1, 1)
    state = {**source.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    loaded = build_model("farsee", pretrained_backbone=str(path)).backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())

    del state["layer4.1.conv2.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="does not fit"):
        build_model("farsee", pretrained_backbone=str(path))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_trace_runs_other_sizes(model):
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(1, 3, 64, 128), check_trace=False)
        x = torch.randn(1, 3, 72, 104)
        assert torch.allclose(traced(x), model(x), atol=1e-5)


def test_onnx_export_parity(model, tmp_path):
    path = export_onnx(model, tmp_path / "farsee.onnx", (64, 128))
    assert onnx_parity(model, path, torch.randn(1, 3, 64, 128)) <= 1e-4
    assert onnx_parity(model, path, torch.randn(1, 3, 72, 104)) <= 1e-4  # not a multiple of 32
