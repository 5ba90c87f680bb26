"""CSFCN and CSFCN (M) against specs/csfcn.md: §7 parameter/FLOP/shape targets, §7.4 behaviour, the
official module layout, pretrained loading, tracing and ONNX export."""
import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from rtseg_ros.models import build_model, get_entry
from rtseg_ros.models.complexity import count_macs, count_params
from rtseg_ros.models.csfcn import (
    CSFCN,
    SFC,
    adaptive_avg_pool2d_by_matmul,
    grouped_warp,
    kar_pool_sizes,
)
from rtseg_ros.runtime.export import export_onnx, onnx_parity

FULL = (1024, 2048)
G = 1e9


def meta_forward(model, size, hooks=()):
    """Eval forward on the meta device; ``hooks`` = module paths whose (inputs, output) are recorded."""
    model = copy.deepcopy(model).to("meta").eval()
    seen = {}
    for path in hooks:
        model.get_submodule(path).register_forward_hook(
            lambda module, args, out, path=path: seen.__setitem__(path, (args, out)))
    with torch.no_grad():
        out = model(torch.empty(1, 3, *size, device="meta"))
    return out, seen


def macs_by_module(model, size):
    """{module path: (conv MACs, matmul MACs)} of one eval forward, from FlopCounterMode."""
    model = copy.deepcopy(model).to("meta").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, *size, device="meta"))
    result = {}
    for module, ops in counter.get_flop_counts().items():
        conv = sum(v for op, v in ops.items() if "convolution" in str(op)) // 2
        matmul = sum(v for op, v in ops.items() if "mm" in str(op)) // 2
        result[module] = (conv, matmul)
    return result


def paper_gflops(model, size, num_classes=19):
    """The paper's convention (§7.3): conv MACs + 2·matmul MACs + 4 per bilinearly upsampled element
    (the 128-ch semantic branch to stride 8, the logits to the input size)."""
    conv, matmul = macs_by_module(model, size)["Global"]
    h, w = size
    upsampled = 128 * (h // 8) * (w // 8) + num_classes * h * w
    return (conv + 2 * matmul + 4 * upsampled) / G


def with_random_predictors(model, std=0.1):
    """Non-zero SFC predictor and CRB W₂, so that warps and gates do something."""
    with torch.no_grad():
        model.sfc.conv_offset[1].weight.normal_(0, std)
        model.cfc.local_attention.conv[1].weight.normal_(0, std)
    return model


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,gflops,miou_test", [("csfcn", 99.8, 78.7), ("csfcn_mnv3", 21.7, 75.1)])
def test_registry_entries(name, gflops, miou_test):
    entry = get_entry(name)
    assert entry.input_size == FULL
    assert entry.output_stride == 8
    assert entry.aux_weights == (0.4,)
    assert entry.paper.gflops == gflops and entry.paper.miou_test == miou_test
    assert isinstance(build_model(name), CSFCN)


def test_description_names_the_csfcn_50_75_inputs():
    description = get_entry("csfcn").description
    assert "512×1024" in description and "768×1536" in description


# ----------------------------------------------------------------------------------------------
# §7.1 parameter counts
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,options,expected", [
    ("csfcn", {}, 13_233_331),
    ("csfcn", {"aux": True}, 13_382_150),
    ("csfcn", {"num_classes": 11}, 13_232_299),
    ("csfcn", {"stem": "torchvision"}, 13_214_099),
    ("csfcn", {"head": "pixel_shuffle"}, 13_387_744),
    ("csfcn", {"crb_input": "X+E"}, 13_233_331),
    ("csfcn_mnv3", {}, 5_940_355),
    # Aux head on the 112-ch stride-16 tap (our assumption; the spec gives none for CSFCN (M)).
    ("csfcn_mnv3", {"aux": True}, 5_940_355 + 112 * 64 * 9 + 2 * 64 + 64 * 19 + 19),
])
def test_parameter_count(name, options, expected):
    assert count_params(build_model(name, **options)) == expected


