"""The Cityscapes file tree: one generator per image, seeded from ``(seed, split, index)``."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import id2label
from tqdm import tqdm

from rtseg_ros.data.labels import IGNORE_INDEX, get_dataset_info
from rtseg_ros.fileio import write_bytes_atomic

from .camera import Camera
from .scene import generate_scene

CITYSCAPES = get_dataset_info("cityscapes")
# Fictitious cities; validation gets its own, as in Cityscapes.
CITIES = {"train": ("aldenmoor", "brackwater"), "val": ("corvale",)}
SPLIT_SEED = {"train": 0, "val": 1}
ANNOTATED_FRAME = 19  # Cityscapes annotates the 20th frame of each 30-frame snippet


def image_stem(split: str, index: int) -> tuple[str, str]:
    """(city, file stem) of image ``index`` of ``split``: ``{city}_{seq:06d}_{frame:06d}``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{ANNOTATED_FRAME:06d}"


def _png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _label_colours() -> np.ndarray:
    """256×3 RGB by Cityscapes label id, for the ``*_gtFine_color.png`` previews."""
    lut = np.zeros((256, 3), np.uint8)
    for label_id, label in id2label.items():
        if 0 <= label_id < 256:
            lut[label_id] = label.color
    return lut


_COLOR_LUT = _label_colours()


def write_dataset(out, num: int, size: tuple[int, int] = (512, 1024), seed: int = 0, val_num: int | None = None,
                  color: bool = True, progress: bool = True) -> dict:
    """Write ``num`` train and ``val_num`` (default ``max(1, num // 5)``) val scenes of ``size`` (H, W)
    under ``out`` in Cityscapes layout; returns a summary with per-class pixel counts."""
    out = Path(out)
    height, width = size
    val_num = max(1, num // 5) if val_num is None else val_num
    if num < 0 or val_num < 0 or seed < 0:
        raise ValueError("num, val_num and seed must be non-negative")
    pixels = np.zeros(256, np.int64)
    jobs = [("train", i) for i in range(num)] + [("val", i) for i in range(val_num)]
    for split, index in tqdm(jobs, desc="rtseg-synth", unit="img", disable=not progress):
        rng = np.random.default_rng([seed, SPLIT_SEED[split], index])
        camera = Camera.sample(rng, height, width)
        rgb, label_ids = generate_scene(rng, height, width, camera)
        train_ids = CITYSCAPES.id_to_train_id[label_ids]
        pixels += np.bincount(train_ids.ravel(), minlength=256)
        city, stem = image_stem(split, index)
        gt = out / "gtFine" / split / city / stem
        write_bytes_atomic(out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _png(rgb[..., ::-1]))
        write_bytes_atomic(Path(f"{gt}_gtFine_labelIds.png"), _png(label_ids))
        write_bytes_atomic(Path(f"{gt}_gtFine_labelTrainIds.png"), _png(train_ids))
        if color:
            write_bytes_atomic(Path(f"{gt}_gtFine_color.png"), _png(_COLOR_LUT[label_ids][..., ::-1]))
        write_bytes_atomic(out / "camera" / split / city / f"{stem}_camera.json",
                           (json.dumps(camera.to_json(), indent=4, sort_keys=True) + "\n").encode())
    return {"out": str(out), "size": [height, width], "seed": seed, "images": {"train": num, "val": val_num},
            "class_pixels": {name: int(pixels[i]) for i, name in enumerate(CITYSCAPES.class_names)},
            "ignore_pixels": int(pixels[IGNORE_INDEX])}
