"""package.xml as rosdep reads it: every dependency is a package released in Humble, Jazzy and Kilted or a
rosdep system key (offline lists from rosdistro in ../shared/reference/rosdep/), so `rosdep install
--from-paths src -y` resolves on a robot; and every third-party module the package imports is declared (or is
one of the few with no rosdep key, listed here with the reason)."""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import require_shared

ROOT = Path(__file__).resolve().parent.parent
DISTROS = ("humble", "jazzy", "kilted")

# imported module → the package.xml dependency that provides it
MODULE_KEYS = {
    "rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "lifecycle_msgs": "lifecycle_msgs",
    "builtin_interfaces": "builtin_interfaces", "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs",
    "nav_msgs": "nav_msgs", "geometry_msgs": "geometry_msgs", "diagnostic_msgs": "diagnostic_msgs",
    "rosgraph_msgs": "rosgraph_msgs", "tf2_ros": "tf2_ros_py", "ament_index_python": "ament_index_python",
    "launch": "launch", "launch_ros": "launch_ros", "numpy": "python3-numpy", "cv2": "python3-opencv",
    "yaml": "python3-yaml", "tqdm": "python3-tqdm", "PIL": "python3-pil", "matplotlib": "python3-matplotlib",
    "torch": "python3-pytorch-pip", "onnxruntime": "python3-onnxruntime-pip", "rosbags": "python3-rosbags-pip",
}
# imported, but rosdep has no key for them: optional extras installed with pip (README "The ROS 2 node" → "Start it")
NO_ROSDEP_KEY = {"onnx", "onnxscript", "openvino", "tensorrt", "cuda", "av", "evo"}  # cuda: cuda-python


def _deps() -> list[tuple[str, str]]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return [(el.tag, (el.text or "").strip()) for el in root if el.tag.endswith("depend")]


def _names(file: str) -> set[str]:
    path = require_shared(f"reference/rosdep/{file}")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


@pytest.mark.parametrize("distro", DISTROS)
def test_every_dependency_resolves_in_each_distro(distro: str) -> None:
    released, keys = _names(f"{distro}_packages.txt"), _names("system_keys.txt")
    unknown = [f"<{tag}>{name}</{tag}>" for tag, name in _deps() if name not in released and name not in keys]
    assert not unknown, (f"package.xml names dependencies that are neither {distro} packages nor rosdep keys: "
                         f"{unknown}")


def test_the_known_wrong_names_are_gone() -> None:
    names = {name for _, name in _deps()}
    assert not names & {"rclpy_lifecycle", "python3-onnx-pip", "tf2_ros"}
    assert len(names) == len(_deps()), "a dependency is declared twice"


def _third_party_imports() -> dict[str, str]:
    """top-level module → first file importing it, over depth_node/ and launch/ (nested imports included)."""
    found: dict[str, str] = {}
    files = sorted((ROOT / "depth_node").rglob("*.py")) + sorted((ROOT / "launch").glob("*.py"))
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top not in sys.stdlib_module_names and top != "depth_node":
                    found.setdefault(top, str(file.relative_to(ROOT)))
    return found


def test_every_import_is_declared() -> None:
    declared = {name for _, name in _deps()}
    imports = _third_party_imports()
    unmapped = {m: f for m, f in imports.items() if m not in MODULE_KEYS and m not in NO_ROSDEP_KEY}
    assert not unmapped, f"imports with no package.xml mapping (add to package.xml and MODULE_KEYS): {unmapped}"
    missing = {m: MODULE_KEYS[m] for m in imports if m in MODULE_KEYS and MODULE_KEYS[m] not in declared}
    assert not missing, f"imported but not declared in package.xml: {missing}"
    assert "rclpy" in imports and "launch_ros" in imports  # the scan does see the package's imports
