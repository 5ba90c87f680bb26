"""Bag replay through real rclpy/DDS: the player's frames and stamps, the evaluator's matching and drop
accounting, start-up errors, and rtseg-replay end to end (player + segment_node + evaluator as separate
processes) agreeing with rtseg-eval offline on the same bag and weights."""
import functools
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (pip install '.[ros]')")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rtseg_ros.data.synth import write_dataset  # noqa: E402
from rtseg_ros.eval import cli as eval_cli  # noqa: E402
from rtseg_ros.data.rosbag import Frame, write_bag  # noqa: E402
from rtseg_ros.models import build_model  # noqa: E402
from rtseg_ros.ros.conversions import array_of, fill_image  # noqa: E402
from rtseg_ros.ros.evaluator_node import Evaluator, frame_accounting  # noqa: E402
from rtseg_ros.ros.pacing import check_pacing, schedule  # noqa: E402

import helpers  # noqa: E402

DOMAIN_ID = 60 + os.getpid() % 10
wait_for = functools.partial(helpers.wait_for, timeout=30.0, poll=0.02)  # three processes start slower
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def env():
    return {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


class Client:
    """A node in its own context on this module's domain, spinning in a thread."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node("rtseg_replay_test", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def collect(self, msg_type, topic, qos=RELIABLE) -> list:
        received = []
        self.node.create_subscription(msg_type, topic, lambda msg: received.append((time.time_ns(), msg)), qos)
        return received

    def close(self):
        self.executor.shutdown(timeout_sec=5)
        self.thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def client():
    c = Client()
    yield c
    c.close()


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def small_frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Frame(rng.integers(0, 256, (20, 32, 3), dtype=np.uint8), rng.integers(0, 19, (20, 32), dtype=np.uint8),
                  {"fx": 30.0, "fy": 30.0, "u0": 16.0, "v0": 10.0}) for _ in range(n)]


def run_player(bag, *params, timeout=60):
    command = [sys.executable, "-m", "rtseg_ros.ros.bag_player", "--ros-args"]
    for p in ([f"bag:={bag}"] if bag else []) + list(params):
        command += ["-p", p]
    return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=timeout)


# -- player --------------------------------------------------------------------------------------------
def test_schedule_fixed_rate_and_recorded_timing():
    assert schedule([5, 7, 9], 4.0) == [0.0, 0.25, 0.5]
    assert schedule([10**9, 10**9 + 5 * 10**7, 2 * 10**9], 0.0) == [0.0, 0.05, 1.0]


def test_player_publishes_every_frame_restamped_and_says_done(tmp_path, client):
    frames = small_frames(4)
    write_bag(tmp_path / "bag", frames, rate_hz=17.0)
    images = client.collect(Image, "/camera/image_raw")
    truths = client.collect(Image, "/camera/labels_gt")
    infos = client.collect(CameraInfo, "/camera/camera_info")
    done = client.collect(String, "/bag_player/done", LATCHED)
    started = time.time_ns()
    result = run_player(tmp_path / "bag", "pacing:=rate", "rate_hz:=20.0", "wait_for_evaluator:=true")
    assert result.returncode == 0, result.stderr
    # reliable publisher, reliable reader, slow rate: nothing lost
    wait_for(lambda: len(done) == 1 and len(images) == len(infos) == len(truths) == 4, what="every frame and ~/done")
    assert json.loads(done[0][1].data) == {"frames": 4, "bag": str(tmp_path / "bag"), "complete": True,
                                           "lockstep_timeouts": 0}
    stamps = [stamp_ns(m) for _, m in images]
    assert stamps == [stamp_ns(m) for _, m in truths] == [stamp_ns(m) for _, m in infos]  # one stamp per frame
    assert started < stamps[0] and stamps == sorted(stamps)  # restamped with the time of publishing
    for frame, (_, image), (_, truth), (_, info) in zip(frames, images, truths, infos):
        assert np.array_equal(array_of(image), frame.image) and np.array_equal(array_of(truth), frame.labels)
        assert list(info.k)[:3] == [30.0, 0.0, 16.0]
    assert "published 4 frames" in result.stderr


def test_pacing_and_rate_go_together():
    assert check_pacing("rate", 10.0) is None and check_pacing("lockstep", 0.0) is None
    assert check_pacing("rate", 0.0) == "pacing:=rate needs rate_hz > 0"
    assert "only with pacing:=rate" in check_pacing("recorded", 5.0)


def test_lockstep_waits_for_each_prediction_and_counts_timeouts(tmp_path, client):
    """Frame 1 is answered (same stamp on the predictions topic), frame 2 is not: the player sends frame 2
    only after frame 1's prediction, and frame 3 after frame 2's timeout, counted in ~/done."""
    write_bag(tmp_path / "bag", small_frames(3), rate_hz=1000.0)
    answers = client.node.create_publisher(Image, "/segment_node/labels", RELIABLE)
    images, answered = [], []

    def answer_first(msg):
        images.append((time.monotonic(), msg))
        if len(images) == 1:
            time.sleep(0.5)  # the player must wait for this answer however long it takes
            answered.append(time.monotonic())
            answers.publish(msg)

    client.node.create_subscription(Image, "/camera/image_raw", answer_first, RELIABLE)
    info = client.collect(String, "/bag_player/info", LATCHED)
    done = client.collect(String, "/bag_player/done", LATCHED)
    result = run_player(tmp_path / "bag", "pacing:=lockstep", "lockstep_timeout_s:=1.0", "start_delay_s:=0.5")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: len(done) == 1 and len(images) == 3, what="three frames and ~/done")
    assert json.loads(info[0][1].data)["frames"] == 3 and json.loads(info[0][1].data)["pacing"] == "lockstep"
    report = json.loads(done[0][1].data)
    assert (report["frames"], report["complete"], report["lockstep_timeouts"]) == (3, True, 2)
    assert images[1][0] > answered[0]  # frame 2 waited for frame 1's prediction
    assert images[2][0] - images[1][0] >= 0.9  # frame 3 waited for frame 2's timeout
    assert "2 lockstep timeouts" in result.stderr


def test_player_keeps_recorded_stamps_without_restamp(tmp_path, client):
    write_bag(tmp_path / "bag", small_frames(2), rate_hz=10.0, start_ns=5 * 10**9)
    truths = client.collect(Image, "/camera/labels_gt")
    result = run_player(tmp_path / "bag", "restamp:=false", "wait_for_evaluator:=true", "wait_for_subscribers:=0")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: len(truths) == 2, what="ground truth")
    assert [stamp_ns(m) for _, m in truths] == [5 * 10**9, 5 * 10**9 + 10**8]


def test_player_start_up_errors_are_one_line(tmp_path):
    missing = run_player(None)
    assert missing.returncode == 1 and "bag is required" in missing.stderr
    write_bag(tmp_path / "bag", small_frames(1))
    wrong = run_player(tmp_path / "bag", "image_topic:=/front/image")
    assert wrong.returncode == 1 and "no topic /front/image; its topics: /camera/camera_info" in wrong.stderr
    alone = run_player(tmp_path / "bag", "wait_timeout_s:=0.5")
    assert alone.returncode == 1 and "/camera/image_raw has 0 of 1" in alone.stderr
    for result in (missing, wrong, alone):
        assert "Traceback" not in result.stderr


# -- evaluator -----------------------------------------------------------------------------------------
def test_evaluator_matches_by_stamp_and_counts_drops(tmp_path, client):
    context = client.context
    evaluator = Evaluator(context=context, use_global_arguments=False, parameter_overrides=[
        Parameter("out_dir", value=str(tmp_path / "report")), Parameter("samples", value=0),
        Parameter("drain_timeout_s", value=1.0), Parameter("dataset", value="camvid")])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(evaluator)
    publish = {topic: client.node.create_publisher(Image, topic, RELIABLE)
               for topic in ("/camera/labels_gt", "/segment_node/labels")}
    done = client.node.create_publisher(String, "/bag_player/done", LATCHED)
    try:
        def spin_until(condition, what):
            deadline = time.monotonic() + 30
            while not condition():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                executor.spin_once(timeout_sec=0.05)

        spin_until(lambda: all(p.get_subscription_count() for p in publish.values()), "evaluator subscriptions")
        truth = np.array([[0, 1], [2, 255]], np.uint8)
        right, wrong = truth.copy(), np.array([[0, 1], [1, 3]], np.uint8)
        right[1, 1] = 4
        # stamp 1: right; stamp 2: prediction first, then one wrong pixel; stamp 3: no prediction (dropped);
        # stamp 9: a prediction without ground truth
        sends = [("/camera/labels_gt", 1, truth), ("/segment_node/labels", 1, right),
                 ("/segment_node/labels", 2, wrong), ("/camera/labels_gt", 2, truth),
                 ("/camera/labels_gt", 3, truth), ("/segment_node/labels", 9, right)]
        for topic, stamp, labels in sends:
            msg = Image()
            header = Image().header
            header.stamp.sec = stamp
            publish[topic].publish(fill_image(msg, labels, "mono8", header))
        # unmatched frames are forgotten (and counted) after drain_timeout_s: memory stays bounded
        spin_until(lambda: evaluator.counts["expired_truth"] == evaluator.counts["expired_predictions"] == 1
                   and not evaluator.truth and not evaluator.predictions, "frames 3 and 9 to expire")
        done.publish(String(data=json.dumps({"frames": 3})))
        spin_until(lambda: evaluator.finished, "the report")
    finally:
        executor.shutdown()
        evaluator.destroy_node()
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["frames"] == {"in_bag": None, "published": 3, "never_played": None, "complete": True,
                                "lockstep_timeouts": None, "ground_truth_received": 3, "evaluated": 2,
                                "dropped": 1, "predictions_without_ground_truth": 1, "predictions_resized": 0}
    assert report["dataset"] == "camvid" and report["latency_ms"]["count"] == 2
    assert report["latency_definition"].startswith("prediction arrival")
    # frame 1 all right; frame 2 calls the pole pixel building; the ignore pixel counts nowhere
    matrix = np.array(report["confusion_matrix"])
    assert matrix[0, 0] == 2 and matrix[1, 1] == 2 and matrix[2, 2] == 1 and matrix[2, 1] == 1
    assert matrix.sum() == 6  # ignore pixels not counted
    assert report["iou"]["pole"] == pytest.approx(0.5) and report["iou"]["building"] == pytest.approx(2 / 3)


def test_an_interrupted_replay_does_not_look_complete():
    # the player said it stopped early (its node went away): 19 of 40 frames never played
    interrupted = frame_accounting(40, 21, False, 0, ground_truth=21, evaluated=21, dropped=0)
    assert (interrupted["never_played"], interrupted["complete"]) == (19, False)
    # no ~/done at all (the replay was killed): what arrived is what was played, at least
    killed = frame_accounting(40, None, True, None, ground_truth=21, evaluated=20, dropped=1)
    assert (killed["published"], killed["never_played"], killed["complete"]) == (None, 19, False)
    whole = frame_accounting(40, 40, True, 0, ground_truth=40, evaluated=40, dropped=0)
    assert (whole["never_played"], whole["complete"]) == (0, True)


# -- the three processes -------------------------------------------------------------------------------
def test_rtseg_replay_agrees_with_rtseg_eval_offline(tmp_path):
    write_dataset(tmp_path / "synth", 1, (64, 128), seed=7, val_num=5, progress=False)
    torch.manual_seed(2)
    weights = tmp_path / "sgcpnet.pt"
    torch.save(build_model("sgcpnet", num_classes=19).state_dict(), weights)
    from rtseg_ros.tools import make_bag
    assert make_bag.main(["--data-root", str(tmp_path / "synth"), "--out", str(tmp_path / "bag")]) == 0

    replay_out = tmp_path / "replay"
    command = [sys.executable, "-m", "rtseg_ros.apps.replay", "--bag", str(tmp_path / "bag"), "--weights",
               str(weights), "--model", "sgcpnet", "--device", "cpu", "--input-size", "64x128", "--rate", "2",
               "--out", str(replay_out), "-p", "cpu_threads:=1"]
    result = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "report in" in result.stdout
    online = json.loads((replay_out / "report.json").read_text())
    assert online["frames"]["published"] == online["frames"]["evaluated"] == 5, (online["frames"], result.stderr)
    assert online["frames"]["dropped"] == 0
    assert online["model"] == "sgcpnet" and online["latency_ms"]["count"] == 5
    # measured from each frame's stamp (the player's publish time): a prediction can only come after it
    assert online["latency_ms"]["p50"] > 0 and "header stamp" in online["latency_definition"]
    assert (replay_out / "samples.png").is_file() and (replay_out / "latency.png").is_file()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the node ran
    try:
        assert eval_cli.main(["--bag", str(tmp_path / "bag"), "--weights", str(weights), "--model", "sgcpnet",
                              "--device", "cpu", "--input-size", "64x128", "--out", str(tmp_path / "offline")]) == 0
    finally:
        torch.set_num_threads(threads)
    offline = json.loads((tmp_path / "offline" / "report.json").read_text())
    assert online["confusion_matrix"] == offline["confusion_matrix"]


def test_lockstep_replay_of_2048x1024_frames_scores_every_frame(tmp_path):
    """rtseg-replay's default pacing, camera-sized frames, best-effort input as deployed, with the shipped
    transport profile: every frame of the bag is played and scored."""
    rng = np.random.default_rng(3)
    frames = [Frame(rng.integers(0, 256, (1024, 2048, 3), dtype=np.uint8),
                    rng.integers(0, 19, (1024, 2048), dtype=np.uint8),
                    {"fx": 1000.0, "fy": 1000.0, "u0": 1024.0, "v0": 512.0}) for _ in range(3)]
    write_bag(tmp_path / "bag", frames, rate_hz=30.0)
    out = tmp_path / "replay"
    command = [sys.executable, "-m", "rtseg_ros.apps.replay", "--bag", str(tmp_path / "bag"), "--model", "farsee",
               "--weights", "random", "--device", "cpu", "--input-size", "64x128", "--input-qos", "sensor_data", "--samples", "0",
               "--out", str(out), "-p", "cpu_threads:=1", "-p", "upsample:=labels"]
    result = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())["frames"]
    assert report["in_bag"] == report["published"] == report["evaluated"] == 3, (report, result.stderr)
    assert (report["dropped"], report["never_played"], report["complete"]) == (0, 0, True)
    assert report["lockstep_timeouts"] == 0


def test_rtseg_replay_stops_when_the_node_cannot_start(tmp_path):
    write_bag(tmp_path / "bag", small_frames(2))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    result = subprocess.run([sys.executable, "-m", "rtseg_ros.apps.replay", "--bag", str(tmp_path / "bag"),
                             "--weights", str(bad), "--device", "cpu", "--out", str(tmp_path / "out")],
                            env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "segment_node exited with status 1" in result.stderr and "cannot read" in result.stderr
    assert not (tmp_path / "out" / "report.json").exists()
