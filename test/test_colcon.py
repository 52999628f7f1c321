"""`colcon build` of the package (as a ROS 2 workspace would build it) installs what `ros2 run` and
`ros2 launch` look for: share/depth_node/{launch,config,models,package.xml}, the ament index marker, and the
node executable under lib/depth_node; the installed node finds its share directory through the ament index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from colcon_ws import MISSING, ROOT, colcon_build, colcon_missing

pytestmark = pytest.mark.skipif(colcon_missing(), reason=MISSING)


@pytest.mark.timeout(300)
def test_colcon_build_installs_share_and_executable(tmp_path: Path) -> None:
    prefix, env = colcon_build(tmp_path / "ws")
    share = prefix / "share" / "depth_node"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "mono_depth.launch.py").is_file()
    assert (share / "config" / "mono_depth.yaml").is_file()
    assert (share / "models").is_dir()
    for f in (ROOT / "models").glob("*"):
        if f.is_file() and f.name != ".gitkeep":
            assert (share / "models" / f.name).is_file(), f"models/{f.name} not installed"
    for f in (ROOT / "models").glob("default_onnx/*.onnx"):
        assert (share / "models" / "default_onnx" / f.name).is_file(), f"{f} not installed"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "depth_node").is_file()
    exe = prefix / "lib" / "depth_node" / "mono_depth_node"
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert (prefix / "lib" / "depth_node" / "depth-node").is_file()
    # the installed executable runs, and the installed package resolves its share dir through the ament index
    site = next((prefix / "lib").glob("python3*/site-packages"))
    run_env = dict(env, AMENT_PREFIX_PATH=str(prefix), PYTHONPATH=str(site))
    r = subprocess.run([str(exe), "--help"], env=run_env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and "--ros-args" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-c", "import depth_node, depth_node.paths as p; "
                        "print(depth_node.__file__); print(p.config_file('mono_depth.yaml')); print(p.models_dir())"],
                       env=run_env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    mod, cfg, models = r.stdout.split()
    assert Path(mod).is_relative_to(site)
    assert Path(cfg) == share / "config" / "mono_depth.yaml" and Path(models) == share / "models"
