"""Bags, rtseg-make-bag, rtseg-eval and reports, without a ROS runtime: real rosbag2 files (sqlite3 and mcap,
written and read with ``rosbags``), the official Cityscapes evaluator on rtseg-eval's saved predictions, and
the report files."""
import json
import math
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from rosbags.rosbag2 import Writer

from rtseg_ros.data.datasets import open_dataset
from rtseg_ros.data.labels import get_dataset_info
from rtseg_ros.data.synth import write_dataset
from rtseg_ros.eval import cli as eval_cli
from rtseg_ros.data.rosbag import (CAMERA_INFO_TOPIC, IMAGE_TOPIC, LABELS_TOPIC, TYPESTORE, BagError, Frame,
                                cdr_stamp, labelled_frames, load_frames, restamped, write_bag)
from rtseg_ros.eval.metrics import ConfusionMatrix
from rtseg_ros.eval.report import Samples, build_report, markdown, write_report
from rtseg_ros.models import build_model
from rtseg_ros.tools import make_bag

SIZE = (64, 128)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, 2, SIZE, seed=3, val_num=5, progress=False)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A published-style state_dict (plain tensors), so every process loads the same network."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "sgcpnet_state_dict.pt"
    torch.save(build_model("sgcpnet", num_classes=19).state_dict(), path)
    return path


def _frames(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [Frame(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), rng.integers(0, 19, (24, 40), dtype=np.uint8),
                  {"fx": 50.0, "fy": 51.0, "u0": 20.0, "v0": 12.0} if i % 2 == 0 else None) for i in range(n)]


# -- bag files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_round_trip(tmp_path, storage):
    frames = _frames()
    assert write_bag(tmp_path / "bag", frames, rate_hz=10.0, storage=storage, encoding="bgr8") == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]  # no staging folder left behind
    # the data file is named after the finished bag, as metadata.yaml says (not after a temporary name)
    metadata = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert [Path(f).stem for f in metadata["relative_file_paths"]] == ["bag"]
    assert {p.name for p in (tmp_path / "bag").iterdir()} == {"metadata.yaml", *metadata["relative_file_paths"]}
    contents = load_frames(tmp_path / "bag", {IMAGE_TOPIC: True, CAMERA_INFO_TOPIC: False, LABELS_TOPIC: True})
    assert contents.topics == {IMAGE_TOPIC: "sensor_msgs/msg/Image", CAMERA_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
                               LABELS_TOPIC: "sensor_msgs/msg/Image"}
    assert len(contents.frames) == 4
    stamps = [f.stamp_ns for f in contents.frames]
    assert np.allclose(np.diff(stamps), 1e8, atol=1)  # 10 Hz, one stamp per frame for all three topics
    for frame, bag_frame in zip(frames, contents.frames):
        messages = dict(bag_frame.messages)
        assert {cdr_stamp(raw) for raw in messages.values()} == {bag_frame.stamp_ns}
        image = TYPESTORE.deserialize_cdr(messages[IMAGE_TOPIC], "sensor_msgs/msg/Image")
        assert image.encoding == "bgr8" and image.step == 40 * 3
        assert np.array_equal(image.data.reshape(24, 40, 3), frame.image[..., ::-1])
        info = TYPESTORE.deserialize_cdr(messages[CAMERA_INFO_TOPIC], "sensor_msgs/msg/CameraInfo")
        expected_k = [50, 0, 20, 0, 51, 12, 0, 0, 1] if frame.intrinsics else [0] * 9
        assert info.k.tolist() == expected_k and (info.height, info.width) == (24, 40)
    total, pairs = labelled_frames(tmp_path / "bag")
    pairs = list(pairs)
    assert total == 4 and len(pairs) == 4
    for frame, pair in zip(frames, pairs):
        assert pair.encoding == "bgr8" and np.array_equal(pair.image[..., ::-1], frame.image)
        assert np.array_equal(pair.labels, frame.labels)


