"""Which intrinsics a frame is computed with: the matching camera_info, else the `intrinsics` parameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_node.geometry.camera import Intrinsics


def camera_info_intrinsics(info: Any, w: int, h: int) -> tuple[Intrinsics | None, str]:
    """Intrinsics of a (duck-typed) sensor_msgs/CameraInfo for a w×h image: (intrinsics, "") when usable,
    (rescaled intrinsics, "size") when the info is for another resolution, (None, "invalid") for a bad K."""
    K = np.asarray(info.k, dtype=np.float64).reshape(-1)
    iw, ih = int(info.width) or w, int(info.height) or h
    intr = Intrinsics.from_K(K, iw, ih) if K.size == 9 else None
    if intr is None or not intr.is_valid() or not np.isfinite(K).all():
        return None, "invalid"
    if (iw, ih) != (w, h):
        return intr.scaled(w, h), "size"
    return intr, ""


def configured_intrinsics(cfg: Any, w: int, h: int) -> Intrinsics:
    """The `intrinsics` parameter (normalised or in pixels) for a w×h image: the fallback without camera_info."""
    fx, fy, cx, cy = cfg.intrinsics
    if cfg.intrinsics_normalized:
        fx, fy, cx, cy = fx * w, fy * h, cx * w, cy * h
    return Intrinsics(fx, fy, cx, cy, w, h)
