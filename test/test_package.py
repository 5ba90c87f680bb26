"""The package is installable both ways: package.xml valid, versions agree, scripts and data files wired."""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from glob import glob
from pathlib import Path

import pytest
import setuptools
from catkin_pkg.package import parse_package

import rtseg_ros

ROOT = Path(__file__).resolve().parents[1]


def setup_kwargs() -> dict:
    """Run setup.py with setuptools.setup replaced, to read what it declares."""
    captured = {}
    original = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        code = (ROOT / "setup.py").read_text()
        exec(compile(code, str(ROOT / "setup.py"), "exec"), {"__file__": str(ROOT / "setup.py"), "__name__": "__main__"})
    finally:
        setuptools.setup = original
    return captured


def test_package_xml_parses_and_versions_agree():
    package = parse_package(str(ROOT / "package.xml"))
    package.validate()
    assert package.name == "rtseg_ros"
    assert package.package_format == 3
    assert [e.content for e in package.exports if e.tagname == "build_type"] == ["ament_python"]
    assert package.version == rtseg_ros.__version__ == setup_kwargs()["version"]
    exec_deps = {d.name for d in package.exec_depends}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs"} <= exec_deps


# install_requires → its rosdep key in package.xml (None: no key exists; the README says to pip-install it)
ROSDEP_KEYS = {"torch": None, "torchvision": "python3-torchvision-pip", "numpy": "python3-numpy",
               "opencv-python-headless": "python3-opencv", "rosbags": "python3-rosbags-pip", "cityscapesscripts": None,
               "pyyaml": "python3-yaml", "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
               "pillow": None, "tensorboard": "python3-tensorboard-pip"}


def test_every_runtime_dependency_is_declared_for_rosdep_too():
    requirements = {re.split(r"[<>=!~ ]", r)[0].lower() for r in setup_kwargs()["install_requires"]}
    assert requirements == set(ROSDEP_KEYS), "map each requirement to its rosdep key (or None) here"
    exec_deps = {d.name for d in parse_package(str(ROOT / "package.xml")).exec_depends}
    assert {key for key in ROSDEP_KEYS.values() if key} <= exec_deps
    readme = (ROOT / "README.md").read_text()
    pip_line = next(line for line in readme.splitlines() if "# no rosdep key" in line)
    assert {name for name, key in ROSDEP_KEYS.items() if key is None} - {"torch", "pillow"} <= set(pip_line.split())


def test_console_scripts_install_into_lib_for_ros2_run():
    cfg = (ROOT / "setup.cfg").read_text()
    assert re.search(r"\[install\]\s*\ninstall_scripts\s*=\s*\$base/lib/rtseg_ros", cfg)
    assert re.search(r"\[develop\]\s*\nscript_dir\s*=\s*\$base/lib/rtseg_ros", cfg)


def test_every_console_script_resolves_and_has_help(capsys):
    declared = setup_kwargs()["entry_points"]["console_scripts"]
    installed = {ep.name: ep for ep in importlib.metadata.distribution("rtseg_ros").entry_points
                 if ep.group == "console_scripts"}
    assert {line.split("=")[0].strip() for line in declared} == set(installed), "reinstall the package"
    for name, ep in installed.items():
        main = ep.load()
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        assert exit_info.value.code == 0, name
        assert "usage" in capsys.readouterr().out.lower(), name


def test_launch_and_config_files_are_installed():
    installed = {src for _, files in setup_kwargs()["data_files"] for src in files}
    on_disk = set(glob("launch/*.launch.py", root_dir=ROOT) + glob("config/*.yaml", root_dir=ROOT)
                  + glob("config/*.rviz", root_dir=ROOT) + glob("config/*.xml", root_dir=ROOT))
    assert on_disk <= installed
    assert "config/fastdds_large_frames.xml" in installed  # the transport profile the launch files apply
    assert {"package.xml", "resource/rtseg_ros"} <= installed


@pytest.mark.skipif(shutil.which("colcon") is None, reason="colcon not installed (pip install colcon-common-extensions)")
def test_colcon_build(tmp_path):
    result = subprocess.run(
        ["colcon", "build", "--base-paths", str(ROOT), "--packages-select", "rtseg_ros",
         "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / "install" / "rtseg_ros"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "rtseg_ros").is_file()
    assert (prefix / "share" / "rtseg_ros" / "package.xml").is_file()
    for line in setup_kwargs()["entry_points"]["console_scripts"]:
        assert (prefix / "lib" / "rtseg_ros" / line.split("=")[0].strip()).is_file()
    # the installed copy, run from elsewhere, finds its training recipes (package data, not the source tree)
    site = next(prefix.glob("lib/python3*/site-packages"))
    # ... and its shipped weights, verified by name
    code = ("import rtseg_ros.train.config as c; print(c.__file__); "
            "print(c.find_recipe('sgcpnet', 'camvid')); print(len(c.available_recipes())); "
            "from rtseg_ros.models import pretrained as p; print(p.resolve_weights(p.DEFAULT))")
    lines = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
                           capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(line).is_relative_to(site) for line in lines[:2] + lines[3:]), lines
    assert int(lines[2]) == len(list((ROOT / "rtseg_ros" / "train" / "recipes").glob("*.yaml")))


def test_readme_parameter_tables_are_current():
    params = pytest.importorskip("rtseg_ros.ros.params", reason="needs the ROS 2 message wheels")
    from rtseg_ros.ros import bag_player, evaluator_node

    readme = (ROOT / "README.md").read_text()
    for table in (params.PARAMETERS, bag_player.PARAMETERS, evaluator_node.PARAMETERS):
        assert params.markdown_table(table) in readme, f"paste markdown_table() of {table[0].name}'s table into README"