def test_bag_messages_deserialize_in_rclpy(tmp_path):
    rclpy_serialization = pytest.importorskip("rclpy.serialization", reason="ROS 2 wheels not installed")
    from sensor_msgs.msg import CameraInfo, Image

    frame = _frames(1)[0]
    write_bag(tmp_path / "bag", [frame])
    messages = dict(load_frames(tmp_path / "bag", {IMAGE_TOPIC: True, CAMERA_INFO_TOPIC: True}).frames[0].messages)
    image = rclpy_serialization.deserialize_message(messages[IMAGE_TOPIC], Image)
    assert (image.height, image.width, image.encoding) == (24, 40, "rgb8")
    assert np.array_equal(np.frombuffer(image.data, np.uint8).reshape(24, 40, 3), frame.image)
    info = rclpy_serialization.deserialize_message(messages[CAMERA_INFO_TOPIC], CameraInfo)
    assert list(info.k) == [50, 0, 20, 0, 51, 12, 0, 0, 1]


@pytest.mark.parametrize("little_endian", [True, False])
def test_restamp_rewrites_only_the_stamp(little_endian):
    image = TYPESTORE.types["sensor_msgs/msg/Image"]
    header = TYPESTORE.types["std_msgs/msg/Header"](
        stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=12, nanosec=345), frame_id="cam")
    msg = image(header=header, height=1, width=2, encoding="mono8", is_bigendian=0, step=2,
                data=np.array([7, 9], np.uint8))
    raw = bytes(TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image", little_endian=little_endian))
    assert cdr_stamp(raw) == 12 * 10**9 + 345
    moved = restamped(raw, 1_800_000_000 * 10**9 + 999)
    assert cdr_stamp(moved) == 1_800_000_000 * 10**9 + 999 and len(moved) == len(raw)
    back = TYPESTORE.deserialize_cdr(moved, "sensor_msgs/msg/Image")
    assert (back.header.frame_id, back.encoding, back.data.tolist()) == ("cam", "mono8", [7, 9])


def test_interrupted_write_leaves_no_bag(tmp_path):
    def frames():
        yield from _frames(2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_bag(tmp_path / "bag", frames())
    assert list(tmp_path.iterdir()) == []
    write_bag(tmp_path / "bag", _frames(1))
    with pytest.raises(BagError, match="already exists"):
        write_bag(tmp_path / "bag", _frames(1))


def test_bad_bags_give_clear_errors(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        load_frames(tmp_path / "nothing", {IMAGE_TOPIC: True})
    (tmp_path / "folder").mkdir()
    with pytest.raises(BagError, match="cannot open .* as a rosbag2 bag"):
        labelled_frames(tmp_path / "folder")
    write_bag(tmp_path / "bag", [Frame(f.image, None) for f in _frames(2)])  # no ground truth topic
    with pytest.raises(BagError, match=f"no topic {LABELS_TOPIC}; its topics: {CAMERA_INFO_TOPIC}"):
        labelled_frames(tmp_path / "bag")
    # ground truth that is not mono8
    with Writer(tmp_path / "rgb_labels", version=8) as writer:
        for topic in (IMAGE_TOPIC, LABELS_TOPIC):
            connection = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=TYPESTORE)
            header = TYPESTORE.types["std_msgs/msg/Header"](
                stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="")
            msg = TYPESTORE.types["sensor_msgs/msg/Image"](header=header, height=2, width=2, encoding="rgb8",
                                                           is_bigendian=0, step=6, data=np.zeros(12, np.uint8))
            writer.write(connection, 10**9, TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    with pytest.raises(BagError, match="must be mono8"):
        list(labelled_frames(tmp_path / "rgb_labels")[1])


# -- rtseg-make-bag ------------------------------------------------------------------------------------
def test_make_bag_from_a_cityscapes_layout_folder(tmp_path, synth, capsys):
    assert make_bag.main(["--data-root", str(synth), "--out", str(tmp_path / "bag"), "--storage", "mcap",
                          "--limit", "3"]) == 0
    assert "3 frames" in capsys.readouterr().out
    folder = open_dataset("cityscapes", synth, "val")
    total, frames = labelled_frames(tmp_path / "bag")
    frames = list(frames)
    assert total == 3 and len(frames) == 3
    for index, frame in enumerate(frames):
        assert np.array_equal(frame.image, folder[index]["image"]) and np.array_equal(frame.labels, folder[index]["label"])
    first = folder.pairs[0][0]
    camera = synth / "camera" / "val" / first.parent.name / first.name.replace("_leftImg8bit.png", "_camera.json")
    camera = json.loads(camera.read_text())["intrinsic"]
    info_raw = dict(load_frames(tmp_path / "bag", {CAMERA_INFO_TOPIC: True}, limit=1).frames[0].messages)
    info = TYPESTORE.deserialize_cdr(info_raw[CAMERA_INFO_TOPIC], "sensor_msgs/msg/CameraInfo")
    assert info.k[0] == pytest.approx(camera["fx"]) and info.k[5] == pytest.approx(camera["v0"])

    assert make_bag.main(["--data-root", str(synth), "--out", str(tmp_path / "bag")]) == 1
    assert make_bag.main(["--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "bag2")]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "expected a Cityscapes-layout folder" in err
    assert not (tmp_path / "bag2").exists()
    (tmp_path / "a_file").write_text("")  # an --out that cannot be created (a chmod would not stop root)
    assert make_bag.main(["--data-root", str(synth), "--out", str(tmp_path / "a_file" / "bag")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rtseg-make-bag: error: ") and "a_file" in err[0], err


# -- rtseg-eval ----------------------------------------------------------------------------------------
def test_eval_matches_the_official_cityscapes_evaluator(tmp_path, synth, weights, monkeypatch):
    """rtseg-eval's saved predictions, scored by cityscapesscripts against the gtFine label-id files, give
    rtseg-eval's per-class IoU."""
    out, predictions = tmp_path / "out", tmp_path / "pred"
    assert eval_cli.main(["--data-root", str(synth), "--weights", str(weights), "--model", "sgcpnet",
                          "--device", "cpu", "--input-size", "64x128", "--out", str(out),
                          "--save-predictions", str(predictions)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == {"total": 5, "evaluated": 5} and report["model"] == "sgcpnet"
    gt_files = sorted(str(p) for p in (synth / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    pred_files = [str(predictions / p.split("/")[-1].replace("_gtFine_labelIds", "_leftImg8bit")) for p in gt_files]
    for key, value in {"evalInstLevelScore": False, "evalPixelAccuracy": False, "quiet": True,
                       "JSONOutput": False, "exportFile": str(tmp_path / "result.json")}.items():
        monkeypatch.setattr(cs_eval.args, key, value, raising=False)
    official = cs_eval.evaluateImgLists(pred_files, gt_files, cs_eval.args)
    for name, ours in report["iou"].items():
        theirs = official["classScores"][name]
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-6), name
    assert report["miou"] == pytest.approx(official["averageScoreClasses"], abs=1e-6)
    assert report["latency_ms"]["count"] == 5
    for name in ("report.md", "confusion_matrix.png", "iou.png", "latency.png", "samples.png"):
        assert (out / name).stat().st_size > 0, name


def test_eval_on_a_bag_equals_eval_on_its_folder(tmp_path, synth, weights):
    make_bag.main(["--data-root", str(synth), "--out", str(tmp_path / "bag"), "--encoding", "bgr8"])
    common = ["--weights", str(weights), "--model", "sgcpnet", "--device", "cpu", "--input-size", "64x128",
              "--samples", "0"]
    assert eval_cli.main(["--data-root", str(synth), "--out", str(tmp_path / "folder"), *common]) == 0
    assert eval_cli.main(["--bag", str(tmp_path / "bag"), "--out", str(tmp_path / "bag_out"), *common]) == 0
    from_folder = json.loads((tmp_path / "folder" / "report.json").read_text())
    from_bag = json.loads((tmp_path / "bag_out" / "report.json").read_text())
    assert from_bag["confusion_matrix"] == from_folder["confusion_matrix"]
    assert sum(map(sum, from_bag["confusion_matrix"])) > 0.9 * 5 * SIZE[0] * SIZE[1]
    assert not (tmp_path / "bag_out" / "samples.png").exists()


def _write_prediction_bag(path, truths, predictions):
    with Writer(path, version=8) as writer:
        connections = {topic: writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=TYPESTORE)
                       for topic in (LABELS_TOPIC, "/segment_node/labels")}
        for index, (truth, prediction) in enumerate(zip(truths, predictions)):
            header = TYPESTORE.types["std_msgs/msg/Header"](
                stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=100 + index, nanosec=0), frame_id="camera")
            # predictions recorded before their ground truth must pair up too
            for topic, labels in (("/segment_node/labels", prediction), (LABELS_TOPIC, truth)):
                msg = TYPESTORE.types["sensor_msgs/msg/Image"](
                    header=header, height=labels.shape[0], width=labels.shape[1], encoding="mono8", is_bigendian=0,
                    step=labels.shape[1], data=labels.reshape(-1))
                writer.write(connections[topic], (100 + index) * 10**9, TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def test_eval_scores_predictions_recorded_in_a_bag(tmp_path):
    rng = np.random.default_rng(5)
    truths = [rng.integers(0, 19, (16, 20), dtype=np.uint8) for _ in range(3)]
    truths[0][:2] = 255
    predictions = [np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 19, t.shape)).astype(np.uint8) for t in truths]
    for p in predictions:
        p[p == 255] = 0
    _write_prediction_bag(tmp_path / "bag", truths, predictions)
    assert eval_cli.main(["--bag", str(tmp_path / "bag"), "--pred-topic", "/segment_node/labels",
                          "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    expected = ConfusionMatrix(19)
    for truth, prediction in zip(truths, predictions):
        expected.update(torch.from_numpy(prediction), torch.from_numpy(truth))
    assert report["confusion_matrix"] == expected.matrix.tolist()
    assert report["miou"] == pytest.approx(expected.miou()) and report["latency_ms"] is None
    assert report["predictions"] == "/segment_node/labels"


def test_eval_errors_are_one_line(tmp_path, synth, capsys):
    assert eval_cli.main(["--bag", str(tmp_path / "none"), "--model", "sgcpnet", "--device", "cpu"]) == 1
    assert eval_cli.main(["--data-root", str(synth), "--weights", str(tmp_path / "missing.pt"), "--device", "cpu"]) == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert eval_cli.main(["--data-root", str(synth), "--weights", str(bad), "--model", "farsee", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "bag" in err and "does not exist" in err and "not found" in err and "cannot read" in err
    assert "Traceback" not in err


def test_eval_refuses_to_overwrite_a_report_and_names_a_missing_gpu(tmp_path, synth, capsys):
    common = ["--data-root", str(synth), "--model", "sgcpnet", "--limit", "1", "--samples", "0", "--out",
              str(tmp_path / "out")]
    assert eval_cli.main([*common, "--device", "cpu"]) == 0
    first = (tmp_path / "out" / "report.json").read_bytes()
    assert eval_cli.main([*common, "--device", "cpu"]) == 1
    assert "already holds a report" in capsys.readouterr().err
    assert (tmp_path / "out" / "report.json").read_bytes() == first
    assert eval_cli.main([*common, "--device", "cpu", "--overwrite"]) == 0
    if not torch.cuda.is_available():
        assert eval_cli.main([*common, "--device", "cuda:1", "--overwrite"]) == 1
        err = capsys.readouterr().err
        assert "--device cuda:1: no CUDA device is available here (use --device cpu)" in err
        assert "Traceback" not in err and "device:=" not in err


def _corrupt_mid_file(bag: Path) -> None:
    """Overwrite one sqlite page of ``bag`` so that reading fails part-way through (not at open)."""
    db = next(bag.glob("*.db3"))
    original = db.read_bytes()
    for page in range(1, len(original) // 4096):
        damaged = bytearray(original)
        damaged[page * 4096:(page + 1) * 4096] = b"\xff" * 4096
        db.write_bytes(bytes(damaged))
        try:
            load_frames(bag, {IMAGE_TOPIC: True})  # a page holding only pixel bytes goes unnoticed: try the next
        except BagError as error:
            if re.search(r"reading failed after [1-9]\d* messages", str(error)):
                return
    pytest.fail("no page of the bag breaks reading part-way")


def test_a_bag_corrupted_mid_file_keeps_what_was_scored(tmp_path, capsys):
    rng = np.random.default_rng(0)  # frames large enough to span several sqlite pages each
    write_bag(tmp_path / "bag", [Frame(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8),
                                       rng.integers(0, 19, (64, 96), dtype=np.uint8), None) for _ in range(40)],
              rate_hz=10.0)
    _corrupt_mid_file(tmp_path / "bag")
    out = tmp_path / "out"
    assert eval_cli.main(["--bag", str(tmp_path / "bag"), "--model", "sgcpnet", "--device", "cpu", "--samples", "0",
                          "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "partial report" in err and "corrupt or truncated" in err and "Traceback" not in err
    report = json.loads((out / "report.json").read_text())
    assert 0 < report["frames"]["evaluated"] < report["frames"]["total"] == 40
    assert report["partial"].startswith(f"stopped after {report['frames']['evaluated']} of 40 frames")
    assert "**Partial report**" in (out / "report.md").read_text()
    # the player, which reads the whole bag before the first frame, says the same in one line
    player = subprocess.run([sys.executable, "-m", "rtseg_ros.ros.bag_player", "--ros-args", "-p",
                             f"bag:={tmp_path / 'bag'}"], capture_output=True, text=True, timeout=60)
    output = player.stdout + player.stderr
    assert player.returncode == 1 and "corrupt or truncated" in output and "Traceback" not in output


def test_eval_writes_a_partial_report_on_sigterm(tmp_path):
    write_bag(tmp_path / "bag", _frames(400), rate_hz=10.0)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "rtseg_ros.eval.cli", "--bag", str(tmp_path / "bag"), "--model",
                                "sgcpnet", "--device", "cpu", "--input-size", "256x512", "--samples", "0",
                                "--out", str(out)], stderr=subprocess.PIPE, text=True)
    progress = ""
    while not re.search(r"\b([3-9]|\d\d+)/400\b", progress):  # a few frames scored
        chunk = process.stderr.read(64)
        assert chunk, f"rtseg-eval ended before it was interrupted: {progress[-300:]}"
        progress += chunk
    process.send_signal(signal.SIGTERM)
    err = progress + process.stderr.read()
    assert process.wait(timeout=60) == 130
    assert "partial report" in err and "Traceback" not in err
    report = json.loads((out / "report.json").read_text())
    assert 3 <= report["frames"]["evaluated"] < 400 and report["partial"].endswith("interrupted")


# -- reports -------------------------------------------------------------------------------------------
def test_samples_stay_bounded_and_spread_over_the_stream():
    samples = Samples(limit=4)
    for index in range(1000):
        if samples.wants(index):
            samples.add(index, index, None, None)
        assert len(samples.items) < 8
    picked = [image for image, _, _ in samples.picked()]
    assert len(picked) == 4 and picked[0] == 0 and picked[-1] >= 500  # from the whole stream, not its start
    assert Samples(limit=0).wants(0) is False


def test_report_files_and_markdown(tmp_path):
    info = get_dataset_info("camvid")
    matrix = ConfusionMatrix(info.num_classes)
    truth = torch.tensor([[0, 1, 2, 255]])
    matrix.update(torch.tensor([[0, 1, 1, 3]]), truth)
    image = np.zeros((1, 4, 3), np.uint8)
    report = build_report(matrix, info, {"total": 1, "evaluated": 1}, [3.0, 5.0], {"model": "farsee"}, "test clock")
    assert report["iou"]["sky"] == 1.0 and report["iou"]["building"] == 0.5 and report["iou"]["pole"] == 0.0
    assert math.isnan(report["iou"]["road"]) and report["miou"] == pytest.approx(0.5)
    assert report["latency_ms"]["p50"] == 4.0 and report["latency_ms"]["count"] == 2
    text = markdown(report)
    assert "**mIoU 50.0 %**" in text and "| building | 50.0 |" in text and "| road | n/a |" in text
    written = write_report(tmp_path, report, info, [3.0, 5.0], [(image, np.zeros((1, 4), np.uint8), truth.numpy().astype(np.uint8))])
    assert sorted(p.name for p in written) == sorted(p.name for p in tmp_path.iterdir()) == [
        "confusion_matrix.png", "iou.png", "latency.png", "report.json", "report.md", "samples.png"]
    assert json.loads((tmp_path / "report.json").read_text())["confusion_matrix"][1][1] == 1
    assert cv2.imread(str(tmp_path / "iou.png")) is not None
