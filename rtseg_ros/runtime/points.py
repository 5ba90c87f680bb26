"""Labels in 3D: a registered depth image and the camera intrinsics back-project each labelled pixel.

No ROS here: ``segment_node`` hands over the depth message's bytes and the pinhole K of the label image,
and fills a ``sensor_msgs/PointCloud2`` from the structured array this returns (``POINT_DTYPE``: x, y, z in
metres in the camera's optical frame, x right, y down, z forward; label and confidence as uint8; 16 bytes
a point, what PCL's and RViz's readers expect for a padded point).

Depth encodings as RGB-D drivers publish them (REP 118): ``16UC1`` in millimetres with 0 for no reading,
``32FC1`` in metres with NaN, inf or 0 for no reading. Pixels without a reading give NaN points.
"""
from __future__ import annotations

import numpy as np

DEPTH_ENCODINGS = {"16UC1": (np.dtype("<u2"), 1e-3), "mono16": (np.dtype("<u2"), 1e-3),
                   "32FC1": (np.dtype("<f4"), 1.0)}  # encoding → (little-endian dtype, metres per unit)
POINT_DTYPE = np.dtype({"names": ["x", "y", "z", "label", "confidence"],
                        "formats": ["<f4", "<f4", "<f4", "u1", "u1"],
                        "offsets": [0, 4, 8, 12, 13], "itemsize": 16})


class BadDepth(ValueError):
    """A depth image that cannot be used with this frame; the message says why in one line."""


def depth_metres(encoding: str, height: int, width: int, step: int, data, is_bigendian: bool = False,
                 max_pixels: int = 2**31 - 1) -> np.ndarray:
    """A depth image message's pixels as float32 metres, H×W, NaN where there is no reading.

    The size is checked against ``max_pixels`` and the buffer before anything is allocated for it, so a
    message that declares more than it carries, or more than the node accepts, costs nothing.
    """
    if encoding not in DEPTH_ENCODINGS:
        raise BadDepth(f"depth encoding {encoding!r} is not a depth image: expected one of "
                       f"{', '.join(DEPTH_ENCODINGS)} (16UC1 in millimetres, 32FC1 in metres)")
    dtype, scale = DEPTH_ENCODINGS[encoding]
    if is_bigendian:
        dtype = dtype.newbyteorder(">")
    if height <= 0 or width <= 0 or height * width > max_pixels:
        raise BadDepth(f"depth image of {width}x{height} pixels: outside 1..{max_pixels} pixels")
    if step < width * dtype.itemsize or len(data) < step * height:
        raise BadDepth(f"depth image {width}x{height} {encoding} declares step {step} but carries {len(data)} "
                       f"bytes (needs {max(step, width * dtype.itemsize) * height})")
    rows = np.frombuffer(data, np.uint8, count=step * height).reshape(height, step)
    raw = rows[:, :width * dtype.itemsize].copy().view(dtype).reshape(height, width)
    metres = raw.astype(np.float32) * np.float32(scale)
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def fit_depth(depth: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``depth`` on the label image's pixel grid: itself at that size, else resampled (nearest, so no reading
    is invented between a foreground and a background depth) when it covers the same view at another scale.
    A depth image of another aspect ratio is not registered to this camera and is refused."""
    height, width = depth.shape
    if (height, width) == tuple(out_hw):
        return depth
    if abs(width / height - out_hw[1] / out_hw[0]) > 0.01 * out_hw[1] / out_hw[0]:
        raise BadDepth(f"depth image {width}x{height} does not cover the colour image's view "
                       f"({out_hw[1]}x{out_hw[0]}, another aspect ratio): publish depth registered to the colour "
                       "camera (e.g. a driver's aligned_depth_to_color or depth_registered topic)")
    rows = ((np.arange(out_hw[0]) + 0.5) * height / out_hw[0]).astype(np.intp)
    cols = ((np.arange(out_hw[1]) + 0.5) * width / out_hw[1]).astype(np.intp)
    return depth[rows[:, None], cols[None, :]]


def back_project(depth: np.ndarray, k, labels: np.ndarray, confidence: np.ndarray | None = None,
                 keep_classes: frozenset[int] | None = None, drop_invalid: bool = False) -> np.ndarray:
    """The point cloud of a label image: one ``POINT_DTYPE`` point per pixel.

    Args:
        depth: H×W metres on the label image's grid (``fit_depth``), NaN where there is no reading.
        k: the 3×3 (or 9-element) pinhole matrix of the label image (rectified: distortion is not undone).
        labels / confidence: H×W uint8 from the Segmenter (confidence 0 when not given).
        keep_classes: train ids to keep; the other pixels become NaN points (or are dropped).
        drop_invalid: return only valid points, 1-D (unorganised), instead of H×W (organised).
    """
    k = np.asarray(k, np.float64).reshape(3, 3)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if fx <= 0 or fy <= 0:
        raise BadDepth("camera_info has no intrinsics (K is zero): calibrate the camera or publish its camera_info")
    height, width = labels.shape
    points = np.empty((height, width), POINT_DTYPE)
    z = depth.astype(np.float32, copy=False)
    if keep_classes is not None:
        z = np.where(np.isin(labels, list(keep_classes)), z, np.float32(np.nan))
    u = ((np.arange(width, dtype=np.float64) - cx) / fx).astype(np.float32)
    v = ((np.arange(height, dtype=np.float64) - cy) / fy).astype(np.float32)
    points["x"] = z * u[None, :]
    points["y"] = z * v[:, None]
    points["z"] = z
    points["label"] = labels
    points["confidence"] = 0 if confidence is None else confidence
    if drop_invalid:
        return points[np.isfinite(z)]
    return points


def parse_classes(text: str, class_names: tuple[str, ...]) -> frozenset[int] | None:
    """``points_classes``: comma-separated class names or train ids → train ids; empty → None (all)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        return None
    ids, by_name = set(), {name.lower(): i for i, name in enumerate(class_names)}
    for item in items:
        if item.isdigit() and int(item) < len(class_names):
            ids.add(int(item))
        elif item.lower() in by_name:
            ids.add(by_name[item.lower()])
        else:
            raise ValueError(f"points_classes: {item!r} is neither a class of this model ({', '.join(class_names)}) "
                             f"nor a train id below {len(class_names)}")
    return frozenset(ids)