def test_module_parameter_breakdown():
    model = build_model("csfcn", aux=True)
    crb = count_params(model.cfc.local_attention)
    drl = count_params(model.cfc.reduce_channel)
    assert count_params(model.resnet) == 11_195_744
    assert count_params(model.cfc) == 1_426_368
    assert drl == 1_180_160
    assert count_params(model.cfc) - drl - crb == 82_240  # Table III "CFC w/o CRB" 0.08 M
    assert count_params(model.cfc) - drl == 246_208  # Table III "CFC w/ CRB" 0.25 M
    assert count_params(model.sfc) == 461_056  # Table IV "w/ DRL" 0.461 M
    assert count_params(model.conv_out32) == 150_163
    assert count_params(model.aux_head) == 148_819

    mobile = build_model("csfcn_mnv3")
    assert count_params(mobile.mobilenet) == 2_971_952
    assert count_params(mobile.cfc) == 2_458_560
    assert count_params(mobile.sfc) == 359_680
    assert count_params(mobile.conv_out32) == 150_163


@pytest.mark.parametrize("groups,expected", [(1, 753_664), (2, 755_968), (4, 760_576), (8, 769_792)])
def test_sfc_on_raw_stage4_matches_table_iv(groups, expected):
    assert count_params(SFC(128, 512, groups=groups)) == expected


def test_aux_false_builds_no_aux_head():
    assert build_model("csfcn").aux_head is None
    assert not any("aux" in key for key in build_model("csfcn").state_dict())


# ----------------------------------------------------------------------------------------------
# §7.3 FLOPs
# ----------------------------------------------------------------------------------------------

def test_count_macs_is_conv_plus_matmul_macs_at_full_resolution():
    # conv-MAC 99,529,818,112 and matmul MACs 58,982,400 (spec §7.3), both exact.
    assert count_macs(build_model("csfcn"), FULL) == 99_529_818_112 + 58_982_400


@pytest.mark.parametrize("name,options,size,conv_gmac,paper", [
    ("csfcn", {}, (1024, 2048), 99.530, 99.8),
    ("csfcn", {}, (768, 1536), 55.989, 56.2),
    ("csfcn", {}, (512, 1024), 24.888, 24.9),
    ("csfcn", {"num_classes": 11}, (720, 960), 32.946, None),
    ("csfcn", {}, (480, 640), 14.583, None),
    ("csfcn", {"stem": "torchvision"}, (1024, 2048), 89.514, None),
    ("csfcn", {"head": "pixel_shuffle"}, (1024, 2048), 104.55, None),
    ("csfcn_mnv3", {}, (1024, 2048), 21.393, 21.7),
])
def test_flops(name, options, size, conv_gmac, paper):
    model = build_model(name, **options)
    conv, _ = macs_by_module(model, size)["Global"]
    assert conv / G == pytest.approx(conv_gmac, abs=0.0006)
    if paper is not None:  # the spec reproduces the paper's table to ±0.1 G
        assert paper_gflops(model, size) == pytest.approx(paper, abs=0.1)


def test_paper_convention_total_at_full_resolution():
    assert paper_gflops(build_model("csfcn"), FULL) == pytest.approx(99.824, abs=0.0005)
    assert paper_gflops(build_model("csfcn_mnv3"), FULL) == pytest.approx(21.687, abs=0.0005)


def test_per_module_conv_macs():
    macs = macs_by_module(build_model("csfcn"), FULL)
    expected = {"resnet": 85.816, "cfc": 2.776, "sfc": 6.027, "conv_out32": 4.912}
    for module, gmac in expected.items():
        assert macs[f"CSFCN.{module}"][0] / G == pytest.approx(gmac, abs=0.0006), module


