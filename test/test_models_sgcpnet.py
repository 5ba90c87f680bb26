"""SGCPNet / BCPNet against the verification targets of specs sgcpnet.md §7 and bcpnet.md §7."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rtseg_ros.models import build_model, get_entry
from rtseg_ros.models.complexity import count_macs, count_params
from rtseg_ros.models.sgcpnet import MobileNetV3SmallTrunk, SeparableConv, SGCPNet, fold_hfr, sw_sum
from rtseg_ros.runtime.export import export_onnx, onnx_parity

OFFICIAL_KEYS = Path(__file__).parent / "data" / "official_state_dicts" / "sgcpnet.txt"
NAMES = ("sgcpnet", "bcpnet")

# Exact conv MACs (K = 19) and the paper's "FLOPs" at the same input (sgcpnet.md §4.1, §7).
MACS = {
    (360, 480): (276_403_568, 0.38),
    (360, 640): (368_471_136, 0.51),
    (512, 1024): (818_737_376, 1.13),
    (713, 713): (816_665_928, 1.12),
    (720, 960): (1_085_434_112, 1.49),
    (768, 1536): (1_842_135_776, 2.53),
    (1024, 1024): (1_637_456_096, 2.25),
    (1024, 2048): (3_274_893_536, 4.5),
}


def randomise(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics/affines and fusion weights, so numerical checks see every path."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        for name, p in model.named_parameters():
            if "_w" in name.rsplit(".", 1)[-1]:  # p6_w1, p4_w2, ...: the fusion scalars
                p.uniform_(0.2, 1.5)
    return model.eval()


def read_official_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    layout = {}
    for line in OFFICIAL_KEYS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype, _kind = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        layout[key] = (dims, getattr(torch, dtype))
    return layout


# --- parameters and structure -----------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts(name):
    for aux in (False, True):  # no auxiliary head either way
        model = build_model(name, aux=aux)
        assert count_params(model) == 607_826
    assert count_params(build_model(name, num_classes=11)) == 607_306
    model = build_model(name)
    assert sum(count_params(getattr(model, f"l{i}")) for i in range(1, 6)) == 431_180
    assert count_params(model.l1) == 464 and count_params(model.l2) == 920
    assert count_params(model.l3) == 9_280 and count_params(model.l4) == 100_980 and count_params(model.l5) == 319_536
    assert sum(count_params(getattr(model, f"conv{i}")) for i in (3, 4, 5)) == 37_528
    assert count_params(model.sgcp) == 137_883
    assert count_params(model.classifier) == 1_235


@pytest.mark.parametrize("options, params", [
    (dict(hfr=False, paths="td1"), 469_543),
    (dict(hfr=False, paths="td1_bu"), 498_610),
    (dict(hfr=False), 518_074),
    (dict(paths="td1"), 540_863),
    (dict(paths="td1_bu"), 588_362),
    (dict(fusion="sum"), 607_799),  # the 27 fusion scalars are not built
    (dict(pool="avg"), 607_826),
    (dict(pool_kernel=5), 607_826),
])
def test_ablation_parameter_counts(options, params):
    assert count_params(SGCPNet(**options)) == params


def test_torchvision_trunk_is_the_flagged_deviation():
    model = SGCPNet(backbone="tv_mbv3_small")
    assert count_params(model) == 1_047_206
    assert sum(count_params(getattr(model, f"l{i}")) for i in range(1, 6)) == 870_560


def test_module_counts():
    model = build_model("sgcpnet")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 87 and sum(c.groups > 1 for c in convs) == 23
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 71
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.sgcp.modules()) == 18
    assert sum(isinstance(m, SeparableConv) for m in model.modules()) == 12
    fusion = [p for n, p in model.named_parameters() if "_w" in n.rsplit(".", 1)[-1]]
    assert sum(p.numel() for p in fusion) == 27
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    assert buffers == 14_692


def test_invalid_option_is_rejected():
    with pytest.raises(ValueError, match="paths"):
        SGCPNet(paths="bu")


# --- MACs ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", list(MACS))
def test_macs(size):
    macs, paper_gflops = MACS[size]
    assert count_macs(build_model("sgcpnet"), size) == macs
    # The paper's FLOPs are an early-thop count, ~1.37-1.38x the true conv MACs at every size (§4.7).
    assert 1.36 < paper_gflops * 1e9 / macs < 1.39


def test_macs_bcpnet_extra_targets():
    model = build_model("bcpnet")
    assert count_macs(model, (720, 1280)) == 1_447_220_576
    assert count_macs(model, (1080, 1920)) == 3_252_298_016
    assert count_macs(build_model("bcpnet", num_classes=11), (720, 960)) == 1_079_904_512
    ratio = count_macs(model, (1024, 2048)) / count_macs(model, (512, 1024))
    assert ratio == pytest.approx(4.000, abs=5e-4)


# --- shapes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, stride8", [
    ((1024, 2048), (128, 256)), ((768, 1536), (96, 192)), ((720, 960), (90, 120)), ((360, 480), (45, 60)),
    ((360, 640), (45, 80)), ((713, 713), (90, 90)), ((720, 1280), (90, 160)), ((1080, 1920), (135, 240)),
])
def test_output_shapes_meta(size, stride8):
    with torch.device("meta"):
        model = build_model("sgcpnet").eval()
        x = torch.empty(2, 3, *size)
    with torch.no_grad():
        assert model(x).shape == (2, 19, *size)
        model.upsample_logits = False
        assert model(x).shape == (2, 19, *stride8)


def test_internal_pyramid_at_1024x2048():
    with torch.device("meta"):
        model = build_model("sgcpnet").eval()
        x = torch.empty(1, 3, 1024, 2048)
    cell = model.sgcp.td_bu.unit[0]
    watched = {"c3": model.l3, "c4": model.l4, "c5": model.l5, "p6": cell.p5_to_p6, "p7": cell.p6_to_p7}
    shapes, node_channels = {}, set()
    for key, module in watched.items():
        module.register_forward_hook(lambda m, i, o, key=key: shapes.__setitem__(key, tuple(o.shape[1:])))
    for module in model.modules():
        if isinstance(module, SeparableConv):
            module.register_forward_hook(lambda m, i, o: node_channels.add(o.shape[1]))
    with torch.no_grad():
        model(x)
    assert shapes == {"c3": (24, 128, 256), "c4": (48, 64, 128), "c5": (96, 32, 64),
                      "p6": (64, 16, 32), "p7": (64, 8, 16)}
    assert node_channels == {64}


def test_odd_size_real_forward():
    model = randomise(build_model("sgcpnet"))
    x = torch.randn(1, 3, 97, 131)  # 13x17 → 7x9 → 4x5 → 2x3 → 1x2 across the levels
    with torch.no_grad():
        out = model(x)
        model.upsample_logits = False
        low = model(x)
    assert out.shape == (1, 19, 97, 131) and low.shape == (1, 19, 13, 17)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, F.interpolate(low, size=(97, 131), mode="bilinear", align_corners=False))


# --- behaviour ----------------------------------------------------------------------------------------

def test_fusion_at_init():
    a, b, c = torch.randn(3, 2, 4, 5, 5)
    assert torch.allclose(sw_sum(torch.ones(2), a, b), F.silu(0.499975 * (a + b)), atol=1e-6)
    assert torch.allclose(sw_sum(torch.ones(3), a, b, c), F.silu(0.3333222 * (a + b + c)), atol=1e-6)
    # Negative raw weights are clipped by the ReLU: that input drops out.
    assert torch.allclose(sw_sum(torch.tensor([-1.0, 2.0]), a, b), F.silu(2.0 / 2.0001 * b), atol=1e-6)
    assert torch.equal(sw_sum(None, a, b), F.silu(a + b))
    model = build_model("sgcpnet")
    assert all(torch.equal(p, torch.ones_like(p)) for n, p in model.named_parameters() if "_w" in n.rsplit(".", 1)[-1])


def reference_decoder(model: SGCPNet, f3, f4, f5):
    """sgcpnet.md §2.4 written out step by step, with its own fusion, on the model's layers."""
    cell, td = model.sgcp.td_bu.unit[0], model.sgcp.td

    def fuse(raw, *xs):
        w = raw.clamp(min=0)
        w = w / (w.sum() + 1e-4)
        return F.silu(sum(wi * x for wi, x in zip(w, xs)))

    def up(x, ref):
        return F.interpolate(x, size=ref.shape[-2:], mode="nearest")

    def pool(x):
        return F.max_pool2d(x, 3, 2, 1)

    p6 = pool(cell.p5_to_p6[1](cell.p5_to_p6[0](f5)))
    p7 = pool(p6)
    p3, p4, p5 = cell.p3_down_channel(f3), cell.p4_down_channel(f4), cell.p5_down_channel(f5)
    t6 = cell.conv6_up(fuse(cell.p6_w1, p6, up(p7, p6)))
    t5 = cell.conv5_up(fuse(cell.p5_w1, p5, up(t6, p5)))
    t4 = cell.conv4_up(fuse(cell.p4_w1, p4, up(t5, p4)))
    t3 = cell.conv3_up(fuse(cell.p3_w1, p3, up(t4, p3)))
    s4, s5 = cell.p4_down_channel_2(f4), cell.p5_down_channel_2(f5)
    b4 = cell.conv4_down(fuse(cell.p4_w2, s4, t4, up(pool(t3), s4)))
    b5 = cell.conv5_down(fuse(cell.p5_w2, s5, t5, up(pool(b4), s5)))
    b6 = cell.conv6_down(fuse(cell.p6_w2, p6, t6, up(pool(b5), p6)))
    b7 = cell.conv7_down(fuse(cell.p7_w2, p7, up(pool(b6), p7)))
    u6 = td.conv6_up(fuse(td.p6_w1, b6, up(b7, b6)))
    u5 = td.conv5_up(fuse(td.p5_w1, b5, up(u6, b5)))
    u4 = td.conv4_up(fuse(td.p4_w1, b4, up(u5, b4)))
    return td.conv3_up(fuse(td.p3_w1, t3, up(u4, t3)))


