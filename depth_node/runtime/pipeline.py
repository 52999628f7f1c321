"""The model part of a frame: network → depth in metres (one scale) → odometry integration.

`FrameCore` (runtime/core.py) owns one `FramePipeline` and decides, per frame, what it runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.geometry import pose_refine as PR
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.odometry import OdometryNoise, VisualOdometry, rotation_vector, transform_from_xyz_quat
from depth_node.geometry.pose_refine import GrayPyramid, gray, se3_exp
from depth_node.geometry.scale import ScaleInput, ground_plane_config, resolve_source
from depth_node.runtime.heap import large_copies_returned
from depth_node.runtime.scale_sources import build_scale_source, group_values

log = logging.getLogger(__name__)

REJECTED_NOISE_FACTOR = 3.0  # odometry noise of a step whose image-alignment refinement was rejected
MAX_PRIOR_DT_RATIO = 3.0  # a time step this much longer than the last one (dropped frames) asks the pose network
# A scale this much larger or smaller than the last step's was not the network's units drifting (the sources are
# smoothed) but the estimate correcting itself (first result, re-acquired, reconfigured): the last step, carried
# in metres, was measured in the old, wrong units, so it says nothing about this one (see constant_velocity_prior)
MAX_PRIOR_SCALE_RATIO = 1.1


@dataclass
class DepthFrame:
    x: np.ndarray  # network input (1, 3, h, w), kept for the pose network's next pair
    depth: np.ndarray  # (H, W) metres, NaN invalid
    intrinsics: Intrinsics  # of depth's pixel grid
    scale: float  # metres per model unit applied to this frame
    seconds: float  # wall time of preprocessing + depth network + scale
    rgb_net: np.ndarray | None = None  # (h, w, 3) uint8: the frame at the network's size (the cloud's colours)
    pyramid: GrayPyramid | None = None  # the odometry refinement's gray pyramid of x, built on first use

    def gray_pyramid(self) -> GrayPyramid:
        """x's gray pyramid, built once: the frame is aligned as frame t+1 and then again as frame t."""
        if self.pyramid is None:
            self.pyramid = GrayPyramid(gray(self.x))
        return self.pyramid


def odometry_noise(cfg: Any) -> OdometryNoise:
    """The `odom.*` noise parameters of a node config."""
    o = cfg.odom
    return OdometryNoise(o.translation_noise, o.rotation_noise, o.translation_noise_floor, o.rotation_noise_floor)


def constant_velocity_prior(motion: np.ndarray, scale: float, dt: float, new_dt: float, new_scale: float
                            ) -> np.ndarray | None:
    """The last step `motion` (translation in units of `scale`, over `dt` seconds) continued for `new_dt`
    seconds, in units of `new_scale`: rotation angle and translation scaled by new_dt / dt. None where the
    step cannot say: no time step, a gap more than MAX_PRIOR_DT_RATIO times the last one, or a scale that moved
    by more than MAX_PRIOR_SCALE_RATIO (the source corrected itself: the last step's metres were wrong; when it
    first fitted, 1 → 5.5, the prior made the next step half its length)."""
    if not (dt > 0 and new_dt > 0 and new_scale > 0 and scale > 0) or new_dt > MAX_PRIOR_DT_RATIO * dt:
        return None
    if max(scale / new_scale, new_scale / scale) > MAX_PRIOR_SCALE_RATIO:
        return None
    k = new_dt / dt
    out = np.eye(4)
    out[:3, :3] = se3_exp(np.concatenate([np.zeros(3), k * rotation_vector(motion[:3, :3])]))[:3, :3]
    out[:3, 3] = k * motion[:3, 3] * (scale / new_scale)
    return out


def resolve_model_path(value: str, backend: str = "auto") -> Path:
    """'' → the package's default model: models/default.pt, or its shipped ONNX export (default_onnx/depth.onnx,
    same weights stored fp16) where torch is not installed and the backend is not torch, so the default launch
    runs on a robot without torch. Otherwise the given path (~ expanded)."""
    from depth_node.inference.factory import importable
    from depth_node.paths import DEFAULT_MODEL, default_onnx_model, models_dir

    if value:
        p = Path(value).expanduser()
        if not p.is_file():
            raise DepthNodeError(f"model file not found: {p} (parameter 'model')")
        return p
    p, onnx = models_dir() / DEFAULT_MODEL, default_onnx_model()
    if backend != "torch" and onnx.is_file() and not importable("torch"):
        return onnx
    if not p.is_file():
        raise DepthNodeError(
            f"no model given and the default model {p} is not installed; set the 'model' parameter to a model "
            "file (.pt) or an exported depth.onnx (`depth-node import` / `depth-node train` make one)"
        )
    return p