@pytest.mark.parametrize("groups,low_channels,computed,table_iv", [
    (1, 512, 6.732, 6.73), (2, 512, 6.807, 6.80), (4, 512, 6.958, 6.96), (8, 512, 7.260, 7.26), (2, 256, 6.203, 6.20),
])
def test_sfc_flops_match_table_iv(groups, low_channels, computed, table_iv):
    sfc = SFC(128, low_channels, groups=groups).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        sfc(torch.empty(1, 128, 128, 256, device="meta"), torch.empty(1, low_channels, 32, 64, device="meta"))
    upsampled = 128 * 128 * 256 + 19 * 1024 * 2048  # its own upsample + the final one
    gflops = (counter.get_total_flops() // 2 + 4 * upsampled) / G
    assert gflops == pytest.approx(computed, abs=0.0006)
    assert gflops == pytest.approx(table_iv, abs=0.01)


# ----------------------------------------------------------------------------------------------
# §7.2 shapes
# ----------------------------------------------------------------------------------------------

def test_shapes_at_full_resolution():
    model = build_model("csfcn")
    hooks = ["resnet", "cfc.reduce_channel", "cfc.query_conv", "cfc.key_conv", "cfc.value_conv", "sfc.conv_offset",
             "sfc", "cfc"]
    logits, seen = meta_forward(model, FULL, hooks)
    c2, c3, c4 = seen["resnet"][1]
    assert (c2.shape, c3.shape, c4.shape) == ((1, 128, 128, 256), (1, 256, 64, 128), (1, 512, 32, 64))
    assert seen["cfc.reduce_channel"][1].shape == (1, 256, 32, 64)
    assert seen["cfc.key_conv"][0][0].shape == (1, 256, 100)  # Z
    assert seen["cfc.query_conv"][1].flatten(2).transpose(1, 2).shape == (1, 2048, 32)
    assert seen["cfc.key_conv"][1].shape == (1, 32, 100)
    assert seen["cfc.value_conv"][1].shape == (1, 256, 100)
    assert seen["cfc"][1].shape == (1, 256, 32, 64)
    assert seen["sfc.conv_offset"][1].shape == (1, 10, 128, 256)
    assert seen["sfc"][1].shape == (1, 128, 128, 256)
    assert logits.shape == (1, 19, 1024, 2048)


def test_mobilenet_taps_and_shapes():
    logits, seen = meta_forward(build_model("csfcn_mnv3"), FULL, ["mobilenet", "cfc.key_conv"])
    c2, c3, c4 = seen["mobilenet"][1]
    assert (c2.shape, c3.shape, c4.shape) == ((1, 40, 128, 256), (1, 112, 64, 128), (1, 960, 32, 64))
    assert seen["cfc.key_conv"][0][0].shape == (1, 256, 100)
    assert logits.shape == (1, 19, 1024, 2048)


@pytest.mark.parametrize("size,contexts", [
    ((1024, 2048), 100), ((768, 1536), 100), ((512, 1024), 100), ((384, 768), 100), ((1024, 1024), 50),
    ((720, 960), 67), ((480, 640), 67), ((720, 1280), 83), ((1080, 1920), 91),
])
def test_number_of_contexts_follows_the_aspect_ratio(size, contexts):
    logits, seen = meta_forward(build_model("csfcn"), size, ["cfc.key_conv"])
    assert seen["cfc.key_conv"][0][0].shape[-1] == contexts
    assert logits.shape[-2:] == size


def test_kar_pool_sizes():
    assert kar_pool_sizes(32, 64) == [(6, 12), (3, 6), (2, 4), (1, 2)]
    assert kar_pool_sizes(23, 30) == [(6, 8), (3, 4), (2, 3), (1, 1)]
    assert kar_pool_sizes(4, 10, (1,)) == [(1, 2)]  # round(2.5) halves to even
    assert kar_pool_sizes(4, 14, (1,)) == [(1, 4)]  # round(3.5)
    assert kar_pool_sizes(10, 1, (1,)) == [(1, 1)]  # at least one bin


def test_kar_pool_sizes_match_the_released_rule_for_ints_and_traced_tensors():
    grids = (6, 3, 2, 1)
    for h in range(1, 40):
        for w in range(1, 80):
            released = [(n, max(1, round(w / h * n))) for n in grids]
            assert kar_pool_sizes(h, w, grids) == released
            as_tensors = kar_pool_sizes(torch.tensor(h), torch.tensor(w), grids)
            assert [(n, int(m)) for n, m in as_tensors] == released


@pytest.mark.parametrize("hw,size", [((32, 64), (6, 12)), ((23, 30), (6, 8)), ((2, 4), (6, 12)),
                                     ((34, 60), (3, 5)), ((7, 3), (1, 1))])
def test_matmul_pooling_equals_adaptive_avg_pool(hw, size):
    x = torch.randn(2, 3, *hw)
    torch.testing.assert_close(adaptive_avg_pool2d_by_matmul(x, size), F.adaptive_avg_pool2d(x, size))


# ----------------------------------------------------------------------------------------------
# Forward contract
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["csfcn", "csfcn_mnv3"])
@pytest.mark.parametrize("size", [(713, 713), (360, 480), (720, 1280), (1080, 1920)])
def test_any_input_size_on_meta(name, size):
    logits, _ = meta_forward(build_model(name), size)
    assert logits.shape == (1, 19, *size)


@pytest.mark.parametrize("name", ["csfcn", "csfcn_mnv3"])
def test_train_and_eval_outputs(name):
    x = torch.randn(2, 3, 75, 101)
    model = build_model(name, aux=True).train()
    main, aux = model(x)
    assert main.shape == aux.shape == (2, 19, 75, 101)
    assert torch.isfinite(main).all() and torch.isfinite(aux).all()
    assert model.eval()(x).shape == (2, 19, 75, 101)
    assert build_model(name).train()(x).shape == (2, 19, 75, 101)