def test_decoder_wiring_matches_spec():
    model = randomise(build_model("sgcpnet"))
    f3, f4, f5 = torch.randn(1, 40, 23, 30), torch.randn(1, 112, 12, 15), torch.randn(1, 320, 6, 8)
    with torch.no_grad():
        assert torch.allclose(model.sgcp(f3, f4, f5), reference_decoder(model, f3, f4, f5), atol=1e-5)


def test_eval_deterministic_and_batch_independent():
    model = randomise(build_model("bcpnet"))
    x = torch.randn(3, 3, 72, 104)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out, model(x))
        assert torch.allclose(out[1:2], model(x[1:2]), atol=1e-5)


def test_train_mode_batch_rules_and_aux_tuple():
    model = build_model("sgcpnet", aux=True).train()
    with pytest.raises(ValueError):  # SE BN sees 1x1 maps: one value per channel
        model(torch.randn(1, 3, 64, 64))
    out = model(torch.randn(2, 3, 64, 96))
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == (2, 19, 64, 96)
    assert build_model("sgcpnet").train()(torch.randn(2, 3, 64, 96)).shape == (2, 19, 64, 96)


def test_fold_hfr_is_exact_and_gives_the_no_hfr_graph():
    model = randomise(build_model("sgcpnet"))
    folded = fold_hfr(model)
    assert count_params(folded) == 518_074 and count_params(model) == 607_826
    reference = SGCPNet(hfr=False).state_dict()
    assert {k: v.shape for k, v in folded.state_dict().items()} == {k: v.shape for k, v in reference.items()}
    assert count_macs(folded, (1024, 2048)) == 2_947_737_824
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert (got - expected).abs().max() / expected.abs().max() < 1e-4
    with pytest.raises(ValueError):
        fold_hfr(folded)


