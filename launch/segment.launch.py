"""Live segmentation: segment_node on a camera topic, and optionally RViz showing the input and the overlay.

    ros2 launch rtseg_ros segment.launch.py model:=farsee image:=/camera/image_raw weights:=/path/to/best.pt

Parameters come from config/segment.yaml, then `params_file`, then this file's arguments (last wins).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

CONFIG = PathJoinSubstitution([FindPackageShare("rtseg_ros"), "config"])

ARGUMENTS = [
    ("model", "farsee", "network from the model registry; model:='' takes it from an rtseg-train checkpoint"),
    ("image", "/camera/image_raw", "input image topic (its sibling camera_info is used when published)"),
    ("weights", "", "checkpoint file; empty: random initialisation (plumbing checks only)"),
    ("device", "auto", "auto, cpu, cuda or cuda:N"),
    ("backend", "torch", "torch, onnxruntime or tensorrt"),
    ("precision", "fp32", "fp32, fp16 or bf16"),
    ("params_file", PathJoinSubstitution([CONFIG, "segment.yaml"]), "parameter file applied over config/segment.yaml"),
    ("namespace", "", "namespace of the node (and of RViz)"),
    ("use_sim_time", "false", "use /clock, e.g. when replaying a bag"),
    ("rviz", "false", "start RViz with config/rtseg.rviz (input image and overlay)"),
]
NODE_ARGUMENTS = ("model", "weights", "device", "backend", "precision")


def generate_launch_description():
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    segment_node = Node(
        package="rtseg_ros",
        executable="segment_node",
        name="segment_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            PathJoinSubstitution([CONFIG, "segment.yaml"]),
            LaunchConfiguration("params_file"),
            {name: ParameterValue(LaunchConfiguration(name), value_type=str) for name in NODE_ARGUMENTS},
            {"use_sim_time": use_sim_time},
        ],
        remappings=[("image", LaunchConfiguration("image"))],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rtseg_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([CONFIG, "rtseg.rviz"])],
        parameters=[{"use_sim_time": use_sim_time}],
        remappings=[("image", LaunchConfiguration("image"))],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, default, description in ARGUMENTS]
    return LaunchDescription([*arguments, segment_node, rviz])
