"""Message ↔ NumPy conversion of the segmentation node, without DDS: zero-copy views, every supported
encoding against an independent construction of its bytes, each bad-frame cause, output messages,
CameraInfo rescaling and the class_info document."""
import json

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (pip install '.[ros]')")
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from rtseg_ros.data.labels import get_dataset_info  # noqa: E402
from rtseg_ros.data.encodings import BadFrame, FrameDecoder  # noqa: E402
from rtseg_ros.ros.conversions import array_of, class_info_json, fill_image, scale_camera_info  # noqa: E402

H, W = 48, 64


def smooth_rgb(h=H, w=W):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.dstack([(xx * 3) % 256, (yy * 4) % 256, 255 - (xx + yy)]).clip(0, 255).astype(np.uint8)


def image_msg(pixels, encoding, step=None, data=None):
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1)
    step = step or row.shape[1]
    if data is None:
        padded = np.zeros((h, step), np.uint8)
        padded[:, : row.shape[1]] = row
        data = padded.tobytes()
    return Image(height=h, width=w, encoding=encoding, step=step, data=data)


@pytest.mark.parametrize("encoding,channels", [("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1)])
def test_direct_encodings_are_zero_copy_views(encoding, channels):
    pixels = np.random.default_rng(1).integers(0, 256, (H, W, channels), dtype=np.uint8)
    msg = image_msg(pixels, encoding)
    array, passed = FrameDecoder().image(msg)
    assert passed == encoding
    np.testing.assert_array_equal(array, pixels)
    assert np.shares_memory(array, np.frombuffer(msg.data, np.uint8))


def test_padded_rows_are_a_strided_view():
    pixels = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    msg = image_msg(pixels, "rgb8", step=W * 3 + 16)
    array, _ = FrameDecoder().image(msg)
    np.testing.assert_array_equal(array, pixels)
    assert np.shares_memory(array, np.frombuffer(msg.data, np.uint8))


def bayer_mosaic(rgb, pattern):
    """Sample ``rgb`` the way a sensor with ``pattern`` (colours of the 2×2 cell, row by row) does."""
    index = {"r": 0, "g": 1, "b": 2}
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for colour, (dy, dx) in zip(pattern, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, index[colour]]
    return mosaic


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns_demosaic_to_the_scene(pattern):
    rgb = smooth_rgb()
    array, encoding = FrameDecoder().image(image_msg(bayer_mosaic(rgb, pattern)[..., None], f"bayer_{pattern}8"))
    assert encoding == "rgb8" and array.shape == (H, W, 3)
    # the interior of a smooth scene comes back almost exactly; a wrong pattern is off by ~60 levels
    error = np.abs(array.astype(int) - rgb)[4:-4, 4:-4].mean()
    assert error < 2, error


def pack_422(y, u, v, order):
    """Pack per-pixel Y and per-pair U, V (H×W/2) into UYVY or YUYV bytes."""
    h, w = y.shape
    packed = np.empty((h, 2 * w), np.uint8)
    slots = {"uyvy": (1, 3, 0, 2), "yuyv": (0, 2, 1, 3)}[order]  # byte of Y0, Y1, U, V in each group of 4
    packed[:, slots[0]::4], packed[:, slots[1]::4] = y[:, 0::2], y[:, 1::2]
    packed[:, slots[2]::4], packed[:, slots[3]::4] = u, v
    return packed.reshape(h, w, 2)


@pytest.mark.parametrize("encoding,order", [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"),
                                            ("yuyv", "yuyv")])
def test_yuv422_byte_order_and_colour(encoding, order):
    # neutral chroma, alternating luma: each pixel grey at its own Y (BT.601 video range: 1.164 (Y - 16))
    y = np.tile(np.array([60, 180], np.uint8), (4, 8))
    neutral = np.full((4, 8), 128, np.uint8)
    array, passed = FrameDecoder().image(image_msg(pack_422(y, neutral, neutral, order), encoding))
    assert passed == "rgb8"
    np.testing.assert_allclose(array[0, 0], [51] * 3, atol=2)
    np.testing.assert_allclose(array[0, 1], [191] * 3, atol=2)
    # one colour: Y 98, U 95, V 217 is a saturated red-orange
    array, _ = FrameDecoder().image(image_msg(pack_422(np.full((4, 16), 98, np.uint8), np.full((4, 8), 95, np.uint8),
                                                       np.full((4, 8), 217, np.uint8), order), encoding))
    np.testing.assert_allclose(array[1, 1], [237, 36, 29], atol=2)


def test_converted_buffer_is_reused_while_the_size_stays():
    decoder, mosaic = FrameDecoder(), bayer_mosaic(smooth_rgb(), "rggb")[..., None]
    first, _ = decoder.image(image_msg(mosaic, "bayer_rggb8"))
    second, _ = decoder.image(image_msg(mosaic, "bayer_rggb8"))
    assert first is second
    third, _ = decoder.image(image_msg(mosaic[:32], "bayer_rggb8"))
    assert third.shape == (32, W, 3)


@pytest.mark.parametrize("cause,msg", [
    ("encoding", Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16))),
    ("encoding", Image(height=2, width=2, encoding="", step=6, data=bytes(12))),
    ("empty", Image(height=0, width=0, encoding="rgb8", step=0, data=b"")),
    ("empty", Image(height=4, width=4, encoding="rgb8", step=12, data=b"")),
    ("step", Image(height=4, width=4, encoding="rgb8", step=4, data=bytes(16))),
    ("data_size", Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(40))),
    ("data_size", Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(60))),
    ("step", Image(height=2, width=3, encoding="yuv422", step=6, data=bytes(12))),
    # declared dimensions are checked before the data: a frame this large is refused whatever it carries
    ("too_large", Image(height=20000, width=20000, encoding="rgb8", step=60000, data=bytes(12))),
])
def test_bad_frames_name_their_cause(cause, msg):
    with pytest.raises(BadFrame) as info:
        FrameDecoder().image(msg)
    assert info.value.cause == cause
    assert str(info.value)


