"""QoS profiles of every topic this package publishes or subscribes, defined once."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPresetProfiles, QoSProfile, ReliabilityPolicy


def _profile(depth: int, reliability: ReliabilityPolicy, durability: DurabilityPolicy = DurabilityPolicy.VOLATILE
             ) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=durability)


# Camera input, by the node's ``input_qos`` parameter. Depth 1 everywhere: the DDS reader itself keeps
# only the newest frame.
INPUT_QOS = {
    "sensor_data": _profile(1, ReliabilityPolicy.BEST_EFFORT),
    "reliable": _profile(1, ReliabilityPolicy.RELIABLE),
    "system_default": QoSPresetProfiles.SYSTEM_DEFAULT.value,
}
# Reliable + volatile is compatible with best-effort and reliable subscribers alike (RViz, rosbag, tools).
OUTPUT_QOS = _profile(1, ReliabilityPolicy.RELIABLE)
# Latched: a late subscriber still gets the last message (class info, "done" notices).
LATCHED_QOS = _profile(1, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS_QOS = _profile(10, ReliabilityPolicy.RELIABLE)
# Ground truth and predictions the evaluator must not lose while it is busy.
RELIABLE_QUEUE_QOS = _profile(50, ReliabilityPolicy.RELIABLE)
# The evaluator's camera image subscription (sample overlays only): ROS's sensor-data preset, best effort.
SENSOR_DATA_QOS = QoSPresetProfiles.SENSOR_DATA.value
# The bare transport probe of rtseg-bench --transport, by its --qos: depth 1, as the node's camera input.
PROBE_QOS = {"best_effort": _profile(1, ReliabilityPolicy.BEST_EFFORT), "reliable": _profile(1, ReliabilityPolicy.RELIABLE)}


def player_qos(reliable: bool, depth: int) -> QoSProfile:
    """What ``bag_player`` publishes with: its ``qos`` parameter's reliability, volatile."""
    return _profile(depth, ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
