"""Which intrinsics a frame is computed with: the matching camera_info, else the `intrinsics` parameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_node.geometry.camera import Intrinsics

# a sane pinhole: field of view between ~1° and ~170° (focal length 0.04 … 60 image sizes), principal point
# within half an image of the image; anything else is a broken calibration, not a camera
FOCAL_RANGE = (0.04, 60.0)
CENTRE_MARGIN = 0.5


def intrinsics_problem(K: np.ndarray, w: int, h: int) -> str:
    """"" for a usable K of a w×h image, else what is wrong with it (for one clear error)."""
    if K.size != 9 or not np.isfinite(K).all():
        return f"K must be 9 finite numbers, got {np.array2string(K, precision=4)}"
    fx, fy, cx, cy = float(K[0]), float(K[4]), float(K[2]), float(K[5])
    lo, hi = FOCAL_RANGE
    problems = []
    if not (lo * w <= fx <= hi * w and lo * h <= fy <= hi * h):
        problems.append(f"fx={fx:.6g}, fy={fy:.6g} px are not focal lengths of a {w}x{h} camera (expected "
                        f"{lo:g} to {hi:g} times the image size, a field of view between 1 and 170 degrees)")
    m = CENTRE_MARGIN
    if not (-m * w <= cx <= (1 + m) * w and -m * h <= cy <= (1 + m) * h):
        problems.append(f"principal point cx={cx:.6g}, cy={cy:.6g} px is not near the {w}x{h} image")
    return "; ".join(problems)


def camera_info_intrinsics(info: Any, w: int, h: int) -> tuple[Intrinsics | None, str]:
    """Intrinsics of a (duck-typed) sensor_msgs/CameraInfo for a w×h image: (intrinsics, "") when usable,
    (rescaled intrinsics, "size") when the info is for another resolution, (None, why) for a bad K."""
    K = np.asarray(info.k, dtype=np.float64).reshape(-1)
    iw, ih = int(info.width) or w, int(info.height) or h
    problem = intrinsics_problem(K, iw, ih)
    if problem:
        return None, problem
    intr = Intrinsics.from_K(K, iw, ih)
    if (iw, ih) != (w, h):
        return intr.scaled(w, h), "size"
    return intr, ""


def configured_intrinsics(cfg: Any, w: int, h: int) -> Intrinsics:
    """The `intrinsics` parameter (normalised or in pixels) for a w×h image: the fallback without camera_info."""
    fx, fy, cx, cy = cfg.intrinsics
    if cfg.intrinsics_normalized:
        fx, fy, cx, cy = fx * w, fy * h, cx * w, cy * h
    return Intrinsics(fx, fy, cx, cy, w, h)
