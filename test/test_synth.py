"""rtseg-synth: Cityscapes-layout files, determinism, class coverage, label/image agreement, CLI."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label

from rtseg_ros.data import synth
from rtseg_ros.data.datasets import cityscapes_layout
from rtseg_ros.data.labels import IGNORE_INDEX, get_dataset_info

CITYSCAPES = get_dataset_info("cityscapes")
SIZE = (96, 192)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def scenes():
    """A dozen small scenes drawn through the public API."""
    return [synth.generate_scene(np.random.default_rng([7, 0, i]), 128, 256) for i in range(12)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "a"
    summary = synth.write_dataset(root, num=3, size=SIZE, seed=5, val_num=2, progress=False)
    return root, summary


def test_layout_names_shapes_and_dtypes(dataset):
    root, summary = dataset
    assert summary["images"] == {"train": 3, "val": 2} and summary["size"] == list(SIZE)
    expected = set()
    for split, count in (("train", 3), ("val", 2)):
        for index in range(count):
            city, stem = synth.image_stem(split, index)
            assert city in synth.CITIES[split]
            assert stem == f"{city}_{index // len(synth.CITIES[split]):06d}_000019"
            expected |= {f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png",
                         f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png",
                         f"gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png",
                         f"gtFine/{split}/{city}/{stem}_gtFine_color.png",
                         f"camera/{split}/{city}/{stem}_camera.json"}
    assert set(_files(root)) == expected  # and no temporary files left behind

    for image_path in sorted(root.glob("leftImg8bit/*/*/*_leftImg8bit.png")):
        gt = str(image_path).replace("leftImg8bit", "gtFine", 1).replace("_leftImg8bit.png", "_gtFine_")
        image, ids, train_ids, color = (_read(p) for p in (image_path, gt + "labelIds.png", gt + "labelTrainIds.png",
                                                            gt + "color.png"))
        assert image.shape == (*SIZE, 3) and image.dtype == np.uint8
        assert ids.shape == SIZE and ids.dtype == np.uint8
        assert train_ids.shape == SIZE and train_ids.dtype == np.uint8
        np.testing.assert_array_equal(train_ids, CITYSCAPES.id_to_train_id[ids])
        palette = np.array([id2label[i].color for i in range(34)], np.uint8)  # Cityscapes ids 0..33
        np.testing.assert_array_equal(color[..., ::-1], palette[ids])


def test_dataset_reader_round_trips_the_tree(dataset):
    root, _ = dataset
    for split, count in (("train", 3), ("val", 2)):
        by_train_ids = cityscapes_layout(root, split, label_kind="trainIds")
        by_label_ids = cityscapes_layout(root, split, label_kind="labelIds")
        assert len(by_train_ids) == len(by_label_ids) == count
        np.testing.assert_array_equal(by_train_ids[0]["label"], by_label_ids[0]["label"])
        assert by_train_ids[0]["image"].shape == (*SIZE, 3)


def test_written_files_match_generate_scene(dataset):
    """Image i of a split is generate_scene on default_rng([seed, split, i]); the camera file is its camera."""
    root, _ = dataset
    city, stem = synth.image_stem("val", 1)
    rng = np.random.default_rng([5, synth.SPLIT_SEED["val"], 1])
    camera = synth.Camera.sample(rng, *SIZE)
    rgb, ids = synth.generate_scene(rng, *SIZE, camera=camera)
    np.testing.assert_array_equal(_read(root / f"leftImg8bit/val/{city}/{stem}_leftImg8bit.png")[..., ::-1], rgb)
    np.testing.assert_array_equal(_read(root / f"gtFine/val/{city}/{stem}_gtFine_labelIds.png"), ids)
    written = json.loads((root / f"camera/val/{city}/{stem}_camera.json").read_text())
    assert written == camera.to_json()


def test_camera_json_is_cityscapes_format_scaled_to_the_image(dataset):
    root, _ = dataset
    height, width = SIZE
    for path in sorted(root.glob("camera/*/*/*_camera.json")):
        camera = json.loads(path.read_text())
        assert set(camera) == {"extrinsic", "intrinsic"}
        assert set(camera["extrinsic"]) == {"baseline", "pitch", "roll", "yaw", "x", "y", "z"}
        assert set(camera["intrinsic"]) == {"fx", "fy", "u0", "v0"}
        intrinsic = camera["intrinsic"]
        # Cityscapes' ~2262 px focal length at 2048 px width, scaled to this size
        assert 0.85 < intrinsic["fx"] / (2262.5 * width / 2048) < 1.15
        assert 0.85 < intrinsic["fy"] / (2265.3 * height / 1024) < 1.15
        assert 0.4 * width < intrinsic["u0"] < 0.65 * width and 0.4 * height < intrinsic["v0"] < 0.6 * height
        assert 1.0 < camera["extrinsic"]["z"] < 1.5 and 0 < camera["extrinsic"]["pitch"] < 0.1


def test_deterministic_per_seed_and_stable_when_num_grows(dataset, tmp_path):
    root, _ = dataset
    again = tmp_path / "again"
    synth.write_dataset(again, num=3, size=SIZE, seed=5, val_num=2, progress=False)
    assert _files(again) == _files(root)

    grown = tmp_path / "grown"
    synth.write_dataset(grown, num=4, size=SIZE, seed=5, val_num=2, progress=False)
    grown_files = _files(grown)
    assert all(grown_files[name] == data for name, data in _files(root).items())
    assert len(grown_files) == len(_files(root)) + 5

    other = tmp_path / "other"
    synth.write_dataset(other, num=3, size=SIZE, seed=6, val_num=2, progress=False)
    other_files = _files(other)
    images = [name for name in other_files if name.endswith("_leftImg8bit.png")]
    assert all(other_files[name] != _files(root)[name] for name in images)


def test_label_ids_are_cityscapes_ids_with_ignored_pixels(scenes):
    for rgb, ids in scenes:
        assert rgb.dtype == np.uint8 and rgb.shape == (128, 256, 3) and ids.shape == (128, 256)
        assert set(np.unique(ids)) <= set(synth.LABEL.values()) <= set(id2label)
        assert (ids == synth.LABEL["ego vehicle"]).any()  # the bonnet along the bottom, ignored in training
    train_ids = np.concatenate([CITYSCAPES.id_to_train_id[ids].ravel() for _, ids in scenes])
    assert 0.01 < (train_ids == IGNORE_INDEX).mean() < 0.2


def test_at_least_12_train_classes_over_a_small_set(scenes):
    train_ids = np.unique(np.concatenate([CITYSCAPES.id_to_train_id[ids].ravel() for _, ids in scenes]))
    present = [CITYSCAPES.class_names[i] for i in train_ids if i != IGNORE_INDEX]
    assert len(present) >= 12, present
    for name in ("road", "sidewalk", "building", "vegetation", "sky", "car", "person", "pole", "traffic sign"):
        assert name in present


def test_road_narrows_towards_the_horizon(scenes):
    """Perspective: the road starts near the horizon (mid-height) a few pixels wide and widens downwards."""
    tops, far_widths, near_widths = [], [], []
    for _, ids in scenes:
        road = ids == synth.LABEL["road"]
        widths = road.sum(1)
        top = np.nonzero(widths)[0][0]
        tops.append(top / ids.shape[0])
        far_widths.append(widths[top:top + 5].mean())
        near_widths.append(widths[int(0.75 * ids.shape[0])])
    assert 0.3 < np.median(tops) < 0.6
    assert np.mean(far_widths) < 0.3 * np.mean(near_widths)


def test_label_boundaries_are_image_edges(scenes):
    """Labels come from the polygons that drew the image: the image changes most exactly on label
    boundaries (measured: 3.3× the interior gradient, 2.6× that 3 px beside them; labels moved by 2 px
    give 2.2× and 1.6×)."""
    on, off, interior = [], [], []
    for rgb, ids in scenes:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gradient = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        boundary = np.zeros(ids.shape, bool)
        boundary[:, 1:] |= ids[:, 1:] != ids[:, :-1]
        boundary[1:] |= ids[1:] != ids[:-1]
        near = cv2.dilate(boundary.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        on.append(gradient[boundary])
        off.append(gradient[np.roll(boundary, 3, axis=1) & ~near])
        interior.append(gradient[~near])
    on, off, interior = (np.concatenate(g).mean() for g in (on, off, interior))
    assert on > 2.6 * interior
    assert on > 2.1 * off


def test_colour_alone_does_not_solve_it(scenes):
    """Colour classifiers fitted on half the pixels score poorly on the other half: nearest class-mean
    colour (measured 11%) and the best colour-only rule, the majority class of each 32³ RGB bin (46%);
    one fixed colour per class would give both close to 100%."""
    rgb = np.stack([s[0] for s in scenes]).reshape(-1, 3).astype(np.float32)
    train_ids = np.stack([CITYSCAPES.id_to_train_id[s[1]] for s in scenes]).ravel()
    keep = train_ids != IGNORE_INDEX
    rgb, train_ids = rgb[keep], train_ids[keep]
    half = len(rgb) // 2
    fit, test = slice(None, half), slice(half, None)

    classes = np.unique(train_ids[fit])
    means = np.stack([rgb[fit][train_ids[fit] == c].mean(0) for c in classes])
    nearest = classes[np.argmin(((rgb[test][:, None] - means[None]) ** 2).sum(-1), axis=1)]
    assert (nearest == train_ids[test]).mean() < 0.4

    bins = (rgb.astype(np.int64) // 32) @ np.array([64, 8, 1])
    votes = np.zeros((512, 256), np.int64)
    np.add.at(votes, (bins[fit], train_ids[fit]), 1)
    assert (votes.argmax(1)[bins[test]] == train_ids[test]).mean() < 0.6


def test_cli_help_and_bad_size(capsys):
    with pytest.raises(SystemExit) as exit_info:
        synth.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--out", "--num", "--val-num", "--size", "--seed"):
        assert option in help_text

    for bad in ("512", "512x", "axb", "0x64", "16x16"):
        with pytest.raises(SystemExit) as exit_info:
            synth.main(["--out", "unused", "--size", bad])
        assert exit_info.value.code == 2
        assert "invalid size" in capsys.readouterr().err


def test_cli_writes_a_dataset(tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, "-m", "rtseg_ros.data.synth", "--out", str(out), "--num", "2",
                             "--size", "64x128", "--seed", "1", "--no-color"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 train + 1 val" in result.stdout
    assert len(list(out.glob("leftImg8bit/train/*/*_leftImg8bit.png"))) == 2
    assert len(list(out.glob("gtFine/val/*/*_gtFine_labelTrainIds.png"))) == 1
    assert not list(out.rglob("*_gtFine_color.png"))
