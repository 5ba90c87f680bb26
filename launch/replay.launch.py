"""Rosbag evaluation: bag_player + segment_node + evaluator_node; the launch ends when the report is written.

    ros2 launch rtseg_ros replay.launch.py bag:=val_bag weights:=/path/to/best.pt out_dir:=eval_out
    ros2 launch rtseg_ros replay.launch.py bag:=val_bag weights:=best.pt pacing:=rate rate:=10   # latency, drops

The same three processes without `ros2 launch`: `rtseg-replay --bag val_bag --weights best.pt --out eval_out`.
Every segment_node parameter is a launch argument too (empty: config/segment.yaml or params_file); the replay
subscribes reliably unless input_qos is given. With `namespace`, segment_node runs in it and the evaluator
listens to its namespaced outputs. The player runs in lockstep by default (every frame scored). All three
run with the shipped Fast DDS profile unless transport_profile:=false or FASTDDS_DEFAULT_PROFILES_FILE is
set. The logic lives in rtseg_ros.ros.launch_args (unit-tested).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from rtseg_ros.ros.launch_args import (REPLAY_LAUNCH_ONLY, REPLAY_NODE_DEFAULTS, evaluator_remappings, log_level,
                                       node_arguments, node_env, node_parameters, player_parameters)

ARGUMENTS = [*REPLAY_LAUNCH_ONLY, *node_arguments()]


def launch_setup(context):
    given = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    config = FindPackageShare("rtseg_ros").perform(context) + "/config"
    env = node_env(given, config)
    player = Node(
        package="rtseg_ros",
        executable="bag_player",
        name="bag_player",
        parameters=[player_parameters(given)],
        additional_env=env,
        output="screen",
    )
    segment_node = Node(
        package="rtseg_ros",
        executable="segment_node",
        name="segment_node",
        namespace=given["namespace"],
        parameters=node_parameters(f"{config}/segment.yaml", given, REPLAY_NODE_DEFAULTS),
        remappings=[("image", "/camera/image_raw")],
        ros_arguments=["--log-level", log_level(given["log_level"])],
        additional_env=env,
        output="screen",
    )
    evaluator = Node(
        package="rtseg_ros",
        executable="evaluator_node",
        name="evaluator",
        parameters=[{"out_dir": given["out_dir"], "samples": int(given["samples"])}],
        remappings=evaluator_remappings(given["namespace"]),
        additional_env=env,
        output="screen",
    )
    end_with_report = RegisterEventHandler(OnProcessExit(target_action=evaluator, on_exit=[EmitEvent(event=Shutdown(
        reason="evaluation report written"))]))
    # a player that fails (no bag, nobody subscribing) ends the launch: the evaluator would wait for nothing
    end_with_failed_player = RegisterEventHandler(OnProcessExit(target_action=player, on_exit=lambda event, _: [
        EmitEvent(event=Shutdown(reason="bag_player failed"))] if event.returncode else []))
    return [player, segment_node, evaluator, end_with_report, end_with_failed_player]


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, default, description in ARGUMENTS]
    return LaunchDescription([*arguments, OpaqueFunction(function=launch_setup)])
