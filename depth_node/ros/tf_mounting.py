"""Where the camera sits on the robot: from the robot's TF tree when tf2_ros is there, else the parameters.

A robot already publishes its camera mounting (URDF → robot_state_publisher, or a static transform); a
`camera_to_base` parameter that disagrees with it silently skews odometry and the ground-plane scale. So the
node asks TF for the pose of the image's frame (header.frame_id) in `base_frame` and uses it, falling back to
`camera_to_base` while TF has no answer (or tf2_ros is not installed). The mounting is static: once found for a
camera frame it is kept; a failed lookup is retried at most every RETRY_S seconds, and each switch of source is
logged once. `buffer` is anything with tf2_ros.Buffer's `lookup_transform(target, source, time)` (tests pass a
stand-in with a fixed transform).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from depth_node.geometry.odometry import transform_from_xyz_quat

RETRY_S = 1.0


def transform_matrix(msg: Any) -> np.ndarray:
    """geometry_msgs/TransformStamped (or Transform) → 4×4 pose of the child (source) frame in the parent."""
    tr = getattr(msg, "transform", msg)
    t, q = tr.translation, tr.rotation
    return transform_from_xyz_quat([t.x, t.y, t.z, q.x, q.y, q.z, q.w])


class TfMounting:
    """Chooses the camera mounting per frame: TF when it answers, else the `camera_to_base` parameter."""

    def __init__(self, buffer: Any | None, log: Callable[[str, str], None]) -> None:
        self.buffer = buffer
        self.log = log  # (level, text)
        self.found: dict[tuple[str, str], np.ndarray] = {}
        self.last_try: dict[tuple[str, str], float] = {}
        self.source = "parameters"  # parameters | tf (for /diagnostics)
        self.reported: set[tuple[str, str, str]] = set()

    def lookup(self, base_frame: str, camera_frame: str) -> np.ndarray | None:
        """The 4×4 pose of `camera_frame` in `base_frame` from TF, or None (use the parameters)."""
        key = (base_frame, camera_frame)
        if key in self.found:
            return self.found[key]
        if self.buffer is None or not camera_frame:
            return None
        now = time.monotonic()
        if now - self.last_try.get(key, -1e9) < RETRY_S:
            return None
        self.last_try[key] = now
        try:
            from rclpy.time import Time

            stamp: Any = Time()  # latest available: the mounting is static
        except ImportError:  # pragma: no cover - the node always has rclpy
            stamp = None
        try:
            T = transform_matrix(self.buffer.lookup_transform(base_frame, camera_frame, stamp))
        except Exception as exc:  # tf2 LookupException, ConnectivityException, ExtrapolationException...
            self._once("parameters", key, "warning", f"no TF from {base_frame} to {camera_frame} yet "
                       f"({type(exc).__name__}: {exc}): using the camera_to_base parameter until TF has it")
            return None
        if not np.isfinite(T).all():
            self._once("bad", key, "error", f"TF {base_frame} → {camera_frame} is not finite: using camera_to_base")
            return None
        self.found[key] = T
        self._once("tf", key, "info", f"camera mounting from TF: {camera_frame} in {base_frame} at "
                   f"{np.round(T[:3, 3], 3).tolist()} m (the camera_to_base parameter is not used)")
        return T

    def choose(self, base_frame: str, camera_frame: str, configured: np.ndarray) -> np.ndarray:
        """The mounting this frame uses: TF's when it has one, else `configured` (camera_to_base)."""
        T = self.lookup(base_frame, camera_frame)
        self.source = "tf" if T is not None else "parameters"
        return configured if T is None else T

    def _once(self, what: str, key: tuple[str, str], level: str, text: str) -> None:
        if (what, *key) not in self.reported:
            self.reported.add((what, *key))
            self.log(level, text)
