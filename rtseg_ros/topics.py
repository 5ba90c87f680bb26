"""The package's absolute topic names, defined once (nodes remap them; bags store them).

Imports nothing: the bag tools (no ROS) and the nodes both use it.
"""
from __future__ import annotations

# A bag's frame and what bag_player publishes: camera image, its camera_info, ground-truth train ids.
IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
LABELS_TOPIC = "/camera/labels_gt"
# segment_node's predictions and class table (~/labels, ~/class_info of a node named segment_node).
PREDICTIONS_TOPIC = "/segment_node/labels"
CLASS_INFO_TOPIC = "/segment_node/class_info"
# bag_player's latched notices (~/done, ~/info).
PLAYER_DONE_TOPIC = "/bag_player/done"
PLAYER_INFO_TOPIC = "/bag_player/info"
DIAGNOSTICS_TOPIC = "/diagnostics"
