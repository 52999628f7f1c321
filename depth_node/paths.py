"""Where the package's shared data (config/, launch/, models/) lives, whether installed by colcon, pip, or run
from a source checkout."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

PACKAGE = "depth_node"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """The package's share directory: the source checkout this code runs from (an editable install must not
    read the stale copies pip made of models/ and config/), else the ament index, else this Python prefix."""
    if (_SOURCE_ROOT / "package.xml").is_file() and (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not installed through ament, or ament_index_python absent
        pass
    candidate = Path(sys.prefix) / "share" / PACKAGE
    return candidate if (candidate / "config").is_dir() else _SOURCE_ROOT


def config_file(name: str) -> Path:
    return share_dir() / "config" / name


def models_dir() -> Path:
    return share_dir() / "models"


BUNDLED_METRIC_MODEL = "metric_small.pt"
DEFAULT_MODEL = "default.pt"


def default_onnx_model() -> Path:
    """The default model's shipped ONNX export (models/default_onnx/depth.onnx, its pose.onnx beside it)."""
    return models_dir() / "default_onnx" / "depth.onnx"


def bundled_metric_model() -> str:
    """The package's own metric model (models/metric_small.pt), used when metric_model.model is empty, so
    `scale_source: metric_model` works out of the box; "" when this installation has none."""
    path = models_dir() / BUNDLED_METRIC_MODEL
    return str(path) if path.is_file() else ""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where derived files (ONNX exports, engines, optimized graphs) are cached: `cache_dir`, else
    $DEPTH_NODE_CACHE, else $XDG_CACHE_HOME/depth_node (~/.cache/depth_node)."""
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get("DEPTH_NODE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "depth_node"


def file_sha256(path: str | os.PathLike) -> str:
    """Content hash of a file (with its `.data` external weights, where an export has them): cache keys."""
    h = hashlib.sha256()
    data = Path(str(path) + ".data")  # external weights of large exports
    for part in (path, data) if data.is_file() else (path,):
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def publish_folder(tmp: Path, folder: Path) -> None:
    """Rename a finished temporary folder into place; when another process got there first (before the check or
    between the check and the rename), keep theirs: the content is the same by construction of the key."""
    if not folder.exists():
        try:
            os.replace(tmp, folder)
            return
        except OSError:
            if not folder.exists():
                raise
    shutil.rmtree(tmp, ignore_errors=True)