class FramePipeline:
    """One model with its scale source and odometry integrator; not thread-safe (the node serialises frames)."""

    def __init__(self, model_path: str | Path, cfg: Any) -> None:
        """`cfg`: a validated NodeConfig (`depth_node.runtime.params`)."""
        from depth_node.inference.factory import create_backend

        t0 = time.monotonic()
        self.model_path = str(model_path)
        with large_copies_returned():  # the load's transient copies do not stay in the node's resident memory
            self.backend = create_backend(model_path, cfg.backend, cfg.precision, cfg.device,
                                          cache_dir=cfg.cache_dir or None)
            self._prepare(cfg)
        self.load_seconds = time.monotonic() - t0

    def _prepare(self, cfg: Any) -> None:
        """Everything after the backend: scale source, odometry, and a warm-up run of each network."""
        from depth_node.inference.estimator import DepthEstimator

        try:
            self.estimator = DepthEstimator(self.backend)
            info = self.backend.info
            self.scale_source = resolve_source(cfg.scale_source, dict(info.scale))
            for name, value, used_by in (("scale_factor", cfg.scale_factor != 1.0, "fixed"),
                                         ("stereo_baseline", cfg.stereo_baseline > 0, "stereo")):
                if value and self.scale_source != used_by:  # set, but the source that reads it is not running
                    log.warning("%s is set but the scale source is %s (it is read by %s only): it has no effect",
                                name, self.scale_source, used_by)
            T_bc = transform_from_xyz_quat(list(cfg.camera_to_base))
            # ScaleError: the scale settings do not fit this model
            self.scale = build_scale_source(cfg, dict(info.scale), T_bc)
            self.vo = VisualOdometry(T_bc, odometry_noise(cfg), cfg.odom.max_gap, cfg.odom.planar)
            self.road_config = ground_plane_config(group_values(cfg.ground_plane))  # the refinement's road fit
            self.prev: DepthFrame | None = None
            self.chain_steps = 0  # motion estimates since the chain (re)started
            self.refine = cfg.odom.refine
            self.motion_prior = cfg.odom.motion_prior
            self.last_step: tuple[np.ndarray, float, float] | None = None  # (motion, its scale, its dt)
            # refinements of the network's motion used/rejected, steps the constant-velocity prior answered alone
            self.refine_stats = {"used": 0, "rejected": 0, "from_prior": 0, "last_ms": 0.0}
            self.road: tuple[np.ndarray, float, float] | None = None  # the last frame's road (n, d in metres, scale)
            # warm-up: first-run allocations, lazy compilation and CUDA graph capture happen here, not on frame 1
            x = np.zeros((1, 3, self.estimator.height, self.estimator.width), np.float32)
            self.estimator.depth(x)
            if self.estimator.has_pose:
                self.estimator.motion(x, x)
        except BaseException:
            self.backend.close()
            raise

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
        """Integrate the motion from the previous frame given here to this one; the first frame starts a track.
        A step whose refinement was rejected (the pose network's answer, unconfirmed by the images) is
        integrated with REJECTED_NOISE_FACTOR times the noise."""
        prev = self.prev
        if prev is None:
            self.vo.start(stamp)
            self.chain_steps = 0
            self.last_step = None
        else:
            motion, trusted = self._motion(prev, frame, stamp)
            noise = self.vo.noise
            if not trusted:
                k = REJECTED_NOISE_FACTOR
                self.vo.noise = OdometryNoise(noise.translation_noise * k, noise.rotation_noise * k,
                                              noise.translation_noise_floor * k, noise.rotation_noise_floor * k)
            try:
                self.vo.step(motion, stamp, scale=frame.scale, scale_rel_std=self.scale.rel_std)
            finally:
                self.vo.noise = noise
            self.chain_steps += 1
        self.prev = frame
        return self.vo

    def _motion(self, prev: DepthFrame, frame: DepthFrame, stamp: float) -> tuple[np.ndarray, bool]:
        """The step's motion (depth units of `prev`) and whether the images confirmed it.

        With refinement and `motion_prior` "constant_velocity", the alignment starts from the last trusted step
        scaled to this frame's time step (`constant_velocity_prior`) and the pose network runs only where that
        has no answer: at a chain's start, after an untrusted step, or when the alignment from the prior is
        rejected (it then starts again from the network's motion). Why: the network is as costly as half the
        depth pass, and the alignment converges to the same motion from either start on smooth camera paths
        (the README's odometry section has the drives)."""
        dt = stamp - self.vo.last_stamp if self.vo.last_stamp is not None else 0.0
        prior = None
        alignable = prev.intrinsics is not None and prev.scale > 0  # else nothing would check an extrapolation
        if self.refine and alignable and self.motion_prior == "constant_velocity" and self.last_step is not None:
            prior = constant_velocity_prior(*self.last_step, dt, prev.scale)
        if prior is not None:
            motion, trusted, road = self._refined(prev, frame, prior, from_prior=True)
            if trusted:
                self.road = road
                self.refine_stats["from_prior"] += 1
                self.last_step = (motion, prev.scale, dt)
                return motion, True
        motion, trusted, road = self.estimator.motion(prev.x, frame.x), True, None
        if self.refine and alignable:
            motion, trusted, road = self._refined(prev, frame, motion)
            self.refine_stats["used" if trusted else "rejected"] += 1
        self.road = road
        self.last_step = (motion, prev.scale, dt) if trusted and dt > 0 else None
        return motion, trusted

    def _refined(self, prev: DepthFrame, frame: DepthFrame, motion: np.ndarray, from_prior: bool = False
                 ) -> tuple[np.ndarray, bool, tuple[np.ndarray, float, float] | None]:
        """`motion` refined by direct alignment on the previous frame's depth (same units), False when the
        refinement was rejected, and frame t+1's road plane (metres) to carry on; needs prev's intrinsics and a
        positive scale. `from_prior`: `motion` is the constant-velocity prior (PRIOR_LEVELS, the 1/4 level
        skipped), else the pose network's (LEVELS)."""
        from depth_node.inference.preprocess import resize_depth

        t0 = time.monotonic()
        h, w = prev.x.shape[2:]
        depth = resize_depth(prev.depth / np.float32(prev.scale), h, w)  # model units, network grid
        depth1 = resize_depth(frame.depth / np.float32(prev.scale), h, w)  # the same units: the road plane
        s0 = float(prev.scale)
        ref = None  # frame t's road carried from the last step, unless the scale corrected itself since (as above)
        if self.road is not None and max(self.road[2] / s0, s0 / self.road[2]) <= MAX_PRIOR_SCALE_RATIO:
            ref = (self.road[0], self.road[1] / s0)
        levels, iterations, relax = ((PR.PRIOR_LEVELS, PR.PRIOR_ITERATIONS, PR.PRIOR_STEP_RELAX) if from_prior
                                     else (PR.LEVELS, PR.ITERATIONS, 1.0))
        res = PR.refine_motion(prev.gray_pyramid(), frame.gray_pyramid(), depth, prev.intrinsics.scaled(w, h).K,
                               motion, levels, iterations, depth1=depth1, camera_to_base=self.vo.camera_to_base,
                               road_ref=ref, step_relax=relax, road_config=self.road_config,
                               level_weight=1.0 / (self.chain_steps + 2) if self.chain_steps < PR.LEVEL_STEPS else 0.0)
        self.refine_stats["last_ms"] = round(1e3 * (time.monotonic() - t0), 2)
        return res.motion, bool(res.used), None if res.road is None else (res.road[0], res.road[1] * s0, s0)

    def break_pairing(self) -> None:
        """The next frame is not paired with the previous one (a frame went unused for odometry)."""
        self.prev = None
        self.road = None

    def restart_odometry(self, keep_pose: bool) -> None:
        self.vo.reset(keep_pose=keep_pose)
        self.prev = None
        self.road = None

    def close(self) -> None:
        self.scale.close()
        self.backend.close()
