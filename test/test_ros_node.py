"""segment_node: parameter rules and diagnostics arithmetic without DDS, then the node itself through real
rclpy/DDS (CPU, FarSee at a 64×128 network input, small frames): outputs against the Segmenter, every
input encoding, bad input, latest-frame-wins under a burst, lazy outputs, live parameters, QoS mismatch,
and the console script as users run it."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (pip install '.[ros]')")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rtseg_ros.common import stamp_to_ns  # noqa: E402
from rtseg_ros.ros import params  # noqa: E402
from rtseg_ros.runtime.choices import AUTO_ORDER  # noqa: E402
from rtseg_ros.ros.conversions import array_of  # noqa: E402
from rtseg_ros.ros.diagnostics import (ERROR, OK, WARN, FrameStats, Limits, ThrottledLog,  # noqa: E402
                                       segmentation_status)
from rtseg_ros.ros.segment_node import ManagedSegmentNode, SegmentNode, StartupError  # noqa: E402

from helpers import wait_for  # noqa: E402

# This module's own DDS domain (other test modules use others), varied by process so that two test runs
# on one machine do not see each other's nodes.
DOMAIN_ID = 90 + os.getpid() % 10
SMALL = {"model": "farsee", "weights": "random", "input_width": 128, "input_height": 64, "device": "cpu", "cpu_threads": 1}
H, W = 96, 160


# -- parameters and diagnostics, no DDS ----------------------------------------------------------------
def test_parameter_table_rules():
    assert params.check_value("overlay_alpha", 0.3) is None
    assert params.check_value("max_fps", 10) is None  # `ros2 param set max_fps 10` sends an integer
    assert "[0.0, 1.0]" in params.check_value("overlay_alpha", 1.5)
    assert "one of" in params.check_value("precision", "fp64")
    assert params.check_value("device", "cuda:1") is None and params.check_value("device", "gpu") is not None
    assert params.check_value("input_width", True) is not None
    assert "restart" in params.check_live_change("model", "ddrnet23")
    assert params.check_live_change("overlay_alpha", 0.2) is None
    assert params.check_live_change("use_sim_time", True) is None  # rclpy's own parameter: not ours to refuse
    problems = params.check_config({**params.DEFAULTS, "input_width": 128})
    assert any("input_height" in p for p in problems)
    assert params.check_config(dict(params.DEFAULTS)) == []
    live = {p.name for p in params.PARAMETERS if p.live}
    assert {"overlay_alpha", "max_fps", "publish_color", "publish_overlay", "publish_confidence"} <= live
    assert not live & {"model", "weights", "dataset", "device", "backend", "precision", "input_width", "input_height",
                       "output_resolution", "input_qos", "transport", "engine_cache_dir"}
    alpha = params.descriptor(params.BY_NAME["overlay_alpha"])
    assert alpha.floating_point_range[0].to_value == 1.0 and alpha.description
    table = params.markdown_table()
    assert all(f"`{p.name}`" in table for p in params.PARAMETERS)


def test_throttled_log_reports_first_then_once_per_period():
    now = [0.0]
    log = ThrottledLog(period_s=10.0, clock=lambda: now[0])
    assert log.check("step") == 0
    assert log.check("step") is None and log.check("step") is None
    assert log.check("encoding") == 0  # causes are throttled separately
    now[0] = 10.5
    assert log.check("step") == 2  # held back twice since the last line


def test_frame_stats_window_and_levels():
    now = [0.0]
    stats = FrameStats(clock=lambda: now[0])
    for i in range(10):
        stats.received(replaced=i % 2 == 1)
    for latency in range(1, 101):
        stats.published(float(latency), 6.0, {"inference": 4.0, "publish": 1.0}, 4.5)
    now[0] = 2.0
    report = stats.report(Limits(latency_warn_ms=200, latency_error_ms=1000))
    assert report.level == OK
    assert float(report.values["latency_p50_ms"]) == pytest.approx(50.5)
    assert float(report.values["latency_p95_ms"]) == pytest.approx(95.05)
    assert report.values["latency_max_ms"] == "100.00"
    assert report.values["fps"] == "50.00" and report.values["input_hz"] == "5.00"
    assert report.values["frames_replaced"] == "5" and report.values["stage_inference_ms"] == "4.00"
    assert report.values["overhead_p50_ms"] == "0.50"  # receipt→published beyond Segmenter and publishing
    # the next window starts empty; totals stay
    for _ in range(4):
        stats.received(False)
    stats.published(300.0, 5.0, {}, 4.5)
    stats.error("step")
    now[0] = 3.0
    report = stats.report(Limits(latency_warn_ms=200, latency_error_ms=1000, errors_warn_ratio=0.0))
    assert report.level == WARN and "latency p95 300" in report.message and "1 of 4 frames rejected" in report.message
    assert report.values["frames_published"] == "101" and report.values["errors_step"] == "1"
    stats.received(False)
    stats.error("encoding")
    stats.published(2000.0, 5.0, {}, 4.5)
    now[0] = 4.0
    assert stats.report(Limits()).level == ERROR  # 1 of 1 frames rejected ≥ 0.5, and latency ≥ 1000 ms
    stats.received(False)
    stats.count("stale")
    now[0] = 5.0
    report = stats.report(Limits())
    assert report.level == WARN and "1 of 1 frames skipped as older than max_age_ms" in report.message
    assert report.values["frames_stale"] == "1"


def test_segmentation_status_levels_facts_and_name():
    facts = {"model": "farsee", "backend": "openvino", "backend_requested": "auto",
             "backend_reason": "auto on cpu: first importable of openvino, onnxruntime, torch", "device": "cpu",
             "precision": "fp32", "weights": "w.pt"}
    config = {**params.DEFAULTS, "input_qos": "sensor_data"}
    live = {p.name: config[p.name] for p in params.PARAMETERS if p.live}

    def status(random_weights=False, qos_problems=None, received=5, enabled=True, input_hz=1.0):
        stats = FrameStats(clock=lambda: 1.0)
        report = stats.report(Limits())
        report.values["input_hz"] = f"{input_hz:.2f}"
        return segmentation_status(report, node_fqn="/robot1/segment_node", segmenter_facts=facts,
                                   random_weights=random_weights, config=config, live={**live, "enabled": enabled},
                                   input_topic="/cam/image", qos_problems=qos_problems or {},
                                   frames_received=received, network_input=(64, 96), image=None)

    ok = status()
    values = {kv.key: kv.value for kv in ok.values}
    assert ok.name == "/robot1/segment_node: segmentation" and ok.hardware_id == "cpu"
    assert ok.level == bytes([OK]) and values["network_input"] == "64x96" and values["image"] == "none yet"
    assert values["random_weights"] == "false" and values["input_qos"] == "sensor_data"
    assert values["backend"] == "openvino" and values["backend_choice"] == \
        "auto: auto on cpu: first importable of openvino, onnxruntime, torch"
    assert status(random_weights=True).level == bytes([WARN])
    assert status(received=0).level == bytes([WARN]) and "no frames received yet" in status(received=0).message
    disabled = status(received=0, enabled=False)
    assert disabled.level == bytes([OK]) and "disabled" in disabled.message
    assert status(qos_problems={"input": "x"}, input_hz=0.0).level == bytes([ERROR])  # it keeps every frame away
    assert status(qos_problems={"input": "x"}, input_hz=2.0).level == bytes([WARN])
    assert status(qos_problems={"labels": "y"}).level == bytes([WARN])


# -- the node through DDS ------------------------------------------------------------------------------
class Harness:
    """One rclpy context (own domain), a client node and an executor spinning in a thread."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.client = rclpy.create_node("rtseg_test_client", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.client)
        self.nodes = []
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def node(self, name, cli_args=None, namespace=None, node_class=SegmentNode, **overrides) -> SegmentNode:
        values = {**SMALL, **overrides}
        node = node_class(name, context=self.context, cli_args=cli_args, namespace=namespace,
                          use_global_arguments=False,
                          parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def collect(self, msg_type, topic, qos=10) -> list:
        received = []
        self.client.create_subscription(msg_type, topic, received.append, qos)
        return received

    def publisher(self, msg_type, topic, qos=10):
        return self.client.create_publisher(msg_type, topic, qos)

    def close(self):
        self.executor.shutdown(timeout_sec=5)
        for node in self.nodes:
            node.destroy_node()
        self.client.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def ros():
    threads = torch.get_num_threads()
    harness = Harness()
    yield harness
    harness.close()
    torch.set_num_threads(threads)


def scene(h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def now_stamp():
    sec, nanosec = divmod(time.time_ns(), 1_000_000_000)
    return sec, nanosec


def frame_msg(pixels, encoding="rgb8", frame_id="camera_optical", stamp=None):
    """An Image of ``pixels``, stamped now unless ``stamp`` (sec, nanosec) is given."""
    h, w = pixels.shape[:2]
    msg = Image(height=h, width=w, encoding=encoding, step=pixels.reshape(h, -1).shape[1], data=pixels.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp or now_stamp()
    msg.header.frame_id = frame_id
    return msg


def stamp_of(msg):
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def publish_until(pub, msg, received, timeout=15.0):
    """Publish ``msg`` (best-effort input may drop it) until its output shows up in ``received``."""
    deadline = time.monotonic() + timeout

    def output():
        return next((m for m in reversed(received) if stamp_of(m) == stamp_of(msg)
                     and m.header.frame_id == msg.header.frame_id), None)

    while output() is None:
        assert time.monotonic() < deadline, f"no output for {msg.header.frame_id} within {timeout} s"
        pub.publish(msg)
        wait_until = time.monotonic() + 0.5
        while output() is None and time.monotonic() < wait_until:
            time.sleep(0.005)
    return output()


def publish_until_counted(pub, msg, counted, what, timeout=10.0):
    """Publish ``msg`` (best-effort input may drop it) until ``counted()`` is true: for frames with no output."""
    deadline = time.monotonic() + timeout
    while not counted():
        assert time.monotonic() < deadline, f"{what} not counted within {timeout} s"
        pub.publish(msg)
        time.sleep(0.05)


def status_of(diagnostics, name):
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name == name:
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


def connected(node, *outputs):
    return lambda: all(node.image_pubs[o].get_subscription_count() for o in outputs)


@pytest.fixture(scope="module")
def seg_a(ros):
    """The main node: every output subscribed, confidence on, a camera_info input."""
    # Latency limits out of reach: publish_until re-sends a dropped frame with its old stamp, so on a loaded
    # machine its latency can pass the default limits and turn the status ERROR. The levels' latency rules
    # are tested on FrameStats above; here the level must come from the random weights alone.
    node = ros.node("seg_a", cli_args=["--ros-args", "-r", "image:=/cam_a/image_raw"], publish_confidence=True,
                    latency_warn_ms=1e6, latency_error_ms=1e6)
    outputs = {name: ros.collect(Image, f"/seg_a/{name}") for name in ("labels", "color", "overlay", "confidence")}
    outputs["camera_info"] = ros.collect(CameraInfo, "/seg_a/camera_info")
    outputs["diagnostics"] = ros.collect(DiagnosticArray, "/diagnostics")
    wait_for(connected(node, "labels", "color", "overlay", "confidence"), what="output subscriptions")
    return node, outputs, ros.publisher(Image, "/cam_a/image_raw"), ros.publisher(CameraInfo, "/cam_a/camera_info")


def test_outputs_copy_the_header_and_match_the_segmenter(ros, seg_a):
    node, out, pub, info_pub = seg_a
    info = CameraInfo(width=W, height=H, distortion_model="plumb_bob", k=[100.0, 0, 80, 0, 100.0, 48, 0, 0, 1])
    wait_for(lambda: node.camera_info_sub.get_publisher_count(), what="camera_info connection")
    wait_for(lambda: (info_pub.publish(info), node._camera_info is not None)[1], what="camera_info input")
    wait_for(lambda: node.camera_info_pub.get_subscription_count(), what="camera_info output subscription")
    rgb = scene()
    sent = frame_msg(rgb, frame_id="cam_a_optical")
    labels_msg = publish_until(pub, sent, out["labels"])
    wait_for(lambda: out["overlay"] and out["color"] and out["confidence"] and out["camera_info"], what="all outputs")
    for name, encoding, channels in (("labels", "mono8", 1), ("color", "rgb8", 3), ("overlay", "rgb8", 3),
                                     ("confidence", "mono8", 1)):
        msg = out[name][-1]
        assert (stamp_of(msg), msg.header.frame_id) == (stamp_of(sent), "cam_a_optical"), name
        assert (msg.encoding, msg.height, msg.width, msg.step) == (encoding, H, W, W * channels), name
    info_out = out["camera_info"][-1]
    assert (stamp_of(info_out), info_out.header.frame_id) == (stamp_of(sent), "cam_a_optical")
    assert (info_out.width, info_out.height, list(info_out.k)) == (W, H, list(info.k))

    # the same frame through the node's Segmenter directly (the node is idle now)
    time.sleep(0.2)
    reference = node.segmenter(rgb, "rgb8", outputs=("labels", "color", "overlay", "confidence"), overlay_alpha=0.5)
    labels = array_of(labels_msg)
    np.testing.assert_array_equal(labels, reference.labels)
    np.testing.assert_array_equal(array_of(out["confidence"][-1]), reference.confidence)
    palette = node.segmenter.dataset.palette
    np.testing.assert_array_equal(array_of(out["color"][-1]), palette[labels])
    blend = 0.5 * rgb + 0.5 * palette[labels].astype(float)
    assert np.abs(array_of(out["overlay"][-1]).astype(float) - blend).max() <= 1.0


def test_given_neither_model_nor_weights_the_node_runs_the_best_shipped_model(ros):
    from rtseg_ros.models import pretrained

    node = ros.node("seg_shipped", model="", weights="")
    assert (node.segmenter.loaded.name, node.segmenter.dataset.name) == ("sgcpnet", "camvid")
    assert not node.segmenter.random_weights and pretrained.DEFAULT in node.segmenter.loaded.weights_note


def test_a_model_alone_runs_its_shipped_weights_and_says_so_in_class_info(ros):
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    class_info = ros.collect(String, "/seg_farsee/class_info", latched)
    node = ros.node("seg_farsee", model="farsee", weights="")
    assert (node.segmenter.loaded.name, node.segmenter.dataset.name, node.segmenter.random_weights) == \
        ("farsee", "camvid", False)
    wait_for(lambda: class_info, what="class_info")
    info = json.loads(class_info[-1].data)
    assert info["weights"].startswith("farsee_camvid ") and info["random_weights"] is False


def test_class_info_is_latched_json(ros, seg_a):
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    class_info = ros.collect(String, "/seg_a/class_info", latched)  # subscribed long after it was published
    wait_for(lambda: class_info, what="class_info")
    doc = json.loads(class_info[0].data)
    assert doc["model"] == "farsee" and doc["dataset"] == "cityscapes" and doc["random_weights"] is True
    assert [c["name"] for c in doc["classes"]][:3] == ["road", "sidewalk", "building"]
    assert doc["classes"][13] == {"id": 13, "name": "car", "color": [0, 0, 142]}


def test_diagnostics_report_rates_latency_stages_and_facts(ros, seg_a):
    node, out, pub, _ = seg_a
    published = node.stats.totals["published"]
    publish_until(pub, frame_msg(scene(seed=3)), out["labels"])
    wait_for(lambda: int(status_of(out["diagnostics"], "/seg_a: segmentation")[1].get("frames_published", 0))
             > published, what="diagnostics with this frame")
    status, values = status_of(out["diagnostics"], "/seg_a: segmentation")
    for key in ("fps", "input_hz", "latency_p50_ms", "latency_p95_ms", "latency_max_ms", "stage_decode_ms",
                "stage_inference_ms", "stage_postprocess_ms", "stage_publish_ms", "segmenter_p50_ms", "overhead_p50_ms",
                "frames_received", "frames_published", "frames_replaced", "errors", "model", "backend", "device",
                "precision", "weights", "network_input", "image"):
        assert key in values, key
    # backend:=auto is the default: on the CPU the fastest engine measured at start-up, and the status says so
    assert (values["model"], values["backend"], values["device"], values["precision"]) == \
        ("farsee", node.segmenter.backend_name, "cpu", "fp32")
    assert values["backend"] in AUTO_ORDER["cpu"]
    assert values["backend_choice"].startswith("auto: auto on cpu: fastest at 128x64 here (")
    assert values["image"] == f"{W}x{H} rgb8" and values["network_input"] == "64x96"
    # random weights are said loudly
    assert status.level == DiagnosticStatus.WARN and "RANDOM WEIGHTS" in status.message
    assert values["random_weights"] == "true"


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "bgra8", "mono8", "bayer_rggb8", "yuv422"])
def test_every_input_encoding_is_segmented(ros, seg_a, encoding):
    node, out, pub, _ = seg_a
    rgb = scene(seed=1)
    reference = publish_until(pub, frame_msg(rgb), out["labels"])
    alpha = np.full((H, W, 1), 9, np.uint8)
    pixels = {"bgr8": rgb[..., ::-1], "rgba8": np.dstack([rgb, alpha]), "bgra8": np.dstack([rgb[..., ::-1], alpha]),
              "mono8": rgb[..., :1], "bayer_rggb8": rgb[..., :1], "yuv422": np.dstack([rgb[..., 0], rgb[..., 1]])}
    sent = frame_msg(np.ascontiguousarray(pixels[encoding]), encoding)
    msg = publish_until(pub, sent, out["labels"])
    assert (stamp_of(msg), msg.height, msg.width) == (stamp_of(sent), H, W)
    if encoding in ("bgr8", "rgba8", "bgra8"):  # the same colours in another layout: the same labels
        np.testing.assert_array_equal(array_of(msg), array_of(reference))


def test_bad_input_is_skipped_counted_and_the_node_keeps_going(ros, seg_a):
    node, out, pub, _ = seg_a
    bad = {
        "encoding": Image(height=H, width=W, encoding="32FC1", step=W * 4, data=bytes(H * W * 4)),
        "step": Image(height=H, width=W, encoding="rgb8", step=W, data=bytes(H * W)),
        "empty": Image(height=0, width=0, encoding="rgb8", step=0, data=b""),
        "data_size": Image(height=H, width=W, encoding="rgb8", step=W * 3, data=bytes(H * W * 3 // 2)),
        "too_large": Image(height=20000, width=20000, encoding="rgb8", step=60000, data=bytes(H * W * 3)),
    }
    for msg in bad.values():  # marked, so an output made from a bad frame would be recognised
        msg.header.frame_id = "bad_frame"
    for cause, msg in bad.items():
        start = node.stats.errors[cause]
        publish_until_counted(pub, msg, lambda: node.stats.errors[cause] > start, cause)
        assert node.stats.errors[cause] >= 1
    publish_until(pub, frame_msg(scene()), out["labels"])  # the next good frame goes through
    assert not [m for m in out["labels"] if m.header.frame_id == "bad_frame"]  # and nothing came out of bad ones
    wait_for(lambda: all(f"errors_{c}" in status_of(out["diagnostics"], "/seg_a: segmentation")[1] for c in bad),
             what="errors by cause in diagnostics")


def test_size_change_mid_stream(ros, seg_a):
    node, out, pub, _ = seg_a
    publish_until(pub, frame_msg(scene()), out["labels"])
    reallocations = node.segmenter.reallocations
    msg = publish_until(pub, frame_msg(scene(64, 80)), out["labels"])
    assert (msg.height, msg.width) == (64, 80)
    assert node.segmenter.reallocations == reallocations + 1
    msg = publish_until(pub, frame_msg(scene()), out["labels"])
    assert (msg.height, msg.width) == (H, W)


class LogRecorder:
    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda text: self.lines.append((level, text))


def test_alternating_sizes_are_logged_once_then_throttled(ros, seg_a, monkeypatch):
    """Issue 15: a stream alternating between two sizes reallocates on every frame but must not log on
    every frame: the first change, then one line per period with the count held back (an injected clock)."""
    node, out, pub, _ = seg_a
    publish_until(pub, frame_msg(scene()), out["labels"])
    now, log = [0.0], LogRecorder()
    monkeypatch.setattr(node, "throttle", ThrottledLog(period_s=10.0, clock=lambda: now[0]))
    monkeypatch.setattr(node, "get_logger", lambda: log)
    for size in [(64, 80), (H, W)] * 2:
        publish_until(pub, frame_msg(scene(*size)), out["labels"])
    changes = [text for level, text in log.lines if "buffers reallocated" in text]
    assert changes == [f"input changed from {W}x{H} rgb8 to 80x64 rgb8: buffers reallocated"]
    now[0] = 10.5
    publish_until(pub, frame_msg(scene(64, 80)), out["labels"])
    changes = [text for level, text in log.lines if "buffers reallocated" in text]
    assert changes[1:] == [f"input changed from {W}x{H} rgb8 to 80x64 rgb8: buffers reallocated "
                           "(3 more since the last report)"]
    publish_until(pub, frame_msg(scene()), out["labels"])


def test_diagnostics_name_the_node_by_its_fully_qualified_name(ros):
    """Issue 10 item 5: two nodes of one name in two namespaces publish two statuses told apart."""
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    for namespace in ("robot1", "robot2"):
        ros.node("segment_node", namespace=namespace, cli_args=["--ros-args", "-r", f"image:=/{namespace}/cam"])
    for name in ("/robot1/segment_node: segmentation", "/robot2/segment_node: segmentation"):
        wait_for(lambda: status_of(diagnostics, name)[0] is not None, what=f"status {name}")
        assert status_of(diagnostics, name)[1]["input_topic"] == f"/{name.split('/')[1]}/cam"


def test_network_resolution_outputs_and_their_camera_info(ros):
    node = ros.node("seg_net", cli_args=["--ros-args", "-r", "image:=/net/image"], output_resolution="network",
                    publish_color=False, publish_overlay=False)
    labels = ros.collect(Image, "/seg_net/labels")
    infos = ros.collect(CameraInfo, "/seg_net/camera_info")
    pub, info_pub = ros.publisher(Image, "/net/image"), ros.publisher(CameraInfo, "/net/camera_info")
    wait_for(lambda: connected(node, "labels")() and node.camera_info_pub.get_subscription_count(),
             what="output subscriptions")
    wait_for(lambda: node.camera_info_sub.get_publisher_count(), what="camera_info connection")
    info = CameraInfo(width=W, height=H, k=[100.0, 0, 79.5, 0, 100.0, 47.5, 0, 0, 1])
    wait_for(lambda: (info_pub.publish(info), node._camera_info is not None)[1], what="camera_info input")
    sent = frame_msg(scene())
    msg = publish_until(pub, sent, labels)
    assert (msg.height, msg.width) == (64, 96)  # 96×160 fitted into 64×128, aspect kept, multiples of 32
    wait_for(lambda: infos and stamp_of(infos[-1]) == stamp_of(sent), what="camera_info of this frame")
    out = infos[-1]
    assert (out.width, out.height) == (96, 64)
    assert out.k[0] == pytest.approx(100.0 * 96 / 160) and out.k[4] == pytest.approx(100.0 * 64 / 96)
    assert out.k[2] == pytest.approx(47.5) and out.k[5] == pytest.approx(31.5)  # the centres stay centred


def set_parameters(ros, node_name, **values):
    client = ros.client.create_client(SetParameters, f"/{node_name}/set_parameters")
    assert client.wait_for_service(timeout_sec=10)
    request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    future = client.call_async(request)
    # a liveness bound, not a speed check: the executor's two threads also serve every other test node, and a
    # loaded CI machine once needed more than 15 s here
    wait_for(future.done, timeout=60.0, what="set_parameters response")
    ros.client.destroy_client(client)
    return future.result().results


def test_live_parameters_through_the_parameter_service(ros, seg_a):
    node, out, pub, _ = seg_a
    results = set_parameters(ros, "seg_a", overlay_alpha=0.0)
    assert results[0].successful
    rgb = scene(seed=7)
    sent = frame_msg(rgb)
    publish_until(pub, sent, out["labels"])
    wait_for(lambda: out["overlay"] and stamp_of(out["overlay"][-1]) == stamp_of(sent), what="overlay of this frame")
    np.testing.assert_array_equal(array_of(out["overlay"][-1]), rgb)  # alpha 0: the image itself
    (result,) = set_parameters(ros, "seg_a", model="ddrnet23")
    assert not result.successful and "restart" in result.reason
    (result,) = set_parameters(ros, "seg_a", overlay_alpha=1.5)
    assert not result.successful
    (result,) = set_parameters(ros, "seg_a", max_fps=20)  # an integer for a float parameter: accepted
    assert result.successful and node.live["max_fps"] == 20.0
    assert set_parameters(ros, "seg_a", overlay_alpha=0.5, max_fps=0.0)[0].successful


def test_disabled_node_lets_go_of_the_camera_until_enabled(ros):
    node = ros.node("seg_off", cli_args=["--ros-args", "-r", "image:=/off/image"], enabled=False)
    labels = ros.collect(Image, "/seg_off/labels")
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    pub = ros.publisher(Image, "/off/image")
    wait_for(connected(node, "labels"), what="labels subscription")
    assert node.image_sub is None and pub.get_subscription_count() == 0  # the camera sees no subscriber
    wait_for(lambda: "disabled" in getattr(status_of(diagnostics, "/seg_off: segmentation")[0], "message", ""),
             what="diagnostics saying disabled")
    status, values = status_of(diagnostics, "/seg_off: segmentation")
    assert status.level == DiagnosticStatus.WARN  # random weights; being disabled itself is no problem
    assert values["enabled"] == "false"

    assert set_parameters(ros, "seg_off", enabled=True)[0].successful
    wait_for(lambda: pub.get_subscription_count(), what="the camera subscription back")
    publish_until(pub, frame_msg(scene()), labels)
    assert set_parameters(ros, "seg_off", enabled=False)[0].successful
    wait_for(lambda: pub.get_subscription_count() == 0, what="the camera subscription gone")
    assert node.image_sub is None and not node.latest.held


def test_frames_older_than_max_age_are_skipped_and_counted(ros):
    node = ros.node("seg_age", cli_args=["--ros-args", "-r", "image:=/age/image"], max_age_ms=5000.0)
    labels = ros.collect(Image, "/seg_age/labels")
    pub = ros.publisher(Image, "/age/image")
    wait_for(connected(node, "labels"), what="labels subscription")
    wait_for(lambda: pub.get_subscription_count(), what="input connection")
    sec, nanosec = now_stamp()
    old = frame_msg(scene(), frame_id="old", stamp=(sec - 60, nanosec))
    publish_until_counted(pub, old, lambda: node.stats.totals["stale"], "a stale frame")
    unstamped = frame_msg(scene(), frame_id="unstamped", stamp=(0, 0))  # no stamp: no age, never stale
    publish_until(pub, unstamped, labels)
    publish_until(pub, frame_msg(scene(), frame_id="fresh"), labels)
    assert not [m for m in labels if m.header.frame_id == "old"]
    assert set_parameters(ros, "seg_age", max_age_ms=0.0)[0].successful  # off: every frame is segmented
    publish_until(pub, old, labels)


def test_max_fps_caps_the_rate(ros):
    node = ros.node("seg_fps", max_fps=4.0, publish_color=False, publish_overlay=False)
    labels = ros.collect(Image, "/seg_fps/labels")
    pub = ros.publisher(Image, "/image")
    wait_for(connected(node, "labels"), what="labels subscription")
    wait_for(lambda: pub.get_subscription_count(), what="input connection")
    publish_until(pub, frame_msg(scene(48, 80), frame_id="warm-up"), labels)  # buffers allocated
    labels.clear()
    msg, start = frame_msg(scene(48, 80)), time.monotonic()
    while time.monotonic() - start < 2.0:  # 2 s at ~40 Hz
        pub.publish(msg)
        time.sleep(0.025)
    time.sleep(0.3)
    # The cap is an upper bound (a slow machine only lowers the count): 2.3 s at 4 Hz is at most 10.
    assert 1 <= len(labels) <= 10, len(labels)
    assert node.stats.totals["replaced"] > 0


def test_sequence_gaps_count_the_frames_each_publisher_lost():
    from rtseg_ros.ros.diagnostics import SequenceGaps

    gaps = SequenceGaps()
    assert [gaps.missing(b"a", n) for n in (1, 2, 5, 6)] == [0, 0, 2, 0]
    assert gaps.missing(b"b", 40) == 0  # another publisher, first seen: nothing known before it
    assert gaps.missing(b"a", 1) == 0 and gaps.missing(b"a", 3) == 1  # a publisher that started again
    assert gaps.missing(b"a", None) == 0  # an RMW without sequence numbers


def test_latest_frame_wins_under_a_burst(ros):
    node = ros.node("seg_burst", cli_args=["--ros-args", "-r", "image:=/burst/image"])
    labels = ros.collect(Image, "/seg_burst/labels")
    pub = ros.publisher(Image, "/burst/image", 50)
    wait_for(connected(node, "labels"), what="labels subscription")
    wait_for(lambda: pub.get_subscription_count(), what="input connection")
    publish_until(pub, frame_msg(scene(), frame_id="warm-up"), labels)  # buffers allocated, engine compiled
    # The warm-up frame is published again until answered (a cold engine compiles on the first frame), so
    # more than one warm-up may be answered: wait until the node is idle and count from there.
    totals = node.stats.totals
    wait_for(lambda: totals["published"] + totals["replaced"] == totals["received"] and not node.latest.held,
             timeout=20, what=f"the warm-up frames done: {totals}")
    time.sleep(0.2)  # a warm-up frame still on the wire arrives now, before the count starts
    wait_for(lambda: totals["published"] + totals["replaced"] == totals["received"] and not node.latest.held,
             timeout=20, what=f"the warm-up frames done: {totals}")
    accounted_before = totals["received"] + totals["lost"]

    def burst_labels():
        return [m for m in labels if m.header.frame_id != "warm-up"]

    msgs = [frame_msg(scene(seed=i % 3), frame_id=str(i)) for i in range(50)]
    for msg in msgs:  # at ~400 Hz, about ten frames per inference
        msg.header.stamp.sec, msg.header.stamp.nanosec = now_stamp()
        pub.publish(msg)
        time.sleep(0.0025)
    arrived_before_last_sent = len(burst_labels())
    wait_for(lambda: labels[-1].header.frame_id == "49", timeout=20, what="the newest frame's labels")
    done = [int(m.header.frame_id) for m in burst_labels()]
    assert done == sorted(set(done)) and done[-1] == 49  # in order, none twice, the newest always
    assert len(done) < 25, f"the node worked through a queue of stale frames: {done}"
    # Bounded latency without timing it: once the last frame is sent, a queue would still have to work
    # through every frame before it; latest-frame-wins finishes at most the frame in progress (plus
    # one already on the wire) before the newest.
    assert len(done) - arrived_before_last_sent <= 3, done
    # the node counts a frame as published just after its last publish call
    wait_for(lambda: totals["published"] + totals["replaced"] == totals["received"], timeout=5,
             what=f"every frame published or replaced: {totals}")
    assert totals["replaced"] > 0
    # every frame sent is accounted for: received (then published or replaced in the node's slot), or lost
    # before the node took it (overwritten in the depth-1 DDS reader: a gap in the publisher's sequence)
    assert totals["received"] + totals["lost"] - accounted_before == len(msgs), dict(totals)
    assert not node.stats.errors  # nothing rejected
    time.sleep(0.1)
    assert not node.latest.held


def test_outputs_without_subscribers_are_not_computed(ros):
    node = ros.node("seg_lazy", cli_args=["--ros-args", "-r", "image:=/lazy/image"])
    segmenter, calls = node.segmenter, []  # already run once: the start-up engine build

    class CountingSegmenter:
        def __getattr__(self, name):
            return getattr(segmenter, name)

        def __call__(self, *args, **kwargs):
            calls.append(kwargs.get("outputs"))
            return segmenter(*args, **kwargs)

    node.segmenter = CountingSegmenter()
    pub = ros.publisher(Image, "/lazy/image")
    wait_for(lambda: pub.get_subscription_count(), what="input connection")
    wait_for(lambda: (pub.publish(frame_msg(scene())), node.stats.totals["skipped_no_subscribers"] > 0)[1],
             what="a skipped frame")
    assert node.stats.totals["published"] == 0 and not calls  # never ran

    labels = ros.collect(Image, "/seg_lazy/labels")
    wait_for(connected(node, "labels"), what="labels subscription")
    publish_until(pub, frame_msg(scene()), labels)
    assert node.segmenter._key[3] == ("labels",)  # colour, overlay, confidence not computed

    color = ros.collect(Image, "/seg_lazy/color")
    wait_for(connected(node, "color"), what="color subscription")
    publish_until(pub, frame_msg(scene()), color)
    assert node.segmenter._key[3] == ("labels", "color")

    assert set_parameters(ros, "seg_lazy", publish_color=False)[0].successful
    publish_until(pub, frame_msg(scene(), frame_id="colour_off"), labels)
    assert node.segmenter._key[3] == ("labels",)
    assert not [m for m in color if m.header.frame_id == "colour_off"]


def test_compressed_transport_follows_the_image_remapping(ros):
    node = ros.node("seg_jpeg", cli_args=["--ros-args", "-r", "image:=/cam_c/image_raw"], transport="compressed",
                    publish_color=False, publish_overlay=False)
    assert node.input_topic == "/cam_c/image_raw/compressed"
    labels = ros.collect(Image, "/seg_jpeg/labels")
    pub = ros.publisher(CompressedImage, "/cam_c/image_raw/compressed")
    wait_for(connected(node, "labels"), what="labels subscription")
    jpeg = CompressedImage(format="rgb8; jpeg compressed bgr8", data=cv2.imencode(".jpg", scene())[1].tobytes())
    jpeg.header.stamp.sec, jpeg.header.frame_id = 42, "cam_c"
    msg = publish_until(pub, jpeg, labels)
    assert (stamp_of(msg), msg.header.frame_id, msg.height, msg.width) == ((42, 0), "cam_c", H, W)
    garbage = CompressedImage(format="jpeg", data=np.random.default_rng(0).integers(0, 256, 999, np.uint8).tobytes())
    wait_for(lambda: (pub.publish(garbage), node.stats.errors["decode"] > 0)[1], what="a decode error")
    publish_until(pub, jpeg, labels)  # still running


def test_incompatible_qos_is_reported_with_the_fix(ros):
    node = ros.node("seg_qos", cli_args=["--ros-args", "-r", "image:=/qos/image"], input_qos="reliable")
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    ros.publisher(Image, "/qos/image", best_effort)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    ros.collect(Image, "/seg_qos/labels", latched)  # asks for what the output does not offer
    wait_for(lambda: "input" in node._qos_problems and "labels" in node._qos_problems, what="QoS events")
    assert "input_qos:=sensor_data" in node._qos_problems["input"]
    assert "DURABILITY" in node._qos_problems["labels"]
    wait_for(lambda: status_of(diagnostics, "/seg_qos: segmentation")[0] is not None, what="diagnostics")
    status, _ = status_of(diagnostics, "/seg_qos: segmentation")
    assert status.level == DiagnosticStatus.ERROR and "incompatible QoS" in status.message


@pytest.mark.parametrize("overrides,message", [
    ({"model": "no_such_net"}, "unknown model 'no_such_net'"),
    ({"weights": "/nonexistent/best.pt"}, "weights file not found"),
    ({"precision": "fp64"}, "precision must be one of"),
    ({"input_width": 128, "input_height": 0}, "input_width and input_height"),
    ({"backend": "torch", "precision": "int8"}, "precision int8 runs on backend openvino or onnxruntime"),
    ({"backend": "onnxruntime", "precision": "int8", "engine_cache_dir": "/nonexistent/cache"},
     "rtseg-export --weights <the same weights> --int8"),
])
def test_start_up_errors_are_one_clear_message(ros, overrides, message):
    with pytest.raises(StartupError) as info:
        ros.node("seg_bad", **{**SMALL, **overrides})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_corrupt_weights_file_fails_at_start_up(ros, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(StartupError, match="cannot read weights file"):
        ros.node("seg_bad", weights=str(corrupt))


# -- the console script, as users run it -----------------------------------------------------------------
def console_script():
    script = shutil.which("segment_node")
    return [script] if script else [sys.executable, "-m", "rtseg_ros.ros.segment_node"]


def script_env():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("interrupts", [1, 2])
def test_console_script_segments_and_stops_cleanly(ros, interrupts):
    """Ctrl-C on `ros2 launch` reaches a node twice (the terminal signals the whole process group and launch
    forwards its own SIGINT); the second one used to interrupt the shutdown with a traceback."""
    labels = ros.collect(Image, "/script_seg/labels")
    process = subprocess.Popen(
        console_script() + ["--ros-args", "-r", "__node:=script_seg", "-r", "image:=/script/image",
                            "-p", "model:=farsee", "-p", "weights:=random", "-p", "input_width:=128",
                            "-p", "input_height:=64",
                            "-p", "device:=cpu", "-p", "cpu_threads:=1"],
        env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pub = ros.publisher(Image, "/script/image")
        msg = frame_msg(scene(), frame_id="script_cam")
        deadline = time.monotonic() + 60
        while not labels:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no labels from the console script within 60 s"
            pub.publish(msg)
            time.sleep(0.1)
        assert (stamp_of(labels[0]), labels[0].header.frame_id) == (stamp_of(msg), "script_cam")
        for _ in range(interrupts):
            process.send_signal(signal.SIGINT)
            time.sleep(0.05)
        output = process.communicate(timeout=20)[0]
        assert process.returncode == 0, output
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_console_script_with_bad_weights_exits_with_one_line():
    result = subprocess.run(console_script() + ["--ros-args", "-p", "weights:=/nonexistent/best.pt",
                                                "-p", "device:=cpu"],
                            env=script_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "weights file not found: /nonexistent/best.pt" in lines[0] and "Traceback" not in lines[0]


def test_console_script_with_a_parameter_missing_its_value_exits_with_one_line():
    """Issue 15: `-p model:=` (no value) was an rclpy traceback."""
    result = subprocess.run(console_script() + ["--ros-args", "-p", "model:="],
                            env=script_env(), capture_output=True, text=True, timeout=60)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, lines
    assert "invalid ROS arguments" in lines[0] and "'-p model:='" in lines[0] and "Traceback" not in lines[0]


# -- managed (lifecycle) node ----------------------------------------------------------------------------
def call(ros, service_type, name, request, wait_s=10.0):
    client = ros.client.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=wait_s), f"no service {name}"
    future = client.call_async(request)
    wait_for(future.done, timeout=60.0, what=f"{name} response")  # a liveness bound, as in set_parameters
    ros.client.destroy_client(client)
    return future.result()


def transition(ros, node_name, label) -> bool:
    """``ros2 lifecycle set <node> <label>`` through the node's change_state service."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
           "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
           "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
    request = ChangeState.Request(transition=Transition(id=ids[label]))
    return call(ros, ChangeState, f"/{node_name}/change_state", request).success


def state_of(ros, node_name, wait_s=10.0) -> str:
    from lifecycle_msgs.srv import GetState

    return call(ros, GetState, f"/{node_name}/get_state", GetState.Request(), wait_s).current_state.label


def test_managed_node_walks_the_lifecycle(ros):
    """Unconfigured holds nothing; configure loads the model without subscribing; activate segments;
    deactivate lets go of the camera and keeps the model; cleanup frees it; activate works again after a
    new configure."""
    node = ros.node("managed_seg", cli_args=["--ros-args", "-r", "image:=/managed/image"],
                    node_class=ManagedSegmentNode)
    pub = ros.publisher(Image, "/managed/image")
    labels = ros.collect(Image, "/managed_seg/labels")
    assert state_of(ros, "managed_seg") == "unconfigured" and node.segmenter is None
    assert ros.client.count_publishers("/managed_seg/labels") == 0
    assert transition(ros, "managed_seg", "configure") and state_of(ros, "managed_seg") == "inactive"
    assert node.segmenter is not None and pub.get_subscription_count() == 0  # loaded, not listening
    for cycle in range(2):
        assert transition(ros, "managed_seg", "activate") and state_of(ros, "managed_seg") == "active"
        wait_for(lambda: pub.get_subscription_count() == 1 and node.image_pubs["labels"].get_subscription_count(),
                 what="the camera subscription and the labels subscriber")
        msg = frame_msg(scene(), frame_id=f"cycle{cycle}")
        assert publish_until(pub, msg, labels).header.frame_id == f"cycle{cycle}"
        assert transition(ros, "managed_seg", "deactivate") and state_of(ros, "managed_seg") == "inactive"
        wait_for(lambda: pub.get_subscription_count() == 0, what="the camera released")
        assert node.segmenter is not None
    answered = node.stats.totals["published"]
    pub.publish(frame_msg(scene(), frame_id="inactive"))
    time.sleep(0.5)
    assert node.stats.totals["published"] == answered  # inactive: nothing computed
    assert transition(ros, "managed_seg", "cleanup") and state_of(ros, "managed_seg") == "unconfigured"
    assert node.segmenter is None
    wait_for(lambda: ros.client.count_publishers("/managed_seg/labels") == 0, what="the publishers gone")
    assert transition(ros, "managed_seg", "shutdown") and state_of(ros, "managed_seg") == "finalized"


def test_a_failed_configure_is_one_line_and_a_fixed_parameter_configures(ros, monkeypatch):
    node = ros.node("managed_bad", node_class=ManagedSegmentNode, weights="/nonexistent/best.pt")
    errors = []
    monkeypatch.setattr(node.get_logger(), "error", errors.append)
    assert not transition(ros, "managed_bad", "configure")
    assert state_of(ros, "managed_bad") == "unconfigured" and node.segmenter is None
    assert len(errors) == 1 and "configure failed" in errors[0] and "/nonexistent/best.pt" in errors[0]
    # unconfigured, start-up parameters may change: configure reads them all
    assert all(r.successful for r in set_parameters(ros, "managed_bad", weights="random"))
    assert transition(ros, "managed_bad", "configure") and node.segmenter.random_weights
    assert not set_parameters(ros, "managed_bad", weights="/other.pt")[0].successful  # configured: start-up only


def test_console_script_managed_starts_unconfigured_and_segments_once_active(ros):
    labels = ros.collect(Image, "/script_managed/labels")
    process = subprocess.Popen(
        console_script() + ["--managed", "--ros-args", "-r", "__node:=script_managed", "-r",
                            "image:=/script_managed_cam/image", *sum((["-p", f"{k}:={v}"] for k, v in SMALL.items()), [])],
        env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # a liveness bound: the process imports torch and rclpy first, slow on a loaded machine
        assert state_of(ros, "script_managed", wait_s=60.0) == "unconfigured"
        assert transition(ros, "script_managed", "configure") and transition(ros, "script_managed", "activate")
        pub = ros.publisher(Image, "/script_managed_cam/image")
        wait_for(lambda: pub.get_subscription_count() == 1, timeout=30, what="the managed script's subscription")
        publish_until(pub, frame_msg(scene(), frame_id="managed_script"), labels, timeout=30)
        assert transition(ros, "script_managed", "deactivate") and transition(ros, "script_managed", "cleanup")
        assert transition(ros, "script_managed", "shutdown")  # finalized: the process ends by itself
        output = process.communicate(timeout=20)[0]
        assert process.returncode == 0 and "Traceback" not in output, output
        assert "configured in" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# -- labels in 3D ------------------------------------------------------------------------------------------
def depth_msg(depth_mm: np.ndarray, stamp, frame_id="camera_optical"):
    h, w = depth_mm.shape
    msg = Image(height=h, width=w, encoding="16UC1", step=2 * w, data=depth_mm.astype("<u2").tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id
    return msg


def test_points_carry_the_labels_in_3d_with_the_frames_header(ros):
    from sensor_msgs.msg import PointCloud2

    from rtseg_ros.ros.conversions import points_of
    from rtseg_ros.runtime.points import POINT_DTYPE

    node = ros.node("seg_3d", cli_args=["--ros-args", "-r", "image:=/cam_3d/image_raw"], depth="/cam_3d/depth",
                    depth_tolerance_ms=5.0)
    points, labels = ros.collect(PointCloud2, "/seg_3d/points"), ros.collect(Image, "/seg_3d/labels")
    image_pub, depth_pub = ros.publisher(Image, "/cam_3d/image_raw"), ros.publisher(Image, "/cam_3d/depth")
    info_pub = ros.publisher(CameraInfo, "/cam_3d/camera_info")
    fx, cx, cy = 100.0, 79.5, 47.5
    info = CameraInfo(width=W, height=H, k=[fx, 0, cx, 0, fx, cy, 0, 0, 1])
    wait_for(lambda: node.points_pub.get_subscription_count() and depth_pub.get_subscription_count(),
             what="points subscriber and depth subscription")
    wait_for(lambda: (info_pub.publish(info), node._camera_info is not None)[1], what="camera_info")
    depth = np.full((H, W), 2000, np.uint16)
    depth[:, :40] = 0  # no reading on the left
    stamp = now_stamp()
    depth_pub.publish(depth_msg(depth, (stamp[0], stamp[1] + 1000)))  # 1 µs off: within the tolerance
    wait_for(lambda: len(node._depths) > 0, what="the depth image queued")
    cloud = publish_until(image_pub, frame_msg(scene(), frame_id="camera_optical", stamp=stamp), points)
    label_msg = next(m for m in labels if stamp_of(m) == stamp)
    xyz = points_of(cloud, POINT_DTYPE)
    assert (cloud.height, cloud.width, cloud.header.frame_id) == (H, W, "camera_optical")
    assert np.array_equal(xyz["label"], array_of(label_msg))
    assert np.isnan(xyz["z"][:, :40]).all() and np.allclose(xyz["z"][:, 40:], 2.0)
    assert xyz["x"][10, 100] == pytest.approx((100 - cx) * 2.0 / fx, abs=1e-3)
    assert xyz["y"][10, 100] == pytest.approx((10 - cy) * 2.0 / fx, abs=1e-3)
    # a frame without depth of its stamp, and a depth image of another view: counted, labels still published
    late = frame_msg(scene(seed=1), frame_id="no_depth", stamp=(stamp[0] + 5, 0))
    publish_until(image_pub, late, labels)
    wait_for(lambda: node.stats.totals["depth_unmatched"] >= 1, what="depth_unmatched counted")
    square = (stamp[0] + 6, 0)
    depth_pub.publish(depth_msg(np.full((H, H), 2000, np.uint16), square))
    wait_for(lambda: len(node._depths) and stamp_to_ns(node._depths[-1].header.stamp) == square[0] * 10**9,
             what="the square depth image queued")
    publish_until(image_pub, frame_msg(scene(seed=2), frame_id="square", stamp=square), labels)
    wait_for(lambda: node.stats.totals["depth_refused"] >= 1, what="depth_refused counted")

