"""The segmentation node's parameters, declared in one place: default, description, allowed values, and
whether ``ros2 param set`` may change it while the node runs.

``config/segment.yaml`` repeats the defaults for users to copy and edit (a test keeps the two equal).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from rtseg_ros.data.encodings import DEFAULT_MAX_PIXELS
from rtseg_ros.data.labels import DATASET_NAMES
from rtseg_ros.ros.qos import INPUT_QOS
from rtseg_ros.runtime.choices import BACKENDS, OUTPUT_RESOLUTIONS, PRECISIONS, UPSAMPLES

Value = bool | int | float | str


@dataclass(frozen=True)
class Param:
    name: str
    default: Value
    description: str
    live: bool = False  # may change while the node runs
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None  # inclusive

    @property
    def kind(self) -> type:
        return type(self.default)


PARAMETERS: tuple[Param, ...] = (
    Param("model", "", "network from the model registry (farsee, sgcpnet, bcpnet, csfcn, csfcn_mnv3, "
          "ddrnet23_slim, ddrnet23, ddrnet39); empty: the model the checkpoint in `weights` names"),
    Param("weights", "", "checkpoint file (rtseg-train, or a published state_dict), or the name of weights "
          "shipped with the package (rtseg-models lists them), or `random` (random initialisation: plumbing "
          "checks only); empty: `model`'s shipped weights, or with `model` empty too the best shipped model, "
          "sgcpnet_camvid"),
    Param("dataset", "cityscapes", "class names and palette when the weights do not carry them",
          choices=DATASET_NAMES),
    Param("device", "auto", "auto (first CUDA GPU, else CPU), cpu, cuda or cuda:N"),
    Param("backend", "auto", "inference engine; auto: on the CPU the fastest installed engine, measured on the "
          "network's input shape at first use and cached; on CUDA tensorrt when importable, else torch (the "
          "choice and its figures are logged and in /diagnostics)",
          choices=BACKENDS),
    Param("precision", "fp32", "network precision; int8: the INT8 model rtseg-export --int8 calibrated for these "
          "weights (openvino or onnxruntime)", choices=PRECISIONS),
    Param("openvino_device", "CPU", "OpenVINO's device for backend openvino: CPU, or GPU/GPU.N for an Intel GPU "
          "OpenVINO sees"),
    Param("input_width", 0, "network input width in pixels; 0 (with input_height 0): the model's default",
          range=(0, 8192)),
    Param("input_height", 0, "network input height in pixels; 0 (with input_width 0): the model's default",
          range=(0, 8192)),
    Param("keep_aspect", True, "fit frames into the network input keeping their aspect ratio (else stretch)"),
    Param("output_resolution", "input", "resolution of labels/colour/overlay/confidence: the input image's, "
          "or the network input's", choices=OUTPUT_RESOLUTIONS),
    Param("upsample", "logits", "logits: bilinear logits then argmax (papers' protocol); labels: argmax at the "
          "output stride, nearest upsampling (faster)", choices=UPSAMPLES),
    Param("cpu_threads", 0, "CPU threads of torch, ONNX Runtime and OpenVINO; 0: torch's default (one per "
          "core). Set 1-2 when the node shares a small CPU",
          range=(0, 256)),
    Param("enabled", True, "segment frames; false: unsubscribe from the camera (no transport or compute cost, "
          "and a lazy camera driver may stop) until set true again", live=True),
    Param("publish_color", True, "publish ~/color (computed only while it has subscribers)", live=True),
    Param("publish_overlay", True, "publish ~/overlay (computed only while it has subscribers)", live=True),
    Param("publish_confidence", False, "publish ~/confidence, max softmax x 255 (computed only while it has "
          "subscribers)", live=True),
    Param("overlay_alpha", 0.5, "weight of the class colours in ~/overlay", live=True, range=(0.0, 1.0)),
    Param("input_qos", "sensor_data", "QoS of the image subscription; sensor_data is best effort, depth 1, and "
          "accepts every publisher", choices=tuple(INPUT_QOS)),
    Param("max_fps", 0.0, "cap on frames segmented per second; 0: as fast as frames arrive", live=True,
          range=(0.0, 1000.0)),
    Param("max_age_ms", 0.0, "skip a frame older than this (node clock minus its header stamp) when its "
          "inference would start, counted as frames_stale; 0: never", live=True, range=(0.0, 1e6)),
    Param("max_input_pixels", DEFAULT_MAX_PIXELS, "frames declaring more pixels than this (width x height, raw or in a "
          "compressed header) are refused before anything is allocated for them, counted as too_large",
          range=(1, 2**31 - 1)),
    Param("transport", "raw", "subscribe `image` (raw, sensor_msgs/Image) or `image/compressed` "
          "(compressed, sensor_msgs/CompressedImage, JPEG/PNG)", choices=("raw", "compressed")),
    Param("depth", "", "depth image topic registered to the colour camera (16UC1 millimetres or 32FC1 metres, "
          "e.g. /camera/aligned_depth_to_color/image_raw); set: ~/points carries the labels in 3D; empty: no depth"),
    Param("depth_tolerance_ms", 0.0, "a depth image belongs to the colour frame whose stamp is within this of its "
          "own; 0: the stamps must be equal (one driver stamping both)", range=(0.0, 1000.0)),
    Param("points_drop_invalid", False, "~/points holds only points with a depth reading (unorganised); false: "
          "height x width, pixel-aligned with ~/labels, NaN where depth is missing", live=True),
    Param("points_classes", "", "classes kept in ~/points, comma-separated names or train ids (road,car,person); "
          "empty: every class"),
    Param("engine_cache_dir", "", "where ONNX exports, INT8 models and TensorRT/OpenVINO engines are cached; "
          "empty: $RTSEG_CACHE, else ~/.cache/rtseg_ros; kept under $RTSEG_CACHE_MAX_MB (2048) by evicting the least "
          "recently used; random weights are never cached"),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.1, 60.0)),
    Param("latency_warn_ms", 200.0, "diagnostics WARN when latency p95 (input stamp to publish) exceeds this",
          live=True, range=(0.0, 1e6)),
    Param("latency_error_ms", 1000.0, "diagnostics ERROR when latency p95 exceeds this", live=True,
          range=(0.0, 1e6)),
    Param("errors_warn_ratio", 0.0, "diagnostics WARN when more than this fraction of a period's frames were "
          "rejected", live=True, range=(0.0, 1.0)),
    Param("errors_error_ratio", 0.5, "diagnostics ERROR when at least this fraction of a period's frames were "
          "rejected", live=True, range=(0.0, 1.0)),
)
BY_NAME = {p.name: p for p in PARAMETERS}
DEFAULTS = {p.name: p.default for p in PARAMETERS}

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_param(param: Param, value: Value) -> str | None:
    """Why ``value`` does not fit ``param``'s type, choices or range (None: it does)."""
    name = param.name
    if param.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} must be a number, got {value!r}"
    elif param.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} must be an integer, got {value!r}"
    elif not isinstance(value, param.kind):
        return f"{name} must be a {param.kind.__name__}, got {value!r}"
    if param.choices and value not in param.choices:
        return f"{name} must be one of {', '.join(param.choices)}, got {value!r}"
    if param.range and not param.range[0] <= value <= param.range[1]:
        return f"{name} must be in [{param.range[0]}, {param.range[1]}], got {value!r}"
    return None