def test_compressed_images_decode_as_opencv_writes_them():
    bgr = smooth_rgb()[..., ::-1].copy()
    png = CompressedImage(format="png", data=cv2.imencode(".png", bgr)[1].tobytes())
    array, encoding = FrameDecoder().compressed(png)
    assert encoding == "bgr8"
    np.testing.assert_array_equal(array, bgr)
    jpeg = CompressedImage(format="rgb8; jpeg compressed bgr8", data=cv2.imencode(".jpg", bgr)[1].tobytes())
    array, encoding = FrameDecoder().compressed(jpeg)
    assert encoding == "bgr8" and np.abs(array.astype(int) - bgr).mean() < 4
    mono = CompressedImage(format="png", data=cv2.imencode(".png", bgr[..., 0])[1].tobytes())
    array, encoding = FrameDecoder().compressed(mono)
    assert encoding == "mono8" and array.shape == (H, W)


@pytest.mark.parametrize("cause,msg", [
    ("empty", CompressedImage(format="jpeg", data=b"")),
    ("decode", CompressedImage(format="jpeg", data=np.random.default_rng(3).integers(0, 256, 500, np.uint8).tobytes())),
    ("encoding", CompressedImage(format="16UC1; compressedDepth png", data=bytes(100))),
])
def test_bad_compressed_frames_name_their_cause(cause, msg):
    with pytest.raises(BadFrame) as info:
        FrameDecoder().compressed(msg)
    assert info.value.cause == cause


def test_every_bad_frame_cause_is_in_the_readmes_fault_table():
    from pathlib import Path

    from rtseg_ros.data.encodings import CAUSES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Bad input and faults"):readme.index("## Python API")]
    assert all(f"`{cause}`" in table for cause in CAUSES), [c for c in CAUSES if f"`{c}`" not in table]


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding(monkeypatch):
    """A few KB of PNG declaring 4100 x 4100 (17 M pixels, past the 16.8 M default): refused by its header,
    without cv2 ever decoding (and allocating) it; a limit is a limit for small frames too."""
    bomb = CompressedImage(format="png", data=cv2.imencode(".png", np.zeros((4100, 4100), np.uint8))[1].tobytes())
    assert len(bomb.data) < 64 * 1024
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(a))
    with pytest.raises(BadFrame) as info:
        FrameDecoder().compressed(bomb)
    assert info.value.cause == "too_large" and "4100x4100" in str(info.value) and not decoded
    monkeypatch.undo()
    small = CompressedImage(format="png", data=cv2.imencode(".png", smooth_rgb())[1].tobytes())
    FrameDecoder().compressed(small)  # fits the default
    with pytest.raises(BadFrame, match="max_input_pixels"):
        FrameDecoder(max_pixels=H * W - 1).compressed(small)


