"""Rosbag evaluation: bag_player + segment_node + evaluator_node; the launch ends when the report is written.

    ros2 launch rtseg_ros replay.launch.py bag:=val_bag weights:=/path/to/best.pt out_dir:=eval_out

The same three processes without `ros2 launch`: `rtseg-replay --bag val_bag --weights best.pt --out eval_out`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

CONFIG = PathJoinSubstitution([FindPackageShare("rtseg_ros"), "config"])

ARGUMENTS = [
    ("bag", "", "rosbag2 folder made by rtseg-make-bag (or with the same topics)"),
    ("model", "", "network from the model registry; empty: the checkpoint's model"),
    ("weights", "", "checkpoint file; empty: random initialisation (plumbing checks only)"),
    ("device", "auto", "auto, cpu, cuda or cuda:N"),
    ("backend", "torch", "torch, onnxruntime or tensorrt"),
    ("precision", "fp32", "fp32, fp16 or bf16"),
    ("rate", "0.0", "frames per second; 0: the bag's recorded timing"),
    ("input_qos", "reliable", "segment_node image QoS: reliable measures the network; sensor_data as deployed"),
    ("samples", "6", "sample rows in the report's samples.png; 0: none"),
    ("out_dir", "eval_out", "folder for report.json, report.md and plots"),
]
NODE_ARGUMENTS = ("model", "weights", "device", "backend", "precision", "input_qos")


def generate_launch_description():
    player = Node(
        package="rtseg_ros",
        executable="bag_player",
        name="bag_player",
        parameters=[{"bag": LaunchConfiguration("bag"),
                     "rate_hz": ParameterValue(LaunchConfiguration("rate"), value_type=float),
                     "wait_for_evaluator": True}],
        output="screen",
    )
    segment_node = Node(
        package="rtseg_ros",
        executable="segment_node",
        name="segment_node",
        parameters=[PathJoinSubstitution([CONFIG, "segment.yaml"]),
                    {name: ParameterValue(LaunchConfiguration(name), value_type=str) for name in NODE_ARGUMENTS}],
        remappings=[("image", "/camera/image_raw")],
        output="screen",
    )
    evaluator = Node(
        package="rtseg_ros",
        executable="evaluator_node",
        name="evaluator",
        parameters=[{"out_dir": LaunchConfiguration("out_dir"),
                     "samples": ParameterValue(LaunchConfiguration("samples"), value_type=int)}],
        output="screen",
    )
    end_with_report = RegisterEventHandler(OnProcessExit(target_action=evaluator, on_exit=[EmitEvent(event=Shutdown(
        reason="evaluation report written"))]))
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, default, description in ARGUMENTS]
    return LaunchDescription([*arguments, player, segment_node, evaluator, end_with_report])