# --- checkpoints --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_official_state_dict_loads_strict(name):
    layout = read_official_layout()
    model = build_model(name)
    assert {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()} == layout
    state = {k: torch.randn(shape) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
             for k, (shape, dtype) in layout.items()}
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.sgcp.td_bu.unit[0].p4_w2, state["sgcp.td_bu.unit.0.p4_w2"])
    assert torch.equal(model.l4[3].shortcut[0].weight, state["l4.3.shortcut.0.weight"])
    header = OFFICIAL_KEYS.read_text()
    assert "parameters=607826" in header and "buffer elements (excl. num_batches_tracked)=14692" in header
    with pytest.raises(RuntimeError):  # a different configuration must not accept it
        SGCPNet(hfr=False).load_state_dict(state, strict=True)


def test_pretrained_backbone_xiaolai_checkpoint(tmp_path):
    trunk = randomise(MobileNetV3SmallTrunk())
    sd = trunk.state_dict()
    assert {"conv1.weight", "bn1.running_var", "bneck.0.se.se.1.weight", "bneck.6.shortcut.0.weight",
            "bneck.10.conv3.weight"} <= set(sd)
    # Laid out like mbv3_small*.pth.tar: DataParallel prefixes, nested, with the classification tail.
    tail = {"conv2.weight": torch.randn(576, 96, 1, 1), "bn2.weight": torch.randn(576),
            "linear3.weight": torch.randn(1280, 576), "bn3.weight": torch.randn(1280),
            "linear4.weight": torch.randn(1000, 1280), "linear4.bias": torch.randn(1000)}
    path = tmp_path / "mbv3_small.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in {**sd, **tail}.items()}}, path)
    model = build_model("sgcpnet", pretrained_backbone=str(path))
    assert torch.equal(model.l1[0].weight, trunk.conv1.weight)
    assert torch.equal(model.l1[1].running_var, trunk.bn1.running_var)
    assert torch.equal(model.l2.se.se[1].weight, trunk.bneck[0].se.se[1].weight)
    assert torch.equal(model.l4[3].shortcut[0].weight, trunk.bneck[6].shortcut[0].weight)
    assert torch.equal(model.l5[2].conv3.weight, trunk.bneck[10].conv3.weight)
    torch.save({"bneck.0.conv1.weight": torch.randn(16, 16, 1, 1)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError):
        build_model("sgcpnet", pretrained_backbone=tmp_path / "partial.pth")


def test_pretrained_backbone_torchvision_trunk(tmp_path):
    from torchvision.models import mobilenet_v3_small

    source = mobilenet_v3_small()
    torch.save(source.state_dict(), tmp_path / "mobilenet_v3_small.pth")
    model = SGCPNet(backbone="tv_mbv3_small", pretrained_backbone=tmp_path / "mobilenet_v3_small.pth")
    for mine, theirs in ((model.l1, source.features[0]), (model.l5[2], source.features[11])):
        assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()))
    with pytest.raises(ValueError):  # the authors' trunk does not take torchvision's layout
        SGCPNet(pretrained_backbone=tmp_path / "mobilenet_v3_small.pth")


