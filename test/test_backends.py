"""CPU engines: OpenVINO and ONNX Runtime against torch, the compiled-model cache, backend:=auto, INT8."""
import functools
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from rtseg_ros.runtime.backends import importable, resolve_backend
from rtseg_ros.runtime.choices import AUTO_ORDER
from rtseg_ros.runtime.segmenter import Segmenter as AnyBackendSegmenter, check_precision

from helpers import CAMVID

# The torch path unless a test names another engine (the Segmenter's default, auto, measures them).
Segmenter = functools.partial(AnyBackendSegmenter, backend="torch")

MODEL, NET = "farsee", (64, 128)
needs_camvid = pytest.mark.skipif(not (CAMVID / "val").is_dir(), reason=f"CamVid not found at {CAMVID}")


def frame(h=96, w=160, seed=6):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def seeded(**options) -> Segmenter:
    torch.manual_seed(0)
    return Segmenter(MODEL, input_size=NET, **options)


def hide(monkeypatch, *modules):
    """Make ``import module`` fail as if the package were not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


# -- backend:=auto -------------------------------------------------------------------------------------

def test_auto_picks_the_first_importable_engine_in_the_documented_order(monkeypatch):
    assert AUTO_ORDER == {"cpu": ("openvino", "onnxruntime", "torch"), "cuda": ("tensorrt", "torch")}
    monkeypatch.setitem(sys.modules, "openvino", types.ModuleType("openvino"))
    monkeypatch.setitem(sys.modules, "onnx", types.ModuleType("onnx"))
    assert resolve_backend("auto", "cpu")[0] == "openvino"
    hide(monkeypatch, "openvino")
    backend, why = resolve_backend("auto", "cpu")
    assert backend == ("onnxruntime" if importable("onnxruntime") else "torch")
    assert "openvino not importable" in why
    hide(monkeypatch, "onnxruntime")
    assert resolve_backend("auto", "cpu") == ("torch", "auto on cpu: first importable of openvino, onnxruntime, "
                                                       "torch (openvino, onnxruntime not importable)")
    hide(monkeypatch, "tensorrt")
    assert resolve_backend("auto", "cuda")[0] == "torch"
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    assert resolve_backend("auto", "cuda")[0] == "tensorrt"


def test_an_engine_needs_onnx_for_the_export(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", types.ModuleType("openvino"))
    hide(monkeypatch, "onnx")
    with pytest.raises(RuntimeError, match="needs the Python packages openvino and onnx"):
        resolve_backend("openvino", "cpu")


def test_int8_under_auto_needs_an_int8_engine(monkeypatch):
    hide(monkeypatch, "openvino", "onnxruntime")
    with pytest.raises(RuntimeError, match="precision int8 on cpu needs one of openvino, onnxruntime") as error:
        resolve_backend("auto", "cpu", "int8")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("backend, hint", [("openvino", r"pip install 'rtseg_ros\[openvino\]'"),
                                           ("onnxruntime", r"pip install 'rtseg_ros\[onnx\]'"),
                                           ("tensorrt", r"pip install --extra-index-url https://pypi\.nvidia\.com tensorrt-cu13")])
def test_a_missing_engine_asked_for_by_name_is_one_line_saying_how_to_install(monkeypatch, backend, hint):
    hide(monkeypatch, backend)
    with pytest.raises(RuntimeError, match=hint) as error:
        Segmenter(MODEL, input_size=NET, backend=backend)
    assert "\n" not in str(error.value) and f"backend '{backend}'" in str(error.value)


def test_the_segmenter_says_what_auto_chose():
    seg = seeded(backend="auto")
    facts = seg.describe()
    assert facts["backend_requested"] == "auto" and facts["backend"] == seg.backend_name
    assert facts["backend"] in AUTO_ORDER["cpu"] and facts["backend_reason"].startswith("auto on cpu")
    assert seeded(backend="torch").describe()["backend_reason"] == "asked for by name"


def test_precisions_an_engine_cannot_run_are_refused():
    with pytest.raises(ValueError, match="precision int8 runs on backend openvino or onnxruntime"):
        check_precision("int8", "torch", None)
    check_precision("int8", "openvino", None)
    check_precision("bf16", "openvino", None)


# -- OpenVINO ------------------------------------------------------------------------------------------

def test_openvino_agrees_with_torch_in_fp32(tmp_path):
    pytest.importorskip("openvino")
    reference, seg = seeded(), seeded(backend="openvino", engine_cache_dir=str(tmp_path))
    for seed in (6, 7):
        rgb = frame(seed=seed)
        assert (seg(rgb).labels == reference(rgb).labels).mean() >= 0.999


def test_openvino_fp32_is_f32_even_where_the_cpu_would_run_bf16(tmp_path):
    """OpenVINO defaults to bf16 on AMX/AVX-512-BF16 CPUs; precision fp32 must not."""
    pytest.importorskip("openvino")
    seg = seeded(backend="openvino", engine_cache_dir=str(tmp_path))
    seg(frame())
    (request,) = seg._runner._requests.values()
    assert str(request.get_compiled_model().get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")


def test_openvino_compiles_once_and_recompiles_when_the_key_changes(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from rtseg_ros.runtime.backends import cache

    monkeypatch.setattr(cache, "scratch_folder", lambda: tmp_path)  # random weights are cached there only
    engines = tmp_path / "engines"
    seeded(backend="openvino", engine_cache_dir=str(tmp_path))(frame())
    (blob,) = engines.glob("*.ov")
    assert blob.with_suffix(".json").is_file() and blob.name.startswith(f"{MODEL}-19c-64x96-fp32-")
    seg = seeded(backend="openvino", engine_cache_dir=str(tmp_path))

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled again although the cached model matches")
    with monkeypatch.context() as patched:
        patched.setattr(seg._runner.core, "compile_model", no_compiling)
        seg(frame())  # imported from the cache
    seeded(backend="openvino", engine_cache_dir=str(tmp_path), cpu_threads=1)(frame())  # other threads: new key
    seeded(backend="openvino", engine_cache_dir=str(tmp_path))(frame(h=160, w=96))  # another shape
    assert len(list(engines.glob("*.ov"))) == 3


def test_openvino_refuses_a_device_it_does_not_see(tmp_path):
    pytest.importorskip("openvino")
    with pytest.raises(RuntimeError, match="OpenVINO sees no device 'NPU'"):
        seeded(backend="openvino", openvino_device="NPU", engine_cache_dir=str(tmp_path))


def test_onnxruntime_session_follows_cpu_threads(tmp_path):
    pytest.importorskip("onnxruntime")
    seg = seeded(backend="onnxruntime", engine_cache_dir=str(tmp_path), cpu_threads=1)
    options = seg._runner.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


# -- INT8 ----------------------------------------------------------------------------------------------

def test_int8_needs_its_calibrated_model_first(tmp_path):
    pytest.importorskip("openvino")
    with pytest.raises(RuntimeError, match=r"rtseg-export --weights .* --int8 --calib-root") as error:
        seeded(backend="openvino", precision="int8", engine_cache_dir=str(tmp_path))
    assert "\n" not in str(error.value)


def test_rtseg_export_int8_on_a_synthetic_folder_runs_in_both_engines(tmp_path):
    """The whole chain without real data: rtseg-synth's Cityscapes layout → calibration → INT8 model →
    precision:=int8 in OpenVINO and ONNX Runtime (random weights: only that it runs and mostly agrees)."""
    pytest.importorskip("onnxruntime")
    from rtseg_ros.data.synth.cli import main as synth
    from rtseg_ros.models import build_model
    from rtseg_ros.tools import export

    assert synth(["--out", str(tmp_path / "synth"), "--num", "4", "--size", "128x256", "--quiet"]) == 0
    weights = tmp_path / "farsee.pt"
    torch.manual_seed(0)
    torch.save(build_model(MODEL).state_dict(), weights)
    export.main(["--model", MODEL, "--weights", str(weights), "--input-size", "64x128", "--int8",
                 "--calib-root", str(tmp_path / "synth"), "--calib-frames", "4", "--engine-cache-dir", str(tmp_path)])
    (int8,) = tmp_path.glob(f"{MODEL}-19c-*-int8.onnx")
    rgb = frame()
    fp32 = Segmenter(MODEL, str(weights), input_size=NET)(rgb).labels
    for backend in ("openvino", "onnxruntime"):
        if not importable(backend):
            continue
        seg = Segmenter(MODEL, str(weights), input_size=NET, backend=backend, precision="int8",
                        engine_cache_dir=str(tmp_path))
        assert seg._runner.onnx_path == int8 if backend == "openvino" else seg._runner.path == int8
        assert (seg(rgb).labels == fp32).mean() > 0.9


@needs_camvid
def test_int8_keeps_camvid_accuracy_with_the_shipped_weights(tmp_path):
    """Calibrated on 16 CamVid train frames, scored on every 5th val frame: within 1.0 point of fp32 mIoU
    (the issue's bound) and most labels equal. Agreement depends on the CPU's INT8 kernels: 99.0 % on these
    frames on the development machine, 97.9 % on the CI machine, so the bound on it is loose."""
    pytest.importorskip("onnxruntime")
    from rtseg_ros.data.datasets import open_dataset
    from rtseg_ros.eval.metrics import ConfusionMatrix
    from rtseg_ros.tools import export

    export.main(["--weights", "sgcpnet_camvid", "--int8", "--calib-root", str(CAMVID), "--calib-frames", "16",
                 "--engine-cache-dir", str(tmp_path)])
    backend = resolve_backend("auto", "cpu", "int8")[0]
    fp32 = Segmenter(weights="sgcpnet_camvid", backend="torch")
    int8 = Segmenter(weights="sgcpnet_camvid", backend=backend, precision="int8", engine_cache_dir=str(tmp_path))
    val = open_dataset("camvid", CAMVID, "val")
    scores = {"fp32": ConfusionMatrix(11), "int8": ConfusionMatrix(11)}
    equal = []
    for index in range(0, len(val), 5):
        sample = val[index]
        labels = {name: torch.from_numpy(seg(sample["image"]).labels.copy()) for name, seg in
                  (("fp32", fp32), ("int8", int8))}
        for name, predicted in labels.items():
            scores[name].update(predicted, torch.from_numpy(sample["label"]))
        equal.append(float((labels["fp32"] == labels["int8"]).float().mean()))
    assert scores["fp32"].miou() - scores["int8"].miou() <= 0.010
    assert np.mean(equal) >= 0.95


def current_altstack_is_mapped() -> bool:
    import ctypes

    class Stack(ctypes.Structure):
        _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

    stack = Stack()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
    if not stack.sp or stack.flags & 2:  # SS_DISABLE: no alternate stack, nothing to point nowhere
        return True
    maps = (line.split()[0].split("-") for line in Path("/proc/self/maps").read_text().splitlines())
    return any(int(start, 16) <= stack.sp < int(end, 16) for start, end in maps)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads this process's memory map")
def test_openvino_runners_released_in_any_order_leave_a_valid_signal_stack(tmp_path):
    """Two OpenVINO Cores released in the order they were made left this thread's alternate signal stack
    in freed memory, and the next signal (a child exiting) killed the test suite with SIGSEGV."""
    pytest.importorskip("openvino")
    import gc

    first = seeded(backend="openvino", engine_cache_dir=str(tmp_path))
    first(frame())
    second = seeded(backend="openvino", engine_cache_dir=str(tmp_path))
    second(frame(h=160, w=96))
    del first
    gc.collect()
    del second
    gc.collect()
    assert current_altstack_is_mapped()
