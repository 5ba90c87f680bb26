"""ONNX Runtime: the package's ONNX export in one session, reused for every frame.

On the CPU the session is tuned for one frame at a time on a few shared cores: ``threads`` intra-op
threads (the node's ``cpu_threads``), one inter-op thread, every graph optimisation, and no spin-waiting
between operators (a spinning pool burns the cores a neighbour process needs, and then waits for them:
see the README's loaded figures). On CUDA it runs on the Segmenter's stream.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rtseg_ros.runtime.backends.cache import cached_onnx
from rtseg_ros.runtime.choices import BACKEND_PRECISIONS, missing_engine

ONNXRUNTIME_PRECISIONS = BACKEND_PRECISIONS["onnxruntime"]


def onnxruntime_providers(device: torch.device, stream: torch.cuda.Stream | None, precision: str = "fp32") -> list:
    """The providers to ask for: on CUDA the CUDA provider on ``device``'s GPU, running on ``stream`` (the
    Segmenter's own; ONNX Runtime cannot adopt the default stream), so that no device-wide synchronisation
    is needed between the torch pre-/post-processing and the network. The CUDA provider runs fp32
    convolutions and matrix products in TF32 unless ``use_tf32`` is 0 (its default is 1): precision fp32
    means IEEE fp32 here, as it does on the CPU."""
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    options = {"device_id": device.index}
    if precision == "fp32":
        options["use_tf32"] = 0
    if stream is not None:
        options["user_compute_stream"] = str(stream.cuda_stream)
    return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]


def require_granted_provider(session, device: torch.device) -> None:
    """ONNX Runtime falls back to the CPU, with only a log line, when the CUDA provider cannot start
    (missing libraries, CUDA mismatch); ``session.get_providers()`` is what the session really uses."""
    granted = session.get_providers()
    if device.type == "cuda" and (not granted or granted[0] != "CUDAExecutionProvider"):
        raise RuntimeError(f"onnxruntime did not grant CUDAExecutionProvider on {device} (the session would run on "
                           f"{', '.join(granted) or 'nothing'}): install onnxruntime-gpu matching your CUDA, "
                           "or use device:=cpu")


def session_options(ort, threads: int):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's default, one per physical core
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxRuntimeRunner:
    def __init__(self, network: nn.Module, device: torch.device, loaded, precision: str = "fp32",
                 stream: torch.cuda.Stream | None = None, cache_dir=None, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeError(missing_engine("onnxruntime")) from None
        if precision not in ONNXRUNTIME_PRECISIONS or (precision == "int8" and device.type == "cuda"):
            raise ValueError(f"backend 'onnxruntime' runs fp32 or fp16 (and int8 on the CPU), not {precision} on "
                             f"{device.type}: use another backend or precision")
        self.device = device
        self.dtype = torch.float16 if precision == "fp16" else torch.float32  # an int8 model has fp32 I/O
        self.path = cached_onnx(network, loaded, cache_dir, precision)
        self.session = ort.InferenceSession(str(self.path), session_options(ort, threads),
                                            providers=onnxruntime_providers(device, stream, precision))
        require_granted_provider(self.session, device)
        self._outputs: dict[tuple, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype).contiguous()
        if self.device.type == "cpu":
            return torch.from_numpy(self.session.run(None, {"image": x.numpy()})[0]).float()
        np_dtype = np.float16 if self.dtype == torch.float16 else np.float32
        binding = self.session.io_binding()
        binding.bind_input("image", "cuda", self.device.index, np_dtype, tuple(x.shape), x.data_ptr())
        out = self._outputs.get(tuple(x.shape))
        if out is None:  # first frame of this shape: let ORT size the output, then keep a buffer for it
            binding.bind_output("logits", "cuda", self.device.index)
            self.session.run_with_iobinding(binding)
            out = self._outputs[tuple(x.shape)] = torch.empty(binding.get_outputs()[0].shape(), dtype=self.dtype,
                                                              device=self.device)
        binding.bind_output("logits", "cuda", self.device.index, np_dtype, tuple(out.shape), out.data_ptr())
        # ORT runs on the Segmenter's stream (user_compute_stream): ordered after the preprocessing already.
        self.session.run_with_iobinding(binding)
        return out.float()
