"""launch/segment.launch.py, launch/replay.launch.py, config/segment.yaml and config/rtseg.rviz agree with each
other and with the nodes. The launch files are parsed always; their descriptions are built only where
launch_ros is installed."""
import ast
import os
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "segment.launch.py"
REPLAY = ROOT / "launch" / "replay.launch.py"
LAUNCH_ONLY_DEFAULTS = {"image": "/camera/image_raw", "params_file": "", "namespace": "", "use_sim_time": "false",
                        "log_level": "info", "rviz": "false", "managed": "false", "transport_profile": "true"}


def launch_imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return modules | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


@pytest.mark.parametrize("path", [LAUNCH, REPLAY], ids=["segment", "replay"])
def test_launch_file_uses_the_standard_launch_api_and_tested_functions(path):
    tree = ast.parse(path.read_text())
    assert {m.split(".")[0] for m in launch_imports(path)} == {"launch", "launch_ros", "rtseg_ros"}
    assert {m for m in launch_imports(path) if m.startswith("rtseg_ros")} == {"rtseg_ros.ros.launch_args"}
    assert any(isinstance(node, ast.FunctionDef) and node.name == "generate_launch_description" for node in tree.body)


def test_launch_file_names_what_the_package_installs():
    text = LAUNCH.read_text()
    setup = (ROOT / "setup.py").read_text()
    assert 'executable="segment_node"' in text and '"segment_node = rtseg_ros.ros.segment_node:main"' in setup
    for config in ("segment.yaml", "rtseg.rviz"):
        assert f'/{config}"' in text and (ROOT / "config" / config).is_file()


