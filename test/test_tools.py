"""Command-line tools: rtseg-export, rtseg-models, rtseg-bench."""
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from rtseg_ros.models import available_models, build_model, pretrained
from rtseg_ros.models.complexity import count_params
from rtseg_ros.bench import cli as bench_cli
from rtseg_ros.bench.models import bench_models, models_table as speed_table
from rtseg_ros.runtime.backends import importable
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
    assert [w["name"] for w in table["shipped_weights"]] == [w.name for w in pretrained.SHIPPED]
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
    before = torch.backends.cudnn.benchmark
    (row,) = bench_models(["ddrnet23_slim"], [(64, 128)], "cpu", ["fp32"], [True], seconds=0.2)
    # fixed shapes: cuDNN autotuned while measuring, and the process-wide flag given back afterwards
    assert row["cudnn_benchmark"] is True and torch.backends.cudnn.benchmark == before
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
    assert idle["auto"] in {"torch", "onnxruntime", "openvino"} and idle["auto_ms"] == idle["ms"][idle["auto"]]
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


# -- the GPU check's own plumbing, on the CPU -------------------------------------------------------------

def speed_row(model: str) -> dict:
    return {"model": model, "size": [64, 128], "precision": "fp16", "backend": "torch", "cuda_graph": False,
            "fps": 10.0, "ms": 100.0, "eager_fp32_fps": 5.0, "speedup": 2.0, "paper_fps": None,
            "paper_resolution": [], "paper_gpu": None, "device": "CPU", "fp32_math": "ieee"}


@pytest.mark.parametrize("cut", ["fails", "overruns"])
def test_gpu_check_keeps_every_row_measured_before_a_part_is_cut_short(tmp_path, monkeypatch, cut):
    from types import SimpleNamespace
    from rtseg_ros.bench import gpu_check

    clock = [0.0]  # a fake clock: the budget runs out when the fake bench says so, never by wall time
    monkeypatch.setattr(gpu_check, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(gpu_check, "cuda_tests", lambda out, timeout: (_ for _ in ()).throw(gpu_check.Skipped("no GPU")))
    monkeypatch.setattr(gpu_check, "bench_pipeline", lambda *args: (_ for _ in ()).throw(RuntimeError("not here")))
    monkeypatch.setattr(gpu_check, "fp16_agreement", lambda device, quick: {"farsee": 1.0})
    calls = []

    def bench_models(models, sizes, *args):
        calls.append(models[0])
        if len(calls) == 2:
            if cut == "fails":
                raise RuntimeError("CUDA error: out of memory")
            clock[0] += 1e6  # this row took the rest of the budget
        on_disk = json.loads((tmp_path / "gpu_check.json").read_text())
        assert on_disk["parts"]["models"]["result"] == [speed_row(m) for m in calls[:-1]]  # written as measured
        return [speed_row(models[0])]

    monkeypatch.setattr(gpu_check, "bench_models", bench_models)
    report = gpu_check.run_gpu_check(tmp_path, quick=True, budget_s=100.0)
    models = report["parts"]["models"]
    first, second = gpu_check.available_models()[:2]
    if cut == "fails":
        assert models["status"] == "failed" and models["error"] == "RuntimeError: CUDA error: out of memory"
        assert models["result"] == [speed_row(first)]
    else:
        assert models["status"] == "ok" and models["result"] == [speed_row(first), speed_row(second)]
        assert len(report["not_measured"]) == len(gpu_check.available_models()) - 2
        assert report["not_measured"][0].endswith("64×128: time budget spent")
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == report
    assert f"| {first} | 64×128 | fp16 |" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the report of a run without a GPU")
def test_cuda_tests_that_all_skip_are_reported_skipped_not_ok(tmp_path):
    from rtseg_ros.bench import gpu_check

    with pytest.raises(gpu_check.Skipped, match=r"all \d+ CUDA tests skipped: needs a CUDA GPU"):
        gpu_check.cuda_tests(tmp_path, 300)
    assert "skipped" in (tmp_path / "cuda_tests.log").read_text()


def test_cuda_tests_that_overrun_keep_their_log(tmp_path, monkeypatch):
    from rtseg_ros.bench import gpu_check

    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_runtime.py").write_text(
        "import threading\nimport pytest\n\n\n@pytest.mark.cuda\ndef test_quick():\n    pass\n\n\n"
        "@pytest.mark.cuda\ndef test_hangs():\n    threading.Event().wait()\n")
    monkeypatch.setattr(gpu_check, "TESTS", tests)
    with pytest.raises(RuntimeError, match="CUDA tests ran past their 30 s") as error:
        gpu_check.cuda_tests(tmp_path, 30)  # far more than the quick test needs; the other never ends
    assert "\n" not in str(error.value)
    log = (tmp_path / "cuda_tests.log").read_text()
    assert log.startswith(".") and log.endswith("[gpu-check] stopped after 30 s\n")  # test_quick's dot kept


def test_what_the_script_installed_goes_into_the_report(tmp_path):
    from rtseg_ros.bench import gpu_check

    (tmp_path / "install.tsv").write_text("requirements\tok\tpip install -e .\n"
                                          "tensorrt\tskipped\tPyPI has tensorrt-cu13 only as an sdist\n")
    install = gpu_check.install_parts(tmp_path)
    assert install == {"requirements": {"status": "ok", "note": "pip install -e ."},
                       "tensorrt": {"status": "skipped", "note": "PyPI has tensorrt-cu13 only as an sdist"}}
    assert gpu_check.install_parts(tmp_path / "none") == {}
    report = {"device": "cpu", "quick": True, "environment": {}, "install": install, "targets": [], "parts": {}}
    assert "| tensorrt | skipped | PyPI has tensorrt-cu13 only as an sdist |" in gpu_check.markdown(report)


SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def run_script(args, cwd, out_env=None):
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env["PYTHON"] = "false"  # a "python" without pip: the script stops right after settling its folder
    if out_env:
        env["OUT"] = str(out_env)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_gpu_check_script_writes_where_it_is_told_never_into_the_repo(tmp_path):
    repo = SCRIPT.parents[1]
    done = run_script([], tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no output folder" in done.stderr
    done = run_script(["relative", "--quick"], tmp_path)  # relative to where it was started
    assert done.returncode == 1 and "has no pip" in done.stderr
    assert (tmp_path / "relative" / "install.log").is_file() and not (repo / "relative").exists()
    done = run_script(["--quick"], tmp_path, out_env=tmp_path / "from_env")  # $OUT when no folder is given
    assert (tmp_path / "from_env" / "install.log").is_file()


def test_memory_bench_bands_large_frames_with_the_same_labels():
    from rtseg_ros.bench.memory import bench_memory, memory_table

    (row,) = bench_memory("farsee", [(1080, 1920)], backend="torch", weights="random")
    assert row["classes"] == 19 and row["logits_mb"] == pytest.approx(150.3, abs=0.1)
    assert row["labels_differing"] <= 1e-5 * 1920 * 1080  # float-rounding ties only (random weights tie more)
    assert row["banded_growth_mb"] < row["whole_growth_mb"]  # the whole-frame logits alone are 150 MB
    assert memory_table([row]).splitlines()[2].startswith("| 1920x1080 | 150 MB |")
