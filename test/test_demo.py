"""The README's main job, end to end at toy size: synthetic data → rtseg-train → rtseg-make-bag →
rtseg-replay (bag_player, segment_node and evaluator_node as three processes over DDS)."""
import json

import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (pip install '.[ros]')")

from rtseg_ros.apps import demo  # noqa: E402


def test_synthetic_demo_trains_replays_a_bag_and_reports(tmp_path, capsys):
    code = demo.main(["--synthetic", "--out", str(tmp_path), "--model", "sgcpnet", "--iters", "4", "--train-images", "8",
                      "--val-images", "4", "--rate", "4", "--domain-id", "91"])
    assert code == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["frames"]["published"] == report["frames"]["evaluated"] == 4
    assert report["model"] == "sgcpnet" and str(tmp_path / "run" / "best.pt") in report["weights"]
    assert 0.0 <= report["miou"] <= 1.0 and report["latency_ms"]["p50"] > 0
    assert (tmp_path / "val_bag" / "metadata.yaml").is_file()
    for name in ("report.md", "samples.png", "confusion_matrix.png", "iou.png", "latency.png"):
        assert (tmp_path / "eval" / name).is_file(), name
    assert "answered 4/4 frames" in capsys.readouterr().out


def test_demo_runs_a_shipped_model_on_the_real_frames_it_ships(tmp_path, capsys):
    code = demo.main(["--out", str(tmp_path), "--model", "farsee", "--domain-id", "92"])
    assert code == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["frames"]["published"] == report["frames"]["evaluated"] == 8
    assert report["model"] == "farsee" and report["weights"].startswith("farsee_camvid ")
    assert report["dataset"] == "camvid" and report["miou"] > 0.45  # measured: 56.3 % on these 8 frames
    assert (tmp_path / "eval" / "samples.png").is_file()
    assert "answered 8/8 frames" in capsys.readouterr().out