def test_logits_at_output_stride_when_not_upsampled():
    model = build_model("csfcn").eval()
    model.upsample_logits = False
    x = torch.randn(1, 3, 75, 101)
    low = model(x)
    assert low.shape == (1, 19, math.ceil(75 / 8), math.ceil(101 / 8))
    model.upsample_logits = True
    torch.testing.assert_close(model(x), F.interpolate(low, size=(75, 101), mode="bilinear", align_corners=True))


def test_pixel_shuffle_head_crops_to_the_input():
    model = build_model("csfcn", head="pixel_shuffle").eval()
    assert model(torch.randn(1, 3, 75, 101)).shape == (1, 19, 75, 101)
    model.upsample_logits = False
    assert model(torch.randn(1, 3, 75, 101)).shape == (1, 19, 80, 104)


@pytest.mark.parametrize("options", [{"stem": "7x7"}, {"head": "deconv"}, {"crb_input": "X"}, {"backbone": "vgg"}])
def test_bad_options_are_rejected(options):
    with pytest.raises(ValueError):
        build_model("csfcn", **options)


def test_stem_option_is_resnet_only():
    with pytest.raises(ValueError):
        build_model("csfcn_mnv3", stem="torchvision")


# ----------------------------------------------------------------------------------------------
# §7.4 behaviour
# ----------------------------------------------------------------------------------------------

def test_zero_inits_survive_construction():
    model = build_model("csfcn")
    assert not model.sfc.conv_offset[1].weight.any()
    assert not model.cfc.local_attention.conv[1].weight.any()
    assert model.cfc.key_conv.weight.any() and model.sfc.cp1x1.weight.any()


def test_sfc_is_add_fusion_at_init():
    sfc = build_model("csfcn").sfc.eval()
    high, low = torch.randn(2, 128, 24, 40), torch.randn(2, 256, 6, 10)
    with torch.no_grad():
        semantic = F.interpolate(sfc.conv_32(low), size=(24, 40), mode="bilinear", align_corners=True)
        expected = semantic + sfc.conv_8(high)
        torch.testing.assert_close(sfc(high, low), expected, atol=1e-5, rtol=0)


def test_crb_is_identity_at_init_and_gated_after():
    crb = build_model("csfcn").cfc.local_attention.eval()
    e, x = torch.randn(2, 256, 5, 7), torch.randn(2, 256, 5, 7)
    with torch.no_grad():
        assert torch.equal(crb(e, e), e)
        crb.conv[1].weight.normal_(0, 0.1)
        assert not torch.allclose(crb(e, e), e)


@pytest.mark.parametrize("crb_input", ["E", "X+E"])
def test_cfc_computes_the_released_formula(crb_input):
    """Y = X + E + E ⊙ tanh(W₂W₁(g)), E = V·softmax(QK)ᵀ, g = E (code) or X + E (paper Eq. 3)."""
    cfc = with_random_predictors(build_model("csfcn", crb_input=crb_input)).cfc.eval()
    c4 = torch.randn(2, 512, 5, 9)
    with torch.no_grad():
        x = cfc.reduce_channel(c4)
        z = torch.cat([F.adaptive_avg_pool2d(x, size).flatten(2) for size in [(6, 11), (3, 5), (2, 4), (1, 2)]], 2)
        theta = torch.softmax(cfc.query_conv(x).flatten(2).transpose(1, 2) @ cfc.key_conv(z), dim=-1)
        e = (cfc.value_conv(z) @ theta.transpose(1, 2)).reshape(x.shape)
        alpha = torch.tanh(cfc.local_attention.conv(e if crb_input == "E" else x + e))
        torch.testing.assert_close(cfc(c4), x + alpha * e + e)


def test_attention_rows_are_distributions_over_contexts():
    cfc = build_model("csfcn").cfc.eval()
    with torch.no_grad():
        x = cfc.reduce_channel(torch.randn(2, 512, 5, 9))
        contexts = cfc.pyramid_pool(x)
        theta = cfc.affinity(x, contexts)
    assert contexts.shape == (2, 256, sum(n * m for n, m in kar_pool_sizes(5, 9)))
    assert theta.shape == (2, 45, contexts.shape[-1])
    assert (theta >= 0).all()
    torch.testing.assert_close(theta.sum(-1), torch.ones(2, 45))


