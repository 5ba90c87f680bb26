"""Label tables and dataset readers."""
import cv2
import numpy as np
import pytest

from rtseg_ros.data.datasets import DatasetLayoutError, camvid, cityscapes_layout, open_dataset
from rtseg_ros.data.labels import IGNORE_INDEX, colorize, get_dataset_info

# The official 19-class table (cityscapesScripts helpers/labels.py): name, label id, colour.
CITYSCAPES_TRAIN_CLASSES = [
    ("road", 7, (128, 64, 128)), ("sidewalk", 8, (244, 35, 232)), ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)), ("fence", 13, (190, 153, 153)), ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)), ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)), ("terrain", 22, (152, 251, 152)), ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)), ("rider", 25, (255, 0, 0)), ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)), ("bus", 28, (0, 60, 100)), ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)), ("bicycle", 33, (119, 11, 32)),
]


def test_cityscapes_table_matches_official():
    info = get_dataset_info("cityscapes")
    assert info.class_names == tuple(name for name, _, _ in CITYSCAPES_TRAIN_CLASSES)
    np.testing.assert_array_equal(info.palette, [color for _, _, color in CITYSCAPES_TRAIN_CLASSES])
    expected = np.full(256, IGNORE_INDEX, np.uint8)
    for train_id, (_, label_id, _) in enumerate(CITYSCAPES_TRAIN_CLASSES):
        expected[label_id] = train_id
    np.testing.assert_array_equal(info.id_to_train_id, expected)


def test_camvid_table_is_pinned():
    info = get_dataset_info("camvid")
    assert info.num_classes == 11 and info.class_names[0] == "sky" and info.class_names[-1] == "bicyclist"
    assert len({tuple(c) for c in info.palette}) == 11
    assert info.id_to_train_id[11] == IGNORE_INDEX and info.id_to_train_id[10] == 10
    assert info.to_dict()["convention"].startswith("SegNet")


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(KeyError, match="cityscapes"):
        get_dataset_info("kitti")


def test_colorize_uses_palette_and_blacks_out_ignore():
    info = get_dataset_info("cityscapes")
    rgb = colorize(np.array([[0, 13, IGNORE_INDEX]], np.uint8), info)
    np.testing.assert_array_equal(rgb[0], [(128, 64, 128), (0, 0, 142), (0, 0, 0)])


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def make_cityscapes_tree(root, size=(8, 12), with_train_ids=True):
    rng = np.random.default_rng(1)
    label_ids = rng.choice([7, 8, 11, 26, 0, 23], size=size).astype(np.uint8)
    for city, frame in (("aachen", 19), ("bonn", 7)):
        stem = f"{city}_000000_{frame:06d}"
        write_png(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png", rng.integers(0, 255, (*size, 3), dtype=np.uint8))
        write_png(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", label_ids)
        if with_train_ids:
            write_png(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelTrainIds.png",
                      get_dataset_info("cityscapes").id_to_train_id[label_ids])
    return label_ids


@pytest.mark.parametrize("with_train_ids", [True, False])
def test_cityscapes_reader_gives_train_ids(tmp_path, with_train_ids):
    label_ids = make_cityscapes_tree(tmp_path, with_train_ids=with_train_ids)
    data = open_dataset("cityscapes", tmp_path, "val")
    assert len(data) == 2
    sample = data[0]
    assert sample["image"].shape == (8, 12, 3) and sample["image"].dtype == np.uint8
    np.testing.assert_array_equal(sample["label"], get_dataset_info("cityscapes").id_to_train_id[label_ids])
    assert sample["name"] == "aachen_000000_000019_leftImg8bit.png"


def test_cityscapes_reader_errors_name_the_expected_path(tmp_path):
    with pytest.raises(DatasetLayoutError, match="leftImg8bit/val"):
        cityscapes_layout(tmp_path / "nowhere", "val")
    make_cityscapes_tree(tmp_path, with_train_ids=False)
    with pytest.raises(DatasetLayoutError, match="csCreateTrainIdLabelImgs"):
        cityscapes_layout(tmp_path, "val", label_kind="trainIds")
    (tmp_path / "leftImg8bit" / "train").mkdir()
    (tmp_path / "gtFine" / "train").mkdir()
    with pytest.raises(DatasetLayoutError, match="no images"):
        cityscapes_layout(tmp_path, "train")


def test_one_missing_label_is_counted_and_named(tmp_path):
    make_cityscapes_tree(tmp_path)
    for label_ids in (tmp_path / "gtFine").rglob("*_gtFine_labelIds.png"):
        label_ids.unlink()  # a folder of train ids only
    missing = sorted((tmp_path / "gtFine").rglob("*_gtFine_labelTrainIds.png"))[1]
    missing.unlink()
    with pytest.raises(DatasetLayoutError, match=f"^1 of 2 images have no label file; the first: {missing}"):
        cityscapes_layout(tmp_path, "val")


def test_reader_rejects_size_mismatch_and_corrupt_files(tmp_path):
    make_cityscapes_tree(tmp_path)
    data = cityscapes_layout(tmp_path, "val")
    write_png(data.pairs[0][1], np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetLayoutError, match="12x8 but its label"):
        data[0]
    data.pairs[1][0].write_bytes(b"\x89PNG truncated")
    with pytest.raises(DatasetLayoutError, match="cannot read image"):
        data[1]


def test_camvid_reader(tmp_path):
    label = np.array([[0, 3, 11], [10, 5, 8]], np.uint8)
    write_png(tmp_path / "val" / "0001TP_008550.png", np.zeros((2, 3, 3), np.uint8))
    write_png(tmp_path / "valannot" / "0001TP_008550.png", label)
    sample = camvid(tmp_path, "val")[0]
    np.testing.assert_array_equal(sample["label"], [[0, 3, 255], [10, 5, 8]])
    with pytest.raises(DatasetLayoutError, match="trainannot"):
        camvid(tmp_path, "train")
