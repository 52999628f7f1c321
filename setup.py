"""ament_python package definition; also a plain pip-installable project (see README)."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "depth_node"


def _files(pattern: str) -> list[str]:
    return sorted(p for p in glob(pattern) if os.path.isfile(p) and not p.endswith((".gitkeep", ".md~")))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch/*.py")),
        (f"share/{PACKAGE}/config", _files("config/*.yaml") + _files("config/*.xml")),
        (f"share/{PACKAGE}/models", _files("models/*")),
        (f"share/{PACKAGE}/models/default_onnx", _files("models/default_onnx/*.onnx")),
        (f"share/{PACKAGE}/models/metric_small_onnx", _files("models/metric_small_onnx/*.onnx")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "torch>=2.1",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "pyyaml",
        "tqdm",
        "pillow",
        "opencv-python-headless",  # JPEG/PNG of sensor_msgs/CompressedImage, Bayer demosaicing
        "rosbags>=0.10",
        "matplotlib",
        "tensorboard",
    ],
    extras_require={
        # ROS 2 from PyPI, for machines without a ROS 2 installation (on a robot, use apt's packages).
        "ros": [
            "ros-rclpy",
            "ros-std-msgs",
            "ros-sensor-msgs",
            "ros-nav-msgs",
            "ros-geometry-msgs",
            "ros-diagnostic-msgs",
            "ros-rosgraph-msgs",
            "ros-lifecycle-msgs",
            "ros-rmw-fastrtps-cpp",
        ],
        "openvino": ["openvino>=2024.0"],
        "tensorrt": ["tensorrt>=10", "cuda-python>=12"],  # cuda-python: the engines' GPU buffers and stream
        "test": [
            "pytest>=7",
            "pytest-timeout",
            "pytest-xdist",  # `make test` runs two workers, one CPU each (test/conftest.py)
            "ruff",
            "evo",
            "onnxscript",
            "cuda-python>=12",  # the TensorRT path's CUDA runtime calls, tested here without a GPU
            "colcon-core",
            "colcon-ros",
            "colcon-python-setup-py",
            # the real launch/launch_ros of ../shared/vendor/ros2_launch (test/test_launch.py) import these
            "osrf-pycommon",
            "lark-parser",
        ],
    },
    zip_safe=True,
    maintainer="depth_node maintainers",
    maintainer_email="depth-node@example.org",
    description="Monocular depth, point clouds and visual odometry for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "depth-node = depth_node.cli:main",
            "mono_depth_node = depth_node.ros.node:main",
        ],
    },
)