def test_offset_unit_is_half_a_pixel():
    h, w = 6, 11
    ramp_x = torch.arange(w, dtype=torch.float32).expand(1, 1, h, w)
    ramp_y = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1).expand(1, 1, h, w)
    zeros = torch.zeros(1, 1, h, w)
    shift_x = torch.cat([torch.full_like(zeros, 2 * w / (w - 1)), zeros], dim=1)
    shift_y = torch.cat([zeros, torch.full_like(zeros, 2 * h / (h - 1))], dim=1)
    torch.testing.assert_close(grouped_warp(ramp_x, shift_x, 1)[..., :-1], ramp_x[..., :-1] + 1)
    torch.testing.assert_close(grouped_warp(ramp_y, shift_y, 1)[..., :-1, :], ramp_y[..., :-1, :] + 1)
    torch.testing.assert_close(grouped_warp(ramp_x, torch.zeros(1, 2, h, w), 1), ramp_x, atol=1e-5, rtol=0)


def test_offset_groups_are_independent():
    feature = torch.randn(1, 128, 9, 13)
    offset = torch.zeros(1, 4, 9, 13)
    offset[:, 0:2] = torch.randn(1, 2, 9, 13)
    moved, still = grouped_warp(feature, offset, 2), grouped_warp(feature, torch.zeros_like(offset), 2)
    assert not torch.allclose(moved[:, :64], still[:, :64])
    torch.testing.assert_close(moved[:, 64:], still[:, 64:])


def test_sfc_channel_roles_follow_the_released_code():
    """Predictor channels [0:2G] warp the detail branch, [2G:4G] the semantic one; gate 4G scales the
    semantic branch and 4G+1 the detail branch."""
    sfc = build_model("csfcn").sfc.eval()
    high, low = torch.randn(1, 128, 16, 24), torch.randn(1, 256, 4, 6)
    with torch.no_grad():
        detail = sfc.conv_8(high)
        semantic = F.interpolate(sfc.conv_32(low), size=(16, 24), mode="bilinear", align_corners=True)

    def run(prediction):
        handle = sfc.conv_offset.register_forward_hook(lambda module, args, out: prediction)
        try:
            with torch.no_grad():
                return sfc(high, low)
        finally:
            handle.remove()

    offsets = torch.randn(1, 4, 16, 24)
    prediction = torch.zeros(1, 10, 16, 24)
    prediction[:, 8] = -30.0  # semantic gate 0
    torch.testing.assert_close(run(prediction), detail, atol=1e-5, rtol=0)
    prediction[:, 0:4] = offsets
    torch.testing.assert_close(run(prediction), grouped_warp(detail, offsets, 2), atol=1e-5, rtol=0)
    prediction = torch.zeros(1, 10, 16, 24)
    prediction[:, 9] = -30.0  # detail gate 0
    prediction[:, 4:8] = offsets
    torch.testing.assert_close(run(prediction), grouped_warp(semantic, offsets, 2), atol=1e-5, rtol=0)


