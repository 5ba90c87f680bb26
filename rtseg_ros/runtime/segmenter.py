"""The Segmenter: uint8 camera frame in, labels / colour / overlay / confidence out.

Everything numeric happens on the chosen device: the frame is uploaded once as uint8 (through a pinned
staging buffer on CUDA), then colour order, resize, normalisation, the network, upsampling, argmax,
palette lookup and alpha blend run there, and only uint8 images come back. Buffers are allocated on the
first frame and reused while size, encoding and requested outputs stay the same; on CUDA with static
shapes the whole device pipeline is captured once as a CUDA graph and replayed.

On CUDA the Segmenter owns a stream on its device: every call makes that device current and runs the
upload, the pipeline, the network (torch, ONNX Runtime or TensorRT) and the download on that stream, and
waits only for its own last event, so it is correct from any thread (a node's worker thread starts on
device 0) and for ``cuda:N``, and never synchronises the whole device.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rtseg_ros.data.encodings import DIRECT
from rtseg_ros.data.labels import DatasetInfo
from rtseg_ros.runtime.backends import fastest, make_runner, resolve_backend
from rtseg_ros.runtime.choices import INT8_BACKENDS, OUTPUT_RESOLUTIONS, OUTPUTS, PRECISION_DTYPES, UPSAMPLES
from rtseg_ros.runtime.folding import fold_batchnorm
from rtseg_ros.runtime.upsample import BandedUpsample
from rtseg_ros.runtime.weights import LoadedModel, load_model

DTYPES = {precision: getattr(torch, dtype) for precision, dtype in PRECISION_DTYPES.items()}
STAGES = ("upload", "preprocess", "inference", "postprocess", "download")


class UnsupportedEncoding(ValueError):
    pass


@dataclass
class SegmentationResult:
    """One frame's outputs and the sizes they were made at.

    The arrays are uint8 views of the Segmenter's host buffers, valid until its next call (copy to keep).
    ``network_hw`` is the network input (H, W) this frame was resized to; ``output_hw`` the (H, W) of every
    output image; ``reallocated`` is True when this call (re)built the buffers: the first frame, and every
    change of frame size, encoding or requested outputs (the caller decides whether to tell anyone).
    """

    labels: np.ndarray
    network_hw: tuple[int, int]
    output_hw: tuple[int, int]
    reallocated: bool = False
    color: np.ndarray | None = None
    overlay: np.ndarray | None = None
    confidence: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def device_context(device: torch.device, stream: torch.cuda.Stream | None) -> contextlib.AbstractContextManager:
    """On CUDA: ``device`` is the current device and ``stream`` the current stream inside; else nothing."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.cuda.device(device))
    stack.enter_context(torch.cuda.stream(stream))
    return stack


def check_precision(precision: str, backend: str, capability: tuple[int, int] | None) -> None:
    """Refuse, in one line, a precision the backend or the GPU (compute ``capability``; None on the CPU)
    cannot run as asked."""
    if backend == "onnxruntime" and precision == "bf16":
        raise ValueError("backend 'onnxruntime' runs fp32 or fp16, not bf16: use backend:=torch or backend:=tensorrt")
    if precision == "int8" and backend not in INT8_BACKENDS:
        raise ValueError(f"precision int8 runs on backend openvino or onnxruntime (an INT8 model made by "
                         f"rtseg-export --int8), not {backend}")
    if precision == "bf16" and capability is not None and tuple(capability) < (8, 0):
        raise RuntimeError(f"precision bf16 needs a GPU of compute capability 8.0 or newer (sm80+); this one is "
                           f"sm{capability[0]}{capability[1]}: use precision:=fp16")


def checked_frame(image: np.ndarray, encoding: str) -> np.ndarray:
    """``image`` as an H×W×C uint8 array for ``encoding``, or one line saying what is wrong with it."""
    if encoding not in DIRECT:
        raise UnsupportedEncoding(f"unsupported encoding {encoding!r}; supported: {', '.join(DIRECT)}")
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    channels = DIRECT[encoding].channels
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != channels or 0 in image.shape:
        raise ValueError(f"{encoding} frame must be a non-empty H×W×{channels} uint8 array, "
                         f"got {image.shape} {image.dtype}")
    return image


