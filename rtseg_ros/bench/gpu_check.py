"""``rtseg-bench --gpu-check --out DIR``: everything the first GPU run must capture, in one run.

Parts, in order (cheap and decisive first; TensorRT engine builds last, since they take longest):
the CUDA tests (``pytest -m cuda``), the ``--pipeline`` comparison, the steady-state allocation check, the
fp16 label agreement of every network, the ``--models`` table (fp32/fp16, CUDA graphs off/on) for all eight
networks at their paper resolutions and at 1024×2048, and the TensorRT fp16 rows. Every part runs inside
the time budget left (default 9 minutes for the whole run); a part that needs a GPU where there is none is
recorded as skipped, a part that fails with its one-line error, and the run goes on. Writes
``gpu_check.json`` and ``gpu_check.md`` into DIR after every part and every speed row (atomically), so a run
cut short keeps what it measured; what scripts/gpu_check.sh installed (``install.tsv``) goes into both.
``--quick`` (the CPU rehearsal) uses small sizes.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import torch

from rtseg_ros.bench.models import bench_models, bench_tensorrt, cudnn_benchmark, fp32_math, models_table
from rtseg_ros.bench.pipeline import bench_pipeline, pipeline_table
from rtseg_ros.fileio import write_bytes_atomic
from rtseg_ros.models import available_models, get_entry

FULL_HD = (1024, 2048)
TARGET_PAPER_MULTIPLE = 5.0  # every network >= 5x its paper's FPS at the paper's resolution, in fp16
TARGET_DDRNET_SLIM_FPS = 600.0  # DDRNet-23-slim at 1024x2048
TESTS = Path(__file__).resolve().parents[2] / "test"


class Skipped(Exception):
    """A part that cannot run here (no GPU, no TensorRT, no time left): recorded with its reason."""


def environment() -> dict:
    facts = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
             "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        facts.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                     gpus=torch.cuda.device_count(), fp32_math=fp32_math("cuda"))
    for module in ("tensorrt", "onnxruntime"):
        try:
            facts[module] = __import__(module).__version__
        except ImportError:
            facts[module] = None
    if facts["onnxruntime"]:
        import onnxruntime

        facts["onnxruntime_providers"] = onnxruntime.get_available_providers()
    return facts


def model_sizes(name: str, quick: bool) -> list[tuple[int, int]]:
    """The paper's resolution and 1024×2048 (one size when they are the same); --quick: one small size."""
    if quick:
        return [(64, 128)]
    paper = tuple(get_entry(name).paper.resolution or FULL_HD)
    return [paper] if paper == FULL_HD else [paper, FULL_HD]


def cuda_tests(out: Path, timeout_s: float) -> dict:
    """``pytest -m cuda`` on the runtime tests. Its output goes straight to ``cuda_tests.log`` (unbuffered),
    so a run cut short by the timeout still leaves what it printed. Every test skipped (no GPU, no TensorRT)
    is reported as skipped, not as passed."""
    if not TESTS.is_dir():
        raise Skipped(f"no test folder at {TESTS} (run from a source checkout)")
    log, xml = out / "cuda_tests.log", out / "cuda_tests.xml"
    xml.unlink(missing_ok=True)  # never read a previous run's results
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "-p", "no:cacheprovider",
               str(TESTS / "test_runtime.py"), f"--junitxml={xml}"]
    with open(log, "w") as stream:
        try:
            done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, timeout=timeout_s,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except subprocess.TimeoutExpired:
            stream.write(f"\n[gpu-check] stopped after {timeout_s:.0f} s\n")
            raise RuntimeError(f"CUDA tests ran past their {timeout_s:.0f} s (what they printed: cuda_tests.log)") from None
    counts = junit_counts(xml)
    if done.returncode == 5 or (counts and counts["tests"] == counts["skipped"]):  # 5: nothing collected
        first = f": {counts['first_skip']}" if counts and counts.get("first_skip") else ""
        raise Skipped(f"all {counts['tests'] if counts else 0} CUDA tests skipped{first}")
    if done.returncode != 0:
        raise RuntimeError(f"CUDA tests failed: {summary_line(counts) or done.returncode} (see cuda_tests.log)")
    return {"summary": summary_line(counts), **(counts or {})}


def junit_counts(xml: Path) -> dict | None:
    """tests, failures, errors and skipped from pytest's JUnit XML, and the first skip's reason."""
    try:
        root = ElementTree.parse(xml).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    skip = suite.find(".//skipped")
    if skip is not None:
        counts["first_skip"] = (skip.get("message") or "").split("\n")[0]
    return counts


def summary_line(counts: dict | None) -> str:
    if not counts:
        return ""
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return (f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
            f"{counts['skipped']} skipped")


