"""DDRNet 23-slim / 23 / 39 against specs/ddrnet.md §7: sizes, shapes, behaviour, checkpoints, export."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rtseg_ros.models import available_models, build_model, get_entry
from rtseg_ros.models.complexity import count_macs, count_params
from rtseg_ros.models.checkpoint import CheckpointError, load_weights
from rtseg_ros.models.ddrnet import Bottleneck, load_imagenet_trunk
from rtseg_ros.runtime.export import export_onnx, onnx_parity

VARIANTS = ("ddrnet23_slim", "ddrnet23", "ddrnet39")
OFFICIAL = Path(__file__).parent / "data" / "official_state_dicts"


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return build_model(name, **kwargs)


def randomize_bn(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial BN statistics and affines, so numeric checks exercise every BN."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.empty_like(m.running_mean).uniform_(-0.2, 0.2, generator=g))
                m.running_var.copy_(torch.empty_like(m.running_var).uniform_(0.5, 1.5, generator=g))
                m.weight.copy_(torch.empty_like(m.weight).uniform_(0.5, 1.5, generator=g))
                m.bias.copy_(torch.empty_like(m.bias).uniform_(-0.2, 0.2, generator=g))
    return model


def official_layout(name: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype) from the official state_dict listing."""
    layout = {}
    for line in (OFFICIAL / f"{name}.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype, _kind = line.split("\t")
        layout[key] = (() if shape == "scalar" else tuple(int(s) for s in shape.split("x")), dtype)
    return layout


def random_official_state_dict(name: str) -> dict[str, torch.Tensor]:
    state = {}
    for key, (shape, dtype) in official_layout(name).items():
        if dtype == "int64":
            state[key] = torch.randint(0, 1000, shape)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape) + 0.5
        else:
            state[key] = torch.randn(shape) * 0.1
    return state


# ---------------------------------------------------------------- parameters (spec §7 V1)

# (N=19 no aux, N=19 with aux, N=11 no aux)
PARAMS = {
    "ddrnet23_slim": (5_695_987, 5_734_342, 5_695_467),
    "ddrnet23": (20_148_947, 20_299_366, 20_147_915),
    "ddrnet39": (32_360_275, 32_660_838, 32_358_219),
}
PAPER_PARAMS_M = {"ddrnet23_slim": 5.7, "ddrnet23": 20.1, "ddrnet39": 32.3}


@pytest.mark.parametrize("name", VARIANTS)
def test_param_counts_exact(name):
    no_aux, with_aux, n11 = PARAMS[name]
    assert count_params(meta_model(name)) == no_aux
    assert count_params(meta_model(name, aux=True)) == with_aux
    assert count_params(meta_model(name, num_classes=11)) == n11
    assert abs(no_aux / 1e6 - PAPER_PARAMS_M[name]) <= 0.1  # spec Q14 tolerance vs Table V


