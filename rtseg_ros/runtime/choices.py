"""The runtime's choices, named once for every command line and node parameter that offers them.

Kept free of torch so that parameter tables and ``--help`` load fast.
"""
from __future__ import annotations

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
# What backend:=auto tries, per device type. On the CPU it measures every importable one and keeps the
# fastest (backends/fastest.py; torch last, as it converts the network in place); on CUDA the first whose
# package imports (TensorRT, the fastest engine there, takes minutes to build: too long to try).
AUTO_ORDER = {"cpu": ("openvino", "onnxruntime", "torch"), "cuda": ("tensorrt", "torch")}
# The Python modules each engine needs (all three run the package's ONNX export, which needs onnx), and
# how to get them.
ENGINE_MODULES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx"),
                  "tensorrt": ("tensorrt", "onnx")}
INSTALL_HINTS = {
    "onnxruntime": "pip install 'rtseg_ros[onnx]' (onnxruntime and onnx; onnxruntime-gpu for CUDA)",
    "openvino": "pip install 'rtseg_ros[openvino]' (openvino and onnx)",
    # On PyPI tensorrt-cuNN is only an sdist whose libraries download from NVIDIA's index: without that
    # index it cannot install. PyPI's torch is built for CUDA 13 (torch.version.cuda says which).
    "tensorrt": "install the TensorRT package matching torch's CUDA major version from NVIDIA's index, e.g. "
                "`pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu13 onnx` for PyPI's torch "
                "(CUDA 13; tensorrt-cu12 for a CUDA 12 torch)",
}

# Precision name → torch dtype name of the network's weights and I/O (int8: an INT8-calibrated ONNX model
# with fp32 input and output, run by OpenVINO or ONNX Runtime).
PRECISION_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "float32"}
PRECISIONS = tuple(PRECISION_DTYPES)
# Which precisions each backend runs (onnxruntime: its CUDA provider lacks bf16 kernels for most of these
# networks, and it runs int8 on the CPU only; torch and TensorRT have no INT8 models).
BACKEND_PRECISIONS = {
    "torch": ("fp32", "fp16", "bf16"),
    "onnxruntime": ("fp32", "fp16", "int8"),
    "openvino": ("fp32", "bf16", "fp16", "int8"),
    "tensorrt": ("fp32", "fp16", "bf16"),
}
# The engines that run an INT8 model (rtseg-export --int8), in backend:=auto's CPU order.
INT8_BACKENDS = tuple(name for name in AUTO_ORDER["cpu"] if "int8" in BACKEND_PRECISIONS[name])

# The Segmenter's outputs (labels always computed) and the ROS image encoding each is published with.
OUTPUT_ENCODINGS = {"labels": "mono8", "color": "rgb8", "overlay": "rgb8", "confidence": "mono8"}
OUTPUTS = tuple(OUTPUT_ENCODINGS)
# output_resolution: the input image's or the network input's; upsample: logits (bilinear, then argmax)
# or labels (argmax at the output stride, nearest upsampling).
OUTPUT_RESOLUTIONS = ("input", "network")
UPSAMPLES = ("logits", "labels")


def missing_engine(backend: str) -> str:
    """One line for a backend asked for by name whose package is not importable."""
    return (f"backend '{backend}' needs the Python packages {' and '.join(ENGINE_MODULES[backend])}, not all "
            f"importable here: {INSTALL_HINTS[backend]}; or use backend:=auto or backend:=torch")

# Device names a choice list offers (rtseg-train; the node and rtseg-eval also take cuda:N).
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """``device:=auto`` made concrete: the first CUDA GPU when torch sees one, else the CPU; any other name
    as it is."""
    if name != "auto":
        return name
    import torch  # here, so that parameter tables and --help load without torch

    return "cuda" if torch.cuda.is_available() else "cpu"
