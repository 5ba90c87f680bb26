"""sensor_msgs ↔ NumPy for the segmentation node.

Incoming pixels are viewed in place (``np.frombuffer`` over the message's buffer, rows padded by ``step``
stay a strided view); only Bayer and YUV 4:2:2 frames are converted, by OpenCV into a buffer that is
reused while the size stays the same. Outgoing images copy the result once into a ``uint8`` array kept
per topic (rclpy then serialises it without a per-element loop). Anything wrong with a frame raises
``BadFrame`` naming one cause, which the node counts and logs.
"""
from __future__ import annotations

import array
import copy
import json

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, Image

# Encodings the Segmenter takes as they are, with their bytes per pixel.
DIRECT = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
# ROS names the colour of the first two pixels of the first row, OpenCV those of the second row's second
# and third pixels: ROS bayer_rggb8 is OpenCV's BayerBG (as cv_bridge maps it).
BAYER = {"bayer_rggb8": cv2.COLOR_BayerBG2RGB, "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
         "bayer_gbrg8": cv2.COLOR_BayerGR2RGB, "bayer_grbg8": cv2.COLOR_BayerGB2RGB}
# sensor_msgs "yuv422" is UYVY; "yuv422_yuy2" is YUYV; "uyvy"/"yuyv" are the newer names.
YUV422 = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
          "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2}
SUPPORTED = tuple(DIRECT) + tuple(BAYER) + tuple(YUV422)

# Causes of rejected frames, as counted in diagnostics.
CAUSES = ("encoding", "empty", "step", "data_size", "decode")


class BadFrame(ValueError):
    """A frame the node skips; ``cause`` is one of ``CAUSES``."""

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause


class FrameDecoder:
    """Image / CompressedImage message → (H×W×C uint8 array, encoding the Segmenter accepts).

    The array may be a view of the message's buffer or of a buffer reused by the next call.
    """

    def __init__(self):
        self._converted: np.ndarray | None = None

    def image(self, msg: Image) -> tuple[np.ndarray, str]:
        encoding, height, width, step = msg.encoding, msg.height, msg.width, msg.step
        if encoding in DIRECT:
            pixel_bytes = DIRECT[encoding]
        elif encoding in BAYER:
            pixel_bytes = 1
        elif encoding in YUV422:
            pixel_bytes = 2
        else:
            raise BadFrame("encoding", f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED)}")
        size = len(msg.data)
        if height == 0 or width == 0 or size == 0:
            raise BadFrame("empty", f"empty image ({width}x{height}, {size} bytes of data)")
        if step < width * pixel_bytes:
            raise BadFrame("step", f"step {step} is less than width {width} x {pixel_bytes} bytes per pixel "
                                   f"of {encoding}")
        if size != step * height:
            raise BadFrame("data_size", f"data holds {size} bytes but step x height = {step} x {height} = "
                                        f"{step * height} ({'truncated' if size < step * height else 'too long'})")
        if encoding in YUV422 and width % 2:
            raise BadFrame("step", f"{encoding} needs an even width, got {width}")
        rows = np.frombuffer(msg.data, np.uint8).reshape(height, step)
        pixels = rows[:, : width * pixel_bytes].reshape(height, width, pixel_bytes)
        if encoding in DIRECT:
            return pixels, encoding
        return self._convert(pixels if encoding in YUV422 else pixels[..., 0],
                             BAYER.get(encoding, YUV422.get(encoding))), "rgb8"

    def compressed(self, msg) -> tuple[np.ndarray, str]:
        """sensor_msgs/CompressedImage (JPEG, PNG, anything ``cv2.imdecode`` reads)."""
        data = np.frombuffer(msg.data, np.uint8)
        if data.size == 0:
            raise BadFrame("empty", "empty compressed image (0 bytes)")
        if "compresseddepth" in msg.format.lower():
            raise BadFrame("encoding", f"compressed depth images ({msg.format!r}) cannot be segmented")
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise BadFrame("decode", f"cannot decode {data.size} bytes of compressed image (format {msg.format!r})")
        if image.dtype != np.uint8:
            raise BadFrame("encoding", f"compressed image decodes to {image.dtype} pixels; only 8-bit is supported")
        # compressed_image_transport encodes colour frames from bgr8 (its format string says so), so colour
        # images decode as BGR whatever the camera's original order was.
        if image.ndim == 2:
            return image, "mono8"
        return image, {1: "mono8", 3: "bgr8", 4: "bgra8"}[image.shape[2]]

    def _convert(self, source: np.ndarray, code: int) -> np.ndarray:
        shape = (source.shape[0], source.shape[1], 3)
        if self._converted is None or self._converted.shape != shape:
            self._converted = np.empty(shape, np.uint8)
        # OpenCV wants contiguous rows; padded rows (step > width) get one copy here.
        cv2.cvtColor(np.ascontiguousarray(source), code, dst=self._converted)
        return self._converted


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


def class_info_json(dataset: dict, model: str, weights: str, random_weights: bool) -> str:
    """What ``~/class_info`` carries (std_msgs/String, JSON): one entry per train id with its name and RGB
    colour, the ignore id, and where the classes came from."""
    classes = [{"id": i, "name": name, "color": list(map(int, color))}
               for i, (name, color) in enumerate(zip(dataset["class_names"], dataset["palette"]))]
    return json.dumps({"dataset": dataset["name"], "convention": dataset.get("convention", ""), "model": model,
                       "weights": weights, "random_weights": random_weights, "labels_encoding": "mono8",
                       "ignore_id": 255, "classes": classes})
