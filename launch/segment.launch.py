"""Live segmentation: segment_node on a camera topic, and optionally RViz showing the input and the overlay.

    ros2 launch rtseg_ros segment.launch.py image:=/camera/image_raw
    ros2 launch rtseg_ros segment.launch.py model:=ddrnet23_slim weights:=/path/to/best.pt device:=cuda
    ros2 launch rtseg_ros segment.launch.py managed:=true   # a lifecycle node: ros2 lifecycle set ... configure

Every segment_node parameter is a launch argument (`--show-args` lists them). Parameters come from
config/segment.yaml, then `params_file`, then the arguments given on the command line (last wins); an
argument left empty does not override the files. The node runs with the shipped Fast DDS profile
(config/fastdds_large_frames.xml) unless transport_profile:=false or FASTDDS_DEFAULT_PROFILES_FILE is set.
The logic lives in rtseg_ros.ros.launch_args (unit-tested).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from rtseg_ros.ros.launch_args import (SEGMENT_LAUNCH_ONLY, log_level, node_arguments, node_env, node_options,
                                       node_parameters, parse_bool, require_rviz)

ARGUMENTS = [*SEGMENT_LAUNCH_ONLY, *node_arguments()]


def launch_setup(context):
    given = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    config = FindPackageShare("rtseg_ros").perform(context) + "/config"
    use_sim_time = parse_bool("use_sim_time", given["use_sim_time"])
    start_rviz = parse_bool("rviz", given["rviz"])
    if start_rviz:
        require_rviz()  # before anything starts: nothing is left running when RViz is missing
    segment_node = Node(
        package="rtseg_ros",
        executable="segment_node",
        name="segment_node",
        namespace=given["namespace"],
        parameters=[*node_parameters(f"{config}/segment.yaml", given), {"use_sim_time": use_sim_time}],
        remappings=[("image", given["image"])],
        arguments=node_options(given),
        ros_arguments=["--log-level", log_level(given["log_level"])],
        additional_env=node_env(given, config),
        output="screen",
        emulate_tty=True,
    )
    if not start_rviz:
        return [segment_node]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rtseg_rviz",
        namespace=given["namespace"],
        arguments=["-d", f"{config}/rtseg.rviz"],
        parameters=[{"use_sim_time": use_sim_time}],
        remappings=[("image", given["image"])],
    )
    return [segment_node, rviz]


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, default, description in ARGUMENTS]
    return LaunchDescription([*arguments, OpaqueFunction(function=launch_setup)])