def test_rviz_config_shows_the_input_and_the_overlay():
    rviz = yaml.safe_load((ROOT / "config" / "rtseg.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    assert [d["Class"] for d in displays] == ["rviz_default_plugins/Image"] * 2
    # relative names: RViz runs in the node's namespace with the node's `image` remapping
    assert [d["Topic"]["Value"] for d in displays] == ["image", "segment_node/overlay"]
    assert 'name="segment_node"' in LAUNCH.read_text()
    # best effort subscribers connect to any publisher
    assert {d["Topic"]["Reliability Policy"] for d in displays} == {"Best Effort"}


def test_config_yaml_matches_the_declared_defaults():
    pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
    from rtseg_ros.ros import params

    config = yaml.safe_load((ROOT / "config" / "segment.yaml").read_text())
    assert config["/**"]["ros__parameters"] == params.DEFAULTS


def launch_description(path):
    """The LaunchDescription ``path`` builds (skips where launch_ros is not installed)."""
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros not installed (ROS 2 launch is not on PyPI)")
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_launch_description_builds_where_launch_ros_is_installed():
    description = launch_description(LAUNCH)
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from rtseg_ros.ros import params

    assert isinstance(description, LaunchDescription)
    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert set(declared) == set(LAUNCH_ONLY_DEFAULTS) | {p.name for p in params.PARAMETERS}
    assert len([e for e in description.entities if isinstance(e, OpaqueFunction)]) == 1


# --- the launch files' logic (rtseg_ros.ros.launch_args), without launch_ros ---------------------------------

@pytest.fixture
def launch_args():
    pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
    from rtseg_ros.ros import launch_args

    return launch_args


def apply_parameters(entries: list, node_name: str = "segment_node") -> dict:
    """What the node ends up with from a launch ``parameters=`` list: files and dicts in order, last wins
    (as launch_ros applies them)."""
    values = {}
    for entry in entries:
        if isinstance(entry, dict):
            values.update(entry)
            continue
        for key, section in yaml.safe_load(Path(entry).read_text()).items():
            if key in ("/**", node_name, f"/{node_name}"):
                values.update(section["ros__parameters"])
    return values


def test_every_node_parameter_is_a_launch_argument_left_empty_by_default(launch_args):
    from rtseg_ros.ros import params

    arguments = dict((name, default) for name, default, _ in
                     [*launch_args.SEGMENT_LAUNCH_ONLY, *launch_args.node_arguments()])
    assert arguments == {**LAUNCH_ONLY_DEFAULTS, **{p.name: "" for p in params.PARAMETERS}}
    assert {"input_qos", "transport", "input_width", "input_height", "cpu_threads"} <= set(arguments)
    assert "ARGUMENTS = [*SEGMENT_LAUNCH_ONLY, *node_arguments()]" in LAUNCH.read_text()
    assert "ARGUMENTS = [*REPLAY_LAUNCH_ONLY, *node_arguments()]" in REPLAY.read_text()


def test_a_params_file_sets_what_the_command_line_leaves_empty(launch_args, tmp_path):
    """Issue: model/weights/device from a params file were overridden by launch defaults."""
    params_file = tmp_path / "robot.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "model": "sgcpnet", "weights": "/robot/best.pt", "device": "cpu", "max_fps": 5.0}}}))
    given = {name: default for name, default, _ in [*launch_args.SEGMENT_LAUNCH_ONLY, *launch_args.node_arguments()]}
    given["params_file"] = str(params_file)
    package_config = str(ROOT / "config" / "segment.yaml")
    values = apply_parameters(launch_args.node_parameters(package_config, given))
    assert (values["model"], values["weights"], values["device"], values["max_fps"]) == \
        ("sgcpnet", "/robot/best.pt", "cpu", 5.0)
    # the command line wins over the file, typed as the node declares
    given.update(device="cuda:1", max_fps="10", input_qos="reliable", enabled="false", cpu_threads="2")
    values = apply_parameters(launch_args.node_parameters(package_config, given))
    assert (values["device"], values["max_fps"], values["input_qos"], values["enabled"], values["cpu_threads"]) == \
        ("cuda:1", 10.0, "reliable", False, 2)
    assert values["model"] == "sgcpnet"
    # segment.yaml alone (no params_file) is applied once
    given["params_file"] = ""
    assert launch_args.node_parameters(package_config, given).count(package_config) == 1
    given["params_file"] = package_config
    assert launch_args.node_parameters(package_config, given).count(package_config) == 1


def test_model_left_out_or_given_empty_keeps_the_nodes_own_rule(launch_args):
    """model:='' typed in a shell reaches launch as two quote characters: both mean "not given", so the node
    takes the checkpoint's model."""
    for text in ("", "''", '""', "  "):
        assert "model" not in launch_args.node_overrides({"model": text, "weights": "/w/best.pt"})
    assert launch_args.node_overrides({"model": "ddrnet23_slim"}) == {"model": "ddrnet23_slim"}


@pytest.mark.parametrize("name, text, expected", [
    ("max_fps", "abc", "launch argument max_fps:='abc' is not a float"),
    ("enabled", "yes", "launch argument enabled:='yes' is not a bool"),
    ("cpu_threads", "1.5", "launch argument cpu_threads:='1.5' is not a int"),
    ("input_qos", "fast", "input_qos must be one of sensor_data, reliable, system_default"),
    ("device", "gpu", "device must be auto, cpu, cuda or cuda:N"),
    ("overlay_alpha", "2", "overlay_alpha must be in [0.0, 1.0]"),
])
def test_a_bad_launch_argument_is_one_clear_line(launch_args, name, text, expected):
    with pytest.raises(ValueError) as error:
        launch_args.node_overrides({name: text})
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_log_level_and_booleans(launch_args):
    assert launch_args.log_level("WARN") == "warn"
    with pytest.raises(ValueError, match="log_level"):
        launch_args.log_level("loud")
    assert launch_args.parse_bool("rviz", "True") is True
    with pytest.raises(ValueError, match="rviz"):
        launch_args.parse_bool("rviz", "1")


def test_rviz_without_rviz_installed_fails_before_anything_starts(launch_args, monkeypatch, tmp_path):
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.environ.get("AMENT_PREFIX_PATH") or str(tmp_path))
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rviz2")
        pytest.skip("rviz2 is installed here")
    except PackageNotFoundError:
        pass
    with pytest.raises(RuntimeError, match="rviz:=true but RViz is not installed"):
        launch_args.require_rviz()
    # the check runs in launch_setup before any Node is created
    source = LAUNCH.read_text()
    assert source.index("require_rviz()") < source.index("segment_node = Node(")


def test_replay_namespace_moves_the_evaluators_and_the_players_inputs(launch_args):
    assert launch_args.evaluator_remappings("") == []
    assert launch_args.evaluator_remappings("/robot1/") == [
        ("/segment_node/labels", "/robot1/segment_node/labels"),
        ("/segment_node/class_info", "/robot1/segment_node/class_info")]
    # lockstep pacing waits for the namespaced labels too (a real `ros2 launch ... namespace:=robot1` hung here)
    given = {"bag": "b", "pacing": "lockstep", "rate": "0.0", "namespace": "robot1"}
    assert launch_args.player_parameters(given)["predictions_topic"] == "/robot1/segment_node/labels"


def test_replay_launch_starts_what_rtseg_replay_starts(launch_args):
    """replay.launch.py and rtseg-replay (its stand-in without ros2 launch) start the same three console
    scripts under the names and topics the evaluator expects."""
    from rtseg_ros.apps import replay

    arguments = {name: default for name, default, _ in [*launch_args.REPLAY_LAUNCH_ONLY, *launch_args.node_arguments()]}
    assert {"bag", "model", "weights", "device", "rate", "input_qos", "out_dir", "samples", "namespace",
            "params_file", "input_width", "input_height"} <= set(arguments)
    assert arguments["rate"] == "0.0" and launch_args.REPLAY_NODE_DEFAULTS == {"input_qos": "reliable"}
    text, setup = REPLAY.read_text(), (ROOT / "setup.py").read_text()
    commands = replay.commands(replay.parse_args(["--bag", "b"]))
    modules = {name: command[command.index("-m") + 1] for name, command in commands.items()}
    for executable, module in modules.items():
        assert f'executable="{executable}"' in text
        assert f'"{executable} = {module}:main"' in setup
    # the evaluator's default topics (names from rtseg_ros/topics.py) name the nodes as both starters do
    from rtseg_ros import topics as topic_names

    source = ast.parse((ROOT / "rtseg_ros" / "ros" / "evaluator_node.py").read_text())
    topics = {getattr(topic_names, n.id) for n in ast.walk(source) if isinstance(n, ast.Name) and n.id.endswith("_TOPIC")}
    assert {"/segment_node/labels", "/segment_node/class_info", "/bag_player/done", "/camera/labels_gt"} <= topics
    assert set(launch_args.EVALUATOR_INPUTS) <= topics
    assert 'name="segment_node"' in text and 'name="bag_player"' in text
    assert ("image", "/camera/image_raw") == tuple(commands["segment_node"][commands["segment_node"].index("-r") + 1]
                                                   .split(":="))
    assert '("image", "/camera/image_raw")' in text and "parameters=[player_parameters(given)]" in text
    assert launch_args.player_parameters(arguments)["wait_for_evaluator"] is True
    assert "wait_for_evaluator:=true" in commands["bag_player"]
    assert "OnProcessExit(target_action=evaluator" in text


def test_replay_launch_description_builds_where_launch_ros_is_installed():
    description = launch_description(REPLAY)
    from launch.actions import OpaqueFunction

    assert len([e for e in description.entities if isinstance(e, OpaqueFunction)]) == 1


def test_replay_launch_paces_in_lockstep_unless_told_otherwise(launch_args):
    arguments = {name: default for name, default, _ in [*launch_args.REPLAY_LAUNCH_ONLY, *launch_args.node_arguments()]}
    arguments["bag"] = "b"
    assert launch_args.player_parameters(arguments) == {"bag": "b", "pacing": "lockstep", "rate_hz": 0.0,
                                                        "wait_for_evaluator": True,
                                                        "predictions_topic": "/segment_node/labels"}
    assert launch_args.player_parameters({**arguments, "pacing": "rate", "rate": "10"})["rate_hz"] == 10.0
    # a rate given with another pacing is not silently half-applied: the player gets no rate
    assert launch_args.player_parameters({**arguments, "pacing": "recorded", "rate": "10"})["rate_hz"] == 0.0
    with pytest.raises(ValueError, match="pacing:=rate needs rate_hz > 0"):
        launch_args.player_parameters({**arguments, "pacing": "rate"})
    with pytest.raises(ValueError, match="pacing:='fast' must be one of recorded, rate, lockstep"):
        launch_args.player_parameters({**arguments, "pacing": "fast"})


@pytest.mark.parametrize("path", [LAUNCH, REPLAY], ids=["segment", "replay"])
def test_launched_nodes_run_with_the_shipped_transport_profile(launch_args, path):
    """Every Node a launch file starts gets node_env(): the profile installed beside segment.yaml, unless
    transport_profile:=false or the user's environment names their own file."""
    from rtseg_ros.ros.fastdds import PROFILE_ENV, PROFILE_ENVS, PROFILE_NAME

    config = str(ROOT / "config")
    for distro, name in (("kilted", PROFILE_ENVS[0]), ("jazzy", PROFILE_ENVS[1])):
        assert launch_args.node_env({"transport_profile": "true"}, config, {"ROS_DISTRO": distro}) == {
            name: f"{config}/{PROFILE_NAME}"}
    assert launch_args.node_env({"transport_profile": "false"}, config, {}) == {}
    assert launch_args.node_env({"transport_profile": "true"}, config, {PROFILE_ENV: "/mine.xml"}) == {}
    with pytest.raises(ValueError, match="transport_profile"):
        launch_args.node_env({"transport_profile": "yes"}, config, {})
    text = path.read_text()
    nodes = text.count("Node(\n") - text.count("rviz = Node(")
    assert text.count("additional_env=") == nodes and "node_env(given, config)" in text


def test_managed_launch_argument_starts_the_lifecycle_node(launch_args):
    assert launch_args.node_options({"managed": "true"}) == ["--managed"]
    assert launch_args.node_options({"managed": "false"}) == launch_args.node_options({}) == []
    with pytest.raises(ValueError, match="managed:='yes' must be true or false"):
        launch_args.node_options({"managed": "yes"})
    assert "arguments=node_options(given)" in LAUNCH.read_text()
