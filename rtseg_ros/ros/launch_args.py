"""What the launch files do with their arguments, as plain functions the tests call without ``launch_ros``.

Every ``segment_node`` parameter is also a launch argument. Its launch default is empty, meaning "not given":
then the value comes from ``config/segment.yaml`` or the user's ``params_file`` (or the node's own default).
A value given on the command line (``model:=sgcpnet``) is converted to the parameter's type and applied last.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from rtseg_ros.ros.fastdds import PROFILE_NAME, profile_env
from rtseg_ros.ros.params import PARAMETERS, Param, Value, check_value
from rtseg_ros.ros.pacing import PACINGS, check_pacing
from rtseg_ros.topics import CLASS_INFO_TOPIC, IMAGE_TOPIC, PREDICTIONS_TOPIC

NOT_GIVEN = ("", "''", '""')  # `model:=''` typed in a shell reaches launch as the two quote characters

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
LOG_LEVEL_ARGUMENT = ("log_level", "info", f"segment_node's log level ({', '.join(LOG_LEVELS)})")
TRANSPORT_PROFILE_ARGUMENT = (
    "transport_profile", "true", f"run the nodes with Fast DDS profile config/{PROFILE_NAME} (shared memory sized "
    "for camera frames) unless FASTDDS_DEFAULT_PROFILES_FILE (FASTRTPS_... on Jazzy) is already set; "
    "false: Fast DDS's defaults")
# Arguments of segment.launch.py that are not node parameters: (name, default, description).
SEGMENT_LAUNCH_ONLY = (
    ("image", IMAGE_TOPIC, "input image topic (its sibling camera_info is used when published)"),
    ("params_file", "", "parameter file applied over config/segment.yaml (its values win over the defaults, "
                        "command-line arguments win over it)"),
    ("namespace", "", "namespace of the node (and of RViz)"),
    ("use_sim_time", "false", "use /clock, e.g. when replaying a bag"),
    LOG_LEVEL_ARGUMENT,
    ("rviz", "false", "start RViz with config/rtseg.rviz (input image and overlay); needs rviz2 installed"),
    ("managed", "false", "start segment_node as a lifecycle node, unconfigured: `ros2 lifecycle set "
                         "/segment_node configure`, then `activate` (or a lifecycle manager) bring it up"),
    TRANSPORT_PROFILE_ARGUMENT,
)
# Arguments of replay.launch.py that are not segment_node parameters.
REPLAY_LAUNCH_ONLY = (
    ("bag", "", "rosbag2 folder made by rtseg-make-bag (or with the same topics)"),
    ("pacing", "lockstep", "lockstep: each frame once the previous one's prediction is back (every frame scored); "
                           "rate: `rate` frames per second; recorded: the bag's timing"),
    ("rate", "0.0", "frames per second with pacing:=rate"),
    ("samples", "6", "sample rows in the report's samples.png; 0: none"),
    ("out_dir", "eval_out", "folder for report.json, report.md and plots"),
    ("namespace", "", "namespace of segment_node; the evaluator listens to its outputs there"),
    ("params_file", "", "segment_node parameter file applied over config/segment.yaml"),
    LOG_LEVEL_ARGUMENT,
    TRANSPORT_PROFILE_ARGUMENT,
)
# What a replay changes in segment_node's defaults (the files and the command line still win): a reliable
# subscription measures the network, not transport losses.
REPLAY_NODE_DEFAULTS = {"input_qos": "reliable"}
EVALUATOR_INPUTS = (PREDICTIONS_TOPIC, CLASS_INFO_TOPIC)


def node_arguments(table: tuple[Param, ...] = PARAMETERS) -> list[tuple[str, str, str]]:
    """(name, "", description) for each node parameter: a launch argument whose empty default keeps the
    parameter files' value."""
    return [(p.name, "", f"{p.description} (empty: config/segment.yaml or params_file; node default "
                         f"{format_default(p.default)})") for p in table]


def format_default(value: Value) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value) if value == "" else str(value)


def parse_argument(param: Param, text: str) -> Value:
    """A launch argument's text as ``param``'s type; ValueError with one line when it does not fit."""
    try:
        if param.kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            value: Value = text.lower() == "true"
        elif param.kind in (int, float):
            value = param.kind(text)
        else:
            value = text
    except ValueError:
        raise ValueError(f"launch argument {param.name}:={text!r} is not a {param.kind.__name__}") from None
    reason = check_value(param.name, value)
    if reason:
        raise ValueError(f"launch argument {param.name}:={text!r}: {reason}")
    return value


