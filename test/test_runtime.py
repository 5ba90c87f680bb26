"""Segmenter: pre/post-processing against OpenCV/NumPy references, buffers, backends, weights."""
import functools
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from rtseg_ros.data.labels import get_dataset_info
from rtseg_ros.models import build_model, get_entry
from rtseg_ros.fileio import write_atomic, write_bytes_atomic
from rtseg_ros.runtime.backends import cache, onnxruntime_runner, tensorrt_runner
from rtseg_ros.runtime.folding import fold_batchnorm
from rtseg_ros.models.checkpoint import save_checkpoint
from rtseg_ros.data.encodings import DIRECT
from rtseg_ros.runtime.segmenter import Segmenter as AnyBackendSegmenter, UnsupportedEncoding, network_size

# The torch path unless a test names another engine (the Segmenter's default, auto, measures them).
Segmenter = functools.partial(AnyBackendSegmenter, backend="torch")

MODEL = "farsee"  # the runtime does not depend on the network; one small input keeps this file fast
NET = (64, 128)


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return Segmenter(MODEL, input_size=NET)


def frame(h=96, w=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def encode(rgb, encoding):
    return {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
            "bgra8": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)]),
            "mono8": rgb[..., :1]}[encoding]


def reference_preprocess(rgb, net_hw, mean, std):
    resized = cv2.resize(rgb.astype(np.float32), (net_hw[1], net_hw[0]), interpolation=cv2.INTER_LINEAR)
    return ((resized / 255.0 - mean) / std).transpose(2, 0, 1)[None]


def test_network_size_keeps_aspect_in_multiples_of_32():
    assert network_size((1024, 2048), (512, 1024), keep_aspect=True) == (512, 1024)
    assert network_size((720, 1280), (512, 1024), keep_aspect=True) == (512, 896)
    assert network_size((720, 1280), (512, 1024), keep_aspect=False) == (512, 1024)


@pytest.mark.parametrize("encoding", sorted(DIRECT))
def test_preprocess_matches_opencv(segmenter, encoding):
    rgb = frame()
    if encoding == "mono8":
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    segmenter(encode(rgb, encoding), encoding)
    got = segmenter._preprocess().numpy()
    expected = reference_preprocess(rgb, segmenter.net_hw, np.array(segmenter.loaded.mean), np.array(segmenter.loaded.std))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_postprocess_matches_numpy_reference(segmenter):
    rgb = frame()
    segmenter(rgb, "rgb8", outputs=("labels", "color", "overlay", "confidence"), overlay_alpha=0.25)
    logits = torch.randn(1, 19, 24, 40)
    segmenter._postprocess(logits)
    up = np.stack([cv2.resize(c, (160, 96), interpolation=cv2.INTER_LINEAR) for c in logits[0].numpy()])
    labels = up.argmax(0)
    out = {k: v.numpy() for k, v in segmenter.dev_out.items()}
    assert (out["labels"] == labels).mean() > 0.999
    palette = get_dataset_info("cityscapes").palette
    np.testing.assert_array_equal(out["color"], palette[out["labels"]])
    blend = np.round(0.75 * rgb + 0.25 * palette[out["labels"]].astype(np.float64))
    assert np.abs(out["overlay"].astype(int) - blend).max() <= 1
    softmax = np.exp(up - up.max(0)) / np.exp(up - up.max(0)).sum(0)
    assert np.abs(out["confidence"].astype(int) - np.round(255 * softmax.max(0))).max() <= 1