def test_gradients_reach_zero_inits_and_context_projections():
    model = build_model("csfcn", aux=True).train()
    main, aux = model(torch.randn(2, 3, 64, 96))
    target = torch.randint(0, 19, (2, 64, 96))
    (F.cross_entropy(main, target) + 0.4 * F.cross_entropy(aux, target)).backward()
    for parameter in (model.sfc.conv_offset[1].weight, model.cfc.local_attention.conv[1].weight,
                      model.cfc.key_conv.weight, model.cfc.value_conv.weight, model.resnet.conv1[0].weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# Official layout and pretrained backbones
# ----------------------------------------------------------------------------------------------

def _official_csfcn_modules():
    """Modules holding parameters in the official CSFCN (spec §2.6 key list; V1c ``resnet`` layout)."""
    stem = [f"resnet.conv1.{i}" for i in (0, 1, 3, 4, 6)] + ["resnet.bn1"]
    layers = [f"resnet.layer{layer}.{block}.{part}" for layer in (1, 2, 3, 4) for block in (0, 1)
              for part in ("conv1", "bn1", "conv2", "bn2")]
    layers += [f"resnet.layer{layer}.0.downsample.{i}" for layer in (2, 3, 4) for i in (0, 1)]
    cfc = ["cfc.reduce_channel.conv", "cfc.reduce_channel.bn", "cfc.query_conv", "cfc.key_conv", "cfc.value_conv",
           "cfc.local_attention.conv.0.conv", "cfc.local_attention.conv.0.bn", "cfc.local_attention.conv.1"]
    sfc = ["sfc.conv_8.conv", "sfc.conv_8.bn", "sfc.conv_32.conv", "sfc.conv_32.bn", "sfc.cp1x1", "sfc.sp1x1",
           "sfc.conv_offset.0.conv", "sfc.conv_offset.0.bn", "sfc.conv_offset.1"]
    head = ["conv_out32.conv.conv", "conv_out32.conv.bn", "conv_out32.conv_out"]
    return set(stem + layers + cfc + sfc + head)


def test_state_dict_follows_the_official_module_names():
    state = build_model("csfcn").state_dict()
    assert {key.rsplit(".", 1)[0] for key in state} == _official_csfcn_modules()
    shapes = {"resnet.conv1.0.weight": (32, 3, 3, 3), "resnet.conv1.6.weight": (64, 32, 3, 3),
              "cfc.key_conv.weight": (32, 256, 1), "cfc.value_conv.bias": (256,),
              "cfc.local_attention.conv.1.weight": (256, 64, 3, 3), "sfc.cp1x1.weight": (32, 128, 1, 1),
              "sfc.conv_offset.1.weight": (10, 64, 3, 3), "conv_out32.conv_out.weight": (19, 128, 1, 1)}
    assert {key: tuple(state[key].shape) for key in shapes} == shapes
    # Nov-2023 head: same names, K·64 classifier channels.
    ps = build_model("csfcn", head="pixel_shuffle").state_dict()
    assert ps.keys() == state.keys() and ps["conv_out32.conv_out.weight"].shape == (19 * 64, 128, 1, 1)


def test_pretrained_v1c_backbone_loads_in_both_layouts(tmp_path):
    source = build_model("csfcn").resnet.state_dict()
    source["fc.weight"], source["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    torch.save(source, tmp_path / "v1c.pth")
    mmcv = {key.replace("conv1.", "stem.", 1) if key.startswith("conv1.") else key: value
            for key, value in source.items()}
    mmcv = {("stem.7." + key[4:] if key.startswith("bn1.") else key): value for key, value in mmcv.items()}
    torch.save({"state_dict": mmcv}, tmp_path / "mmcv.pth")
    for name in ("v1c.pth", "mmcv.pth"):
        loaded = build_model("csfcn", pretrained_backbone=tmp_path / name).resnet.state_dict()
        assert all(torch.equal(loaded[key], source[key]) for key in loaded), name


def test_pretrained_torchvision_backbones_load(tmp_path):
    resnet = torchvision.models.resnet18()
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    model = build_model("csfcn", stem="torchvision", pretrained_backbone=tmp_path / "resnet18.pth")
    assert torch.equal(model.resnet.conv1.weight, resnet.conv1.weight)
    assert torch.equal(model.resnet.layer4[1].bn2.running_var, resnet.layer4[1].bn2.running_var)

    mobilenet = torchvision.models.mobilenet_v3_large()
    torch.save(mobilenet.state_dict(), tmp_path / "mnv3.pth")
    model = build_model("csfcn_mnv3", pretrained_backbone=tmp_path / "mnv3.pth")
    assert torch.equal(model.mobilenet.features[16][0].weight, mobilenet.features[16][0].weight)

    with pytest.raises(ValueError):  # 7×7 stem weights do not fit the V1c stem
        build_model("csfcn", pretrained_backbone=tmp_path / "resnet18.pth")


# ----------------------------------------------------------------------------------------------
# Tracing and ONNX
# ----------------------------------------------------------------------------------------------

def test_traced_model_follows_other_input_sizes():
    model = with_random_predictors(build_model("csfcn")).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.randn(1, 3, 64, 128), check_trace=False)
    x = torch.randn(1, 3, 96, 40)  # another aspect ratio: other pooled sizes (M = 33 instead of 100)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name,sizes", [("csfcn", [(64, 128), (96, 96), (75, 101), (45, 300)]),
                                        ("csfcn_mnv3", [(64, 128), (96, 96)])])
def test_onnx_export_parity(tmp_path, name, sizes):
    model = with_random_predictors(build_model(name)).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", sizes[0])
    for size in sizes:  # one dynamic-size graph for every input size and aspect ratio
        assert onnx_parity(model, path, torch.randn(1, 3, *size)) <= 1e-4, size