def node_overrides(given: dict[str, str], table: tuple[Param, ...] = PARAMETERS) -> dict[str, Value]:
    """The node parameters the user gave on the command line (empty ones left out), typed."""
    by_name = {p.name: p for p in table}
    return {name: parse_argument(by_name[name], text.strip()) for name, text in given.items()
            if name in by_name and text.strip() not in NOT_GIVEN}


def node_parameters(package_config: str, given: dict[str, str],
                    launch_defaults: dict[str, Value] | None = None) -> list[str | dict[str, Value]]:
    """segment_node's ``parameters=`` list, in the order the entries apply (last wins): the package's
    segment.yaml, what this launch file changes in its defaults, the user's params_file, then the node
    parameters given on the command line."""
    entries: list[str | dict[str, Value]] = [package_config]
    if launch_defaults:
        entries.append(launch_defaults)
    params_file = given.get("params_file", "").strip()
    if params_file not in NOT_GIVEN and params_file != package_config:
        entries.append(params_file)
    entries.append(node_overrides(given))
    return entries


def node_options(given: dict[str, str]) -> list[str]:
    """segment_node's own command-line options (``arguments=``): ``--managed`` for managed:=true."""
    return ["--managed"] if parse_bool("managed", given.get("managed", "false")) else []


def log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"launch argument log_level:={text!r} must be one of {', '.join(LOG_LEVELS)}")
    return text.lower()


def parse_bool(name: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"launch argument {name}:={text!r} must be true or false")
    return text.lower() == "true"


def require_rviz() -> None:
    """Fail before anything starts when ``rviz:=true`` but RViz is not installed (else ``ros2 launch`` would
    exit on the missing package and leave segment_node running)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        raise RuntimeError("rviz:=true but RViz is not installed (rviz2 is not in the ament index): install "
                           "ros-$ROS_DISTRO-rviz2, or launch without rviz:=true") from None


def namespaced(namespace: str, topic: str) -> str:
    """``/segment_node/labels`` as published by a segment_node pushed into ``namespace``."""
    namespace = namespace.strip().strip("/")
    return f"/{namespace}{topic}" if namespace else topic


def evaluator_remappings(namespace: str) -> list[tuple[str, str]]:
    """The evaluator listens to ``/segment_node/...``; with segment_node in ``namespace``, to its outputs there."""
    return [(topic, namespaced(namespace, topic)) for topic in EVALUATOR_INPUTS if namespaced(namespace, topic) != topic]


def node_env(given: dict[str, str], package_config_dir: str, environ: Mapping[str, str] | None = None
             ) -> dict[str, str]:
    """``additional_env`` of every Node a launch file starts: the shipped transport profile, unless
    ``transport_profile:=false`` or the user's environment (default: this process's) already names a Fast DDS
    profiles file."""
    environ = os.environ if environ is None else environ
    enabled = parse_bool("transport_profile", given.get("transport_profile", "true"))
    return profile_env(environ, enabled, f"{package_config_dir}/{PROFILE_NAME}")


def player_parameters(given: dict[str, str]) -> dict[str, Value]:
    """bag_player's parameters in replay.launch.py: its pacing (``rate`` only with ``pacing:=rate``), waiting
    for the evaluator."""
    pacing = given.get("pacing", "lockstep").strip()
    try:
        rate = float(given.get("rate", "0") or 0)
    except ValueError:
        raise ValueError(f"launch argument rate:={given['rate']!r} is not a float") from None
    if pacing not in PACINGS:
        raise ValueError(f"launch argument pacing:={pacing!r} must be one of {', '.join(PACINGS)}")
    rate_hz = rate if pacing == "rate" else 0.0
    if problem := check_pacing(pacing, rate_hz):
        raise ValueError(f"launch argument {problem}")
    # lockstep waits for segment_node's labels, wherever the namespace puts them
    return {"bag": given["bag"], "pacing": pacing, "rate_hz": rate_hz, "wait_for_evaluator": True,
            "predictions_topic": namespaced(given.get("namespace", ""), PREDICTIONS_TOPIC)}
