"""The package's layer order (DEVELOPERS.md, "Layers") holds: imports point down only, no import cycles, and
rclpy (and tf2) is imported only under ``depth_node/ros/``.

The graph is read from the source with ``ast`` (every import, module-level or inside a function), so a lazy
import that runs back up the layers counts as much as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "depth_node"

# Lower numbers sit lower. A package may import its own modules and any package of a strictly lower rank;
# packages of the same rank may not import each other (ros, sim, evaluate are siblings).
RANKS: dict[str, int] = {
    "depth_node": 0,  # the package's __init__ (version only)
    "errors": 0,
    "paths": 0,
    "cpu_info": 0,
    "networks": 1,
    "geometry": 1,
    "colormap": 1,
    "checkpoints": 2,
    "io": 2,  # pure data formats; above geometry, whose intrinsics and poses the KITTI folder reader returns
    "export": 3,
    "inference": 4,
    "runtime": 5,
    "ros": 6,
    "sim": 6,
    "evaluate": 6,
    "train": 7,
    "pack": 7,  # ships a trained model: renders held-out frames (sim), exports (export)
    "zoo": 7,  # the camera zoo: renders drives (sim), runs the frame core offline (ros), scores them (evaluate)
    "bench": 8,
    "commands": 8,
    "cli": 9,
}
ROS_ONLY = ("rclpy", "tf2_ros", "tf2_py", "rosidl_runtime_py", "launch", "launch_ros", "std_msgs", "sensor_msgs",
            "nav_msgs", "geometry_msgs", "diagnostic_msgs", "builtin_interfaces", "rosgraph_msgs", "lifecycle_msgs",
            "rcl_interfaces")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Absolute names of every module `path` imports (``from a import b`` yields a and a.b)."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        graph[_module_name(path)] = {name for name in _imports(path) if name in modules}
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_package_has_a_rank():
    layers = {_layer(m) for m in _graph()}
    assert layers <= set(RANKS), f"give these a rank in test_layers.RANKS and DEVELOPERS.md: {layers - set(RANKS)}"


def test_imports_point_down_only():
    wrong = []
    for module, targets in _graph().items():
        src = _layer(module)
        for target in targets:
            dst = _layer(target)
            if dst != src and RANKS[dst] >= RANKS[src] and dst != "depth_node":
                wrong.append(f"{module} -> {target} ({src} rank {RANKS[src]}, {dst} rank {RANKS[dst]})")
    assert not wrong, "imports that run up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w == v or _is_package_of(w, v):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def _is_package_of(package: str, module: str) -> bool:
    """A module importing its own package's __init__ (e.g. for a re-export) is not a cycle we can avoid."""
    return module.startswith(package + ".")


def test_rclpy_only_under_ros():
    outside = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = _module_name(path)
        if _layer(module) == "ros":
            continue
        for name in _imports(path):
            if name.split(".")[0] in ROS_ONLY:
                outside.append(f"{module} imports {name}")
    assert not outside, "ROS imports outside depth_node/ros/:\n" + "\n".join(outside)


def test_the_checker_sees_a_lazy_relative_back_arrow(tmp_path):
    """The reader resolves relative imports inside functions, so the tests above can fail."""
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy\n\ndef f():\n    from ..ros import params\n    return params\n")
    names = _imports(probe, "depth_node.geometry.probe")
    assert "depth_node.ros.params" in names and "numpy" in names
    assert _layer("depth_node.geometry.probe") == "geometry" and RANKS["ros"] > RANKS["geometry"]
