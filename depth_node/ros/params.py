"""The node's parameters on rclpy: declaration and reading, driven by the one table in
`depth_node.runtime.params` (names, types, ranges, docs, defaults, validation and the typed NodeConfig live
there, ROS-free). These two functions are the only parameter code that touches rclpy.

The table's names are re-exported so `from depth_node.ros import params as P` keeps working for callers on
the ROS side (tests, launch checks).
"""

from __future__ import annotations

from typing import Any

from depth_node.runtime.params import (  # noqa: F401  (re-exported)
    SPEC_BY_NAME,
    SPECS,
    NodeConfig,
    ParamError,
    ParamSpec,
    check_change,
    defaults,
    flatten,
    nested,
    params_from_cli,
    params_from_yaml,
    validate,
)


def declare(node: Any) -> None:
    """Declare every parameter on an rclpy node, with its description and dynamic typing for numbers."""
    from rcl_interfaces.msg import ParameterDescriptor

    for s in SPECS:
        desc = s.description + ("" if s.runtime else " [needs reload]")
        if s.choices:
            desc += f" (one of: {', '.join(s.choices)})"
        # numbers, lists, and choices that YAML/`-p` read as booleans (rectify: true) are typed dynamically
        dynamic = (isinstance(s.default, int | float | list) and not isinstance(s.default, bool)) or (
            "true" in s.choices)
        node.declare_parameter(s.name, s.default, ParameterDescriptor(description=desc, dynamic_typing=dynamic))


def read(node: Any) -> dict[str, Any]:
    return {s.name: node.get_parameter(s.name).value for s in SPECS}