def network_size(frame_hw: tuple[int, int], input_size: tuple[int, int], keep_aspect: bool, multiple: int = 32) -> tuple[int, int]:
    """Network input (H, W) for a frame: ``input_size`` itself, or (``keep_aspect``) the frame scaled to
    fit inside ``input_size`` with its aspect kept, rounded to a multiple of ``multiple``."""
    if not keep_aspect:
        return input_size
    scale = min(input_size[0] / frame_hw[0], input_size[1] / frame_hw[1])
    return tuple(max(multiple, int(round(side * scale / multiple)) * multiple) for side in frame_hw)


class Segmenter:
    """Run a registry model (or an rtseg checkpoint) on camera frames.

    Args:
        model: registry name (``farsee``, ``ddrnet23_slim``, ...) or ``None`` when ``weights`` is an
            ``rtseg-train`` checkpoint that names its model.
        weights: ``rtseg-train`` checkpoint or a published state_dict the model zoo loads. ``None``: random
            initialisation (plumbing checks only; ``self.random_weights`` is then True).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (where torch runs; OpenVINO's own device is
            ``openvino_device``).
        backend: ``"torch"``, ``"onnxruntime"``, ``"openvino"``, ``"tensorrt"`` or ``"auto"`` (on a CPU the
            fastest installed engine, measured on first use and cached (``backends/fastest.py``); on CUDA
            the first importable of ``choices.AUTO_ORDER``; ``backend_reason`` says which and why).
        precision: ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"`` (torch: weights in that type; ONNX Runtime
            and TensorRT: an ONNX export in that type; OpenVINO: its inference precision hint; bf16 needs
            sm80+ on CUDA, and not ONNX Runtime; int8: the INT8 model ``rtseg-export --int8`` calibrated,
            on OpenVINO or ONNX Runtime).
        cpu_threads: threads of ONNX Runtime and OpenVINO (0: ``torch.get_num_threads()``, which the node's
            ``cpu_threads`` sets for torch).
        input_size: network input (H, W); default: the model's (or the checkpoint's) input size.
        keep_aspect: scale frames into ``input_size`` keeping their aspect (True), or stretch (False).
        output_resolution: ``"input"`` (the frame's size) or ``"network"`` (the network input size).
        upsample: ``"logits"`` (bilinear logits, then argmax; the papers' protocol) or ``"labels"``
            (argmax at the output stride, nearest upsampling of labels: faster).
        dataset: class table for palette and names when the weights do not carry one.
        cuda_graphs: capture the device pipeline as a CUDA graph for static shapes (CUDA, torch backend).
        engine_cache_dir / onnx_path: where ONNX exports and TensorRT engines are kept.
    """

    def __init__(self, model: str | None = None, weights: str | None = None, device: str = "cpu",
                 backend: str = "auto", precision: str = "fp32", input_size: tuple[int, int] | None = None,
                 keep_aspect: bool = True, output_resolution: str = "input", upsample: str = "logits",
                 dataset: str = "cityscapes", num_classes: int | None = None, fold_bn: bool = True,
                 channels_last: bool = True, cuda_graphs: bool = True, engine_cache_dir: str | None = None,
                 cpu_threads: int = 0, openvino_device: str = "CPU", max_logits_mb: float = 32.0):
        if precision not in DTYPES:
            raise ValueError(f"precision must be one of {', '.join(DTYPES)}, got {precision!r}")
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution must be 'input' or 'network', got {output_resolution!r}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be 'logits' or 'labels', got {upsample!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but no CUDA GPU is available (use device:=cpu)")
        if self.device.type == "cuda" and self.device.index is None:  # "cuda": the current device, named
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.backend_requested = backend
        backend, self.backend_reason = resolve_backend(backend, self.device.type, precision)
        check_precision(precision, backend,
                        torch.cuda.get_device_capability(self.device) if self.device.type == "cuda" else None)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        # logits at the output stride: the Segmenter upsamples itself, after choosing how
        self.loaded: LoadedModel = load_model(model, weights, dataset=dataset, num_classes=num_classes,
                                              upsample_logits=False)
        self.dataset: DatasetInfo = self.loaded.dataset
        self.input_size = tuple(input_size or self.loaded.input_size)
        self.keep_aspect, self.output_resolution, self.upsample = keep_aspect, output_resolution, upsample
        self.backend_name, self.precision = backend, precision
        self.dtype = DTYPES[precision]
        self.random_weights = weights is None
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda" and backend == "torch"
        self.channels_last = channels_last and backend == "torch"
        self.engine_cache_dir = engine_cache_dir
        self.cpu_threads, self.openvino_device = cpu_threads or torch.get_num_threads(), openvino_device

        network = self.loaded.model.eval()
        self._align_corners = bool(getattr(network, "logits_align_corners", False))
        if fold_bn:
            sample = torch.randn(1, 3, 128, 256)
            network, self.folded_bn = fold_batchnorm(network, sample)
        else:
            self.folded_bn = 0
        mean = torch.tensor(self.loaded.mean, dtype=torch.float32)
        std = torch.tensor(self.loaded.std, dtype=torch.float32)
        with device_context(self.device, self.stream):  # copies on the stream that later reads them
            # uint8 → normalised float in one multiply-add: x * scale + bias == (x / 255 - mean) / std
            self._scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(self.device)
            self._bias = (-mean / std).view(1, 3, 1, 1).to(self.device)
            self._palette = torch.from_numpy(self.dataset.palette_lut()).to(self.device)
            self._alpha = torch.tensor(0.5, device=self.device)
            auto_on_cpu = self.backend_requested == "auto" and self.device.type == "cpu"
            candidates = fastest.candidates(precision) if auto_on_cpu else ()
            if len(candidates) > 1:
                self._runner = self._fastest_runner(network, candidates)
            else:
                self._runner = self._make_runner(network, self.backend_name)
        self._key = None  # (H, W, encoding, outputs) the buffers were built for
        self.reallocations = 0
        # Upsampled logits larger than this are made a band of rows at a time (runtime/upsample.py), so memory
        # per frame stays bounded whatever its resolution; 0: always whole frames.
        self.max_logits_bytes = int(max_logits_mb * 2**20)
        self._banded: BandedUpsample | None = None

    # -- backends -----------------------------------------------------------------------------------
    def _fastest_runner(self, network: nn.Module, candidates: tuple[str, ...]):
        """backend:=auto on a CPU: the runner of the fastest candidate at this input size, measured here once
        (or read from the cache); sets ``backend_name`` and ``backend_reason``."""
        key = fastest.choice_key(self.loaded, self.input_size, self.precision, self.cpu_threads, candidates)
        path = fastest.choice_path(self.loaded, self.engine_cache_dir, key)
        record = fastest.read_choice(path, key)
        if record is not None:
            self.backend_name = record["backend"]
            self.backend_reason = fastest.reason(record["timings_ms"], self.input_size, cached=True)
            return self._make_runner(network, self.backend_name)
        started = time.perf_counter()
        x = torch.zeros((1, 3, *self.input_size))
        timings, best = {}, None
        for name in candidates:  # torch last: it converts the network in place (dtype, channels last)
            runner = self._make_runner(network, name)
            timings[name] = round(fastest.time_runner(runner, x), 2)
            if best is None or timings[name] < timings[best[0]]:
                best = (name, runner)
            del runner
        self.backend_name = best[0]
        self.backend_reason = fastest.reason(timings, self.input_size, cached=False,
                                             took_s=time.perf_counter() - started)
        fastest.write_choice(path, key, timings, self.backend_name, self.loaded, self.engine_cache_dir)
        return best[1]

    def _make_runner(self, network: nn.Module, backend: str):
        if backend == "torch":
            network = network.to(self.device, dtype=self.dtype)
            if self.channels_last:
                network = network.to(memory_format=torch.channels_last)
            self.network = network

            def run(x):
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                return network(x.to(self.dtype)).float()
            return run
        return make_runner(backend, network, self.device, self.loaded, self.precision, self.stream,
                           self.engine_cache_dir, self.cpu_threads, self.openvino_device)

    # -- buffers -------------------------------------------------------------------------------------
    def _ensure_buffers(self, height: int, width: int, encoding: str, outputs: tuple[str, ...]) -> bool:
        """(Re)build the buffers unless they were built for this size, encoding and outputs; True if built."""
        key = (height, width, encoding, outputs)
        if key == self._key:
            return False
        dev, pinned = self.device, self.device.type == "cuda"
        channels = DIRECT[encoding].channels
        self.net_hw = network_size((height, width), self.input_size, self.keep_aspect)
        self.out_hw = (height, width) if self.output_resolution == "input" else self.net_hw
        oh, ow = self.out_hw
        self.host_in = torch.empty((height, width, channels), dtype=torch.uint8, pin_memory=pinned)
        self.dev_in = self.host_in if dev.type == "cpu" else torch.empty_like(self.host_in, device=dev)
        self._perm = torch.tensor(DIRECT[encoding].rgb, device=dev)
        self.dev_rgb = torch.empty((1, 3, height, width), dtype=torch.float32, device=dev)
        shapes = {"labels": (oh, ow), "color": (oh, ow, 3), "overlay": (oh, ow, 3), "confidence": (oh, ow)}
        self.dev_out = {name: torch.empty(shapes[name], dtype=torch.uint8, device=dev) for name in outputs}
        self.host_out = {name: (t if dev.type == "cpu" else torch.empty(t.shape, dtype=torch.uint8, pin_memory=True))
                         for name, t in self.dev_out.items()}
        self._graph = None
        self._banded = None  # made on the first frame, when the logits' size is known
        self.reallocations += 1
        self._key = key
        return True

    # -- the device pipeline -------------------------------------------------------------------------
    def _preprocess(self) -> torch.Tensor:
        # H×W×C uint8 → 1×3×H×W float RGB (channel reorder by index), then resize and normalise.
        self.dev_rgb.copy_(self.dev_in.index_select(2, self._perm).permute(2, 0, 1).unsqueeze(0))
        x = F.interpolate(self.dev_rgb, size=self.net_hw, mode="bilinear", align_corners=False)
        return x.mul_(self._scale).add_(self._bias)

    def _postprocess(self, logits: torch.Tensor) -> None:
        outputs = self.dev_out
        if self.device.type == "cpu":
            # Channels last on the CPU, as the torch path's network already returns them: the upsampled
            # logits' argmax over channels then reads contiguous memory. For the NCHW logits of ONNX
            # Runtime and OpenVINO this took SGCPNet's postprocessing at 360x480 from 37 to ~6 ms here.
            logits = logits.contiguous(memory_format=torch.channels_last)
        classes = logits.shape[1]
        if self.upsample == "labels" and "confidence" not in outputs:
            labels = F.interpolate(logits.argmax(1, keepdim=True).to(torch.uint8), size=self.out_hw, mode="nearest")
            outputs["labels"].copy_(labels[0, 0])
        elif self.max_logits_bytes and 4 * classes * self.out_hw[0] * self.out_hw[1] > self.max_logits_bytes:
            if self._banded is None:
                self._banded = BandedUpsample(classes, logits.shape[2:], self.out_hw, self._align_corners, self.device)
            self._banded(logits, outputs["labels"], outputs.get("confidence"))
        else:
            logits = F.interpolate(logits, size=self.out_hw, mode="bilinear", align_corners=self._align_corners)
            outputs["labels"].copy_(logits.argmax(1)[0])
            if "confidence" in outputs:
                outputs["confidence"].copy_(logits.softmax(1).amax(1)[0].mul_(255).round_())
        if "color" in outputs or "overlay" in outputs:
            color = self._palette[outputs["labels"].long()]
            if "color" in outputs:
                outputs["color"].copy_(color)
            if "overlay" in outputs:
                base = self.dev_rgb if self.out_hw == tuple(self.dev_rgb.shape[-2:]) else \
                    F.interpolate(self.dev_rgb, size=self.out_hw, mode="bilinear", align_corners=False)
                blend = torch.lerp(base[0].permute(1, 2, 0), color.float(), self._alpha)
                outputs["overlay"].copy_(blend.round_())

    def _device_pipeline(self) -> None:
        self._postprocess(self._runner(self._preprocess()))

    # -- public API ----------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, image: np.ndarray, encoding: str = "rgb8", outputs: tuple[str, ...] = ("labels",),
                 overlay_alpha: float = 0.5) -> SegmentationResult:
        """Segment one H×W×C uint8 frame (C = 1 for mono8, 3 or 4 otherwise)."""
        image = checked_frame(image, encoding)
        unknown = set(outputs) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown outputs {sorted(unknown)}; choose from {', '.join(OUTPUTS)}")
        outputs = tuple(name for name in OUTPUTS if name in outputs or name == "labels")
        with device_context(self.device, self.stream):
            reallocated = self._ensure_buffers(image.shape[0], image.shape[1], encoding, outputs)
            self._alpha.fill_(float(np.clip(overlay_alpha, 0.0, 1.0)))
            timings = self._run_cuda(image) if self.device.type == "cuda" else self._run_cpu(image)
        host = {name: tensor.numpy() for name, tensor in self.host_out.items()}
        return SegmentationResult(labels=host["labels"], network_hw=tuple(self.net_hw), output_hw=tuple(self.out_hw),
                                  reallocated=reallocated, color=host.get("color"), overlay=host.get("overlay"),
                                  confidence=host.get("confidence"), timings_ms=timings)

    @torch.no_grad()
    def network_input(self, image: np.ndarray, encoding: str = "rgb8") -> torch.Tensor:
        """The normalised 1×3×h×w float tensor this frame becomes at the network's input (a copy, on the
        CPU): what INT8 calibration feeds the network."""
        image = checked_frame(image, encoding)
        with device_context(self.device, self.stream):
            self._ensure_buffers(image.shape[0], image.shape[1], encoding, ("labels",))
            np.copyto(self.host_in.numpy(), image)
            if self.device.type == "cuda":
                self.dev_in.copy_(self.host_in)
            return self._preprocess().float().cpu().clone()

    def _run_cpu(self, image: np.ndarray) -> dict[str, float]:
        t0 = time.perf_counter()
        np.copyto(self.host_in.numpy(), image)
        t1 = time.perf_counter()
        x = self._preprocess()
        t2 = time.perf_counter()
        logits = self._runner(x)
        t3 = time.perf_counter()
        self._postprocess(logits)
        t4 = time.perf_counter()
        return dict(zip(STAGES, (1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2), 1e3 * (t4 - t3), 0.0)))

    def _run_cuda(self, image: np.ndarray) -> dict[str, float]:
        stream = self.stream
        events = [torch.cuda.Event(enable_timing=True) for _ in range(6)]
        np.copyto(self.host_in.numpy(), image)
        events[0].record(stream)
        self.dev_in.copy_(self.host_in, non_blocking=True)
        events[1].record(stream)
        if self.cuda_graphs:
            if self._graph is None:
                self._graph = self._capture()
            events[2].record(stream)
            self._graph.replay()
            events[3].record(stream)
            events[4].record(stream)  # inside the graph: preprocess+inference+postprocess count as inference
        else:
            x = self._preprocess()
            events[2].record(stream)
            logits = self._runner(x)
            events[3].record(stream)
            self._postprocess(logits)
            events[4].record(stream)
        for name, tensor in self.dev_out.items():
            self.host_out[name].copy_(tensor, non_blocking=True)
        events[5].record(stream)
        events[5].synchronize()  # this frame's work only, not the whole device
        timings = {stage: events[i].elapsed_time(events[i + 1]) for i, stage in enumerate(STAGES)}
        if self.cuda_graphs:
            timings["preprocess"] = 0.0
        return timings

    def _capture(self) -> torch.cuda.CUDAGraph:
        # Captured on a side stream of this Segmenter's device, named explicitly: torch.cuda.graph() would
        # otherwise capture on the current device, and a graph captured on another GPU replays stale work.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(self.stream)
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: cuDNN autotuning and lazy init must not land in the graph
                self._device_pipeline()
        self.stream.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):
            self._device_pipeline()
        self.stream.wait_stream(side)
        return graph

    def describe(self) -> dict:
        """Facts for diagnostics and logs."""
        return {"model": self.loaded.name, "backend": self.backend_name, "backend_requested": self.backend_requested,
                "backend_reason": self.backend_reason, "device": str(self.device),
                "precision": self.precision, "input_size": "x".join(map(str, self.input_size)),
                "weights": self.loaded.weights_note, "classes": self.dataset.num_classes,
                "folded_bn": self.folded_bn, "cuda_graphs": self.cuda_graphs}
