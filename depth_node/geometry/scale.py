"""Turning the network's depth units into metres: one factor, used for depth, cloud and odometry translation.

Sources (`scale_source`):
- `fixed`: a factor the user knows (or 1 for models that already predict metres).
- `stereo`: models trained on stereo pairs learned a nominal 0.1 baseline; `DepthEstimator` already applied
  the model file's baseline/0.1, so the factor here is 1, or new_baseline / model_baseline for another rig.
- `ground_plane`: mono models are up to an unknown, per-run scale. With the camera's known height above a
  flat road, fit the road plane in the lower part of the image robustly (RANSAC with the normal constrained
  near the expected "up", then least-squares refits on the inliers), read the camera's height in model
  units, and smooth height_m / height_model over time in log space with outlier gating.
- `metric_model`: a second network predicting metric depth, at a low rate beside the fast model
  (`depth_node.inference.metric_scale`). The frame core (`depth_node.runtime.scale_sources`) builds each
  source explicitly; the names are `SCALE_SOURCES` here.

Everything here is NumPy and knows nothing of ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.odometry import default_camera_to_base


class ScaleError(DepthNodeError):
    """A scale source that cannot work with this model or these settings."""


@dataclass
class ScaleInput:
    """What a scale source may look at for one frame. `outputs`: the backend's raw outputs, for sources
    (metric_model) that need more than the depth map."""

    depth: np.ndarray  # (H, W) in the model's units after DepthEstimator's factor; NaN invalid
    intrinsics: Intrinsics | None  # of depth's pixel grid
    stamp: float = 0.0
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    image: np.ndarray | None = None  # the RGB frame (H, W, 3 uint8): metric_model runs its own network on it


class ScaleEstimator:
    """Base: a constant factor. Subclasses update it from frames."""

    source = "fixed"

    def __init__(self, factor: float = 1.0):
        self.factor = float(factor)

    def update(self, frame: ScaleInput) -> float:
        return self.factor

    @property
    def scale(self) -> float:
        return self.factor

    @property
    def rel_std(self) -> float:
        """Relative 1-σ uncertainty of `scale` (feeds the odometry covariance)."""
        return 0.0

    @property
    def ready(self) -> bool:
        return True

    def state(self) -> dict[str, Any]:
        """Key/values for /diagnostics."""
        return {"source": self.source, "scale": round(self.scale, 6), "state": "fixed"}

    def configure(self, **params: Any) -> None:
        """Apply runtime-changeable settings; unknown keys are ignored by design (one call for all sources)."""
        if "factor" in params and self.source == "fixed":
            self.factor = float(params["factor"])

    def reset(self) -> None:
        """Forget per-run state (odometry restart, bag loop)."""

    def close(self) -> None:
        """Release what the source holds (metric_model: its network and worker thread)."""


class StereoScale(ScaleEstimator):
    source = "stereo"

    def __init__(self, model_scale: dict[str, Any], baseline: float = 0.0):
        kind = str(model_scale.get("kind", "relative"))
        if kind != "stereo":
            hint = ("fixed, which applies the model's own metric factor (auto picks it)" if kind == "metric" else
                    "ground_plane (with ground_plane.camera_height), metric_model or fixed")
            raise ScaleError(
                f"scale_source 'stereo' needs a model trained with stereo pairs; this model's scale is {kind!r}: "
                f"use {hint}"
            )
        self.model_baseline = float(model_scale.get("baseline_m", 0.0) or 0.0)
        self.baseline = float(baseline)
        if self.baseline > 0 and self.model_baseline <= 0:
            raise ScaleError("stereo_baseline override given but the model file does not record its baseline_m")
        super().__init__(self.baseline / self.model_baseline if self.baseline > 0 else 1.0)

    def state(self) -> dict[str, Any]:
        s = super().state()
        s.update(state="fixed", model_baseline_m=self.model_baseline,
                 rig_baseline_m=self.baseline or self.model_baseline)
        return s


@dataclass
class GroundPlaneConfig:
    camera_height: float = 1.65  # metres from the optical centre down to the road (KITTI: 1.65)
    roi_top: float = 0.7  # fraction of the image height where the road region starts (KITTI: ~13 m ahead)
    roi_side: float = 0.1  # fraction cut from each side (kerbs, parked cars)
    max_points: int = 3000
    iterations: int = 96
    inlier_threshold: float = 0.04  # residual / plane distance (scale-free), i.e. 4 % of camera height
    max_tilt_deg: float = 20.0  # allowed angle between fitted normal and expected up
    min_inlier_ratio: float = 0.3
    min_inliers: int = 60
    smoothing: float = 0.15  # EMA weight of a new measurement, in log space
    gate: float = 0.25  # |log(new/current)| above this is an outlier measurement
    reacquire_after: int = 10  # consecutive outliers before re-initialising
    initial_scale: float = 1.0  # used until the first fit


PLANE_CHUNK = 512  # points per product in _plane_distances: 512 × 3 × 96 hypotheses stays under OpenBLAS's
# threading threshold (65536 × 4 multiply-adds)


def _plane_distances(pts: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """|pts · nᵀ + d| (N, K) for N points and K planes, in chunks of PLANE_CHUNK points. Why: one (3000 × 3) ·
    (3 × 96) product is large enough for OpenBLAS to split over its threads, and on a small CPU whose other core
    is busy (the networks' threads, other processes) it then waits for that core: 8-12 ms instead of 0.1 (the
    same products in chunks run on the calling thread: 0.16 ms, identical results)."""
    nT = np.ascontiguousarray(n.T)
    out = np.empty((pts.shape[0], n.shape[0]))
    for i in range(0, pts.shape[0], PLANE_CHUNK):
        np.matmul(pts[i:i + PLANE_CHUNK], nT, out=out[i:i + PLANE_CHUNK])
    out += d[None, :]
    return np.abs(out, out=out)


class GroundPlaneScale(ScaleEstimator):
    source = "ground_plane"

    def __init__(
        self,
        config: GroundPlaneConfig | None = None,
        camera_to_base: np.ndarray | None = None,
        seed: int = 0,
    ):
        self.cfg = config or GroundPlaneConfig()
        super().__init__(self.cfg.initial_scale)
        T = default_camera_to_base() if camera_to_base is None else np.asarray(camera_to_base, dtype=np.float64)
        self.up = T[:3, :3].T @ np.array([0.0, 0.0, 1.0])  # body +z in the optical frame
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._log_s: float | None = None
        self._var = 0.0  # running variance of accepted log residuals
        self._misses = 0
        self.accepted = 0
        self.rejected = 0
        self.failed = 0
        self.last: dict[str, Any] = {}
        self._ray_key: tuple | None = None
        self._rays: tuple[np.ndarray, np.ndarray] | None = None

    def configure(self, **params: Any) -> None:
        """Runtime changes. The scale is camera height / fitted plane distance, so a new `camera_height` rescales
        the running estimate at once (by new / old) rather than being gated as an outlier for many frames; a new
        `initial_scale` applies while no plane has been fitted yet."""
        old_height = self.cfg.camera_height
        for k, v in params.items():
            if hasattr(self.cfg, k):
                setattr(self.cfg, k, type(getattr(self.cfg, k))(v))
        if self._log_s is None:
            self.factor = self.cfg.initial_scale
        elif self.cfg.camera_height != old_height and old_height > 0:
            self._log_s += math.log(self.cfg.camera_height / old_height)
            self.factor = math.exp(self._log_s)

    def reset(self) -> None:
        self._log_s = None
        self._var = 0.0
        self._misses = 0
        self.factor = self.cfg.initial_scale

    @property
    def ready(self) -> bool:
        return self._log_s is not None

    @property
    def rel_std(self) -> float:
        if self._log_s is None:
            return 0.5  # unknown scale: a wide prior keeps the odometry covariance honest
        return float(math.sqrt(self._var))

    def points(self, depth: np.ndarray, intr: Intrinsics) -> np.ndarray:
        """Road-region points (N, 3) in the optical frame, randomly subsampled to max_points."""
        h, w = depth.shape
        cfg = self.cfg
        r0 = min(h - 1, max(0, round(cfg.roi_top * h)))
        c0 = max(0, round(cfg.roi_side * w))
        c1 = max(c0 + 1, w - c0)
        key = (intr, r0, c0, c1)
        if key != self._ray_key:
            u = (np.arange(c0, c1) - intr.cx) / intr.fx
            v = (np.arange(r0, h) - intr.cy) / intr.fy
            self._rays = (np.broadcast_to(u[None, :], (h - r0, c1 - c0)).ravel(),
                          np.broadcast_to(v[:, None], (h - r0, c1 - c0)).ravel())
            self._ray_key = key
        assert self._rays is not None
        rx, ry = self._rays
        z = depth[r0:, c0:c1].ravel().astype(np.float64)
        ok = np.flatnonzero(np.isfinite(z) & (z > 0))
        if ok.size > cfg.max_points:
            ok = self._rng.choice(ok, cfg.max_points, replace=False)
        zz = z[ok]
        return np.stack([rx[ok] * zz, ry[ok] * zz, zz], axis=1)

    def plane_of(self, depth: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, float] | None:
        """The road plane (n, d) of one depth map, independent of the fits before it (the sampling restarts
        from the seed): what odometry's per-frame road fit needs, without building a fitter and its pixel rays
        each frame (~0.4 ms, a tenth of the fit, measured in the node's frame core)."""
        self._rng = np.random.default_rng(self._seed)
        fit = self.fit(self.points(depth, intr))
        return None if fit is None else (fit[0], fit[1])

    def fit(self, pts: np.ndarray) -> tuple[np.ndarray, float, int] | None:
        """Robust plane n·p + d = 0 with n toward `up`; returns (n, d = camera height in model units, inliers)."""
        cfg = self.cfg
        n_pts = pts.shape[0]
        if n_pts < max(3, cfg.min_inliers):
            return None
        # below the camera only: the road cannot be above the optical centre
        pts = pts[pts @ self.up < 0]
        n_pts = pts.shape[0]
        if n_pts < max(3, cfg.min_inliers):
            return None
        idx = self._rng.integers(0, n_pts, size=(cfg.iterations, 3))
        p0, p1, p2 = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
        n = np.cross(p1 - p0, p2 - p0)
        norm = np.linalg.norm(n, axis=1)
        good = norm > 1e-12
        n = n[good] / norm[good, None]
        p0 = p0[good]
        n *= np.sign(n @ self.up)[:, None]
        d = -np.einsum("ij,ij->i", n, p0)
        cos_tilt = math.cos(math.radians(cfg.max_tilt_deg))
        keep = (n @ self.up >= cos_tilt) & (d > 0)
        if not np.any(keep):
            return None
        n, d = n[keep], d[keep]
        res = _plane_distances(pts, n, d)  # (N, K)
        counts = np.count_nonzero(res < cfg.inlier_threshold * d[None, :], axis=0)
        best = int(np.argmax(counts))
        nb, db = n[best], float(d[best])
        inl = res[:, best] < cfg.inlier_threshold * db
        rays, inv_z = pts / pts[:, 2:3], 1.0 / pts[:, 2]  # the refits' inputs, once for all points
        # least-squares refits on the inlier set, tightening the band: kerbs, sidewalks and camber sit a few
        # per cent of the camera height off the road plane and would otherwise bias the height
        for shrink in (1.0, 0.75, 0.5):
            fit = self._refit(rays[inl], inv_z[inl])
            if fit is None or fit[0] @ self.up < cos_tilt:
                return None
            nb, db = fit
            inl = np.abs(pts @ nb + db) < shrink * cfg.inlier_threshold * db
        fit = self._refit(rays[inl], inv_z[inl])
        if fit is not None and fit[0] @ self.up >= cos_tilt:
            nb, db = fit
        count = int((np.abs(pts @ nb + db) < cfg.inlier_threshold * db).sum())
        if count < cfg.min_inliers or count < cfg.min_inlier_ratio * n_pts:
            return None
        return nb, db, count

    @staticmethod
    def _refit(rays: np.ndarray, inv_z: np.ndarray) -> tuple[np.ndarray, float] | None:
        """Plane through points (their rays p/z (N, 3) and 1/z) by least squares in inverse depth: 1/z = a·r with
        r the exact pixel ray.

        Depth errors are along the ray and roughly proportional to depth, so a fit of perpendicular distances
        (SVD) sees noisy "in-plane" coordinates and tilts the plane (errors-in-variables: +1 % height bias at
        2 % depth noise). Regressing 1/z on the noise-free rays has the noise in the target only: unbiased.
        The plane is n·p + d = 0 with n = −a/|a|, d = 1/|a|. Solved by the 3×3 normal equations: the rays of a
        road region are well conditioned, and lstsq's SVD cost 10× more (0.25 ms per refit, four per fit, and the
        odometry fits every frame).
        """
        if rays.shape[0] < 3:
            return None
        try:
            a = np.linalg.solve(rays.T @ rays, rays.T @ inv_z)
        except np.linalg.LinAlgError:  # all rays in a plane: no unique fit
            return None
        na = float(np.linalg.norm(a))
        if not np.isfinite(na) or na <= 0:
            return None
        return -a / na, 1.0 / na

    def update(self, frame: ScaleInput) -> float:
        if frame.intrinsics is None or not frame.intrinsics.is_valid():
            self.failed += 1
            self.last = {"fit": "no intrinsics"}
            return self.scale
        pts = self.points(frame.depth, frame.intrinsics)
        fit = self.fit(pts)
        if fit is None:
            self.failed += 1
            self._misses += 1
            self.last = {"fit": "no plane", "points": int(pts.shape[0])}
            return self.scale
        n, d, count = fit
        raw = self.cfg.camera_height / d
        lr = math.log(raw)
        tilt = math.degrees(math.acos(min(1.0, float(n @ self.up))))
        self.last = {"fit": "ok", "raw_scale": round(raw, 6), "inliers": count, "points": int(pts.shape[0]),
                     "tilt_deg": round(tilt, 2)}
        if self._log_s is None:
            self._log_s, self._var, self._misses = lr, 0.05**2, 0
        else:
            r = lr - self._log_s
            if abs(r) > self.cfg.gate:
                self.rejected += 1
                self._misses += 1
                self.last["fit"] = "gated"
                if self._misses >= self.cfg.reacquire_after:
                    self._log_s, self._var, self._misses = lr, 0.05**2, 0
                    self.last["fit"] = "reacquired"
                self.factor = math.exp(self._log_s)
                return self.factor
            a = self.cfg.smoothing
            self._log_s += a * r
            self._var = (1 - a) * (self._var + a * r * r)
            self._misses = 0
        self.accepted += 1
        self.factor = math.exp(self._log_s)
        return self.factor

    def state(self) -> dict[str, Any]:
        if self._log_s is None:
            st = "waiting for a road plane"
        elif self._misses:
            st = f"holding ({self._misses} frames without an accepted fit)"
        else:
            st = "tracking"
        out = {"source": self.source, "scale": round(self.scale, 6), "state": st,
               "rel_std": round(self.rel_std, 4), "camera_height_m": self.cfg.camera_height,
               "accepted": self.accepted, "rejected": self.rejected, "failed": self.failed}
        out.update({f"last_{k}": v for k, v in self.last.items()})
        return out


AUTO = "auto"
SCALE_SOURCES: tuple[str, ...] = ("fixed", "stereo", "ground_plane", "metric_model")


def resolve_source(source: str, model_scale: dict[str, Any]) -> str:
    """'auto' → stereo for stereo-trained models, fixed (1) for metric ones, ground_plane for mono ones."""
    if source != AUTO:
        if source not in SCALE_SOURCES:
            raise ScaleError(f"unknown scale_source {source!r}; choose one of {AUTO}, {', '.join(SCALE_SOURCES)}")
        return source
    kind = str(model_scale.get("kind", "relative"))
    return {"stereo": "stereo", "metric": "fixed"}.get(kind, "ground_plane")


def ground_plane_config(params: dict[str, Any]) -> GroundPlaneConfig:
    """A GroundPlaneConfig with the given fields (the node's `ground_plane.*` group) over the defaults."""
    cfg = GroundPlaneConfig()
    for k, v in params.items():
        if hasattr(cfg, k):
            setattr(cfg, k, type(getattr(cfg, k))(v))
    return cfg
