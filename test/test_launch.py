"""launch/segment.launch.py, launch/replay.launch.py, config/segment.yaml and config/rtseg.rviz agree with each
other and with the nodes. The launch files are parsed always; their descriptions are built only where
launch_ros is installed."""
import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "segment.launch.py"
REPLAY = ROOT / "launch" / "replay.launch.py"
EXPECTED_ARGUMENTS = {"model": "farsee", "image": "/camera/image_raw", "weights": "", "device": "auto",
                      "backend": "torch", "precision": "fp32", "namespace": "", "use_sim_time": "false",
                      "rviz": "false"}


def launch_arguments(path=LAUNCH) -> dict[str, str]:
    """name → default (source text for non-literal defaults) from the ARGUMENTS table."""
    tree = ast.parse(path.read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets))
    arguments = {}
    for entry in table.elts:
        name, default, description = entry.elts
        assert isinstance(description, ast.Constant) and description.value, f"{name.value} has no description"
        arguments[name.value] = default.value if isinstance(default, ast.Constant) else ast.unparse(default)
    return arguments


@pytest.mark.parametrize("path", [LAUNCH, REPLAY], ids=["segment", "replay"])
def test_launch_file_uses_only_the_standard_launch_api(path):
    tree = ast.parse(path.read_text())
    modules = {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    assert modules == {"launch", "launch_ros"}
    assert any(isinstance(node, ast.FunctionDef) and node.name == "generate_launch_description" for node in tree.body)


def test_launch_arguments_and_defaults():
    arguments = launch_arguments()
    assert set(arguments) == set(EXPECTED_ARGUMENTS) | {"params_file"}
    for name, default in EXPECTED_ARGUMENTS.items():
        assert arguments[name] == default, name
    assert "segment.yaml" in arguments["params_file"]


def test_launch_file_names_what_the_package_installs():
    text = LAUNCH.read_text()
    setup = (ROOT / "setup.py").read_text()
    assert 'executable="segment_node"' in text and '"segment_node = rtseg_ros.ros.segment_node:main"' in setup
    for config in ("segment.yaml", "rtseg.rviz"):
        assert f'"{config}"' in text and (ROOT / "config" / config).is_file()


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
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    assert isinstance(description, LaunchDescription)
    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert set(declared) == set(EXPECTED_ARGUMENTS) | {"params_file"}
    assert len([e for e in description.entities if isinstance(e, Node)]) == 2


def test_replay_launch_starts_what_rtseg_replay_starts():
    """replay.launch.py and rtseg-replay (its stand-in without ros2 launch) start the same three console
    scripts under the names and topics the evaluator expects."""
    pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
    from rtseg_ros.apps import replay

    arguments = launch_arguments(REPLAY)
    assert {"bag", "model", "weights", "device", "rate", "input_qos", "out_dir", "samples"} <= set(arguments)
    assert arguments["input_qos"] == "reliable" and arguments["rate"] == "0.0"
    text, setup = REPLAY.read_text(), (ROOT / "setup.py").read_text()
    commands = replay.commands(replay.parse_args(["--bag", "b"]))
    modules = {name: command[command.index("-m") + 1] for name, command in commands.items()}
    for executable, module in modules.items():
        assert f'executable="{executable}"' in text
        assert f'"{executable} = {module}:main"' in setup
    # the evaluator's default topics name the nodes as both starters do
    source = ast.parse((ROOT / "rtseg_ros" / "ros" / "evaluator_node.py").read_text())
    topics = {n.value for n in ast.walk(source) if isinstance(n, ast.Constant) and isinstance(n.value, str)
              and n.value.startswith("/") and n.value.count("/") == 2}
    assert {"/segment_node/labels", "/segment_node/class_info", "/bag_player/done", "/camera/labels_gt"} <= topics
    assert 'name="segment_node"' in text and 'name="bag_player"' in text
    assert ("image", "/camera/image_raw") == tuple(commands["segment_node"][commands["segment_node"].index("-r") + 1]
                                                   .split(":="))
    assert '("image", "/camera/image_raw")' in text and '"wait_for_evaluator": True' in text
    assert "wait_for_evaluator:=true" in commands["bag_player"]
    assert "OnProcessExit(target_action=evaluator" in text


def test_replay_launch_description_builds_where_launch_ros_is_installed():
    description = launch_description(REPLAY)
    from launch_ros.actions import Node

    assert len([e for e in description.entities if isinstance(e, Node)]) == 3
