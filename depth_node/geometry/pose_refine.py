"""Refining the pose network's frame-to-frame motion by direct image alignment on the predicted depth.

Why: a self-supervised pose network is the weak half of Monodepth2-style odometry (ours, trained from scratch
on a CPU, hardly turns in curves), while the depth network is good. With depth for frame t, the motion to
frame t+1 is the one that makes frame t+1, warped back through that depth, look like frame t: dense direct
alignment (as in DVO), Gauss–Newton on SE(3) with Huber weights, coarse to fine, started at the network's
answer. Rotation is pinned by the whole image; translation takes the depth's units (metres for a metric model).

What the alignment on a network's depth (not on exact depth) gets wrong, measured on the demo drive
(`depth-node demo`, seed 9001; the study is summarised in the README's odometry section):
- The camera pitched up by ~0.03° per step (5.5° over 190 m: the odometry climbed 7 m on a flat road). The
  network's depth has a row-dependent error (road rows ~2 % too near, upper rows 1–3 % too far, the same in
  every frame), which the alignment can only explain with a small pitch and vertical shift. The fix uses the
  road plane the node can see in both frames (the ground-plane scale source's robust fit): the same road plane
  seen from t and from t+1 fixes the step's pitch, roll and height change. The plane error is the same in every
  frame, so it cancels in the step, and the per-frame fit noise telescopes instead of adding up. Assumes the
  road ahead has the grade of the road under the vehicle (true on flat ground and constant grades; a change of
  grade is missed, like a planar prior would miss it); steps whose planes disagree with the visual motion by
  more than `MAX_PLANE_CORRECTION_DEG` or 10 % of the camera height keep the visual motion.
- The camera yawed: +0.025° per step on the demo's straight roads (an asymmetric street: near facades on one
  side) and a turn gain of 1.10 on a curvy drive, per step tracking the sideways-translation error. Where the
  network's depth is off by a few per cent (near facades), forward motion makes those pixels flow outward by
  more or less than the depth predicts, and plain least squares explains the difference with a turn (or a
  sideways shift). The fix weights every pixel by how much its residual depends on its depth: a relative depth
  error ε moves the pixel along its parallax flow p (the flow the translation causes) by ε·p, which changes the
  residual by ε·∇I·p, so the weight is σ²/(σ² + (ε·∇I·p)²) (σ: the robust residual scale). Far pixels and
  pixels whose texture runs along their flow keep full weight and pin the rotation; near pixels with edges
  across their flow, whose residual is mostly the depth's error, count less. ε = `DEPTH_REL_STD`.
  Measured on the demo and curvy drives, see the README's odometry table.
- A yaw bias remained (+0.013° per straight step on the demo). With frame t+1's depth the yaw and sideways
  translation also answer to the depth consistency of the two frames: frame t's point moved by the motion must
  land on frame t+1's depth there (relative residual 1 − Z'/D1). A surface whose depth is scaled by the same
  error in both frames (the network errs alike on the same facade in every frame) stays a plane parallel to the
  motion, so at the true motion this residual vanishes where the photometric one does not. It acts only on the
  yaw/sideways pair (on the forward translation it fought the photometric scale) and only at full resolution
  (coarse cells mix depths across edges; a third of the cost). Weight `GEOMETRIC_WEIGHT`.
- The road plane is carried from step to step (frame t's plane moved by the step, pulled toward frame t+1's own
  fit by `ROAD_GAIN`), which smooths the per-frame fit noise (~0.2°) out of pitch and roll. That plane is the
  odometry's ground (the corrections turn the camera, not the plane), so its tilt error times the path is the
  climb: the first LEVEL_STEPS steps of a chain set it from the body's own plane (`level_step`) rather than from
  one road fit (0.2° noisy, and this network's fits lean by −0.1 to −0.3°).

Conventions: `motion` is the later camera's pose in the earlier camera's optical frame (DepthEstimator.motion);
a point X in camera t is inv(motion)·X in camera t+1. Planes are n·X + d = 0 in a camera frame, n toward body up,
d the camera height above the road, in the depth's units.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.odometry import rotation_vector, skew
from depth_node.geometry.poses import OPTICAL_TO_BODY


@dataclass
class RefineResult:
    motion: np.ndarray  # 4×4, refined
    iterations: int
    residual_before: float  # robust residual std at the finest level, at the start and at the end
    residual_after: float
    used: bool  # False: the refinement was rejected (too few pixels, or it made things worse)
    road: tuple[np.ndarray, float] | None = None  # frame t+1's road plane the motion was made consistent with


def se3_exp(xi: np.ndarray) -> np.ndarray:
    """(ρ, φ) → 4×4 (translation first; Rodrigues with the SE(3) V matrix)."""
    rho, phi = xi[:3], xi[3:]
    th = float(np.linalg.norm(phi))
    W = skew(phi)
    if th < 1e-10:
        R, V = np.eye(3) + W, np.eye(3) + 0.5 * W
    else:
        a, b = np.sin(th) / th, (1 - np.cos(th)) / th**2
        c = (1 - a) / th**2
        R = np.eye(3) + a * W + b * W @ W
        V = np.eye(3) + b * W + c * W @ W
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, V @ rho
    return T


def gray(x: np.ndarray) -> np.ndarray:
    """Network input (1, 3, H, W) or (H, W, 3) RGB → (H, W) float32 luminance in [0, 1]."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 4:
        a = a[0].transpose(1, 2, 0)
    if a.max() > 1.5:
        a = a / 255.0
    return (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]).astype(np.float32)