def test_fill_image_copies_once_into_a_reused_buffer():
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 7, 9
    msg, labels = Image(), np.random.default_rng(4).integers(0, 19, (H, W), dtype=np.uint8)
    fill_image(msg, labels, "mono8", header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (H, W, W, "mono8")
    assert msg.header is header
    np.testing.assert_array_equal(array_of(msg), labels)
    buffer = msg.data
    fill_image(msg, labels[::-1].copy(), "mono8", header)
    assert msg.data is buffer  # same size: reused
    np.testing.assert_array_equal(array_of(msg), labels[::-1])
    colour = np.random.default_rng(5).integers(0, 256, (H // 2, W, 3), dtype=np.uint8)
    fill_image(msg, colour, "rgb8", header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (H // 2, W, 3 * W, "rgb8")
    np.testing.assert_array_equal(array_of(msg), colour)


def camera_info(width=640, height=480, **extra):
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.1, -0.2, 0.0, 0.0, 0.0], **extra)
    info.k = [500.0, 0.0, 320.5, 0.0, 510.0, 240.25, 0.0, 0.0, 1.0]
    info.p = [500.0, 0.0, 320.5, -25.0, 0.0, 510.0, 240.25, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def test_camera_info_at_the_input_resolution_is_passed_through():
    header = Header(frame_id="cam")
    info = camera_info()
    out = scale_camera_info(info, (480, 640), (480, 640), header)
    assert out.header.frame_id == "cam" and out is not info
    assert (out.width, out.height, list(out.k), list(out.p), list(out.d)) == \
        (640, 480, list(info.k), list(info.p), list(info.d))


def test_camera_info_follows_a_resize_with_half_pixel_centres():
    out = scale_camera_info(camera_info(), (480, 640), (240, 320), Header())
    assert (out.width, out.height) == (320, 240)
    fx, cx, fy, cy = out.k[0], out.k[2], out.k[4], out.k[5]
    assert (fx, fy) == (250.0, 255.0)
    assert cx == pytest.approx((320.5 + 0.5) * 0.5 - 0.5) and cy == pytest.approx((240.25 + 0.5) * 0.5 - 0.5)
    assert out.p[3] == pytest.approx(-12.5) and out.p[2] == pytest.approx(cx)
    assert list(out.d) == [0.1, -0.2, 0.0, 0.0, 0.0]


def test_camera_info_with_roi_and_binning_describes_the_output_directly():
    info = camera_info(width=1280, height=960, binning_x=2, binning_y=2)
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 40, 640, 480
    # the frame is the 640×480 ROI binned by 2 (320×240); the output is that frame at 160×120
    out = scale_camera_info(info, (240, 320), (120, 160), Header())
    # calibration pixel (u, v) → ROI → binned (half-pixel) → halved (half-pixel), i.e. scale 1/4
    expected_cx = ((320.5 - 100 + 0.5) / 2 - 0.5 + 0.5) / 2 - 0.5
    assert out.k[0] == pytest.approx(125.0) and out.k[2] == pytest.approx(expected_cx)
    assert (out.binning_x, out.binning_y, out.roi.width, out.width, out.height) == (0, 0, 0, 160, 120)


def test_class_info_lists_every_class_with_its_colour():
    info = get_dataset_info("cityscapes")
    doc = json.loads(class_info_json(info.to_dict(), "farsee", "random initialisation", True, "openvino", "int8"))
    assert doc["dataset"] == "cityscapes" and doc["model"] == "farsee" and doc["random_weights"] is True
    assert (doc["backend"], doc["precision"]) == ("openvino", "int8")
    assert doc["ignore_id"] == 255 and doc["labels_encoding"] == "mono8"
    assert [c["id"] for c in doc["classes"]] == list(range(19))
    assert doc["classes"][0] == {"id": 0, "name": "road", "color": [128, 64, 128]}
    assert [c["name"] for c in doc["classes"]] == list(info.class_names)
    assert [c["color"] for c in doc["classes"]] == info.palette.tolist()
