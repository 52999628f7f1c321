"""The node's per-frame computation without ROS: model → depth in metres → odometry.

The ROS node and `depth-node eval-bag --offline` both run frames through `FramePipeline`, so an offline score
is the score of the node's own code path (same preprocessing, backend, scale source and odometry integration),
minus transport and the node's latest-frame-wins dropping.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.odometry import OdometryNoise, VisualOdometry, transform_from_xyz_quat
from depth_node.geometry.scale import ScaleInput, make_scale_estimator, resolve_source


@dataclass
class DepthFrame:
    x: np.ndarray  # network input (1, 3, h, w), kept for the pose network's next pair
    depth: np.ndarray  # (H, W) metres, NaN invalid
    intrinsics: Intrinsics  # of depth's pixel grid
    scale: float  # metres per model unit applied to this frame
    seconds: float  # wall time of preprocessing + depth network + scale
    rgb_net: np.ndarray | None = None  # (h, w, 3) uint8: the frame at the network's size (the cloud's colours)


def odometry_noise(cfg: Mapping[str, Any]) -> OdometryNoise:
    """The `odom.*` noise parameters of a node config (everything in the group but max_gap)."""
    return OdometryNoise(**{k: float(v) for k, v in cfg.group("odom").items()
                            if k not in ("max_gap", "refine", "planar")})


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
    fx, fy, cx, cy = cfg["intrinsics"]
    if cfg["intrinsics_normalized"]:
        fx, fy, cx, cy = fx * w, fy * h, cx * w, cy * h
    return Intrinsics(fx, fy, cx, cy, w, h)


class FramePipeline:
    """One model with its scale source and odometry integrator; not thread-safe (the node serialises frames)."""

    def __init__(self, model_path: str | Path, cfg: Any) -> None:
        """`cfg`: a validated node config (`depth_node.ros.params.NodeConfig`: item access and `group`)."""
        from depth_node.inference.estimator import DepthEstimator
        from depth_node.inference.factory import create_backend

        t0 = time.monotonic()
        self.model_path = str(model_path)
        self.backend = create_backend(model_path, cfg["backend"], cfg["precision"], cfg["device"],
                                      cache_dir=cfg["cache_dir"] or None)
        try:
            self.estimator = DepthEstimator(self.backend)
            info = self.backend.info
            self.scale_source = resolve_source(cfg["scale_source"], dict(info.scale))
            T_bc = transform_from_xyz_quat(cfg["camera_to_base"])
            import depth_node.inference.metric_scale  # noqa: F401  (registers scale_source metric_model)

            self.scale = make_scale_estimator(  # ScaleError: the scale settings do not fit this model
                cfg["scale_source"], dict(info.scale),
                {"scale_factor": cfg["scale_factor"], "stereo_baseline": cfg["stereo_baseline"],
                 "ground_plane": cfg.group("ground_plane"), "metric_model": cfg.group("metric_model"),
                 "runtime": {k: cfg[k] for k in ("backend", "precision", "device", "cache_dir")}}, T_bc)
            self.vo = VisualOdometry(T_bc, odometry_noise(cfg), cfg["odom.max_gap"], bool(cfg["odom.planar"]))
            self.prev: DepthFrame | None = None
            self.refine = bool(cfg["odom.refine"])
            self.refine_stats = {"used": 0, "rejected": 0, "last_ms": 0.0}
            # warm-up: first-run allocations, lazy compilation and CUDA graph capture happen here, not on frame 1
            x = np.zeros((1, 3, self.estimator.height, self.estimator.width), np.float32)
            self.estimator.depth(x)
            if self.estimator.has_pose:
                self.estimator.motion(x, x)
        except BaseException:
            self.backend.close()
            raise
        self.load_seconds = time.monotonic() - t0

    @property
    def info(self):
        return self.backend.info

    @property
    def has_pose(self) -> bool:
        return self.estimator.has_pose

    def depth(self, rgb: np.ndarray, intrinsics: Intrinsics | None, stamp: float,
              out_size: tuple[int, int] | None = None) -> DepthFrame:
        """Metric depth of one RGB frame (H, W, 3 uint8); `out_size` (h, w) = None: the network's resolution."""
        from depth_node.inference.preprocess import resize_rgb

        t0 = time.monotonic()
        small = resize_rgb(rgb, self.estimator.height, self.estimator.width)
        x = self.estimator.prepare(small)
        res = self.estimator.depth(x, intrinsics, out_size)
        s = self.scale.update(ScaleInput(res.depth, res.intrinsics, stamp, res.outputs, rgb))
        depth = res.depth if s == 1.0 else res.depth * np.float32(s)
        return DepthFrame(x, depth, res.intrinsics, s, time.monotonic() - t0, small)

    def odometry(self, frame: DepthFrame, stamp: float) -> VisualOdometry:
        """Integrate the motion from the previous frame given here to this one; the first frame starts a track."""
        prev = self.prev
        if prev is None:
            self.vo.start(stamp)
        else:
            motion = self.estimator.motion(prev.x, frame.x)
            if self.refine:
                motion = self._refined(prev, frame, motion)
            self.vo.step(motion, stamp, scale=frame.scale, scale_rel_std=self.scale.rel_std)
        self.prev = frame
        return self.vo

    def _refined(self, prev: DepthFrame, frame: DepthFrame, motion: np.ndarray) -> np.ndarray:
        """The pose network's motion refined by direct alignment on the previous frame's depth (same units)."""
        from depth_node.geometry.pose_refine import gray, refine_motion
        from depth_node.inference.preprocess import resize_depth

        if prev.intrinsics is None or not prev.scale > 0:
            return motion
        t0 = time.monotonic()
        h, w = prev.x.shape[2:]
        depth = resize_depth(prev.depth / np.float32(prev.scale), h, w)  # model units, network grid
        depth1 = resize_depth(frame.depth / np.float32(prev.scale), h, w)  # the same units: the road plane
        res = refine_motion(gray(prev.x), gray(frame.x), depth, prev.intrinsics.scaled(w, h).K, motion,
                            depth1=depth1, camera_to_base=self.vo.camera_to_base)
        self.refine_stats["used" if res.used else "rejected"] += 1
        self.refine_stats["last_ms"] = round(1e3 * (time.monotonic() - t0), 2)
        return res.motion

    def break_pairing(self) -> None:
        """The next frame is not paired with the previous one (a frame went unused for odometry)."""
        self.prev = None

    def restart_odometry(self, keep_pose: bool) -> None:
        self.vo.reset(keep_pose=keep_pose)
        self.prev = None

    def close(self) -> None:
        self.scale.close()
        self.backend.close()