def _sample(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples of (H, W, C) at pixel coordinates u, v (N,) → (C, N); outside the image = NaN.

    Plain NumPy: at a thousand pixels per iteration, torch's grid_sample cost more in call overhead than in work;
    the four neighbours are gathered by flat index from the (H·W, C) view (a third of 2-D fancy indexing's time)."""
    h, w, c = img.shape
    inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    uc, vc = np.clip(u, 0, w - 1), np.clip(v, 0, h - 1)
    x0 = np.minimum(uc.astype(np.intp), w - 2)
    y0 = np.minimum(vc.astype(np.intp), h - 2)
    ax, ay = (uc - x0)[:, None], (vc - y0)[:, None]
    flat = img.reshape(h * w, c)
    i = y0 * w + x0
    top = flat.take(i, axis=0)
    top += (flat.take(i + 1, axis=0) - top) * ax
    bottom = flat.take(i + w, axis=0)
    bottom += (flat.take(i + w + 1, axis=0) - bottom) * ax
    top += (bottom - top) * ay
    out = top.T
    out[:, ~inside] = np.nan
    return out


def area_downsample(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Mean over each output cell's input window (adaptive average pooling: windows [floor(i·H/h),
    ceil((i+1)·H/h)), overlapping where the size does not divide), from an integral image."""
    H, W = a.shape
    if H % h == 0 and W % w == 0:  # whole cells (the pyramid's usual case): a plain block mean
        return _block_mean(a, H // h, W // w)
    ys, ye = (np.arange(h) * H) // h, -((-(np.arange(h) + 1) * H) // h)
    xs, xe = (np.arange(w) * W) // w, -((-(np.arange(w) + 1) * W) // w)
    S = np.zeros((H + 1, W + 1))
    S[1:, 1:] = np.cumsum(np.cumsum(a, axis=0, dtype=np.float64), axis=1)
    total = S[ye][:, xe] - S[ys][:, xe] - S[ye][:, xs] + S[ys][:, xs]
    return (total / np.outer(ye - ys, xe - xs)).astype(np.float32)


def _block_mean(a: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Mean over fy × fx blocks, as float32: strided row and column sums in float64. The same numbers as
    `reshape(...).mean(axis=(1, 3), dtype=float64)` (a few float32 values sum exactly in float64) at a seventh
    of its time at 320×96 (~0.06 ms; the strided two-axis reduction was a tenth of the odometry step)."""
    b = a.astype(np.float64)
    rows = b[0::fy]
    for i in range(1, fy):
        rows = rows + b[i::fy]
    cells = rows[:, 0::fx]
    for j in range(1, fx):
        cells = cells + rows[:, j::fx]
    return (cells / (fy * fx)).astype(np.float32)


def _inverse_depth(depth: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inverse depth on an (h, w) grid: the mean inverse depth of cells whose pixels all have a depth, NaN in
    the others (a cell on an edge of the valid area would mix in zeros)."""
    inv = np.where(np.isfinite(depth) & (depth > 0), 1.0 / np.where(depth > 0, depth, 1.0), 0.0)
    if inv.shape == (h, w):
        return np.where(inv > 0, inv, np.nan).astype(np.float32)
    valid = area_downsample((inv > 0).astype(np.float32), h, w)
    return np.where(valid > 0.99, area_downsample(inv.astype(np.float32), h, w) / np.maximum(valid, 1e-9),
                    np.nan).astype(np.float32)


def _gradients_into(a: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> None:
    """Central differences of `a` along x and y (0 on the border rows and columns) written into gx and gy
    (views of a larger array allowed)."""
    np.subtract(a[:, 2:], a[:, :-2], out=gx[:, 1:-1])
    gx[:, 1:-1] *= 0.5
    gx[:, 0] = gx[:, -1] = 0.0
    np.subtract(a[2:, :], a[:-2, :], out=gy[1:-1, :])
    gy[1:-1, :] *= 0.5
    gy[0, :] = gy[-1, :] = 0.0


class GrayPyramid:
    """One frame's gray image at the refinement's pyramid levels, each with what the alignment reads of it:
    as frame t, the gray image and its texture mask's gradient magnitude (`level`); as frame t+1, the intensity
    and its gradients, with frame t+1's inverse depth and its gradients where the depth term runs (`samples`).
    Built once per frame (lazily, per level) and used by both steps the frame takes part in, as frame t+1 and
    then as frame t: a third of the refinement's per-step set-up otherwise."""

    def __init__(self, img: np.ndarray):
        self.img = np.asarray(img, dtype=np.float32)
        self._levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._stacks: dict[int, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.img.shape[0], self.img.shape[1]

    def level(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """(gray (h, w) float32, gradient magnitude (h, w)) at 1/s."""
        if s not in self._levels:
            H, W = self.shape
            g = self.img if s == 1 else area_downsample(self.img, H // s, W // s)
            mag = np.zeros_like(g)
            mag[1:-1, 1:-1] = np.hypot(g[1:-1, 2:] - g[1:-1, :-2], g[2:, 1:-1] - g[:-2, 1:-1])
            self._levels[s] = (g, mag)
        return self._levels[s]

    def samples(self, s: int, inv_depth: np.ndarray | None = None) -> np.ndarray:
        """[intensity, ∂x, ∂y] (h, w, 3) float64 at 1/s, or with `inv_depth` (h, w) [.., 1/D, ∂x, ∂y] (h, w, 6):
        what `_sample` reads at the warped pixels, channels last so that one gather reads them all. Filled in
        place (np.stack and a copy into the six channels cost 0.7 ms a step at 320×96); kept without a depth."""
        if inv_depth is None and s in self._stacks:
            return self._stacks[s]
        g, _ = self.level(s)
        out = np.empty((*g.shape, 3 if inv_depth is None else 6))
        out[..., 0] = g
        _gradients_into(out[..., 0], out[..., 1], out[..., 2])
        if inv_depth is None:
            self._stacks[s] = out
        else:
            out[..., 3] = inv_depth
            _gradients_into(out[..., 3], out[..., 4], out[..., 5])
        return out


def _pyramid(img: np.ndarray | GrayPyramid) -> GrayPyramid:
    return img if isinstance(img, GrayPyramid) else GrayPyramid(img)


def _level_depth(depth0: np.ndarray, K: np.ndarray, shape: tuple[int, int], s: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame t's depth at 1/s (the mean inverse depth of cells whose pixels all have a depth, NaN in the others)
    and K of that grid."""
    if s == 1:
        return depth0, K
    h, w = shape[0] // s, shape[1] // s
    inv = np.where(np.isfinite(depth0) & (depth0 > 0), 1.0 / np.where(depth0 > 0, depth0, 1.0), 0.0)
    valid = area_downsample((inv > 0).astype(np.float32), h, w)
    inv_d = area_downsample(inv.astype(np.float32), h, w)
    d = np.where(valid > 0.99, valid / np.maximum(inv_d, 1e-9), np.nan)  # mean inverse depth of full cells
    Ks = K.copy()
    Ks[0] /= shape[1] / w
    Ks[1] /= shape[0] / h
    return d.astype(np.float32), Ks


class _Level:
    """One pyramid level: frame t's textured pixels back-projected, frame t+1 with its gradients."""

    def __init__(self, img0, img1, depth0, K, s: int, max_depth: float, max_points: int,
                 depth1: np.ndarray | None = None):
        p0, p1 = _pyramid(img0), _pyramid(img1)
        g0, grad0 = p0.level(s)
        d0, self.K = _level_depth(depth0, K, p0.shape, s)
        h, w = g0.shape
        self.geometric = depth1 is not None  # frame t+1's inverse depth and its gradients, sampled with the image
        inv1 = _inverse_depth(np.asarray(depth1, dtype=np.float32), h, w) if self.geometric else None
        self.stack = p1.samples(s, inv1)  # (H, W, 3 or 6): intensity (and inverse depth) with gradients
        # textured pixels carry the information; flat ones only add noise and time
        ok = np.isfinite(d0) & (d0 > 0) & (d0 < max_depth) & (grad0 > 0.01)
        idx = np.flatnonzero(ok)
        if idx.size > max_points:  # an even spread of the textured pixels bounds the cost per iteration
            idx = idx[np.linspace(0, idx.size - 1, max_points).astype(int)]
        vv, uu = np.divmod(idx, w)
        z = d0.reshape(-1)[idx].astype(np.float64)
        Kl = self.K
        self.X = np.stack([(uu - Kl[0, 2]) / Kl[0, 0] * z, (vv - Kl[1, 2]) / Kl[1, 1] * z, z], 1)
        self.ref = g0.reshape(-1)[idx].astype(np.float64)

    def _warp(self, T: np.ndarray):
        """Frame t's points moved by T, their pixels in frame t+1, the samples there, the photometric residual
        and which pixels have one (in front of the camera, inside frame t+1)."""
        Xp = self.X @ T[:3, :3].T + T[:3, 3]
        Z = Xp[:, 2]
        front = Z > 0.05
        Zs = np.where(front, Z, 1.0)
        u = self.K[0, 0] * Xp[:, 0] / Zs + self.K[0, 2]
        v = self.K[1, 1] * Xp[:, 1] / Zs + self.K[1, 2]
        smp = _sample(self.stack, u, v)
        r = smp[0] - self.ref
        return Xp, u, v, smp, r, front & np.isfinite(r)

    def photometric(self, T: np.ndarray) -> np.ndarray:
        """The photometric residuals alone (the accept test before and after), without the Jacobians' inputs."""
        *_, r, good = self._warp(T)
        return r[good]

    def residuals(self, T: np.ndarray):
        """(r, X' , ∇I1 at the warped pixels) for the pixels that land inside frame t+1."""
        Xp, u, v, smp, r, good = self._warp(T)
        Xr = Xp[good] - T[:3, 3]  # rotation only: the translation's share of the flow is the parallax
        par_u = u[good] - (self.K[0, 0] * Xr[:, 0] / Xr[:, 2] + self.K[0, 2])
        par_v = v[good] - (self.K[1, 1] * Xr[:, 1] / Xr[:, 2] + self.K[1, 2])
        self.parallax = (par_u, par_v)
        if self.geometric:
            self.geo = self._geometric(Xp[good], smp[3:, good])
        return r[good], Xp[good], smp[1][good], smp[2][good]

    def _geometric(self, Xp: np.ndarray, smp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Relative depth residual 1 − Z'/D1(π(X')) (Z': the warped point's depth, D1: frame t+1's depth
        there), its ∂/∂X' and X', where D1 is defined. Relative, so the near road does not outweigh the rest."""
        Z = Xp[:, 2]
        jg = -_image_jacobian(self.K, Xp, smp[1], smp[2])  # −∇(1/D1)·∂π/∂X'
        jg[:, 2] -= 1.0 / Z**2
        rg, jg = (1.0 / Z - smp[0]) * Z, jg * Z[:, None]  # (1/Z' − 1/D1)·Z'
        ok = np.isfinite(rg) & np.all(np.isfinite(jg), axis=1)
        return rg[ok], jg[ok], Xp[ok]


def _twist_jacobian(X: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(N, 6) rows [g, X × g]: ∂r/∂(ρ, φ) of a residual with gradient g (N, 3) w.r.t. the point X (N, 3) for
    X ← exp(ξ)·X (written out: np.cross and np.concatenate cost more than the arithmetic at N ≈ 1000)."""
    J = np.empty((X.shape[0], 6))
    J[:, :3] = g
    x, y, z = X[:, 0], X[:, 1], X[:, 2]
    a, b, c = g[:, 0], g[:, 1], g[:, 2]
    J[:, 3] = y * c - z * b
    J[:, 4] = z * a - x * c
    J[:, 5] = x * b - y * a
    return J


def _image_jacobian(K: np.ndarray, X: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """gx·∂u/∂X + gy·∂v/∂X (N, 3): an image gradient (gx, gy) at the projections of camera points X (N, 3)
    carried through the pinhole's Jacobian, written out column by column (∂u/∂X has a zero, ∂v/∂X another;
    stacking the two Jacobians and multiplying cost 3× more at N ≈ 1000)."""
    fx, fy, Z = K[0, 0], K[1, 1], X[:, 2]
    Z2 = Z**2
    out = np.empty((X.shape[0], 3))
    np.multiply(gx, fx / Z, out=out[:, 0])
    np.multiply(gy, fy / Z, out=out[:, 1])
    out[:, 2] = gx * (-fx * X[:, 0] / Z2) + gy * (-fy * X[:, 1] / Z2)
    return out


def _median(a: np.ndarray) -> float:
    """np.median of a 1-D array without its generic machinery (called several times per iteration)."""
    n = a.size
    k = n // 2
    if n % 2:
        return float(np.partition(a, k)[k])
    p = np.partition(a, (k - 1, k))
    return 0.5 * float(p[k - 1] + p[k])


def _sigma(r: np.ndarray) -> float:
    return 1.4826 * _median(np.abs(r - _median(r))) + 1e-6 if r.size else float("nan")


def _huber(r: np.ndarray) -> tuple[float, np.ndarray]:
    """The residuals' robust scale σ and their Huber weights (threshold 1.345 σ)."""
    s = _sigma(r)
    k = 1.345 * s
    return s, np.where(np.abs(r) <= k, 1.0, k / np.maximum(np.abs(r), 1e-12))


# Gauss–Newton iterations per pyramid level (caps: a level stops once its update is negligible). The coarse
# levels only widen the basin of convergence: their own optimum is biased toward *longer* translations, because a
# coarse cell straddling an occluding edge gets the mean inverse depth of the cell (too far for the foreground)
# while the intensity edge moves with the foreground (exact depth: +3 % at 1/4 resolution, +0.8 % at 1/2, +0.2 %
# at full), so the full-resolution level must run until it has shed that bias. It once needed 20 iterations on
# 3000 pixels (3 left the odometry 1.5–2 % long); with the depth-error weighting below, 6 on an even spread of
# 1000 textured pixels converge as far on the demo and curvy drives (t_rel, ATE no worse; README odometry table)
# at about a third of the time. test_pose_refine checks the length on exact depth.
ITERATIONS = (12, 6, 6)
MAX_POINTS = 1000

# Levels and iterations when the start is the last step continued (the node's constant-velocity prior,
# `odom.motion_prior`), not the pose network: at 10 fps that start is within a pixel or two of the answer, so the
# 1/4 level's wider basin is not needed. Measured on the demo, turning and seed-9005 drives (README odometry
# table): (2, 1) × (4, 6) and × (6, 6) matched the three levels' t_rel, r_rel and ATE on all three; full
# resolution alone matched them on two but raised seed 9005's r_rel from 0.53 to 0.70-0.76 °/100 m; (2, 1) ×
# (4, 4) raised the demo's to 0.73 — before PRIOR_STEP_RELAX, which makes (3, 3) as good (below).
# Each level mostly runs to its cap (the stop test rarely fires).
# A rejected result is retried from the pose network with LEVELS and ITERATIONS.
LEVELS = (4, 2, 1)
STOP_ROTATION, STOP_TRANSLATION = 1e-6, 1e-5  # a level's update below both (radians, depth units): converged
PRIOR_LEVELS = (2, 1)
PRIOR_ITERATIONS = (3, 3)

# Each Gauss–Newton update from the prior is scaled by this (over-relaxation). Why: the iterations converge
# linearly, each update about half the one before (the Huber and depth-error weights are re-estimated at every
# step: an IRLS), so after (4, 6) unscaled iterations from the prior the motion still sat a median 0.0023° (p90
# 0.0067°) from where 46 iterations ended. Scaled by 1.5, (3, 3) iterations end about as near (0.0047°, 0.010°);
# 1.8 overshot on some steps (max 0.049°). Demo, turning and seed-9005 drives (README odometry table): ATE
# 0.244 / 0.196 / 0.362 % against 0.245 / 0.196 / 0.354 % at (4, 6) unscaled; (3, 3) unscaled raised the demo's
# r_rel from 0.63 to 0.84 °/100 m. Not for the network-started LEVELS: from a start 1 m off (test_pose_refine)
# the 1/4 level's 12 scaled updates overshot and the rotation ended 0.058° off (0.051 allowed).
PRIOR_STEP_RELAX = 1.5

# Relative error of the network's depth assumed when weighting pixels (see the module docstring): 0.2 was the
# best of 0.05–0.3 on the demo and curvy drives (0.05: the demo's yaw drift hardly moved; 0.3: t_rel rose).
DEPTH_REL_STD = 0.2

# Weight of the depth-consistency term (module docstring) against the photometric one, both normalised by their
# robust residual scales. It acts on the yaw/sideways pair only. Measured on the demo and curvy drives (README
# odometry table): 0.3 left half the demo's yaw drift, 0.6 removed it (+0.003° per straight step), 1 and more
# turned it negative and noisier (1.5: −0.013°, r_rel 2.2 °/100 m on the demo).
GEOMETRIC_WEIGHT = 0.6

# Gain of each frame's road-plane fit against the road plane carried from the previous frames (1: the latest fit
# alone, as before). 0.25 smooths the per-frame fit noise (~0.2°) out of the pitch and roll: r_rel −15 to −20 %
# on the demo and curvy drives, t_rel a little lower; 0.1 was no better.
ROAD_GAIN = 0.25

# Steps at the start of a chain whose road planes set the odometry's ground (see `level_step`). 10 (≈ 10 m at
# driving speed, about one period of the synthetic body sway) took the final height error of the demo, curvy and
# a third drive from 0.29/0.55/0.20 % of the path to 0.15/0.09/0.06 %; 5 did as well on two of them, 20 let the
# visual pitch drift in (0.44/0.24/0.11 %), 1 (the mount's level alone) 0.18/0.48/0.35 %.
LEVEL_STEPS = 10
MAX_LEVEL_TILT_DEG = 2.0  # a fitted road further than this from the mount's level: trust the fit, not the mount


def refine_motion(img0: np.ndarray | GrayPyramid, img1: np.ndarray | GrayPyramid, depth0: np.ndarray, K: np.ndarray,
                  motion: np.ndarray,
                  levels: tuple[int, ...] = LEVELS, iterations: tuple[int, ...] = ITERATIONS,
                  max_depth: float = 80.0, max_points: int = MAX_POINTS, min_pixels: int = 300,
                  depth1: np.ndarray | None = None, camera_to_base: np.ndarray | None = None,
                  depth_rel_std: float = DEPTH_REL_STD, geometric_weight: float = GEOMETRIC_WEIGHT,
                  road_ref: tuple[np.ndarray, float] | None = None, road_gain: float = ROAD_GAIN,
                  level_weight: float = 0.0, step_relax: float = 1.0, road_config: Any = None) -> RefineResult:
    """Refine `motion` (t → t+1, as DepthEstimator.motion) from gray images (H, W) and frame t's depth (same
    units as the motion's translation) with K of that pixel grid; a frame's `GrayPyramid` in place of its gray
    image shares the pyramid between the two steps the frame takes part in. Falls back to `motion` when the alignment
    does not lower the photometric residual or jumps more than 5° away from it. Each level stops early once
    the update is negligible, so `iterations` are caps (see ITERATIONS).
    With frame t+1's depth (`depth1`, same units) the yaw and sideways motion also answer to the depth
    consistency between the frames (`geometric_weight`, 0: off), and the result is made consistent with the
    road plane (`road_step`; `camera_to_base` says where up is, default REP 103 optical → body); `road_ref` is
    frame t's road plane carried from the previous step (RefineResult.road; None: frame t's own fit).
    `level_weight` > 0 (the first LEVEL_STEPS steps of a chain): `level_step` instead, with that weight.
    `depth_rel_std` (ε) down-weights pixels whose residual is dominated by the depth's own error (see the
    module docstring); 0 turns the weighting off (exact depth). `step_relax` scales each update (the node uses
    PRIOR_STEP_RELAX from the constant-velocity prior). `road_config`: the ground-plane scale source's
    GroundPlaneConfig (the node's `ground_plane.*`), so the road is found where and as that source finds it."""
    img0, img1 = _pyramid(img0), _pyramid(img1)
    T0 = np.linalg.inv(np.asarray(motion, dtype=np.float64))  # camera t → camera t+1 point map
    T = T0.copy()
    c2b = np.asarray(camera_to_base, dtype=np.float64) if camera_to_base is not None else None
    geo = geometric_weight if depth1 is not None else 0.0
    keep = _yaw_sideways_projection(c2b) if geo > 0 else None
    total = 0
    finest = None
    for s, n_iter in zip(levels, iterations, strict=True):
        # the depth term at the finest level only: as accurate on the drives, at a third of its cost
        lv = _Level(img0, img1, depth0, K, s, max_depth, max_points, depth1 if geo > 0 and s == levels[-1] else None)
        if s == levels[-1]:
            finest = lv
        if len(lv.ref) < min_pixels // (s * s):
            continue
        for _ in range(n_iter):
            r, Xg, gxs, gys = lv.residuals(T)
            if r.size < min_pixels // (s * s):
                break
            H, g = _normal_equations(lv, r, Xg, gxs, gys, depth_rel_std, geo, keep)
            delta = -step_relax * np.linalg.solve(H, g)
            T = se3_exp(delta) @ T
            total += 1
            if np.linalg.norm(delta[3:]) < STOP_ROTATION and np.linalg.norm(delta[:3]) < STOP_TRANSLATION:
                break
    before = _sigma(finest.photometric(T0)) if finest is not None else float("nan")
    after = _sigma(finest.photometric(T)) if finest is not None else float("nan")
    rel = np.linalg.inv(T0) @ T
    used = bool(np.isfinite(after) and np.isfinite(before) and after <= before * 1.02
                and np.degrees(np.linalg.norm(rotation_vector(rel[:3, :3]))) <= 5.0)
    final = np.linalg.inv(T) if used else np.asarray(motion, dtype=np.float64)
    road = None
    if depth1 is not None:
        ref = road_ref if road_ref is not None else road_plane(depth0, K, camera_to_base, road_config)
        fit = road_plane(depth1, K, camera_to_base, road_config)
        if level_weight > 0:
            up = (c2b[:3, :3] if c2b is not None else OPTICAL_TO_BODY).T @ np.array([0.0, 0.0, 1.0])
            final, road = level_step(final, ref, fit, up, level_weight)
        else:
            final, road = road_step(final, ref, fit, road_gain)
    return RefineResult(final, total, before, after, used, road)


def _yaw_sideways_projection(camera_to_base: np.ndarray | None) -> np.ndarray:
    """6×6 projector onto the sideways translation (body y) and the yaw (about body z), in the optical frame."""
    R = (camera_to_base[:3, :3] if camera_to_base is not None else OPTICAL_TO_BODY).T  # body → optical
    side, up = R @ np.array([0.0, 1.0, 0.0]), R @ np.array([0.0, 0.0, 1.0])
    P = np.zeros((6, 6))
    P[:3, :3], P[3:, 3:] = np.outer(side, side), np.outer(up, up)
    return P


def _normal_equations(lv: _Level, r: np.ndarray, Xg: np.ndarray, gxs: np.ndarray, gys: np.ndarray,
                      depth_rel_std: float, geometric_weight: float, keep: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """H, g of one Gauss–Newton step: Huber- and depth-error-weighted photometric term, plus the depth term
    (its own Huber weights, scaled to the photometric residual's units, projected by `keep`)."""
    s0, wts = _huber(r)
    if depth_rel_std > 0:
        pu, pv = lv.parallax
        sd = depth_rel_std * (gxs * pu + gys * pv)  # residual σ from the depth's relative error
        wts = wts * s0 * s0 / (s0 * s0 + sd * sd)
    dI_dX = _image_jacobian(lv.K, Xg, gxs, gys)  # ∇I1 · ∂π/∂X'
    J = _twist_jacobian(Xg, dI_dX)  # ∂r/∂(ρ, φ) for X' ← exp(ξ)·X'
    Jw = J * wts[:, None]
    H, g = Jw.T @ J + 1e-6 * np.eye(6), Jw.T @ r
    if geometric_weight > 0 and keep is not None and lv.geometric and lv.geo[0].size >= 20:
        rg, jg, Xd = lv.geo
        sg, wg = _huber(rg)
        Jg = _twist_jacobian(Xd, jg) @ keep
        Jgw = Jg * (geometric_weight * s0 * s0 / (sg * sg) * wg)[:, None]
        H += Jgw.T @ Jg
        g += Jgw.T @ rg
    return H, g


def road_step(motion: np.ndarray, ref: tuple[np.ndarray, float] | None, fit: tuple[np.ndarray, float] | None,
              gain: float = ROAD_GAIN) -> tuple[np.ndarray, tuple[np.ndarray, float] | None]:
    """`motion` made consistent with the road (`road_consistent`) from frame t's carried road plane `ref` to
    frame t+1's: `ref` moved by the motion, pulled toward frame t+1's own fit by `gain`. Returns the motion and
    frame t+1's road plane to carry on: that blend, or the fit alone where the step kept the visual motion (a
    bad fit or a change of grade: start again from what the camera sees)."""
    if ref is None or fit is None:
        return np.asarray(motion, dtype=np.float64), fit
    target = blend_planes(moved_plane(ref, motion), fit, gain)
    fixed = road_consistent(motion, ref, target)
    return (fixed, target) if fixed is not motion else (fixed, fit)


def level_step(motion: np.ndarray, ref: tuple[np.ndarray, float] | None, fit: tuple[np.ndarray, float] | None,
               up: np.ndarray, weight: float) -> tuple[np.ndarray, tuple[np.ndarray, float] | None]:
    """A step at the start of a chain: the motion is kept, and the ground carried on is `ref` moved by it,
    pulled toward the body's own x–y plane at the fitted height (`up`: body z in the optical frame) by `weight`
    (1/(k+1) at step k: the running mean). Why: every later step keeps the camera on the ground it is handed,
    so that ground's tilt error times the path is the climb. One frame's road fit is 0.2° noisy and this
    network's fits lean by −0.1 to −0.3°, while a car's or robot's body sways about the road's plane: its mean
    over the first metres is the better ground, if `camera_to_base` is right. A fit further than
    MAX_LEVEL_TILT_DEG from the mount's level (a wrong mount, a start on a kerb) is taken as it is."""
    motion = np.asarray(motion, dtype=np.float64)
    if fit is None:
        return motion, None if ref is None else moved_plane(ref, motion)
    tilt = float(np.degrees(np.arccos(np.clip(fit[0] @ up, -1.0, 1.0))))
    level = (np.asarray(up, dtype=np.float64), fit[1]) if tilt <= MAX_LEVEL_TILT_DEG else fit
    return motion, level if ref is None else blend_planes(moved_plane(ref, motion), level, weight)


def moved_plane(plane: tuple[np.ndarray, float], motion: np.ndarray) -> tuple[np.ndarray, float]:
    """Frame t's plane (n, d) seen from frame t+1 after `motion` (t → t+1)."""
    n, d = plane
    R, t = motion[:3, :3], motion[:3, 3]
    return R.T @ n, float(n @ t + d)


def blend_planes(a: tuple[np.ndarray, float], b: tuple[np.ndarray, float], gain: float
                 ) -> tuple[np.ndarray, float]:
    """(1 − gain)·a + gain·b, the normal renormalised."""
    n = (1.0 - gain) * a[0] + gain * b[0]
    return n / np.linalg.norm(n), (1.0 - gain) * a[1] + gain * b[1]


MAX_PLANE_CORRECTION_DEG = 1.0  # per step; larger disagreements are a bad fit or a real change of grade


_last_plane: dict[bytes, tuple[np.ndarray, float] | None] = {}
_fitters: dict[bytes, Any] = {}  # the road fitter of the current mount (camera_to_base)


def road_plane(depth: np.ndarray, K: np.ndarray, camera_to_base: np.ndarray | None = None, config: Any = None
               ) -> tuple[np.ndarray, float] | None:
    """The road plane (n, d) in the lower part of `depth` (K of its pixel grid), by the ground-plane scale
    source's robust fit with its `config` (GroundPlaneConfig: region, thresholds; None = its defaults) and seed;
    None when there is no convincing road.

    The fit is a third of a refinement's time, and odometry fits every frame twice (as frame t+1, then as the
    next step's frame t): the last two results are kept, keyed by a digest of the exact inputs, so the second
    fit is a look-up (the fit is deterministic, so the answer is the same)."""
    import hashlib

    from depth_node.geometry.scale import GroundPlaneScale

    d = np.ascontiguousarray(depth, dtype=np.float32)
    h = hashlib.blake2b(d.tobytes(), digest_size=16)
    for a in (np.asarray(K, np.float64), np.asarray(camera_to_base if camera_to_base is not None else 0.0)):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr(d.shape).encode())
    h.update(repr(config).encode())
    key = h.digest()
    if key in _last_plane:
        return _last_plane[key]
    mount = np.asarray(camera_to_base if camera_to_base is not None else np.nan, np.float64).tobytes()
    mount += repr(config).encode()
    fitter = _fitters.get(mount)
    if fitter is None:
        _fitters.clear()  # one mount and config at a time in practice; a new one replaces it
        fitter = _fitters[mount] = GroundPlaneScale(copy.deepcopy(config), camera_to_base=camera_to_base)
    plane = fitter.plane_of(d, Intrinsics.from_K(K, d.shape[1], d.shape[0]))
    while len(_last_plane) >= 2:
        _last_plane.pop(next(iter(_last_plane)))
    _last_plane[key] = plane
    return plane


def _rotation_between(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The smallest rotation Q with Q·b = a (unit vectors)."""
    axis = np.cross(b, a)
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        return np.eye(3)
    return se3_exp(np.concatenate([np.zeros(3), axis / s * np.arctan2(s, float(b @ a))]))[:3, :3]


def road_consistent(motion: np.ndarray, plane0: tuple[np.ndarray, float] | None,
                    plane1: tuple[np.ndarray, float] | None) -> np.ndarray:
    """`motion` (t → t+1) changed as little as possible so that frame t's road plane, moved into frame t+1,
    is frame t+1's road plane: a rotation about an axis in the road plane (pitch/roll; yaw untouched) and a
    shift along the normal (the height change). Unchanged when a plane is missing or the change is too large."""
    M = np.asarray(motion, dtype=np.float64)
    if plane0 is None or plane1 is None:
        return M
    (n0, d0), (n1, d1) = plane0, plane1
    R, t = M[:3, :3], M[:3, 3]
    # X_t = R X_t+1 + t puts plane t into frame t+1 as (Rᵀn0)·X + (n0·t + d0) = 0; wanted: n1·X + d1 = 0
    Q = _rotation_between(n1, R.T @ n0)
    shift = (d1 - d0) - float(n0 @ t)
    angle = float(np.degrees(np.linalg.norm(rotation_vector(Q))))
    if angle > MAX_PLANE_CORRECTION_DEG or abs(shift) > 0.1 * d0:
        return M
    out = np.eye(4)
    out[:3, :3] = R @ Q
    out[:3, 3] = t + shift * n0
    return out