PER_MODULE_PARAMS = {
    "ddrnet23_slim": dict(conv1=10_272, layer1=37_120, layer2=131_712, layer3=525_568, layer3_=147_968,
                          compression3=8_320, down3=73_984, layer4=2_099_712, layer4_=147_968,
                          compression4=16_512, down4=369_408, layer5_=58_112, layer5=920_576, spp=1_073_408,
                          final_layer=75_347, seghead_extra=38_355),
    "ddrnet23": dict(conv1=38_976, layer1=147_968, layer2=525_568, layer3=2_099_712, layer3_=590_848,
                     compression3=33_024, down3=295_424, layer4=8_393_728, layer4_=590_848, compression4=65_792,
                     down4=1_476_096, layer5_=230_912, layer5=3_676_160, spp=1_685_760, final_layer=298_131,
                     seghead_extra=150_419),
    "ddrnet39": dict(conv1=38_976, layer1=221_952, layer2=1_116_416, layer3_1=3_280_384, layer3_2=3_542_016,
                     layer3_1_=886_272, layer3_2_=886_272, compression3_1=33_024, compression3_2=33_024,
                     down3_1=295_424, down3_2=295_424, layer4=13_114_368, layer4_=886_272, compression4=65_792,
                     down4=1_476_096, layer5_=230_912, layer5=3_676_160, spp=1_685_760, final_layer=595_731,
                     seghead_extra=300_563),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_top_level_modules_and_their_params(name):
    model = meta_model(name, aux=True)
    got = {child: count_params(module) for child, module in model.named_children()}
    assert got == PER_MODULE_PARAMS[name]


# ---------------------------------------------------------------- MACs (spec §7 V3)

# G MACs, N=19 eval: 1024×2048, 1024×1024, 512×1024, 480×640; then 720×960 with N=11
MACS_G = {
    "ddrnet23_slim": (36.281, 18.141, 9.070, 5.323, 12.009),
    "ddrnet23": (143.061, 71.530, 35.765, 20.979, 47.341),
    "ddrnet39": (281.116, 140.558, 70.279, 41.202, 92.903),
}
PAPER_GFLOPS = {"ddrnet23_slim": 36.3, "ddrnet23": 143.1, "ddrnet39": 281.2}


@pytest.mark.parametrize("name", VARIANTS)
def test_macs_match_spec_and_paper(name):
    model = meta_model(name)
    sizes = [(1024, 2048), (1024, 1024), (512, 1024), (480, 640)]
    for size, target in zip(sizes, MACS_G[name]):
        assert count_macs(model, size) / 1e9 == pytest.approx(target, abs=6e-4), size
    assert count_macs(meta_model(name, num_classes=11), (720, 960)) / 1e9 == pytest.approx(MACS_G[name][4], abs=6e-4)
    assert abs(count_macs(model, (1024, 2048)) / 1e9 - PAPER_GFLOPS[name]) <= 0.1  # Table V
    if name == "ddrnet39":
        assert abs(count_macs(model, (1024, 1024)) / 1e9 - 140.6) <= 0.1  # Table VII


def test_macs_per_module_and_aux_head_slim():
    """Spec §7 V3: per-module MACs of 23-slim at 1024×2048 and the train-mode total with the aux head."""
    model = meta_model("ddrnet23_slim", aux=True).train()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(2, 3, 1024, 2048, device="meta"))  # batch 2: train mode needs it
    per_image_g = {k.removeprefix("DDRNet."): sum(v.values()) / 4e9 for k, v in counter.get_flop_counts().items()}
    expected = dict(conv1=1.661, layer1=4.832, layer2=4.295, layer3=4.295, layer3_=4.832, compression3=0.067,
                    down3=0.604, layer4=4.295, layer4_=4.832, compression4=0.034, down4=1.208, layer5_=1.879,
                    layer5=0.570, spp=0.422, final_layer=2.456, seghead_extra=1.248)
    for module, target in expected.items():
        assert per_image_g[module] == pytest.approx(target, abs=6e-4), module
    assert counter.get_total_flops() / 4e9 == pytest.approx(37.529, abs=6e-4)


# ---------------------------------------------------------------- shapes (spec §7 V4)

def capture_shapes(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, tuple[int, ...]]:
    shapes, handles = {}, []
    modules = dict(model.named_modules())
    for name in names:
        def hook(_m, _inp, out, name=name):
            shapes[name] = tuple(out.shape[1:])
        handles.append(modules[name].register_forward_hook(hook))
    handles.append(modules["seghead_extra"].register_forward_pre_hook(
        lambda _m, inp: shapes.__setitem__("aux_tap", tuple(inp[0].shape[1:]))))
    out = model(x)
    for h in handles:
        h.remove()
    shapes["out"] = out if isinstance(out, tuple) else (out,)
    return shapes


