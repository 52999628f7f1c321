"""Which intrinsics a frame is computed with: the matching camera_info, else the `intrinsics` parameter."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
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


DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")


@dataclass(frozen=True)
class CameraModel:
    """What a camera_info says about one w×h image: `intrinsics` of the image the model sees (after
    rectification when `undistort` is set: then `K`, `D`, `R`, `new_K` of this image's pixel grid are what
    OpenCV's undistortion maps need), `note` "size" when the info was for another resolution (rescaled),
    `ignored_distortion` when D is non-zero but not undone (rectify false or an unknown model: the reason)."""

    intrinsics: Intrinsics
    note: str = ""
    undistort: bool = False
    distortion_model: str = ""
    K: tuple[float, ...] = ()
    D: tuple[float, ...] = ()
    R: tuple[float, ...] = ()
    new_K: tuple[float, ...] = ()
    ignored_distortion: str = ""


def _floats(info: Any, name: str) -> np.ndarray:
    value = getattr(info, name, None)
    return np.zeros(0) if value is None else np.asarray(value, dtype=np.float64).reshape(-1)


def _binning_roi(info: Any) -> tuple[int, int, float, float, int, int]:
    """(binning x, binning y, ROI x offset, y offset, region width, height) in full-sensor pixels, as
    sensor_msgs/CameraInfo defines them: K/P are for the full sensor; the image is the ROI, then binned."""
    bx, by = max(1, int(getattr(info, "binning_x", 0) or 0)), max(1, int(getattr(info, "binning_y", 0) or 0))
    roi = getattr(info, "roi", None)
    x0 = y0 = rw = rh = 0
    if roi is not None:
        x0, y0 = int(roi.x_offset), int(roi.y_offset)
        rw, rh = int(roi.width), int(roi.height)
    if rw == 0 or rh == 0:  # all zeros = full resolution (the message's convention)
        x0 = y0 = 0
        rw, rh = int(info.width), int(info.height)
    return bx, by, float(x0), float(y0), rw, rh


def _on_image_grid(M: np.ndarray, bx: int, by: int, x0: float, y0: float) -> np.ndarray:
    """A full-sensor 3×3 camera matrix for the ROI'd, binned image: the ROI shifts the principal point,
    binning divides focal lengths and principal point."""
    out = np.array(M, dtype=np.float64).reshape(3, 3).copy()
    out[0, 2] -= x0
    out[1, 2] -= y0
    out[0, :] /= bx
    out[1, :] /= by
    return out


def camera_model(info: Any, w: int, h: int, rectify: str = "auto") -> tuple[CameraModel | None, str]:
    """The camera of a (duck-typed) sensor_msgs/CameraInfo for a w×h image: (model, "") when usable,
    (None, why) for a bad K. Rectified input (D zero or empty, P set) uses P's fx fy cx cy; raw input with
    a known non-zero D is undistorted (rectify auto|true) onto P's grid (K's when P is unset).
    `rectify` "rectified": the image is known to be rectified already (an `image_rect` topic, whose camera_info
    still carries the raw D): P's (K's when P is unset) whatever D says, as image_proc's consumers do."""
    K = np.asarray(info.k, dtype=np.float64).reshape(-1)
    P, D = _floats(info, "p"), _floats(info, "d")
    dist_model = str(getattr(info, "distortion_model", "") or "")
    bx, by, x0, y0, rw, rh = _binning_roi(info)
    iw, ih = (rw // bx) or w, (rh // by) or h  # the image this info describes
    problem = intrinsics_problem(K, rw or w, rh or h)
    if problem:
        return None, problem
    has_p = P.size == 12 and np.isfinite(P).all() and P[0] > 0 and P[5] > 0
    distorted = D.size > 0 and bool(np.any(D != 0)) and np.isfinite(D).all()
    P3 = P.reshape(3, 4)[:, :3] if has_p else None
    K_img = _on_image_grid(K.reshape(3, 3), bx, by, x0, y0)
    ignored = ""
    if not distorted or rectify == "rectified":
        M = _on_image_grid(P3, bx, by, x0, y0) if has_p else K_img
        model = CameraModel(Intrinsics.from_K(M, iw, ih))
    elif rectify == "false" or dist_model not in DISTORTION_MODELS:
        ignored = ("rectify is false" if rectify == "false" else
                   f"distortion_model {dist_model!r} is not one of {', '.join(DISTORTION_MODELS)}")
        model = CameraModel(Intrinsics.from_K(K_img, iw, ih), ignored_distortion=ignored)
    else:
        new_K = _on_image_grid(P3, bx, by, x0, y0) if has_p else K_img
        R = _floats(info, "r")
        R = R if R.size == 9 and np.isfinite(R).all() and abs(np.linalg.det(R.reshape(3, 3)) - 1) < 1e-3 \
            else np.eye(3).reshape(-1)
        model = CameraModel(Intrinsics.from_K(new_K, iw, ih), undistort=True, distortion_model=dist_model,
                            K=tuple(K_img.reshape(-1)), D=tuple(D), R=tuple(R), new_K=tuple(new_K.reshape(-1)))
    if (iw, ih) != (w, h):
        if model.undistort:  # maps are for the info's grid; a resized image would need them rescaled too
            return None, (f"camera_info describes a {iw}x{ih} image (after ROI/binning) but the image is {w}x{h}; "
                          "undistortion needs the matching camera_info (or set rectify false)")
        return dataclasses.replace(model, intrinsics=model.intrinsics.scaled(w, h), note="size"), ""
    return model, ""


def camera_info_intrinsics(info: Any, w: int, h: int) -> tuple[Intrinsics | None, str]:
    """Intrinsics of a camera_info for a w×h image without undistortion: (intrinsics, "" or "size"), or
    (None, why) for a bad K."""
    model, problem = camera_model(info, w, h, rectify="false")
    if model is None:
        return None, problem
    return model.intrinsics, model.note


def configured_intrinsics(cfg: Any, w: int, h: int) -> Intrinsics:
    """The `intrinsics` parameter (normalised or in pixels) for a w×h image: the fallback without camera_info."""
    fx, fy, cx, cy = cfg.intrinsics
    if cfg.intrinsics_normalized:
        fx, fy, cx, cy = fx * w, fy * h, cx * w, cy * h
    return Intrinsics(fx, fy, cx, cy, w, h)
