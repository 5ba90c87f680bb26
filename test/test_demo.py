"""The README's main job, end to end at toy size: synthetic data → rtseg-train → segment_node over DDS."""
import json

import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels not installed (pip install '.[ros]')")

from rtseg_ros.ros import demo  # noqa: E402


def test_demo_trains_runs_the_node_and_reports(tmp_path, capsys):
    code = demo.main(["--out", str(tmp_path), "--model", "sgcpnet", "--iters", "4", "--train-images", "8",
                      "--val-images", "4", "--rate", "10", "--domain-id", "91"])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames_received"] == report["frames_sent"] == 4
    assert 0.0 <= report["miou"] <= 1.0 and report["latency_ms"]["p50"] > 0
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "overlays.png").is_file()
    assert "segment_node returned 4/4 frames" in capsys.readouterr().out