# --- export and registry ------------------------------------------------------------------------------

def test_onnx_export_parity_at_another_size(tmp_path):
    model = randomise(build_model("sgcpnet"))
    path = export_onnx(model, tmp_path / "sgcpnet.onnx", (72, 104))
    assert onnx_parity(model, path, torch.randn(1, 3, 97, 131)) <= 1e-4


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace's deprecation notice
def test_trace_generalises_to_other_sizes():
    model = randomise(build_model("sgcpnet"))
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(1, 3, 72, 104), check_trace=False)
        x = torch.randn(1, 3, 97, 131)  # every resize size is taken from the input, not baked in
        assert torch.allclose(traced(x), model(x), atol=1e-5)


def test_registry_entries():
    sgcp, bcp = get_entry("sgcpnet"), get_entry("bcpnet")
    for entry in (sgcp, bcp):
        assert entry.input_size == (1024, 2048) and entry.output_stride == 8 and not entry.has_aux
        assert entry.paper.params_m == 0.61 and entry.paper.gflops == 4.5
        assert "sgcpnet.txt" in entry.official_checkpoint
    assert (sgcp.paper.miou_test, sgcp.paper.fps, sgcp.paper.camvid_miou_test) == (70.9, 103.7, 69.0)
    assert (bcp.paper.miou_test, bcp.paper.fps, bcp.paper.camvid_miou_test) == (68.4, 55.0, 67.8)
    assert "LR 0.3" in sgcp.description and "LR 0.1" in bcp.description
