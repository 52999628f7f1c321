"""launch/mono_depth.launch.py against recording stand-ins for `launch`/`launch_ros` (not installable here):
the arguments it declares, the node it starts (an executable setup.py really installs), and that its
parameter file, with the launch overrides, loads into the real node."""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import ros_helpers as H

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch" / "mono_depth.launch.py"
DOMAIN = 53
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:lark.*")


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(_Recorder):
    def perform(self, context) -> str:
        return context.launch_configurations[self.args[0]]


class FindPackageShare(_Recorder):
    def perform(self, context) -> str:
        assert self.args[0] == "depth_node"
        return str(ROOT)  # the checkout is laid out like share/depth_node


class LaunchDescription(_Recorder):
    @property
    def entities(self) -> list:
        return list(self.args[0])


class DeclareLaunchArgument(_Recorder):
    pass


class OpaqueFunction(_Recorder):
    pass


class Node(_Recorder):
    pass


class Context:
    def __init__(self, configs: dict[str, str]):
        self.launch_configurations = configs


@pytest.fixture
def launch_module(monkeypatch):
    mods = {
        "launch": types.ModuleType("launch"),
        "launch.actions": types.ModuleType("launch.actions"),
        "launch.substitutions": types.ModuleType("launch.substitutions"),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.ModuleType("launch_ros.actions"),
        "launch_ros.substitutions": types.ModuleType("launch_ros.substitutions"),
    }
    mods["launch"].LaunchDescription = LaunchDescription
    mods["launch.actions"].DeclareLaunchArgument = DeclareLaunchArgument
    mods["launch.actions"].OpaqueFunction = OpaqueFunction
    mods["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    mods["launch_ros.actions"].Node = Node
    mods["launch_ros.substitutions"].FindPackageShare = FindPackageShare
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("mono_depth_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _describe(module, **given: str) -> tuple[dict, Node]:
    ld = module.generate_launch_description()
    declared = {a.args[0]: a.kwargs for a in ld.entities if isinstance(a, DeclareLaunchArgument)}
    funcs = [a for a in ld.entities if isinstance(a, OpaqueFunction)]
    assert len(funcs) == 1
    configs = {name: kw["default_value"] for name, kw in declared.items()}
    configs.update(given)
    nodes = funcs[0].kwargs["function"](Context(configs))
    assert len(nodes) == 1 and isinstance(nodes[0], Node)
    return declared, nodes[0]


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            eps = ast.literal_eval(node.value)
            return dict(s.replace(" ", "").split("=", 1) for s in eps["console_scripts"])
    raise AssertionError("no entry_points in setup.py")


def test_declares_the_documented_arguments(launch_module) -> None:
    declared, _ = _describe(launch_module)
    for name in ("image", "camera_info", "model", "backend", "namespace", "use_sim_time", "params_file"):
        assert name in declared and declared[name].get("description")
    assert declared["use_sim_time"]["default_value"] == "false"


def test_node_executable_is_installed_by_setup_py(launch_module) -> None:
    _, node = _describe(launch_module)
    kw = node.kwargs
    assert kw["package"] == "depth_node" and kw["executable"] == "mono_depth_node"
    scripts = _console_scripts()
    assert scripts.get("mono_depth_node") == "depth_node.ros.node:main"
    module, func = scripts["mono_depth_node"].split(":")
    assert callable(getattr(importlib.import_module(module), func))
    assert "install_scripts=$base/lib/depth_node" in (ROOT / "setup.cfg").read_text()  # where ros2 run looks


def test_defaults_keep_the_yaml_and_overrides_are_typed(launch_module) -> None:
    _, node = _describe(launch_module)
    params_file, overrides = node.kwargs["parameters"]
    assert Path(params_file) == ROOT / "config" / "mono_depth.yaml"
    assert overrides == {"use_sim_time": False}  # empty arguments do not clobber the file
    assert node.kwargs["remappings"] == [("image", "image"), ("camera_info", "camera_info")]
    _, node = _describe(launch_module, image="/cam/image_raw", camera_info="/cam/camera_info", model="/m.pt",
                        backend="torch", namespace="front", use_sim_time="True", publish_tf="true")
    params_file, overrides = node.kwargs["parameters"]
    assert overrides == {"use_sim_time": True, "model": "/m.pt", "backend": "torch", "publish_tf": True}
    assert node.kwargs["namespace"] == "front"
    assert node.kwargs["remappings"] == [("image", "/cam/image_raw"), ("camera_info", "/cam/camera_info")]
    assert node.kwargs["arguments"] == ["--ros-args", "--log-level", "info"]
    assert node.kwargs["additional_env"] == {"DEPTH_NODE_DDS_PROFILE": "auto"}
    _, node = _describe(launch_module, dds_profile="none")
    assert node.kwargs["additional_env"] == {"DEPTH_NODE_DDS_PROFILE": "none"}


@pytest.mark.ros
@pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")
def test_parameter_file_loads_into_the_real_node(launch_module, tmp_path) -> None:
    """The file the launch names, as --params-file, declares and validates cleanly in the real node; the
    launch overrides are valid values too."""
    import rclpy

    from depth_node.ros import params as P
    from depth_node.ros.node import create_node

    _, node_action = _describe(launch_module, backend="torch", model=str(tmp_path / "m.pt"), use_sim_time="true")
    params_file, overrides = node_action.kwargs["parameters"]
    old_env = H.set_ros_env(DOMAIN)
    ctx = rclpy.Context()
    args = ["mono_depth_node", "--ros-args", "--params-file", params_file]
    for k, v in overrides.items():
        args += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    rclpy.init(args=args, context=ctx)
    try:
        node = create_node(context=ctx)
        try:
            assert node.param_error == ""
            assert node.cfg["backend"] == "torch" and node.cfg["model"] == str(tmp_path / "m.pt")
            assert node.get_parameter("use_sim_time").value is True
            values = P.read(node)
            defaults = P.defaults()
            assert {k: v for k, v in values.items() if k not in overrides} == \
                {k: v for k, v in defaults.items() if k not in overrides}
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
        H.restore_env(old_env)
