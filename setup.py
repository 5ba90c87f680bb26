"""ament_python build script; also a plain pip-installable package (see README)."""
import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "rtseg_ros"
HERE = Path(__file__).parent
# package.xml is the single source of the version (colcon and rosdep read it there).
VERSION = re.search(r"<version>([^<]+)</version>", (HERE / "package.xml").read_text()).group(1)

ROS_WHEELS = [  # real ROS 2 (Kilted) wheels from PyPI, for machines without a ROS install
    "ros-rclpy",
    "ros-sensor-msgs",
    "ros-std-msgs",
    "ros-diagnostic-msgs",
    "ros-rmw-fastrtps-cpp",
]

setup(
    name=PACKAGE,
    version=VERSION,
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["data/*.json", "data/demo_frames/README.md", "data/demo_frames/*/*.png",
                            "train/recipes/*.yaml", "models/weights/*.pt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py"))),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml"))),
    ],
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.2",
        "torchvision>=0.17",
        "numpy",
        "opencv-python-headless",
        "rosbags>=0.10",
        "cityscapesscripts",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "pillow",
        "tensorboard",  # rtseg-train's tb/ logs (log.tensorboard, on by default)
    ],
    extras_require={
        "ros": ROS_WHEELS,
        "onnx": ["onnx", "onnxruntime", "onnxscript"],
        "openvino": ["openvino", "onnx"],
        "test": ["pytest", "catkin_pkg", "colcon-common-extensions", "onnx", "onnxruntime", "onnxscript", "openvino"],
    },
    zip_safe=True,
    maintainer="rtseg_ros maintainers",
    maintainer_email="maintainers@rtseg-ros.dev",
    description="Real-time semantic segmentation for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "rtseg-synth = rtseg_ros.data.synth:main",
            "rtseg-models = rtseg_ros.tools.models_table:main",
            "rtseg-train = rtseg_ros.train.cli:main",
            "segment_node = rtseg_ros.ros.segment_node:main",
            "rtseg-demo = rtseg_ros.apps.demo:main",
            "rtseg-export = rtseg_ros.tools.export:main",
            "rtseg-bench = rtseg_ros.bench.cli:main",
            "rtseg-make-bag = rtseg_ros.tools.make_bag:main",
            "rtseg-eval = rtseg_ros.eval.cli:main",
            "rtseg-replay = rtseg_ros.apps.replay:main",
            "bag_player = rtseg_ros.ros.bag_player:main",
            "evaluator_node = rtseg_ros.ros.evaluator_node:main",
        ],
    },
)