# DDRNet-23 taps at 1×3×1024×2048; 23-slim has half the channels, 39 is identical to 23 at these taps.
SHAPES_23 = {"conv1": (64, 256, 512), "layer1": (64, 256, 512), "layer2": (128, 128, 256),
             "conv4_low": (256, 64, 128), "aux_tap": (128, 128, 256), "layer4": (512, 32, 64),
             "layer4_": (128, 128, 256), "layer5_": (256, 128, 256), "layer5": (1024, 16, 32),
             "spp.scale1.0": (1024, 8, 16), "spp.scale2.0": (1024, 4, 8), "spp.scale3.0": (1024, 2, 4),
             "spp.scale4.0": (1024, 1, 1), "spp": (256, 16, 32), "final_layer": (19, 128, 256)}


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_at_cityscapes_resolution(name):
    model = meta_model(name, aux=True).train()
    taps = [t for t in SHAPES_23 if t not in ("conv4_low", "aux_tap")]
    conv4_low = "layer3_2" if name == "ddrnet39" else "layer3"
    shapes = capture_shapes(model, torch.empty(2, 3, 1024, 2048, device="meta"), taps + [conv4_low])
    shapes["conv4_low"] = shapes.pop(conv4_low)
    halve = name == "ddrnet23_slim"
    for tap, (c, h, w) in SHAPES_23.items():
        if halve and tap != "final_layer":
            c //= 2
        assert shapes[tap] == (c, h, w), tap
    main, aux = shapes["out"]
    assert main.shape == aux.shape == (2, 19, 1024, 2048)


# input (H, W) -> (1/8 grid, 1/64 map, DAPPM pooled maps)
OTHER_SIZES = {
    (720, 960): ((90, 120), (12, 15), [(6, 8), (3, 4), (2, 2), (1, 1)]),
    (1024, 1024): ((128, 128), (16, 16), [(8, 8), (4, 4), (2, 2), (1, 1)]),
    (480, 640): ((60, 80), (8, 10), [(4, 5), (2, 3), (1, 2), (1, 1)]),
    (512, 1024): ((64, 128), (8, 16), [(4, 8), (2, 4), (1, 2), (1, 1)]),
}


@pytest.mark.parametrize("size", list(OTHER_SIZES))
def test_shapes_at_other_resolutions(size):
    grid, low, pools = OTHER_SIZES[size]
    model = meta_model("ddrnet23", aux=True).train()  # train mode, so the aux head sees its tap
    taps = ["layer5_", "layer5"] + [f"spp.scale{i}.0" for i in range(1, 5)]
    shapes = capture_shapes(model, torch.empty(2, 3, *size, device="meta"), taps)
    assert shapes["layer5_"][1:] == shapes["aux_tap"][1:] == grid
    assert shapes["layer5"][1:] == low
    assert [shapes[f"spp.scale{i}.0"][1:] for i in range(1, 5)] == pools
    assert [o.shape for o in shapes["out"]] == [(2, 19, *size)] * 2


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("size", [(713, 713), (720, 1280), (1080, 1920), (250, 330)])
def test_any_input_size_returns_input_resolution(name, size):
    model = meta_model(name).eval()
    assert model(torch.empty(1, 3, *size, device="meta")).shape == (1, 19, *size)


def test_odd_size_real_forward_and_output_stride_logits():
    model = randomize_bn(build_model("ddrnet23_slim")).eval()
    x = torch.randn(1, 3, 250, 330)  # not a multiple of 8: the official model fails here
    with torch.no_grad():
        full = model(x)
        model.upsample_logits = False
        coarse = model(x)
    assert full.shape == (1, 19, 250, 330) and torch.isfinite(full).all()
    assert coarse.shape == (1, 19, 32, 42)  # ceil(250/8), ceil(330/8)
    upsampled = F.interpolate(coarse, size=(250, 330), mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsampled, full)


# ---------------------------------------------------------------- behaviour (spec §7 V5)

def test_eval_is_deterministic_and_has_no_aux_output():
    model = randomize_bn(build_model("ddrnet23_slim", aux=True)).eval()
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert isinstance(a, torch.Tensor) and a.shape == (1, 19, 64, 128)
    assert torch.equal(a, b)


