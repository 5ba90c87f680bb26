"""Labels in 3D (runtime/points.py, ros/conversions.fill_points): depth decoding, resampling, back-projection
of a scene with known geometry (a floor plane and a box at known depths), class filtering, and the
PointCloud2 layout read back through its own field descriptors, as RViz or PCL read it."""
import numpy as np
import pytest

from rtseg_ros.runtime.points import POINT_DTYPE, BadDepth, back_project, depth_metres, fit_depth, parse_classes

H, W = 480, 640
FX, FY, CX, CY = 525.0, 520.0, 319.5, 239.5
K = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
WALL, BOX = 3.25, 1.5  # metres: a wall facing the camera, a box in front of it
BOX_ROWS, BOX_COLS = slice(200, 300), slice(250, 400)


def scene_mm() -> tuple[np.ndarray, np.ndarray]:
    """16UC1 depth in millimetres (0: no reading in the top-left corner) and its labels (wall 1, box 2)."""
    depth = np.full((H, W), int(WALL * 1000), np.uint16)
    depth[BOX_ROWS, BOX_COLS] = int(BOX * 1000)
    depth[:10, :10] = 0
    labels = np.ones((H, W), np.uint8)
    labels[BOX_ROWS, BOX_COLS] = 2
    return depth, labels


def expected_xyz(depth_m: np.ndarray) -> np.ndarray:
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.stack([(u - CX) * depth_m / FX, (v - CY) * depth_m / FY, depth_m], -1)


def as_message_fields(depth: np.ndarray, encoding: str, bigendian=False):
    data = depth.astype(depth.dtype.newbyteorder(">") if bigendian else depth.dtype).tobytes()
    return encoding, depth.shape[0], depth.shape[1], depth.shape[1] * depth.itemsize, data, bigendian


@pytest.mark.parametrize("encoding,bigendian", [("16UC1", False), ("16UC1", True), ("32FC1", False)])
def test_known_geometry_back_projects_within_a_millimetre(encoding, bigendian):
    depth_mm, labels = scene_mm()
    depth = depth_mm if encoding == "16UC1" else (depth_mm / 1000.0).astype(np.float32)
    metres = depth_metres(*as_message_fields(depth, encoding, bigendian))
    confidence = np.full((H, W), 200, np.uint8)
    points = back_project(metres, K, labels, confidence)
    assert points.shape == (H, W) and points.dtype == POINT_DTYPE and points.dtype.itemsize == 16
    truth = expected_xyz(np.where(depth_mm > 0, depth_mm / 1000.0, np.nan))
    got = np.stack([points["x"], points["y"], points["z"]], -1).astype(np.float64)
    valid = depth_mm > 0
    assert np.abs(got[valid] - truth[valid]).max() < 1e-3
    assert np.isnan(got[~valid]).all()  # no reading: NaN, never a point at the camera centre
    assert (points["label"] == labels).all() and (points["confidence"] == 200).all()
    box = got[BOX_ROWS, BOX_COLS]
    assert np.allclose(box[..., 2], BOX) and np.allclose(got[250, 100, 2], WALL)
    # the box's left edge sits where the pinhole model puts column 250 at 1.5 m
    assert box[0, 0, 0] == pytest.approx((250 - CX) * BOX / FX, abs=1e-3)


def test_class_filter_and_dropping_invalid_points():
    depth_mm, labels = scene_mm()
    metres = depth_metres(*as_message_fields(depth_mm, "16UC1"))
    only_box = back_project(metres, K, labels, keep_classes=frozenset({2}))
    assert np.isfinite(only_box["z"][BOX_ROWS, BOX_COLS]).all()
    assert np.isnan(only_box["z"][labels != 2]).all()
    dropped = back_project(metres, K, labels, keep_classes=frozenset({2}), drop_invalid=True)
    assert dropped.shape == (100 * 150,) and (dropped["label"] == 2).all() and np.allclose(dropped["z"], BOX)
    every_reading = back_project(metres, K, labels, drop_invalid=True)
    assert every_reading.shape == (H * W - 100,)


def test_class_names_and_ids_are_parsed_and_unknown_ones_refused():
    names = ("road", "car", "person")
    assert parse_classes("", names) is None
    assert parse_classes("Road, 2", names) == frozenset({0, 2})
    with pytest.raises(ValueError, match="'tree' is neither a class"):
        parse_classes("road,tree", names)


def test_depth_at_another_scale_is_resampled_and_another_view_refused():
    depth_mm, _ = scene_mm()
    half = depth_metres(*as_message_fields(np.ascontiguousarray(depth_mm[::2, ::2]), "16UC1"))
    full = fit_depth(half, (H, W))
    assert full.shape == (H, W) and np.nanmax(np.abs(full[100:] - depth_mm[100:] / 1000.0)) < 1e-6  # nearest
    assert fit_depth(full, (H, W)) is full
    with pytest.raises(BadDepth, match="another aspect ratio"):
        fit_depth(np.ones((480, 480), np.float32), (H, W))


@pytest.mark.parametrize("fields,message", [
    (("rgb8", 4, 4, 12, bytes(48), False), "not a depth image"),
    (("16UC1", 4, 4, 8, bytes(10), False), "carries 10 bytes"),
    (("16UC1", 100_000, 100_000, 200_000, b"", False), "outside 1..16777216"),
])
def test_bad_depth_messages_are_one_line_and_allocate_nothing(fields, message):
    with pytest.raises(BadDepth, match=message):
        depth_metres(*fields, max_pixels=16_777_216)


def test_missing_intrinsics_are_refused():
    with pytest.raises(BadDepth, match="no intrinsics"):
        back_project(np.ones((2, 2), np.float32), [0.0] * 9, np.zeros((2, 2), np.uint8))


def test_point_cloud_message_reads_back_through_its_field_descriptors():
    pytest.importorskip("sensor_msgs", reason="ROS 2 message wheels not installed")
    from sensor_msgs.msg import PointCloud2, PointField
    from std_msgs.msg import Header

    from rtseg_ros.ros.conversions import fill_points

    depth_mm, labels = scene_mm()
    points = back_project(depth_metres(*as_message_fields(depth_mm, "16UC1")), K, labels,
                          np.full((H, W), 7, np.uint8))
    header = Header(frame_id="camera_color_optical_frame")
    msg = fill_points(PointCloud2(), points, header)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (H, W, 16, 16 * W)
    assert msg.header.frame_id == "camera_color_optical_frame" and not msg.is_dense and not msg.is_bigendian
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(H, W, msg.point_step)
    kinds = {PointField.FLOAT32: "<f4", PointField.UINT8: "u1"}
    read = {f.name: raw[..., f.offset:f.offset + np.dtype(kinds[f.datatype]).itemsize].copy()
            .view(kinds[f.datatype])[..., 0] for f in msg.fields}
    assert set(read) == {"x", "y", "z", "label", "confidence"}
    for name in read:
        assert np.array_equal(read[name], points[name], equal_nan=name in "xyz")
    dense = fill_points(PointCloud2(), points[np.isfinite(points["z"])], header)
    assert dense.height == 1 and dense.width == H * W - 100 and dense.is_dense