def test_labels_nearest_upsampling_option():
    torch.manual_seed(0)
    fast = Segmenter(MODEL, input_size=NET, upsample="labels")
    fast(frame(), "rgb8")
    logits = torch.randn(1, 19, 24, 40)
    fast._postprocess(logits)
    expected = cv2.resize(logits[0].argmax(0).numpy().astype(np.uint8), (160, 96), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(fast.dev_out["labels"].numpy(), expected)


def test_result_carries_its_sizes_and_whether_it_reallocated():
    seg = Segmenter(MODEL, input_size=NET)
    first = seg(frame(), "rgb8")
    assert first.reallocated and first.network_hw == seg.net_hw and first.output_hw == (96, 160)
    assert not seg(frame(seed=1), "rgb8").reallocated
    other = seg(frame(80, 120), "rgb8")
    assert other.reallocated and other.output_hw == (80, 120)
    assert other.network_hw == network_size((80, 120), seg.input_size, seg.keep_aspect)
    assert seg(frame(80, 120), "rgb8", outputs=("labels", "color")).reallocated  # outputs are part of the buffers
    at_network = Segmenter(MODEL, input_size=NET, output_resolution="network")(frame(), "rgb8")
    assert at_network.output_hw == at_network.network_hw == at_network.labels.shape


def test_buffers_are_reused_and_reallocated_on_change(segmenter):
    segmenter(frame(seed=1), "rgb8", outputs=("labels", "color"))
    before = segmenter.reallocations
    ptrs = (segmenter.host_in.data_ptr(), segmenter.dev_out["labels"].data_ptr(), segmenter.dev_rgb.data_ptr())
    first = segmenter(frame(seed=2), "rgb8", outputs=("labels", "color"))
    second = segmenter(frame(seed=3), "rgb8", outputs=("labels", "color"))
    assert first.labels.ctypes.data == second.labels.ctypes.data  # same host buffer handed out
    assert (segmenter.host_in.data_ptr(), segmenter.dev_out["labels"].data_ptr(), segmenter.dev_rgb.data_ptr()) == ptrs
    assert segmenter.reallocations == before
    segmenter(frame(80, 120), "rgb8", outputs=("labels", "color"))
    assert segmenter.reallocations == before + 1
    assert segmenter.host_in.shape == (80, 120, 3)
    segmenter(frame(80, 120), "bgr8", outputs=("labels", "color"))
    assert segmenter.reallocations == before + 2


def test_every_encoding_gives_the_same_labels(segmenter):
    rgb = frame(seed=4)
    results = {enc: segmenter(encode(rgb, enc), enc).labels.copy() for enc in ("rgb8", "bgr8", "rgba8", "bgra8")}
    for enc, labels in results.items():
        np.testing.assert_array_equal(labels, results["rgb8"], err_msg=enc)
    assert segmenter(encode(rgb, "mono8"), "mono8").labels.shape == (96, 160)


def test_bad_frames_are_rejected_clearly(segmenter):
    with pytest.raises(UnsupportedEncoding, match="yuv422"):
        segmenter(frame(), "yuv422")
    with pytest.raises(ValueError, match="H×W×4"):
        segmenter(frame(), "rgba8")
    with pytest.raises(ValueError, match="non-empty"):
        segmenter(np.zeros((0, 10, 3), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="unknown outputs"):
        segmenter(frame(), "rgb8", outputs=("depth",))


def eager_labels(model, rgb, net_hw, mean, std):
    x = torch.from_numpy(reference_preprocess(rgb, net_hw, np.array(mean), np.array(std))).float()
    model.eval().upsample_logits = False
    with torch.no_grad():
        logits = model(x)
    return torch.nn.functional.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False).argmax(1)[0].numpy()


def test_torch_backend_equals_the_plain_eager_model():
    torch.manual_seed(0)
    seg = Segmenter(MODEL, input_size=NET)
    torch.manual_seed(0)
    eager = build_model(MODEL)
    rgb = frame(seed=5)
    agreement = (seg(rgb, "rgb8").labels == eager_labels(eager, rgb, seg.net_hw, seg.loaded.mean, seg.loaded.std)).mean()
    assert seg.folded_bn > 0
    assert agreement >= 0.999


def test_batchnorm_folding_changes_nothing_beyond_float_tolerance():
    torch.manual_seed(0)
    model = build_model(MODEL).eval()
    for module in model.modules():  # non-trivial statistics, so folding has something to do
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, *NET)
    folded, count = fold_batchnorm(model, x)
    def batchnorms(m):
        return sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    assert count > 0 and batchnorms(folded) == batchnorms(model) - count
    with torch.no_grad():
        np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_onnxruntime_backend_agrees_with_torch(tmp_path):
    torch.manual_seed(0)
    reference = Segmenter(MODEL, input_size=NET)
    torch.manual_seed(0)
    ort_seg = Segmenter(MODEL, input_size=NET, backend="onnxruntime", engine_cache_dir=tmp_path)
    # random weights are never persisted, not even in an explicit engine_cache_dir
    assert ort_seg._runner.path.suffix == ".onnx" and ort_seg._runner.path.parent == cache.scratch_folder()
    assert not any(tmp_path.iterdir())
    rgb = frame(seed=6)
    assert (ort_seg(rgb, "rgb8").labels == reference(rgb, "rgb8").labels).mean() >= 0.999


# -- weights --------------------------------------------------------------------------------------------

