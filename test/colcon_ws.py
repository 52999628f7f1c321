"""A colcon-built install of this checkout in a temporary workspace, shared by the colcon and launch tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLCON = Path(sys.executable).parent / "colcon"
MISSING = "colcon not installed (pip install colcon-core colcon-ros colcon-python-setup-py: the `test` extra)"
_IGNORED = (".venv*", ".git", "build", "install", "log", "out", "runs", "__pycache__", "*.egg-info", ".cache",
            ".pytest_cache", ".ruff_cache", ".whl", ".gl")


def colcon_missing() -> bool:
    return not COLCON.exists() and shutil.which("colcon") is None


def colcon_build(ws: Path, *, models: bool = True) -> tuple[Path, dict[str, str]]:
    """Copy this checkout to ws/src/depth_node (without models/ contents unless `models`), `colcon build` it and
    return the package's install prefix and the environment the build ran in (PATH with this interpreter's bin)."""
    src = ws / "src" / "depth_node"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*_IGNORED, *(() if models else ("models",))))
    (src / "models").mkdir(exist_ok=True)
    colcon = str(COLCON) if COLCON.exists() else shutil.which("colcon")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    r = subprocess.run([colcon, "build", "--base-paths", "src", "--build-base", "build", "--install-base", "install",
                        "--event-handlers", "console_direct-"], cwd=ws, env=env, capture_output=True, text=True,
                       timeout=280)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return ws / "install" / "depth_node", env