def steady_state_allocations(device: str, quick: bool) -> dict:
    """Caching-allocator requests and new cudaMalloc segments over 5 steady frames, graphs off and on."""
    from rtseg_ros.runtime.segmenter import Segmenter

    if not device.startswith("cuda"):
        raise Skipped("no CUDA GPU")
    frame = np.random.default_rng(0).integers(0, 256, (512, 1024, 3), dtype=np.uint8)
    result = {}
    for graphs in (False, True):
        seg = Segmenter("ddrnet23_slim", device=device, backend="torch", input_size=(256, 512), cuda_graphs=graphs)
        for _ in range(3):
            seg(frame, "bgr8", outputs=("labels", "color", "overlay"))
        before = torch.cuda.memory_stats(seg.device)
        for _ in range(5):
            seg(frame, "bgr8", outputs=("labels", "color", "overlay"))
        after = torch.cuda.memory_stats(seg.device)
        result[f"graphs_{'on' if graphs else 'off'}"] = {
            key: after[f"{key}.all.allocated"] - before[f"{key}.all.allocated"] for key in ("segment", "allocation")}
    return result


def fp16_agreement(device: str, quick: bool) -> dict:
    """Share of labels an fp16 Segmenter gives equal to an fp32 one (same random weights, TF32 off), per
    network at its paper resolution, on a synthetic street scene."""
    from rtseg_ros.data.synth import generate_scene
    from rtseg_ros.runtime.segmenter import Segmenter

    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        shares = {}
        for name in (["farsee", "ddrnet23_slim"] if quick else available_models()):
            size = model_sizes(name, quick)[0]
            rgb = generate_scene(np.random.default_rng(0), *size)[0]
            labels = []
            for precision in ("fp32", "fp16"):
                torch.manual_seed(0)
                seg = Segmenter(name, device=device, backend="torch", precision=precision, input_size=size)
                labels.append(seg(rgb, "rgb8").labels.copy())
            shares[name] = float((labels[0] == labels[1]).mean())
        return shares
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets against the fastest fp16 row (any backend, graphs on or off) per model and size."""
    best: dict[tuple, float] = {}
    for r in rows:
        if r["precision"] == "fp16":
            key = (r["model"], tuple(r["size"]))
            best[key] = max(best.get(key, 0.0), r["fps"])
    checks = []
    for (model, size), fps in sorted(best.items()):
        paper = get_entry(model).paper
        if paper.fps and paper.resolution and tuple(paper.resolution) == size:
            checks.append({"model": model, "size": list(size), "fps": fps, "target_fps": TARGET_PAPER_MULTIPLE * paper.fps,
                           "target": f"{TARGET_PAPER_MULTIPLE:g}× paper ({paper.fps})", "met": fps >= TARGET_PAPER_MULTIPLE * paper.fps})
        if model == "ddrnet23_slim" and size == FULL_HD:
            checks.append({"model": model, "size": list(size), "fps": fps, "target_fps": TARGET_DDRNET_SLIM_FPS,
                           "target": f"{TARGET_DDRNET_SLIM_FPS:g} FPS", "met": fps >= TARGET_DDRNET_SLIM_FPS})
    return checks


def install_parts(out: Path) -> dict:
    """What scripts/gpu_check.sh installed: ``install.tsv`` (part, ok|skipped|failed, note), if it ran."""
    try:
        lines = (out / "install.tsv").read_text().splitlines()
    except OSError:
        return {}
    parts = {}
    for line in lines:
        name, status, note = (line.split("\t") + ["", ""])[:3]
        parts[name] = {"status": status, "note": note}
    return parts


def run_gpu_check(out: Path, quick: bool = False, budget_s: float = 540.0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget_s
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = device == "cuda"
    seconds = 0.2 if quick else 1.0
    report = {"device": device, "quick": quick, "budget_s": budget_s, "environment": environment(),
              "install": install_parts(out), "parts": {}}
    models = available_models()

    def part(name: str, run, needs_gpu: bool = False, needs: str | None = None) -> None:
        start = time.monotonic()
        record = report["parts"][name] = {"status": "running"}
        try:
            if needs_gpu and not gpu:
                raise Skipped("no CUDA GPU")
            if needs and report["environment"].get(needs) is None:
                installed = report["install"].get(needs, {}).get("note")
                raise Skipped(f"{needs} not importable" + (f": {installed}" if installed else ""))
            if time.monotonic() > deadline:
                raise Skipped("time budget spent")
            record.update(status="ok", result=run())
        except Skipped as why:
            record.update(status="skipped", reason=str(why))
        except Exception as error:  # noqa: BLE001 -- one part failing must not lose the others' figures
            record.update(status="failed", error=f"{type(error).__name__}: {error}".splitlines()[0])
        record["seconds"] = round(time.monotonic() - start, 1)
        print(f"[gpu-check] {name}: {record['status']} ({record['seconds']} s)", flush=True)
        write(out, report)  # after every part: a run cut short still leaves what it measured

    def measured_rows(name: str, rows_for) -> list[dict]:
        """``rows_for(model, size)`` for every model and size while time is left, each row kept in the report
        and written as soon as it is measured: a part that overruns or fails keeps what it measured."""
        rows = report["parts"][name]["result"] = []
        write(out, report)  # the part shows as running, with no rows yet
        for model in models:
            for size in model_sizes(model, quick):
                if time.monotonic() > deadline:
                    report.setdefault("not_measured", []).append(f"{name} {model} {size[0]}×{size[1]}: time budget spent")
                    continue
                rows.extend(rows_for(model, size))
                write(out, report)
        return rows

    def pipeline():
        with cudnn_benchmark():  # fixed shapes, as the node runs them (segment_node sets it on CUDA)
            return [bench_pipeline(model, (96, 160) if quick else FULL_HD, 3 if quick else 50, device, p,
                                   (64, 128) if quick else None)
                    for model in ("ddrnet23_slim", "farsee") for p in (["fp32"] if quick else ["fp32", "fp16"])]

    part("cuda_tests", lambda: cuda_tests(out, max(30.0, min(150.0, deadline - time.monotonic()))))
    part("pipeline", pipeline)
    part("steady_state_allocations", lambda: steady_state_allocations(device, quick), needs_gpu=True)
    part("fp16_label_agreement", lambda: fp16_agreement(device, quick))
    part("models", lambda: measured_rows("models", lambda model, size: bench_models(
        [model], [size], device, ["fp32", "fp16"], [False, True], seconds)))
    part("tensorrt", lambda: measured_rows("tensorrt", lambda model, size: bench_tensorrt(
        [model], [size], device, ["fp16"], seconds)), needs_gpu=True, needs="tensorrt")
    report["targets"] = targets(speed_rows(report)) if gpu else []
    write(out, report)
    return report


def speed_rows(report: dict) -> list[dict]:
    """Every speed row measured, also those of a part that failed or ran out of time after them."""
    return [row for key in ("models", "tensorrt") for row in report["parts"].get(key, {}).get("result") or []]


def write(out: Path, report: dict) -> None:
    write_bytes_atomic(out / "gpu_check.json", json.dumps(report, indent=2).encode())
    write_bytes_atomic(out / "gpu_check.md", markdown(report).encode())


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# GPU check ({'quick rehearsal, ' if report['quick'] else ''}device {report['device']})", "",
             "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    if report.get("install"):
        lines += ["| installed | status | note |", "|---|---|---|"]
        lines += [f"| {name} | {p['status']} | {p['note']} |" for name, p in report["install"].items()]
        lines.append("")
    lines += ["| part | status | seconds | note |", "|---|---|---:|---|"]
    for name, p in report["parts"].items():
        note = p.get("reason") or p.get("error") or (p["result"].get("summary", "") if isinstance(p.get("result"), dict) else "")
        lines.append(f"| {name} | {p['status']} | {p.get('seconds', '')} | {note} |")  # no seconds yet: running
    parts = report["parts"]
    rows = speed_rows(report)
    if rows:
        lines += ["", "## Network speed (fp32 rows: " + rows[0]["fp32_math"] + ")", "", models_table(rows)]
    if parts.get("pipeline", {}).get("status") == "ok":
        lines += ["", "## Pipeline: Segmenter vs naive loop", "", pipeline_table(parts["pipeline"]["result"])]
    if parts.get("fp16_label_agreement", {}).get("status") == "ok":
        lines += ["", "## fp16 label agreement with fp32 (TF32 off)", "", "| model | equal labels |", "|---|---:|"]
        lines += [f"| {m} | {100 * share:.2f} % |" for m, share in parts["fp16_label_agreement"]["result"].items()]
    if parts.get("steady_state_allocations", {}).get("status") == "ok":
        lines += ["", "## Steady state: new allocations over 5 frames", "", "| CUDA graphs | cudaMalloc segments | allocator requests |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['segment']} | {v['allocation']} |" for k, v in parts["steady_state_allocations"]["result"].items()]
    if report.get("targets"):
        lines += ["", "## Targets (fastest fp16 row)", "", "| model | input | FPS | target | met |", "|---|---|---:|---|---|"]
        lines += [f"| {t['model']} | {t['size'][0]}×{t['size'][1]} | {t['fps']:.1f} | {t['target']} | {'yes' if t['met'] else 'NO'} |"
                  for t in report["targets"]]
    if report.get("not_measured"):
        lines.append("")  # a list, not another row of the table above
        lines += [f"- not measured: {note}" for note in report["not_measured"]]
    return "\n".join(lines) + "\n"
