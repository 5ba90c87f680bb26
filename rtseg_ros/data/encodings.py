"""Pixel encodings of ``sensor_msgs`` images → arrays the Segmenter takes.

No ROS imports: ``FrameDecoder`` reads the fields of an Image or CompressedImage message, so it serves rclpy
messages in the node and ``rosbags`` messages in ``rtseg-eval`` alike. Pixels are viewed in place
(``np.frombuffer`` over the message's buffer, rows padded by ``step`` stay a strided view); only Bayer and
YUV 4:2:2 frames are converted, by OpenCV into a buffer that is reused while the size stays the same.
Anything wrong with a frame raises ``BadFrame`` naming one cause.
"""
from __future__ import annotations

import io
import warnings
from typing import NamedTuple

import cv2
import PIL.Image
import numpy as np



class PixelLayout(NamedTuple):
    channels: int  # bytes per pixel
    rgb: tuple[int, int, int]  # the channel indices that give red, green, blue


# Encodings the Segmenter takes as they are (it reorders channels on the device).
DIRECT = {"rgb8": PixelLayout(3, (0, 1, 2)), "bgr8": PixelLayout(3, (2, 1, 0)), "rgba8": PixelLayout(4, (0, 1, 2)),
          "bgra8": PixelLayout(4, (2, 1, 0)), "mono8": PixelLayout(1, (0, 0, 0))}
# ROS names the colour of the first two pixels of the first row, OpenCV those of the second row's second
# and third pixels: ROS bayer_rggb8 is OpenCV's BayerBG (as cv_bridge maps it).
BAYER = {"bayer_rggb8": cv2.COLOR_BayerBG2RGB, "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
         "bayer_gbrg8": cv2.COLOR_BayerGR2RGB, "bayer_grbg8": cv2.COLOR_BayerGB2RGB}
# sensor_msgs "yuv422" is UYVY; "yuv422_yuy2" is YUYV; "uyvy"/"yuyv" are the newer names.
YUV422 = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
          "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2}
SUPPORTED = tuple(DIRECT) + tuple(BAYER) + tuple(YUV422)

# Causes of rejected frames, as counted in diagnostics.
CAUSES = ("encoding", "empty", "too_large", "step", "data_size", "decode")
# Frames above this many pixels are refused before anything is allocated for them: 4096 x 4096 covers
# every camera a robot carries (4K UHD is 8.3 M), while a 64 KB PNG can declare 8192 x 8192.
DEFAULT_MAX_PIXELS = 4096 * 4096


class BadFrame(ValueError):
    """A frame the node skips; ``cause`` is one of ``CAUSES``."""

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause


class FrameDecoder:
    """Image / CompressedImage message → (H×W×C uint8 array, encoding the Segmenter accepts).

    The array may be a view of the message's buffer or of a buffer reused by the next call.
    """

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.max_pixels = max_pixels
        self._converted: np.ndarray | None = None

    def _check_size(self, width: int, height: int, what: str) -> None:
        if width * height > self.max_pixels:
            raise BadFrame("too_large", f"{what} declares {width}x{height} = {width * height / 1e6:.1f} M pixels, "
                                        f"more than max_input_pixels = {self.max_pixels / 1e6:.1f} M")

    def image(self, msg) -> tuple[np.ndarray, str]:
        encoding, height, width, step = msg.encoding, msg.height, msg.width, msg.step
        if encoding in DIRECT:
            pixel_bytes = DIRECT[encoding].channels
        elif encoding in BAYER:
            pixel_bytes = 1
        elif encoding in YUV422:
            pixel_bytes = 2
        else:
            raise BadFrame("encoding", f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED)}")
        size = len(msg.data)
        if height == 0 or width == 0 or size == 0:
            raise BadFrame("empty", f"empty image ({width}x{height}, {size} bytes of data)")
        self._check_size(width, height, "image")
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
        try:  # the header alone, so that a small file declaring a huge image is refused before decoding
            with warnings.catch_warnings():  # PIL's own bomb warning: the limit below is the one that applies
                warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
                with PIL.Image.open(io.BytesIO(msg.data)) as header:
                    width, height = header.size
        except (OSError, ValueError, PIL.Image.DecompressionBombError):
            raise BadFrame("decode", f"cannot read the header of {data.size} bytes of compressed image "
                                     f"(format {msg.format!r})") from None
        self._check_size(width, height, "compressed image")
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


_TO_RGB = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
           "mono8": cv2.COLOR_GRAY2RGB}


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """A new H×W×3 RGB copy of a decoded frame (for reports and plots, not the hot path)."""
    if encoding == "rgb8":
        return pixels.copy()
    return cv2.cvtColor(np.ascontiguousarray(pixels), _TO_RGB[encoding])