def test_train_mode_outputs():
    x = torch.randn(2, 3, 64, 128)
    main, aux = build_model("ddrnet23_slim", aux=True).train()(x)
    assert main.shape == aux.shape == (2, 19, 64, 128)
    assert not torch.equal(main, aux)
    (main.mean() + 0.4 * aux.mean()).backward()  # both heads take part in the loss
    plain = build_model("ddrnet23_slim", aux=False).train()(x)
    assert isinstance(plain, torch.Tensor) and plain.shape == (2, 19, 64, 128)


def test_train_mode_with_batch_one_fails_clearly_unless_bn_is_frozen():
    model = build_model("ddrnet23_slim").train()
    with pytest.raises(ValueError, match="at least 2 images"):
        model(torch.randn(1, 3, 128, 256))
    for m in model.modules():  # frozen BN, the documented way to fine-tune with batch 1
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    assert model(torch.randn(1, 3, 128, 256)).shape == (1, 19, 128, 256)


def reference_forward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Spec §2.3 table, step by step: stage outputs stay pre-activation, every consumer applies ReLU.

    Returns (1/8 main logits, 1/8 aux logits).
    """
    relu = F.relu

    def up(t, ref):
        return F.interpolate(t, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    x = model.layer2(relu(model.layer1(model.conv1(x))))
    groups = ([("layer3_1", "layer3_1_", "down3_1", "compression3_1"),
               ("layer3_2", "layer3_2_", "down3_2", "compression3_2")]
              if hasattr(model, "layer3_1") else [("layer3", "layer3_", "down3", "compression3")])
    low = high = x
    for lo, hi, down, comp in groups:
        l3 = getattr(model, lo)(relu(low))
        h3 = getattr(model, hi)(relu(high))
        low = l3 + getattr(model, down)(relu(h3))
        high = h3 + up(getattr(model, comp)(relu(l3)), h3)
    aux = model.seghead_extra(high)
    l4 = model.layer4(relu(low))
    h4 = model.layer4_(relu(high))
    low = l4 + model.down4(relu(h4))
    high = h4 + up(model.compression4(relu(l4)), h4)
    h5 = model.layer5_(relu(high))
    s = model.spp(model.layer5(relu(low)))
    return model.final_layer(up(s, h5) + h5), aux


@pytest.mark.parametrize("name", ["ddrnet23_slim", "ddrnet39"])
def test_forward_follows_the_spec_wiring(name):
    model = randomize_bn(build_model(name, aux=True)).eval()
    model.upsample_logits = False
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        main_ref, aux_ref = reference_forward(model, x)
        torch.testing.assert_close(model(x), main_ref)
        model.train()
        for m in model.modules():  # keep eval BN so train mode is comparable
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        _, aux = model(x)
    torch.testing.assert_close(aux, F.interpolate(aux_ref, size=(64, 128), mode="bilinear", align_corners=False))


def test_stages_return_pre_activation_features():
    model = randomize_bn(build_model("ddrnet23_slim")).eval()
    outs = {}
    for name in ("layer1.0", "layer1", "layer5_", "layer5"):
        model.get_submodule(name).register_forward_hook(lambda _m, _i, o, name=name: outs.__setitem__(name, o))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 128))
    assert (outs["layer1.0"] >= 0).all()  # inner block ends with ReLU
    for name in ("layer1", "layer5_", "layer5"):  # last block of a stage and the bottlenecks do not
        assert (outs[name] < 0).any(), name


def test_structure():
    model = meta_model("ddrnet23")
    pools = [m for m in model.spp.modules() if isinstance(m, nn.AvgPool2d)]
    assert [(m.kernel_size, m.stride, m.padding) for m in pools] == [(5, 2, 2), (9, 4, 4), (17, 8, 8)]
    assert all(m.count_include_pad for m in pools)
    assert sum(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.spp.modules()) == 1
    for i in range(1, 5):
        conv = getattr(model.spp, f"process{i}")[2]
        assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (128, 128, (3, 3))
    assert model.spp.compression[2].in_channels == 640
    bottlenecks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(bottlenecks) == 2 and Bottleneck.expansion == 2
    assert model.layer5[0].conv2.stride == (2, 2) and model.layer5[0].downsample[0].stride == (2, 2)
    assert model.layer5_[0].conv2.stride == (1, 1)
    down3_convs = [m for m in model.down3 if isinstance(m, nn.Conv2d)]
    down4_convs = [m for m in model.down4 if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in down3_convs] == [(2, 2)]
    assert [c.stride for c in down4_convs] == [(2, 2), (2, 2)] and isinstance(model.down4[2], nn.ReLU)
    for comp in (model.compression3, model.compression4):
        assert [type(m) for m in comp] == [nn.Conv2d, nn.BatchNorm2d] and comp[0].kernel_size == (1, 1)
    assert model.conv1[0].bias is not None and model.final_layer.conv2.bias is not None
    assert all(m.bias is None for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and n not in ("conv1.0", "conv1.3", "final_layer.conv2"))
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


# ---------------------------------------------------------------- official checkpoints (spec §7 V5)

@pytest.mark.parametrize("name", VARIANTS)
def test_state_dict_layout_equals_official(name):
    official = official_layout(name)
    ours = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch."))
            for k, v in meta_model(name, aux=True).state_dict().items()}
    assert ours == official
    assert len(official) == (514 if name == "ddrnet39" else 346)
    no_aux = meta_model(name).state_dict()
    assert set(no_aux) == {k for k in official if not k.startswith("seghead_extra.")}


@pytest.mark.parametrize("name", VARIANTS)
def test_official_checkpoint_loads_strictly(name):
    state = random_official_state_dict(name)
    model = build_model(name, aux=True)
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.spp.compression[2].weight, state["spp.compression.2.weight"])
    deploy = build_model(name, aux=False)
    load_weights(deploy, state, name)
    assert deploy.seghead_extra is None
    assert torch.equal(deploy.final_layer.conv2.bias, state["final_layer.conv2.bias"])


def test_official_checkpoint_loads_from_file_strictly(tmp_path):
    state = random_official_state_dict("ddrnet23_slim")
    path = tmp_path / "ddrnet23s_cityscapes.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)  # DataParallel-style
    for aux in (False, True):
        model = build_model("ddrnet23_slim", aux=aux)
        load_weights(model, path, "ddrnet23_slim")
        assert torch.equal(model.layer3_[1].conv2.weight, state["layer3_.1.conv2.weight"])
    aux_model = build_model("ddrnet23_slim", aux=True)
    load_weights(aux_model, path, "ddrnet23_slim")
    assert torch.equal(aux_model.seghead_extra.conv2.weight, state["seghead_extra.conv2.weight"])
    incomplete = {k: v for k, v in state.items() if not k.startswith("spp.scale4.")}
    with pytest.raises(CheckpointError, match="missing keys, e.g. spp.scale4"):
        load_weights(build_model("ddrnet23_slim"), incomplete, "ddrnet23_slim")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_weights(build_model("ddrnet23_slim", num_classes=11), state, "ddrnet23_slim", 11)


# ---------------------------------------------------------------- ImageNet trunk (spec §2.8)

def imagenet_checkpoint(name: str, path: Path, seed: int = 3) -> dict[str, torch.Tensor]:
    """A classification-variant state_dict: the trunk plus down5/last_layer/linear, saved as training does."""
    torch.manual_seed(seed)
    trunk = {k: v for k, v in randomize_bn(build_model(name), seed).state_dict().items()
             if not k.startswith(("spp.", "final_layer."))}
    p = 32 if name == "ddrnet23_slim" else 64
    last = 1024 if name == "ddrnet23_slim" else 2048
    classifier = {"down5.0.weight": torch.randn(8 * p, 4 * p, 3, 3), "down5.3.weight": torch.randn(16 * p, 8 * p, 3, 3),
                  "last_layer.0.weight": torch.randn(last, 16 * p, 1, 1), "linear.weight": torch.randn(1000, last),
                  "linear.bias": torch.randn(1000)}
    torch.save({"state_dict": {f"module.{k}": v for k, v in {**trunk, **classifier}.items()}, "epoch": 100}, path)
    return trunk


def test_pretrained_backbone_loads_the_imagenet_trunk(tmp_path):
    path = tmp_path / "DDRNet23s_imagenet.pth"
    trunk = imagenet_checkpoint("ddrnet23_slim", path)
    model = build_model("ddrnet23_slim", aux=True, pretrained_backbone=path)
    state = model.state_dict()
    for key, value in trunk.items():
        assert torch.equal(state[key], value), key
    fresh = build_model("ddrnet23_slim", aux=True)
    assert torch.equal(state["spp.scale0.0.weight"], fresh.state_dict()["spp.scale0.0.weight"])  # BN init 1
    assert not torch.equal(state["layer5.0.conv2.weight"], fresh.state_dict()["layer5.0.conv2.weight"])


def test_pretrained_backbone_rejects_wrong_files(tmp_path):
    path = tmp_path / "slim.pth"
    trunk = imagenet_checkpoint("ddrnet23_slim", path)
    with pytest.raises(ValueError, match="does not fit"):
        build_model("ddrnet23", pretrained_backbone=path)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in trunk.items() if not k.startswith("layer4_.")}, partial)
    with pytest.raises(ValueError, match="layer4_"):
        load_imagenet_trunk(build_model("ddrnet23_slim"), partial)
    with pytest.raises(FileNotFoundError):
        build_model("ddrnet23_slim", pretrained_backbone=tmp_path / "missing.pth")


# ---------------------------------------------------------------- export

def test_onnx_export_and_parity(tmp_path):
    model = randomize_bn(build_model("ddrnet23_slim", aux=True)).eval()
    path = export_onnx(model, tmp_path / "ddrnet23_slim.onnx", (128, 256))
    assert onnx_parity(model, path, torch.randn(1, 3, 128, 256)) <= 1e-4
    assert onnx_parity(model, path, torch.randn(1, 3, 96, 168)) <= 1e-4  # dynamic size, not a multiple of 64


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_trace_generalises_to_other_sizes():
    model = randomize_bn(build_model("ddrnet23_slim")).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(1, 3, 64, 128), check_trace=False)
        x = torch.randn(1, 3, 72, 104)
        torch.testing.assert_close(traced(x), model(x))


# ---------------------------------------------------------------- registry

def test_registry_entries():
    assert {"ddrnet23_slim", "ddrnet23", "ddrnet39"} <= set(available_models())
    assert "ddrnet" not in available_models() and get_entry("ddrnet").name == "ddrnet23_slim"
    assert count_params(build_model("ddrnet")) == PARAMS["ddrnet23_slim"][0]
    assert build_model("ddrnet23").seghead_extra is None  # contract: aux=False by default
    for name in VARIANTS:
        entry = get_entry(name)
        assert entry.input_size == (1024, 2048) and entry.output_stride == 8
        assert entry.aux_weights == (0.4,) and entry.has_aux
        assert entry.mean == (0.485, 0.456, 0.406) and entry.std == (0.229, 0.224, 0.225)
        assert entry.paper.params_m == PAPER_PARAMS_M[name] and entry.paper.gflops == PAPER_GFLOPS[name]
        assert entry.official_checkpoint
    assert get_entry("ddrnet23_slim").paper.miou_val == 77.8 and get_entry("ddrnet23_slim").paper.fps == 108.8
    assert get_entry("ddrnet39").paper.miou_test == 80.4
