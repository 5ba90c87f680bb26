"""sensor_msgs ↔ NumPy for the nodes.

Incoming frames are decoded by ``data.encodings.FrameDecoder`` (no ROS needed there). Outgoing images copy the
result once into a ``uint8`` array kept per topic (rclpy then serialises it without a per-element loop).
"""
from __future__ import annotations

import array
import copy
import json

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from ..data.labels import DatasetInfo


def fill_image(msg: Image, pixels: np.ndarray, encoding: str, header) -> Image:
    """Copy ``pixels`` (H×W or H×W×C uint8) into ``msg`` with ``header``; the byte buffer is reused."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if len(msg.data) != pixels.nbytes:
        msg.data = array.array("B", bytes(pixels.nbytes))
    np.copyto(np.frombuffer(msg.data, np.uint8).reshape(pixels.shape), pixels)
    msg.header = header
    msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian = height, width, encoding, width * channels, 0
    return msg


# PointCloud2 fields of runtime.points.POINT_DTYPE (x, y, z float32; label, confidence uint8; 16 bytes a point).
POINT_FIELDS = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
                PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
                PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
                PointField(name="label", offset=12, datatype=PointField.UINT8, count=1),
                PointField(name="confidence", offset=13, datatype=PointField.UINT8, count=1)]


def fill_points(msg: PointCloud2, points: np.ndarray, header) -> PointCloud2:
    """Copy ``points`` (H×W organised, or N unorganised, of ``POINT_DTYPE``) into ``msg`` with ``header``;
    NaN points mark pixels without a depth reading, so an organised cloud is not dense."""
    height, width = points.shape if points.ndim == 2 else (1, points.shape[0])
    if len(msg.data) != points.nbytes:
        msg.data = array.array("B", bytes(points.nbytes))
    np.frombuffer(msg.data, np.uint8)[:] = np.ascontiguousarray(points).view(np.uint8).ravel()
    msg.header, msg.height, msg.width, msg.fields = header, height, width, POINT_FIELDS
    msg.is_bigendian, msg.point_step, msg.row_step = False, points.dtype.itemsize, points.dtype.itemsize * width
    msg.is_dense = points.ndim == 1
    return msg


def points_of(msg: PointCloud2, dtype: np.dtype) -> np.ndarray:
    """A PointCloud2 of ``dtype`` points as height × width (a view; for tests and tools)."""
    return np.frombuffer(msg.data, dtype).reshape(msg.height, msg.width)


def array_of(msg: Image) -> np.ndarray:
    """An 8-bit Image message as H×W or H×W×C (a view; for tests and tools)."""
    channels = msg.step // msg.width if msg.width else 0
    pixels = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, channels)
    return pixels[..., 0] if channels == 1 else pixels


def _pixel_map(scale: float, offset: float) -> tuple[float, float]:
    """(a, b) with u' = a·u + b for pixel centres, when the image is cropped by ``offset`` then resized by
    ``scale`` with half-pixel centres (what bilinear resizing with align_corners=False and binning do)."""
    return scale, (0.5 - offset) * scale - 0.5


def scale_camera_info(info: CameraInfo, image_hw: tuple[int, int], out_hw: tuple[int, int], header) -> CameraInfo:
    """CameraInfo for images of ``out_hw`` made from the ``image_hw`` frames ``info`` describes.

    At the frame's own size this is ``info`` with ``header``. Otherwise the frame is ``info``'s calibration
    after its ROI and binning, and the result describes the output directly (no ROI, no binning), with K and
    P moved to the output's pixel grid.
    """
    if tuple(out_hw) == tuple(image_hw):
        out = copy.deepcopy(info)
        out.header = header
        return out
    bin_x, bin_y = max(info.binning_x, 1), max(info.binning_y, 1)
    roi = info.roi
    has_roi = roi.width > 0 and roi.height > 0
    # calibration pixels → frame pixels (crop by ROI, bin) → output pixels (resize)
    ax1, bx1 = _pixel_map(1.0 / bin_x, roi.x_offset if has_roi else 0)
    ay1, by1 = _pixel_map(1.0 / bin_y, roi.y_offset if has_roi else 0)
    ax2, bx2 = _pixel_map(out_hw[1] / image_hw[1], 0)
    ay2, by2 = _pixel_map(out_hw[0] / image_hw[0], 0)
    transform = np.array([[ax2 * ax1, 0.0, ax2 * bx1 + bx2], [0.0, ay2 * ay1, ay2 * by1 + by2], [0.0, 0.0, 1.0]])
    out = CameraInfo()
    out.header = header
    out.height, out.width = out_hw
    out.distortion_model, out.d, out.r = info.distortion_model, info.d, info.r
    out.k = (transform @ np.asarray(info.k, float).reshape(3, 3)).ravel().tolist()
    out.p = (transform @ np.asarray(info.p, float).reshape(3, 4)).ravel().tolist()
    return out


def class_info_json(dataset: dict, model: str, weights: str, random_weights: bool, backend: str,
                    precision: str) -> str:
    """What ``~/class_info`` carries (std_msgs/String, JSON): one entry per train id with its name and RGB
    colour, the ignore id, where the classes came from, and the engine and precision that made the labels."""
    classes = [{"id": i, "name": name, "color": list(map(int, color))}
               for i, (name, color) in enumerate(zip(dataset["class_names"], dataset["palette"]))]
    return json.dumps({"dataset": dataset["name"], "convention": dataset.get("convention", ""), "model": model,
                       "weights": weights, "random_weights": random_weights, "backend": backend,
                       "precision": precision, "labels_encoding": "mono8",
                       "ignore_id": 255, "classes": classes})


def dataset_from_class_info(text: str) -> DatasetInfo:
    """The class table a ``~/class_info`` message describes (the inverse of ``class_info_json``)."""
    info = json.loads(text)
    classes = sorted(info["classes"], key=lambda c: c["id"])
    return DatasetInfo(name=info["dataset"], class_names=tuple(c["name"] for c in classes),
                       palette=np.array([c["color"] for c in classes], np.uint8),
                       id_to_train_id=np.arange(256, dtype=np.uint8), convention=info.get("convention", ""))
