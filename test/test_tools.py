"""Command-line tools: rtseg-export, rtseg-models, rtseg-bench."""
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from rtseg_ros.models import available_models, build_model
from rtseg_ros.models.complexity import count_params
from rtseg_ros.bench import cli as bench_cli
from rtseg_ros.bench.models import bench_models, models_table as speed_table
from rtseg_ros.runtime.backends import importable, resolve_backend
from rtseg_ros.tools import export, models_table


def test_export_writes_onnx_with_parity(tmp_path, capsys):
    out = tmp_path / "farsee.onnx"
    export.main(["--model", "farsee", "--input-size", "64x128", "--out", str(out)])
    printed = capsys.readouterr().out
    model = onnx.load(str(out))
    assert model.opset_import[0].version >= 17
    difference = float(printed.rsplit("difference ", 1)[1].split()[0])
    assert difference <= 1e-4


def test_export_with_argmax_outputs_labels(tmp_path, capsys):
    import onnxruntime as ort

    out = tmp_path / "labels.onnx"
    export.main(["--model", "sgcpnet", "--input-size", "64x96", "--out", str(out), "--argmax"])
    assert "100.000 % of labels equal" in capsys.readouterr().out
    labels = ort.InferenceSession(str(out)).run(None, {"image": np.zeros((1, 3, 64, 96), np.float32)})[0]
    assert labels.shape == (1, 64, 96) and labels.dtype == np.uint8


def test_export_reports_bad_weights_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--model", "farsee", "--weights", str(tmp_path / "bad.pt")])
    assert exit_info.value.code == 2
    assert "cannot read weights file" in capsys.readouterr().err


def test_export_rejects_malformed_size(capsys):
    with pytest.raises(SystemExit):
        export.main(["--model", "farsee", "--input-size", "512by1024"])
    assert "HEIGHTxWIDTH" in capsys.readouterr().err


def test_models_table_lists_every_model_with_true_counts(capsys):
    models_table.main(["--json"])
    table = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in table["models"]}
    assert [w["name"] for w in table["shipped_weights"]] == ["sgcpnet_camvid"]
    assert list(rows) == available_models()
    assert {"farsee", "sgcpnet", "bcpnet", "csfcn", "csfcn_mnv3", "ddrnet23_slim", "ddrnet23", "ddrnet39"} <= set(rows)
    with torch.device("meta"):
        assert rows["ddrnet23_slim"]["params"] == count_params(build_model("ddrnet23_slim")) == 5_695_987
    assert rows["ddrnet23_slim"]["gmacs_1024x2048"] == pytest.approx(36.281, abs=1e-3)
    assert "| farsee |" in models_table.markdown_table(list(rows.values()))


def test_pipeline_benchmark_runs_both_loops_on_the_same_frames(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench_cli.main(["--pipeline", "--model", "sgcpnet", "--size", "96x160", "--frames", "3", "--json", str(out)])
    (row,) = json.loads(out.read_text())
    assert row["naive"]["fps"] > 0 and row["segmenter"]["fps"] > 0
    assert row["label_agreement"] > 0.99  # both loops compute the same labels
    assert "| sgcpnet | 96×160 |" in capsys.readouterr().out


def test_model_speed_rows_carry_the_eager_baseline_and_paper_figures():
    (row,) = bench_models(["ddrnet23_slim"], [(64, 128)], "cpu", ["fp32"], [True], seconds=0.2)
    assert row["fps"] > 0 and row["eager_fp32_fps"] > 0 and row["cuda_graph"] is False  # no graphs on CPU
    assert row["speedup"] == pytest.approx(row["fps"] / row["eager_fp32_fps"])
    assert row["paper_fps"] == 108.8 and row["paper_resolution"] == [1024, 2048]
    assert "| ddrnet23_slim | 64×128 | fp32 | off |" in speed_table([row])


def neighbour_pids() -> set[int]:
    pids = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"while True: pass" in cmdline.read_bytes():
                pids.add(int(cmdline.parent.name))
        except OSError:
            pass
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="counts the neighbour processes in /proc")
def test_cpu_engines_side_by_side_beside_their_idle_baseline(tmp_path, capsys):
    from rtseg_ros.bench.engines import neighbour_process

    with neighbour_process("busy"):
        assert len(neighbour_pids()) == os.cpu_count()  # every core kept busy while measuring
    assert not neighbour_pids()
    out = tmp_path / "engines.json"
    bench_cli.main(["--models", "sgcpnet", "--device", "cpu", "--size", "64x128", "--neighbour", "busy",
                    "--engines", "eager", "torch", "torch_nchw", "onnxruntime", "openvino", "int8", "--seconds", "0.01",
                    "--json", str(out)])
    idle, loaded = json.loads(out.read_text())
    assert (idle["neighbour"], loaded["neighbour"]) == ("none", "busy")  # the idle baseline, always first
    expected = {"eager", "torch", "torch_nchw"} | {e for e in ("onnxruntime", "openvino") if importable(e)}
    if importable("onnxruntime"):
        expected.add("int8")
    assert set(idle["ms"]) == expected and all(ms > 0 for ms in idle["ms"].values())
    assert idle["auto"] == resolve_backend("auto", "cpu")[0] and idle["auto_ms"] == idle["ms"][idle["auto"]]
    assert idle["fastest_fp32"] == min(("torch", "onnxruntime", "openvino"), key=lambda e: idle["ms"].get(e, 1e9))
    printed = capsys.readouterr().out
    assert "| sgcpnet | 64×128 | none |" in printed and "| sgcpnet | 64×128 | busy |" in printed
    assert "(× idle)" in printed


def test_gpu_check_reports_skipped_parts_and_checks_targets(tmp_path):
    from rtseg_ros.bench import gpu_check

    rows = [{"model": "ddrnet23_slim", "size": [1024, 2048], "precision": "fp16", "fps": 700.0},
            {"model": "ddrnet23_slim", "size": [1024, 2048], "precision": "fp32", "fps": 900.0}]
    (paper, slim) = gpu_check.targets(rows)  # paper: 5x 108.8 at 1024x2048; then the 600 FPS target
    assert paper["met"] and paper["target_fps"] == pytest.approx(544.0) and slim["met"] and slim["fps"] == 700.0
    report = {"device": "cpu", "quick": True, "environment": {"torch": "x"}, "targets": [],
              "parts": {"tensorrt": {"status": "skipped", "reason": "no CUDA GPU", "seconds": 0.0}}}
    gpu_check.write(tmp_path, report)
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == report
    assert "| tensorrt | skipped | 0.0 | no CUDA GPU |" in (tmp_path / "gpu_check.md").read_text()