def test_state_dict_weights_load_and_wrong_ones_fail_with_one_message(tmp_path):
    torch.manual_seed(1)
    model = build_model(MODEL)
    torch.save(model.state_dict(), tmp_path / "farsee.pt")
    seg = Segmenter(MODEL, weights=str(tmp_path / "farsee.pt"), input_size=NET)
    assert not seg.random_weights and "farsee.pt" in seg.describe()["weights"]
    torch.save(build_model(MODEL, num_classes=11).state_dict(), tmp_path / "farsee11.pt")
    with pytest.raises(ValueError, match="does not fit model 'farsee' with 19 classes"):
        Segmenter(MODEL, weights=str(tmp_path / "farsee11.pt"))
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights file"):
        Segmenter(MODEL, weights=str(tmp_path / "broken.pt"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        Segmenter(MODEL, weights=str(tmp_path / "missing.pt"))


def test_rtseg_checkpoint_of_another_model_names_both(tmp_path):
    entry = get_entry(MODEL)
    info = get_dataset_info("camvid")
    checkpoint = {"model": MODEL, "model_options": {}, "num_classes": 11, "aux": False,
                  "dataset": info.to_dict(), "input_size": list(NET), "mean": list(entry.mean),
                  "std": list(entry.std), "state_dict": build_model(MODEL, num_classes=11).state_dict(), "iteration": 7}
    save_checkpoint(checkpoint, tmp_path / "camvid.pt")
    seg = Segmenter(weights=str(tmp_path / "camvid.pt"))  # the checkpoint names model, classes, palette, size
    assert seg.loaded.name == MODEL and seg.dataset.num_classes == 11 and seg.input_size == NET
    assert seg(frame(), "rgb8", outputs=("color",)).labels.max() < 11
    with pytest.raises(ValueError, match="is for model 'farsee' with 11 classes .camvid., but model 'ddrnet23_slim'"):
        Segmenter("ddrnet23_slim", weights=str(tmp_path / "camvid.pt"))
    with pytest.raises(ValueError, match="with 19 classes was requested"):
        Segmenter(MODEL, weights=str(tmp_path / "camvid.pt"), num_classes=19)


# -- TensorRT paths that need no TensorRT ------------------------------------------------------------

def test_engine_cache_key_detects_any_change(tmp_path):
    key = cache.engine_cache_key("farsee", 19, "abc", (1, 3, 512, 1024), "fp16", "tensorrt", "10.3.0", "NVIDIA H100")
    engine, sidecar = cache.engine_paths(tmp_path, key, ".engine")
    assert engine.name.startswith("farsee-19c-512x1024-fp16-")
    assert not cache.cached_engine_matches(engine, sidecar, key)
    write_bytes_atomic(engine, b"engine")
    write_bytes_atomic(sidecar, __import__("json").dumps(key).encode())
    assert cache.cached_engine_matches(engine, sidecar, key)
    assert set(key) == {"model", "classes", "weights", "input_shape", "precision", "engine", "engine_version",
                        "device", "settings"}
    for field, value in (("weights", "abd"), ("input_shape", [1, 3, 512, 512]), ("precision", "fp32"),
                         ("engine", "openvino"), ("engine_version", "10.4.0"), ("device", "NVIDIA A100"),
                         ("model", "ddrnet23"), ("classes", 11), ("settings", {"TBB_PARTITIONER": "AUTO"})):
        assert not cache.cached_engine_matches(engine, sidecar, {**key, field: value}), field
    sidecar.write_text("{corrupt")
    assert not cache.cached_engine_matches(engine, sidecar, key)


def test_missing_tensorrt_says_how_to_install():
    pytest.importorskip("numpy")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match=r"pip install --extra-index-url https://pypi\.nvidia\.com tensorrt-cu13"):
        Segmenter(MODEL, input_size=NET, backend="tensorrt")


# -- CUDA ---------------------------------------------------------------------------------------------

cuda = pytest.mark.cuda  # skipped without a GPU (conftest); the GPU check runs `pytest -m cuda`


@pytest.fixture
def ieee_fp32():
    """cuDNN runs "fp32" convolutions in TF32 by default; fp32 agreement with the CPU needs real fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@cuda
@pytest.mark.parametrize("graphs", [False, True])
def test_cuda_steady_state_makes_no_allocations(graphs, ieee_fp32):
    torch.manual_seed(0)
    seg = Segmenter(MODEL, device="cuda", input_size=(256, 512), cuda_graphs=graphs)
    rgb = frame(512, 1024)
    for _ in range(3):
        seg(rgb, "bgr8", outputs=("labels", "color", "overlay"))
    torch.cuda.synchronize()
    before = torch.cuda.memory_stats()
    for _ in range(5):
        seg(rgb, "bgr8", outputs=("labels", "color", "overlay"))
    torch.cuda.synchronize()
    after = torch.cuda.memory_stats()
    # No new device memory in steady state (cudaMalloc segments); with a CUDA graph not even a request
    # to the caching allocator.
    assert after["segment.all.allocated"] == before["segment.all.allocated"]
    if graphs:
        assert after["allocation.all.allocated"] == before["allocation.all.allocated"]
    torch.manual_seed(0)  # the same random weights as the CUDA Segmenter
    cpu = Segmenter(MODEL, input_size=(256, 512))
    assert (seg(rgb, "bgr8").labels == cpu(rgb, "bgr8").labels).mean() > 0.999


def seeded_pair(**options):
    """A CPU fp32 reference and a Segmenter with ``options``, both with the same random weights."""
    torch.manual_seed(0)
    reference = Segmenter(MODEL, input_size=(256, 512))
    torch.manual_seed(0)
    return reference, Segmenter(MODEL, input_size=(256, 512), **options)


def scene(h=512, w=1024):
    from rtseg_ros.data.synth import generate_scene

    return generate_scene(np.random.default_rng(0), h, w)[0]


def agreement(a: Segmenter, b: Segmenter, rgb) -> float:
    return float((a(rgb, "rgb8").labels == b(rgb, "rgb8").labels).mean())


@cuda
@pytest.mark.parametrize("precision, floor", [("fp16", 0.99), ("bf16", 0.95)])
def test_cuda_reduced_precision_agrees_with_cpu_fp32(precision, floor):
    if precision == "bf16" and torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("bf16 needs sm80+")
    reference, seg = seeded_pair(device="cuda", precision=precision)
    assert agreement(reference, seg, scene()) >= floor


@cuda
def test_cuda_onnxruntime_runs_on_the_gpu_and_agrees(tmp_path, ieee_fp32):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without CUDA here (onnxruntime-gpu not installed)")
    for precision, floor in (("fp32", 0.999), ("fp16", 0.99)):
        try:
            reference, seg = seeded_pair(device="cuda", backend="onnxruntime", precision=precision,
                                         engine_cache_dir=str(tmp_path))
        except RuntimeError as error:  # listed but not loadable: e.g. a CUDA 12 build beside a CUDA 13 torch
            if "did not grant CUDAExecutionProvider" not in str(error):
                raise
            pytest.skip(f"onnxruntime's CUDA provider does not start here: {error}")
        assert seg._runner.session.get_providers()[0] == "CUDAExecutionProvider"
        if precision == "fp32":
            assert seg._runner.session.get_provider_options()["CUDAExecutionProvider"]["use_tf32"] == "0"
        assert agreement(reference, seg, scene()) >= floor, precision


@cuda
def test_cuda_tensorrt_builds_typed_engines_and_agrees(tmp_path):
    pytest.importorskip("tensorrt")
    for precision, floor in (("fp32", 0.99), ("fp16", 0.99)):
        reference, seg = seeded_pair(device="cuda", backend="tensorrt", precision=precision,
                                     engine_cache_dir=str(tmp_path))
        assert agreement(reference, seg, scene()) >= floor, precision
        (_, _, image, _), = seg._runner._engines.values()
        assert image.dtype == {"fp32": torch.float32, "fp16": torch.float16}[precision]


@cuda
def test_cuda_device_n_from_a_worker_thread():
    import threading

    index = torch.cuda.device_count() - 1  # cuda:1 where there are two GPUs; cuda:0 still checks the plumbing
    reference, seg = seeded_pair(device=f"cuda:{index}", cuda_graphs=True)
    assert next(seg.network.parameters()).device == torch.device("cuda", index)
    results = {}
    thread = threading.Thread(target=lambda: results.update(labels=seg(scene(), "rgb8").labels.copy()))
    thread.start()
    thread.join()
    assert (results["labels"] == reference(scene(), "rgb8").labels).mean() > 0.99


# -- GPU plumbing through small seams (no GPU needed) --------------------------------------------------

def test_random_weights_are_cached_under_their_own_digest():
    from rtseg_ros.runtime.weights import load_model

    torch.manual_seed(0)
    first = load_model(MODEL, None)
    torch.manual_seed(1)
    second = load_model(MODEL, None)
    torch.manual_seed(0)
    again = load_model(MODEL, None)
    assert first.weights_digest.startswith("random-") and first.weights_digest != second.weights_digest
    assert again.weights_digest == first.weights_digest


class FakeStream:
    cuda_stream = 0xBEEF


def test_onnxruntime_asks_for_the_segmenters_device_and_stream():
    (name, options), cpu = onnxruntime_runner.onnxruntime_providers(torch.device("cuda", 1), FakeStream(), "fp16")
    assert name == "CUDAExecutionProvider" and cpu == "CPUExecutionProvider"
    assert options == {"device_id": 1, "user_compute_stream": str(0xBEEF)}
    assert onnxruntime_runner.onnxruntime_providers(torch.device("cpu"), None) == ["CPUExecutionProvider"]


def test_onnxruntime_fp32_on_cuda_is_ieee_fp32_not_tf32():
    (_, options), _ = onnxruntime_runner.onnxruntime_providers(torch.device("cuda", 0), FakeStream(), "fp32")
    assert options["use_tf32"] == 0  # the CUDA provider's default is 1: TF32 convolutions and matmuls


def test_onnxruntime_cpu_fallback_is_refused_in_one_line():
    class FakeSession:
        def __init__(self, granted):
            self.granted = granted

        def get_providers(self):
            return self.granted

    with pytest.raises(RuntimeError, match=r"did not grant CUDAExecutionProvider on cuda:0 .*onnxruntime-gpu") as error:
        onnxruntime_runner.require_granted_provider(FakeSession(["CPUExecutionProvider"]), torch.device("cuda", 0))
    assert "\n" not in str(error.value)
    onnxruntime_runner.require_granted_provider(FakeSession(["CUDAExecutionProvider", "CPUExecutionProvider"]),
                                      torch.device("cuda", 0))
    onnxruntime_runner.require_granted_provider(FakeSession(["CPUExecutionProvider"]), torch.device("cpu"))


def test_precisions_the_backend_or_gpu_cannot_run_are_refused():
    from rtseg_ros.runtime.segmenter import check_precision

    with pytest.raises(RuntimeError, match="compute capability 8.0 or newer .sm80.*this one is sm75"):
        check_precision("bf16", "torch", (7, 5))
    check_precision("bf16", "tensorrt", (8, 0))
    check_precision("bf16", "torch", None)  # the CPU runs bf16
    check_precision("fp16", "torch", (7, 5))
    with pytest.raises(ValueError, match="'onnxruntime' runs fp32 or fp16, not bf16"):
        Segmenter(MODEL, input_size=NET, backend="onnxruntime", precision="bf16")


def test_onnxruntime_fp16_runs_an_fp16_export(tmp_path):
    reference, seg = seeded_pair(backend="onnxruntime", precision="fp16", engine_cache_dir=str(tmp_path))
    assert seg._runner.session.get_inputs()[0].type == "tensor(float16)"
    assert seg._runner.path.name.endswith("-fp16.onnx") and f"-{seg.dataset.num_classes}c-" in seg._runner.path.name
    assert agreement(reference, seg, scene(128, 256)) >= 0.99


def test_device_context_makes_the_device_and_stream_current(monkeypatch):
    import contextlib
    from rtseg_ros.runtime.segmenter import device_context

    entered = []
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext(entered.append(("device", d))))
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext(entered.append(("stream", s))))
    stream = FakeStream()
    with device_context(torch.device("cuda", 1), stream):
        pass
    assert entered == [("device", torch.device("cuda", 1)), ("stream", stream)]
    entered.clear()
    with device_context(torch.device("cpu"), None):
        pass
    assert entered == []


def test_tensorrt_buffers_take_the_engines_tensor_types():
    from types import SimpleNamespace

    assert tensorrt_runner.torch_dtype_of(SimpleNamespace(name="HALF")) == torch.float16
    assert tensorrt_runner.torch_dtype_of(SimpleNamespace(name="BF16")) == torch.bfloat16
    assert tensorrt_runner.torch_dtype_of(SimpleNamespace(name="FLOAT")) == torch.float32
    with pytest.raises(RuntimeError, match="type INT8"):
        tensorrt_runner.torch_dtype_of(SimpleNamespace(name="INT8"))


def test_tensorrt_builds_strongly_typed_networks_without_precision_flags(tmp_path):
    """A fake ``tensorrt`` module with only what TensorRT 10 and 11 both have: no BuilderFlag.FP16/BF16."""
    from types import SimpleNamespace

    calls = {}

    class Fake:
        def __init__(self, *args):
            pass

        def __getattr__(self, name):  # every TensorRT call is recorded; each returns another fake
            def method(*args):
                calls[name] = args
                return {"build_serialized_network": b"engine", "serialize": b"timing"}.get(name, Fake())
            return method

    class Parser(Fake):
        num_errors = 0

        def parse(self, data):
            return True

    for strongly_typed in (SimpleNamespace(STRONGLY_TYPED=5), SimpleNamespace()):  # TensorRT 10; a later 11
        calls.clear()
        trt = SimpleNamespace(Logger=type("Logger", (Fake,), {"WARNING": 2}), Builder=Fake, OnnxParser=Parser,
                              NetworkDefinitionCreationFlag=strongly_typed, BuilderFlag=SimpleNamespace())
        (tmp_path / "m.onnx").write_bytes(b"onnx")
        key = cache.engine_cache_key(MODEL, 19, "abc", (1, 3, 64, 128), "fp16", "tensorrt", "11.0", "GPU")
        engine, sidecar = cache.engine_paths(tmp_path, key, ".engine")
        assert tensorrt_runner.build_engine(trt, tmp_path / "m.onnx", (1, 3, 64, 128), engine, sidecar, key) == b"engine"
        assert calls["create_network"] == ((1 << 5,) if hasattr(strongly_typed, "STRONGLY_TYPED") else (0,))
        assert "set_flag" not in calls and cache.cached_engine_matches(engine, sidecar, key)


class FakeTimingTensorRT:
    """A fake ``tensorrt`` whose builder config keeps a timing cache: each build adds one entry to it."""

    def __init__(self):
        self.loaded_caches = []  # what each build's create_timing_cache was given
        self.builds = 0
        fake = self

        class Config:
            def add_optimization_profile(self, profile):
                pass

            def create_timing_cache(self, data):
                fake.loaded_caches.append(bytes(data))
                self.cache = bytes(data)
                return self

            def set_timing_cache(self, cache, ignore_mismatch):
                assert ignore_mismatch is False
                return True

            def get_timing_cache(self):
                return self

            def serialize(self):
                return self.cache + b"+entry"

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                return None

            def create_optimization_profile(self):
                return SimpleNamespace(set_shape=lambda *args: None)

            def create_builder_config(self):
                return Config()

            def build_serialized_network(self, network, config):
                fake.builds += 1
                return b"engine"

        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
        self.Builder = Builder
        self.OnnxParser = lambda network, logger: SimpleNamespace(parse=lambda data: True, num_errors=0)
        self.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=5)


def test_tensorrt_builds_share_a_timing_cache_per_tensorrt_version_and_gpu(tmp_path):
    trt = FakeTimingTensorRT()
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    for size in ((1, 3, 64, 128), (1, 3, 128, 256)):
        key = cache.engine_cache_key(MODEL, 19, "abc", size, "fp16", "tensorrt", "11.4", "NVIDIA H200")
        engine, sidecar = cache.engine_paths(tmp_path, key, ".engine")
        tensorrt_runner.build_engine(trt, tmp_path / "m.onnx", size, engine, sidecar, key)
    timing = tensorrt_runner.timing_cache_path(tmp_path, key)
    assert timing.name == "tensorrt-11.4-NVIDIA_H200.timing"
    # The first build starts empty; the second starts from what the first measured; both are kept.
    assert trt.loaded_caches == [b"", b"+entry"] and timing.read_bytes() == b"+entry+entry"
    other_gpu = cache.engine_cache_key(MODEL, 19, "abc", size, "fp16", "tensorrt", "11.4", "NVIDIA L4")
    assert tensorrt_runner.timing_cache_path(tmp_path, other_gpu) != timing


def test_a_failed_tensorrt_enqueue_raises_instead_of_returning_stale_logits():
    class Context:
        def __init__(self, ok):
            self.ok, self.streams = ok, []

        def execute_async_v3(self, stream_handle):
            self.streams.append(stream_handle)
            return self.ok

    shape = (1, 3, 8, 16)
    runner = tensorrt_runner.TensorRTRunner.__new__(tensorrt_runner.TensorRTRunner)  # no GPU: only __call__
    runner.loaded, runner.stream = SimpleNamespace(name=MODEL), FakeStream()
    stale = torch.full((1, 19, 1, 2), 7.0, dtype=torch.float16)
    for ok in (True, False):
        context = Context(ok)
        runner._engines = {shape: (None, context, torch.empty(shape, dtype=torch.float16), stale)}
        if ok:
            assert runner(torch.zeros(shape)).dtype == torch.float32
        else:
            with pytest.raises(RuntimeError, match=r"TensorRT failed to run the farsee engine at 1x3x8x16 "
                                                   r"\(execute_async_v3 returned False") as error:
                runner(torch.zeros(shape))
            assert "\n" not in str(error.value)
        assert context.streams == [0xBEEF]  # on the Segmenter's stream


def test_engine_exports_are_traced_small_whatever_size_they_run_at(tmp_path, monkeypatch):
    from rtseg_ros.runtime.export import TRACE_SIZE

    traced = []
    export = cache.export_onnx
    monkeypatch.setattr(cache, "scratch_folder", lambda: tmp_path)  # not reusing an earlier test's export
    monkeypatch.setattr(cache, "export_onnx", lambda model, path, size, **options: (
        traced.append(tuple(size)), export(model, path, size, **options))[1])
    reference, seg = seeded_pair(backend="onnxruntime", engine_cache_dir=str(tmp_path))
    assert traced == [TRACE_SIZE] and seg.input_size == (256, 512) != TRACE_SIZE
    assert agreement(reference, seg, scene(256, 512)) >= 0.999  # run at 256x512 from the small trace


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.nn.functional.interpolate(self.conv(x).relu(), size=x.shape[-2:], mode="bilinear")


def test_bf16_exports_are_valid_onnx_at_their_opset(tmp_path):
    import warnings
    import onnx
    from rtseg_ros.runtime.export import BF16_OPSET, DEFAULT_OPSET, export_onnx

    net = TinyNet().eval().to(torch.bfloat16)
    sample = torch.zeros(1, 3, 16, 16, dtype=torch.bfloat16)
    with warnings.catch_warnings():  # why BF16_OPSET: at the default opset a bf16 Conv is not valid ONNX
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (sample,), str(tmp_path / "old.onnx"), opset_version=DEFAULT_OPSET, dynamo=False)
    with pytest.raises((onnx.checker.ValidationError, onnx.shape_inference.InferenceError), match="bfloat16"):
        onnx.checker.check_model(onnx.load(str(tmp_path / "old.onnx")), full_check=True)
    with pytest.raises(ValueError, match=f"needs opset {BF16_OPSET} or newer") as error:
        export_onnx(net, tmp_path / "refused.onnx", (16, 16), opset=DEFAULT_OPSET, dtype=torch.bfloat16)
    assert "\n" not in str(error.value) and not (tmp_path / "refused.onnx").exists()
    model = onnx.load(str(export_onnx(net, tmp_path / "bf16.onnx", (16, 16), dtype=torch.bfloat16)))
    assert model.opset_import[0].version == BF16_OPSET
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16


def test_a_network_exported_at_the_bf16_opset_is_valid_and_agrees_with_torch(tmp_path):
    """The exporter writes opset 20 operators under opset 22: checked valid for a real network, and (in fp32,
    which ONNX Runtime runs on the CPU) equal to PyTorch at another size than the trace."""
    import onnx
    from rtseg_ros.runtime.export import BF16_OPSET, TRACE_SIZE, export_onnx, onnx_parity

    network = build_model(MODEL).eval()
    network.upsample_logits = False
    bf16 = export_onnx(network.to(torch.bfloat16), tmp_path / "bf16.onnx", TRACE_SIZE, dtype=torch.bfloat16)
    onnx.checker.check_model(onnx.load(str(bf16)), full_check=True)
    fp32 = export_onnx(network.float(), tmp_path / "fp32.onnx", TRACE_SIZE, opset=BF16_OPSET)
    assert onnx_parity(network, fp32, torch.randn(1, 3, 192, 320)) <= 1e-4


def test_naive_loop_runs_its_own_copy_on_the_benchmark_device():
    from types import SimpleNamespace
    from rtseg_ros.bench.pipeline import NaiveLoop
    from rtseg_ros.runtime.weights import load_model

    loaded = load_model(MODEL, None)
    loaded.model.upsample_logits = False  # as the Segmenter leaves it
    fake = SimpleNamespace(loaded=loaded, device=torch.device("meta"), dataset=loaded.dataset)
    naive = NaiveLoop(fake)
    assert {p.device.type for p in naive.model.parameters()} == {"meta"} and naive.model.upsample_logits
    assert {p.device.type for p in loaded.model.parameters()} == {"cpu"} and not loaded.model.upsample_logits


def official_state_dict(name: str) -> dict:
    """Random tensors in the layout of a published checkpoint (test/data/official_state_dicts)."""
    from pathlib import Path

    state = {}
    for line in (Path(__file__).parent / "data" / "official_state_dicts" / f"{name}.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype, _ = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        state[key] = torch.zeros(dims, dtype=torch.int64) if dtype == "int64" else torch.rand(dims) + 0.5
    return state


@pytest.mark.parametrize("model, listing", [("ddrnet23_slim", "ddrnet23_slim"), ("sgcpnet", "sgcpnet")])
def test_published_checkpoint_layouts_load_in_the_segmenter(tmp_path, model, listing):
    # As the official trainers save them: a "model." prefix (HRNet framework) and loss buffers beside.
    state = {f"model.{k}": v for k, v in official_state_dict(listing).items()}
    state["loss.criterion.weight"] = torch.ones(19)
    torch.save({"state_dict": state}, tmp_path / "official.pth")
    seg = Segmenter(model, weights=str(tmp_path / "official.pth"), input_size=NET)
    loaded = seg.loaded.model.state_dict()
    for key, value in loaded.items():  # every weight came from the file (aux heads dropped)
        torch.testing.assert_close(value, state[f"model.{key}"], msg=key)
    assert seg(frame(), "rgb8").labels.shape == (96, 160)


@pytest.mark.parametrize("precision, floor", [("fp16", 0.99), ("bf16", 0.95)])
def test_reduced_precision_agrees_with_fp32(precision, floor):
    # Measured on CPU with random DDRNet-23-slim weights: fp16 99.9 %, bf16 97.8 % of labels equal.
    from rtseg_ros.data.synth import generate_scene

    rgb = generate_scene(np.random.default_rng(0), 96, 160)[0]
    torch.manual_seed(0)
    reference = Segmenter("ddrnet23_slim", input_size=NET)
    torch.manual_seed(0)
    reduced = Segmenter("ddrnet23_slim", input_size=NET, precision=precision)
    assert next(reduced.network.parameters()).dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    assert (reduced(rgb, "rgb8").labels == reference(rgb, "rgb8").labels).mean() >= floor


def test_segmenter_upsamples_like_the_model_head():
    # CSFCN's head upsamples with align_corners=True; the Segmenter must then match the model's own output.
    torch.manual_seed(0)
    seg = Segmenter("csfcn", input_size=(64, 128), keep_aspect=False)
    rgb = frame(64, 128, seed=7)
    model = seg.loaded.model.eval()
    model.upsample_logits = True
    x = torch.from_numpy(reference_preprocess(rgb, (64, 128), np.array(seg.loaded.mean), np.array(seg.loaded.std))).float()
    with torch.no_grad():
        expected = model(x).argmax(1)[0].numpy()
    assert seg._align_corners
    assert (seg(rgb, "rgb8").labels == expected).mean() >= 0.999


def test_atomic_writes_get_normal_permissions_and_leave_nothing_on_error(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "sub" / "file.bin", b"new")
        assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o644  # 0o666 less the umask
        os.umask(0o002)
        write_bytes_atomic(path, b"newer")
        assert path.read_bytes() == b"newer" and path.stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(mask)

    def dies(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, dies)
    assert path.read_bytes() == b"newer" and [p.name for p in path.parent.iterdir()] == ["file.bin"]


def assert_equal_but_for_ties(labels, reference, logits_full):
    """``labels`` equal ``reference`` except where the whole-frame logits' two best classes tie within float
    rounding (the banded path sums the same terms in another order)."""
    differ = np.flatnonzero(labels.ravel() != reference.ravel())
    assert differ.size <= 1e-5 * labels.size + 1, f"{differ.size} labels differ"
    if differ.size:
        top2 = torch.topk(logits_full[0].flatten(1)[:, torch.from_numpy(differ)], 2, dim=0).values
        assert float((top2[0] - top2[1]).abs().max()) < 1e-4


@pytest.mark.parametrize("align_corners,channels_last", [(False, False), (False, True), (True, False)])
def test_banded_upsampling_gives_the_whole_frame_labels(align_corners, channels_last):
    from rtseg_ros.runtime.upsample import BandedUpsample

    torch.manual_seed(0)
    logits = torch.randn(1, 19, 40, 56) * 3
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    out_hw = (1080, 1440)
    whole = torch.nn.functional.interpolate(logits, size=out_hw, mode="bilinear", align_corners=align_corners)
    labels, confidence = torch.empty(out_hw, dtype=torch.uint8), torch.empty(out_hw, dtype=torch.uint8)
    banded = BandedUpsample(19, (40, 56), out_hw, align_corners, "cpu", band_bytes=2**20)
    assert banded.rows < out_hw[0]  # really in bands
    banded(logits, labels, confidence)
    assert_equal_but_for_ties(labels.numpy(), whole.argmax(1)[0].numpy(), whole)
    reference = whole.softmax(1).amax(1)[0].mul(255).round()
    assert float((confidence.float() - reference).abs().max()) <= 1.0


def test_segmenter_bands_large_frames_and_keeps_their_labels():
    frame = np.random.default_rng(3).integers(0, 256, (480, 720, 3), dtype=np.uint8)
    options = dict(model="farsee", input_size=(64, 96), backend="torch")
    torch.manual_seed(0)
    banded = Segmenter(**options, max_logits_mb=1.0)  # 19 classes × 480 × 720 × 4 B = 25 MB: banded
    whole = Segmenter(**options, max_logits_mb=0.0)
    whole.network.load_state_dict(banded.network.state_dict())
    out_b, out_w = banded(frame, outputs=("labels", "confidence")), whole(frame, outputs=("labels", "confidence"))
    assert banded._banded is not None and whole._banded is None
    with torch.no_grad():
        x = whole._preprocess()
        full = torch.nn.functional.interpolate(whole._runner(x), size=(480, 720), mode="bilinear",
                                               align_corners=whole._align_corners)
    assert_equal_but_for_ties(out_b.labels, out_w.labels, full)
    assert np.abs(out_b.confidence.astype(int) - out_w.confidence.astype(int)).max() <= 1