def check_value(name: str, value: Value) -> str | None:
    """Why ``value`` is not acceptable for segment_node's parameter ``name`` (None: it is)."""
    if name == "device" and isinstance(value, str) and not _DEVICE.fullmatch(value):
        return f"device must be auto, cpu, cuda or cuda:N, got {value!r}"
    return check_param(BY_NAME[name], value)


def check_live_change(name: str, value: Value) -> str | None:
    """Why ``ros2 param set name value`` is refused while the node runs (None: accepted)."""
    if name not in BY_NAME:
        return None  # not ours (use_sim_time, QoS overrides): rclpy decides
    if not BY_NAME[name].live:
        live = ", ".join(p.name for p in PARAMETERS if p.live)
        return (f"{name} is read at start-up only (it selects what the node loads or subscribes to): restart the "
                f"node with -p {name}:=... to change it. Live parameters: {live}")
    return check_value(name, value)


def check_unconfigured_change(name: str, value: Value) -> str | None:
    """Why ``ros2 param set name value`` is refused on an unconfigured managed node, where every parameter may
    change because configure reads them all (None: accepted)."""
    return check_value(name, value) if name in BY_NAME else None


def check_config(values: dict[str, Value]) -> list[str]:
    """Every problem with a full set of start-up values."""
    problems = [reason for name, value in values.items() if (reason := check_value(name, value))]
    if (values["input_width"] == 0) != (values["input_height"] == 0):
        problems.append("input_width and input_height must both be 0 (model default) or both be set, got "
                        f"{values['input_width']}x{values['input_height']}")
    return problems


def normalise(values: dict[str, Value]) -> dict[str, Value]:
    """Numbers given as integers (``max_fps:=10``) become floats where the parameter is a float."""
    return {name: float(v) if BY_NAME[name].kind is float else v for name, v in values.items()}


def declare(node, table: tuple[Param, ...]) -> dict[str, Value]:
    """Declare ``table``'s parameters on ``node`` (for the player and the evaluator) and return their values,
    floats normalised; raise ValueError naming every value that does not fit."""
    for param in table:
        node.declare_parameter(param.name, param.default, descriptor(param))
    values = {p.name: node.get_parameter(p.name).value for p in table}
    problems = [reason for p in table if (reason := check_param(p, values[p.name]))]
    if problems:
        raise ValueError("invalid parameters: " + "; ".join(problems))
    return {p.name: float(values[p.name]) if p.kind is float else values[p.name] for p in table}


def descriptor(param: Param) -> ParameterDescriptor:
    """What ``ros2 param describe`` shows. Float parameters accept integers too (``max_fps:=10``)."""
    kind = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
            float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}[param.kind]
    constraints = []
    if param.choices:
        constraints.append("one of: " + ", ".join(param.choices))
    constraints.append("changes live" if param.live else "start-up only")
    result = ParameterDescriptor(name=param.name, type=kind, description=param.description,
                                 additional_constraints="; ".join(constraints),
                                 dynamic_typing=param.kind is float)
    if param.range and param.kind is int:
        result.integer_range = [IntegerRange(from_value=int(param.range[0]), to_value=int(param.range[1]), step=1)]
    elif param.range:
        result.floating_point_range = [FloatingPointRange(from_value=float(param.range[0]),
                                                          to_value=float(param.range[1]), step=0.0)]
    return result


def markdown_table(table: tuple[Param, ...] = PARAMETERS) -> str:
    """A node's parameter table for the README and its ``--help``."""
    lines = ["| parameter | default | live | description |", "|---|---|---|---|"]
    for p in table:
        default = f'"{p.default}"' if isinstance(p.default, str) else str(p.default).lower() \
            if isinstance(p.default, bool) else p.default
        allowed = " (" + " \\| ".join(p.choices) + ")" if p.choices else \
            f" (range {p.range[0]}–{p.range[1]})" if p.range else ""
        lines.append(f"| `{p.name}` | `{default}` | {'yes' if p.live else 'no'} | {p.description}{allowed} |")
    return "\n".join(lines)
