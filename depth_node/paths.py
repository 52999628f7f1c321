"""Where the package's shared data (config/, launch/, models/) lives, whether installed by colcon, pip, or run
from a source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "depth_node"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """The package's share directory: the ament index first, then this Python prefix, then the checkout."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not installed through ament, or ament_index_python absent
        pass
    for candidate in (Path(sys.prefix) / "share" / PACKAGE, _SOURCE_ROOT):
        if (candidate / "config").is_dir():
            return candidate
    return _SOURCE_ROOT


def config_file(name: str) -> Path:
    return share_dir() / "config" / name


def models_dir() -> Path:
    return share_dir() / "models"
