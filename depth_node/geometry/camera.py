"""Pinhole intrinsics in the OpenCV/ROS optical convention (x right, y down, z forward; REP 103 `_optical`).

Pixel centres sit at integer coordinates, as in sensor_msgs/CameraInfo. Resizing an image from (w0, h0) to
(w1, h1) scales fx, cx by w1/w0 and fy, cy by h1/h0 (the convention Monodepth2 uses for its normalised K,
and the one `depth_image_proc` expects after `image_proc/resize`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_K(cls, K, width: int, height: int) -> Intrinsics:
        K = np.asarray(K, dtype=np.float64).reshape(-1)
        if K.size == 16:
            K = np.asarray(K).reshape(4, 4)[:3, :3].reshape(-1)
        if K.size != 9:
            raise ValueError(f"K must have 9 (3x3) or 16 (4x4) entries, got {K.size}")
        return cls(float(K[0]), float(K[4]), float(K[2]), float(K[5]), int(width), int(height))

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def normalized(self) -> np.ndarray:
        """4×4 K normalised by image size, as Monodepth2's datasets hold it."""
        Kn = np.eye(4)
        Kn[0, 0], Kn[0, 2] = self.fx / self.width, self.cx / self.width
        Kn[1, 1], Kn[1, 2] = self.fy / self.height, self.cy / self.height
        return Kn

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera seen through an image resized to width × height."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, int(width), int(height))

    def is_valid(self) -> bool:
        vals = np.array([self.fx, self.fy, self.cx, self.cy])
        return bool(np.all(np.isfinite(vals)) and self.fx > 0 and self.fy > 0 and self.width > 0 and self.height > 0)

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel (x/z, y/z) of the ray through each pixel centre, shapes (H, W): cache these for clouds."""
        u = (np.arange(self.width, dtype=np.float32) - np.float32(self.cx)) / np.float32(self.fx)
        v = (np.arange(self.height, dtype=np.float32) - np.float32(self.cy)) / np.float32(self.fy)
        return np.broadcast_to(u[None, :], (self.height, self.width)), np.broadcast_to(
            v[:, None], (self.height, self.width)
        )


def backproject(depth: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """(H, W) z-depth → (H, W, 3) points in the optical frame; NaN depth gives NaN points."""
    rx, ry = intr.pixel_rays()
    z = depth.astype(np.float32, copy=False)
    return np.stack([rx * z, ry * z, z], axis=-1)


def project(points: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) optical-frame points → pixel coordinates (..., 2) and z (...)."""
    z = points[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intr.fx * points[..., 0] / z + intr.cx
        v = intr.fy * points[..., 1] / z + intr.cy
    return np.stack([u, v], axis=-1), z
