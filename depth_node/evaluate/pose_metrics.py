"""Trajectory metrics: ATE and RPE with SE(3)/Sim(3) alignment, KITTI segment drift, Monodepth2's snippet ATE.

Three families, because they answer different questions:
- Full-trajectory ATE/RPE (TUM RGB-D / evo definitions): the estimate is aligned to GT once (Umeyama, with or
  without scale), then ATE is the per-pose position error and RPE the error of the relative motion over
  `delta` frames (or metres). These expose drift, which is what a robot using our odometry lives with. The
  numbers agree with `evo` (its APE/RPE on `align`ed trajectories; see test_eval_pose.py), so they can be
  compared with published SLAM/VO results.
- Segment drift (KITTI odometry devkit): t_rel (%) and r_rel (°/100 m), the relative pose error over path
  segments of 100…800 m (shorter on short drives), averaged: the figures VO papers compare.
- Snippet ATE (Monodepth2 `evaluate_pose.py` / SfMLearner `compute_ate`): 5-frame snippets, each aligned by its
  first point and its own least-squares scale, "rmse" = sqrt(Σ‖s·p − g‖²)/n. Per-snippet scale makes it
  lenient (it hides scale drift and barely sees rotation), but it is the number in the papers' tables.

Everything is NumPy (evo is only a test oracle, and GPL). Poses are (N, 4, 4) world-from-camera matrices.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.geometry.poses import invert_se3
from depth_node.io.trajectories import Trajectory

ALIGNMENTS = ("none", "origin", "se3", "sim3", "scale")


# ---------------------------------------------------------------- basic geometry


def rotation_angles(R: np.ndarray) -> np.ndarray:
    """Angles (rad) of (..., 3, 3) rotations. atan2 of the skew and trace parts, because arccos of the trace
    loses half the digits near zero, where RPE's small per-frame rotation errors live."""
    R = np.asarray(R, dtype=np.float64)
    w = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    s = 0.5 * np.linalg.norm(w, axis=-1)
    c = 0.5 * (np.trace(R, axis1=-2, axis2=-1) - 1.0)
    return np.arctan2(s, c)


# Below this ratio of the cross-covariance's second to first singular value the rotation about the dominant
# direction counts as undetermined by the positions. d1/d0 (≈ the product of the two clouds' off-line spreads
# relative to their lengths, so an exact-line GT against a noisy estimate falls below too) is the roll's
# sensitivity to the points: a relative position error δ moves it by about δ·d0/d1. Exact straight lines sit at
# rounding level (1e-15…1e-19, the synthetic drives included), real trajectories far above (whole KITTI, TUM and
# EuRoC GT ≥ 3e-3, 30-frame KITTI windows ≥ 1e-7), so 1e-9 splits the two with margin each way; at 1e-9 even
# 12-digit positions leave the roll uncertain by ~1e-3 rad, so positions no longer make a meaningful roll.
RANK_TOL = 1e-9


def _project_so3(M: np.ndarray) -> np.ndarray:
    """The rotation nearest to M (maximizing trace(Rᵀ·M)): SVD with the determinant sign fixed."""
    u, _, vt = np.linalg.svd(M)
    S = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0.0:
        S[2, 2] = -1.0
    return u @ S @ vt


def _roll_about(axis: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Rot(axis, θ) maximizing trace(Rot·M): trace(Rot·M) = a·cosθ + b·sinθ + c, so θ = atan2(b, a)."""
    k = axis / np.linalg.norm(axis)
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    kk = np.outer(k, k)
    a = float(np.trace(M) - k @ M @ k)
    b = float(np.trace(K @ M))
    th = math.atan2(b, a) if (a != 0.0 or b != 0.0) else 0.0
    return math.cos(th) * np.eye(3) + math.sin(th) * K + (1.0 - math.cos(th)) * kk


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = False, src_rot: np.ndarray | None = None,
            dst_rot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares (R, t, s) with dst ≈ s·R·src + t for (N, 3) point sets (Umeyama 1991, as evo computes it).

    evo refuses rank-deficient cases; here they still align. On a (nearly) straight line (cross-covariance
    d1 ≤ RANK_TOL·d0) the positions fix R only up to a roll about the line: that roll leaves the position error
    unchanged but not the orientation error, so with the (N, 3, 3) orientations `src_rot`/`dst_rot` it is the one
    that best aligns R·src_rot to dst_rot (chordal least squares, closed form); without them it is whatever the
    SVD gives. Identical points fall back to a pure translation, with R likewise from the orientations when
    given (else the identity). Well-conditioned point sets ignore the orientations: plain Umeyama, evo's result.
    """
    x = np.asarray(src, dtype=np.float64)
    y = np.asarray(dst, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3 or x.shape[0] == 0:
        raise ValueError(f"umeyama needs two (N, 3) arrays of equal shape, got {x.shape} and {y.shape}")
    rots = None
    if src_rot is not None and dst_rot is not None:
        rots = (np.asarray(src_rot, dtype=np.float64), np.asarray(dst_rot, dtype=np.float64))
        if rots[0].shape != (x.shape[0], 3, 3) or rots[1].shape != (x.shape[0], 3, 3):
            raise ValueError(f"umeyama orientations must be ({x.shape[0]}, 3, 3), got {rots[0].shape}, "
                             f"{rots[1].shape}")
    n = x.shape[0]
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    sigma_x = float(np.sum(xc * xc)) / n
    cov = yc.T @ xc / n
    u, d, vt = np.linalg.svd(cov)
    if np.count_nonzero(d > np.finfo(float).eps) == 0 or sigma_x == 0.0:
        R = np.eye(3) if rots is None else _project_so3(np.sum(rots[1] @ np.swapaxes(rots[0], 1, 2), axis=0))
        return R, my - R @ mx, 1.0
    S = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0.0:
        S[2, 2] = -1.0
    R = u @ S @ vt
    if rots is not None and d[1] <= RANK_TOL * d[0]:
        # R maps the estimate's line direction vt[0] onto GT's u[:, 0]; so does Rot(u[:, 0], θ)·R for every θ
        R = _roll_about(u[:, 0], np.sum(R @ rots[0] @ np.swapaxes(rots[1], 1, 2), axis=0)) @ R
        s = float(np.sum(cov * R) / sigma_x) if with_scale else 1.0  # the best scale for this R: tr(Rᵀ·cov)/σx²
    else:
        s = float(np.trace(np.diag(d) @ S) / sigma_x) if with_scale else 1.0
    t = my - s * (R @ mx)
    return R, t, s


def apply_sim3(poses: np.ndarray, R: np.ndarray, t: np.ndarray, s: float = 1.0) -> np.ndarray:
    """Left-apply a similarity to poses: positions → s·R·p + t, orientations → R·R_i (evo's scale-then-transform)."""
    out = np.array(poses, dtype=np.float64, copy=True)
    out[:, :3, 3] *= s
    A = np.eye(4)
    A[:3, :3], A[:3, 3] = R, t
    return A @ out


@dataclass
class Alignment:
    mode: str
    R: np.ndarray
    t: np.ndarray
    scale: float

    def to_dict(self) -> dict:
        return {"mode": self.mode, "scale": self.scale, "R": self.R.tolist(), "t": self.t.tolist()}


def align(pred: np.ndarray, gt: np.ndarray, mode: str = "se3", n: int = -1) -> tuple[np.ndarray, Alignment]:
    """Align predicted poses to GT. `se3`: rigid (the estimate's frame is arbitrary), `sim3`: rigid + scale
    (monocular VO without a metric scale source), `scale`: scale only, `origin`: first poses coincide,
    `none`. `n` > 0 fits on the first n poses only (evo's `--n_to_align`). Umeyama on the positions (evo's
    alignment); where they leave the rotation open (a straight drive's roll about the line, a static one) the
    orientations settle it, else that free roll would show up as rotation error (see `umeyama`)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if mode not in ALIGNMENTS:
        raise DepthNodeError(f"unknown alignment {mode!r}; choose one of {', '.join(ALIGNMENTS)}")
    if mode == "none":
        return pred.copy(), Alignment(mode, np.eye(3), np.zeros(3), 1.0)
    if mode == "origin":
        T = gt[0] @ invert_se3(pred[0])
        return T @ pred, Alignment(mode, T[:3, :3], T[:3, 3], 1.0)
    k = len(pred) if n is None or n <= 0 else min(n, len(pred))
    R, t, s = umeyama(pred[:k, :3, 3], gt[:k, :3, 3], with_scale=mode in ("sim3", "scale"),
                      src_rot=pred[:k, :3, :3], dst_rot=gt[:k, :3, :3])
    if mode == "scale":
        out = pred.copy()
        out[:, :3, 3] *= s
        return out, Alignment(mode, np.eye(3), np.zeros(3), s)
    return apply_sim3(pred, R, t, s), Alignment(mode, R, t, s)


# ---------------------------------------------------------------- association


def associate(stamps_a: np.ndarray, stamps_b: np.ndarray, max_diff: float = 0.01, offset_b: float = 0.0):
    """For each stamp in `a`, the nearest stamp in `b` (+ offset) within max_diff: (indices into a, into b).

    Same rule as evo's `matching_time_indices` (nearest neighbour, ties to the earlier stamp; a stamp of b may
    serve two of a), so associated trajectories and hence metrics are identical to evo's.
    """
    a = np.asarray(stamps_a, dtype=np.float64)
    b = np.asarray(stamps_b, dtype=np.float64) + offset_b
    if a.size == 0 or b.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    inside = (a >= b[0] - max_diff) & (a <= b[-1] + max_diff)
    idx = np.minimum(np.searchsorted(b, a, side="right"), b.size - 1)
    diff_ub = b[idx] - a
    diff_lb = np.where(idx > 0, a - b[np.maximum(idx - 1, 0)], np.inf)
    take_ub = (diff_ub <= max_diff) & (diff_ub < diff_lb)
    take_lb = ~take_ub & (diff_lb <= max_diff) & (diff_lb <= diff_ub)
    ok = inside & (take_ub | take_lb)
    ib = np.where(take_ub, idx, idx - 1)
    return np.nonzero(ok)[0], ib[ok].astype(int)


def associate_trajectories(
    pred: Trajectory, gt: Trajectory, max_diff: float = 0.01, offset: float = 0.0
) -> tuple[Trajectory, Trajectory, str]:
    """Pair poses: by time when both have stamps (the shorter trajectory drives, as in evo), else by index.

    Returns (pred', gt', "time"|"index"). Index pairing demands equal lengths: a KITTI file one pose short is
    usually an off-by-one frame shift, and silently truncating would score a shifted trajectory.
    """
    if pred.timestamped and gt.timestamped:
        assert pred.stamps is not None and gt.stamps is not None
        if len(gt) > len(pred):
            ip, ig = associate(pred.stamps, gt.stamps, max_diff, offset)
        else:
            ig, ip = associate(gt.stamps, pred.stamps, max_diff, -offset)
        if ip.size == 0:
            raise DepthNodeError(
                f"no timestamps of the prediction ({pred.stamps[0]:.3f}…{pred.stamps[-1]:.3f}) match the ground "
                f"truth ({gt.stamps[0]:.3f}…{gt.stamps[-1]:.3f}) within {max_diff} s; check the time base or "
                "raise --max-diff / set --offset"
            )
        return pred.subset(ip), gt.subset(ig), "time"
    if pred.timestamped != gt.timestamped:
        raise DepthNodeError(
            "one trajectory has timestamps and the other has none; give both in TUM format, or both in KITTI "
            "format (compared index by index)"
        )
    if len(pred) != len(gt):
        raise DepthNodeError(
            f"KITTI-format trajectories are compared index by index, but the prediction has {len(pred)} poses "
            f"and the ground truth {len(gt)}"
        )
    return pred, gt, "index"


# ---------------------------------------------------------------- statistics


def error_stats(errors: np.ndarray) -> dict[str, float]:
    """evo's statistics (std is the population std), plus the count."""
    e = np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        return {"rmse": math.nan, "mean": math.nan, "median": math.nan, "std": math.nan, "min": math.nan,
                "max": math.nan, "sse": math.nan, "n": 0}
    return {
        "rmse": float(math.sqrt(np.mean(e * e))),
        "mean": float(np.mean(e)),
        "median": float(np.median(e)),
        "std": float(np.std(e)),
        "min": float(np.min(e)),
        "max": float(np.max(e)),
        "sse": float(np.sum(e * e)),
        "n": int(e.size),
    }


# ---------------------------------------------------------------- ATE / RPE


@dataclass
class PoseErrors:
    trans: np.ndarray  # metres (trajectory units), one per pose or pair
    rot_deg: np.ndarray  # degrees
    pairs: np.ndarray | None = None  # (K, 2) index pairs for RPE

    def to_dict(self) -> dict:
        return {"trans": error_stats(self.trans), "rot_deg": error_stats(self.rot_deg)}


def ate(pred_aligned: np.ndarray, gt: np.ndarray) -> PoseErrors:
    """Absolute errors of already aligned poses (evo APE: translation part and rotation angle)."""
    p = np.asarray(pred_aligned, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    trans = np.linalg.norm(p[:, :3, 3] - g[:, :3, 3], axis=1)
    rel = np.swapaxes(p[:, :3, :3], 1, 2) @ g[:, :3, :3]
    return PoseErrors(trans, np.degrees(rotation_angles(rel)))


def accumulated_distances(positions: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(positions, axis=0), axis=1))])


def pairs_by_frames(n: int, delta: int, all_pairs: bool = False) -> np.ndarray:
    """(i, i+delta): consecutive non-overlapping pairs, or every start with all_pairs (evo's two modes)."""
    if delta < 1:
        raise DepthNodeError(f"RPE delta must be at least 1 frame, got {delta}")
    starts = np.arange(n - delta) if all_pairs else np.arange(0, n, delta)[:-1]
    starts = starts[starts + delta < n]
    return np.stack([starts, starts + delta], axis=1).astype(int)


def pairs_by_distance(positions: np.ndarray, delta: float, tol: float = 0.1, all_pairs: bool = False) -> np.ndarray:
    """Pairs about `delta` metres of path apart (evo's `filter_pairs_by_path`; tol is relative, as evo's
    rel_delta_tol). Consecutive mode chains segments of at least delta; all_pairs takes, for each start, the
    end whose path distance is nearest to delta and within tol·delta."""
    if delta <= 0:
        raise DepthNodeError(f"RPE distance delta must be positive, got {delta}")
    pos = np.asarray(positions, dtype=np.float64)
    out: list[tuple[int, int]] = []
    if all_pairs:
        dist = accumulated_distances(pos)
        for i in range(dist.size - 1):
            rest = dist[i + 1 :] - dist[i]
            j = int(np.argmin(np.abs(rest - delta)))
            if abs(rest[j] - delta) <= delta * tol:
                out.append((i, j + i + 1))
    else:
        steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
        ids, run = [0], 0.0
        for i, d in enumerate(steps, start=1):
            run += float(d)
            if run >= delta:
                ids.append(i)
                run = 0.0
        out = list(itertools.pairwise(ids))
    return np.array(out, dtype=int).reshape(-1, 2)


def rpe(pred: np.ndarray, gt: np.ndarray, pairs: np.ndarray) -> PoseErrors:
    """Relative pose errors E = (G_i⁻¹G_j)⁻¹ (P_i⁻¹P_j) over index pairs (TUM RGB-D / evo RPE)."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    rel_g = invert_se3(g[i]) @ g[j]
    rel_p = invert_se3(p[i]) @ p[j]
    E = invert_se3(rel_g) @ rel_p
    return PoseErrors(np.linalg.norm(E[:, :3, 3], axis=1), np.degrees(rotation_angles(E[:, :3, :3])), pairs)


# ---------------------------------------------------------------- KITTI segment drift
# Segment drift: the KITTI odometry benchmark's t_rel (%) and r_rel (°/100 m).
#
# Why beside ATE: one global alignment can hide a steady drift (a trajectory that climbs 2° all along still has a
# small ATE after SE(3) alignment), while the relative pose error over path segments of fixed length is what a
# robot mapping with the odometry lives with, and what VO papers compare (KITTI devkit `evaluate_odometry.cpp`).
#
# Definition (devkit `calcSequenceErrors`): for every start frame i (every `step`-th) and segment length L, the
# end j is the first frame whose GT path distance from i exceeds L; E = (P_i⁻¹P_j)⁻¹ (G_i⁻¹G_j);
# t_err = ‖t(E)‖ / L, r_err = angle(E) / L; t_rel and r_rel are the means over all (i, L) segments, reported
# in % and °/100 m. The errors use relative poses only, so they do not depend on a rigid alignment, but they do
# see scale (metric odometry is scored as published). Double precision throughout (the devkit uses float).
#
# Short drives: the devkit lengths {100, …, 800} m are scaled by the largest power of ten ≤ 1 for which the
# shortest one fits inside the drive (10…80 m on a 50 m drive), and lengths longer than the drive are dropped;
# the lengths used are part of the result.

KITTI_LENGTHS_M = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)
KITTI_STEP_FRAMES = 10  # the devkit starts a segment every 10th frame (every second at 10 Hz)


def segment_lengths_for(path_length: float) -> tuple[float, ...]:
    """KITTI's lengths, scaled down by powers of ten until the shortest fits the drive; too-long ones dropped."""
    if not path_length > 0:
        return ()
    scale = 1.0
    while KITTI_LENGTHS_M[0] * scale >= path_length and scale > 1e-6:
        scale /= 10.0
    return tuple(round(L * scale, 9) for L in KITTI_LENGTHS_M if L * scale < path_length)


@dataclass
class SegmentDrift:
    t_rel_pct: float  # mean ‖t_err‖ / L × 100
    r_rel_deg_per_100m: float  # mean angle(E) / L, in ° per 100 m
    lengths_m: tuple[float, ...]
    step_frames: int
    pairs: np.ndarray = field(repr=False)  # (K, 2) start/end indices
    seg_len: np.ndarray = field(repr=False)  # (K,) L of each segment
    t_err: np.ndarray = field(repr=False)  # (K,) ‖t(E)‖ / L
    r_err: np.ndarray = field(repr=False)  # (K,) rad / m

    def to_dict(self) -> dict:
        per_length = {}
        for L in self.lengths_m:
            sel = self.seg_len == L
            per_length[f"{L:g}"] = {"n": int(sel.sum()),
                                    "t_rel_pct": _mean(self.t_err[sel]) * 100.0,
                                    "r_rel_deg_per_100m": _mean(self.r_err[sel]) * 180.0 / math.pi * 100.0}
        return {"t_rel_pct": self.t_rel_pct, "r_rel_deg_per_100m": self.r_rel_deg_per_100m,
                "segment_lengths_m": list(self.lengths_m), "segment_step_frames": self.step_frames,
                "n_segments": int(self.pairs.shape[0]), "per_length": per_length,
                "definition": "KITTI devkit: mean over segments of |t_err|/L (%) and angle/L (deg/100 m); "
                              "E = (P_i^-1 P_j)^-1 (G_i^-1 G_j), j = first frame with GT path distance > L"}


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if v.size else math.nan


def segment_pairs(gt_positions: np.ndarray, lengths: tuple[float, ...], step: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) frame pairs and their lengths, devkit order (by start, then length)."""
    dist = accumulated_distances(np.asarray(gt_positions, dtype=np.float64))
    pairs, seg = [], []
    for i in range(0, dist.size, step):
        for L in lengths:
            j = int(np.searchsorted(dist, dist[i] + L, side="right"))  # first frame with dist > dist[i] + L
            if j < dist.size:
                pairs.append((i, j))
                seg.append(L)
    return np.array(pairs, dtype=int).reshape(-1, 2), np.array(seg, dtype=np.float64)


def segment_drift(pred: np.ndarray, gt: np.ndarray, lengths: tuple[float, ...] | None = None,
                  step: int = 1) -> SegmentDrift:
    """t_rel / r_rel of paired (N, 4, 4) world-from-camera poses. `lengths` None: adapted to the GT path length
    (see the module docstring); `step` 1 starts a segment at every frame (all segments), 10 is the devkit's."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[1:] != (4, 4):
        raise DepthNodeError(f"segment drift needs two (N, 4, 4) pose arrays of equal shape, got {p.shape}, {g.shape}")
    if step < 1:
        raise DepthNodeError(f"segment step must be at least 1 frame, got {step}")
    if lengths is None:
        lengths = segment_lengths_for(float(accumulated_distances(g[:, :3, 3])[-1]) if len(g) else 0.0)
    lengths = tuple(float(L) for L in lengths)
    if any(not L > 0 for L in lengths):
        raise DepthNodeError(f"segment lengths must be positive, got {list(lengths)}")
    pairs, seg = segment_pairs(g[:, :3, 3], lengths, step)
    i, j = pairs[:, 0], pairs[:, 1]
    inv = np.linalg.inv  # general inverses, as the devkit: real GT rotations are not quite orthonormal
    E = inv(inv(p[i]) @ p[j]) @ (inv(g[i]) @ g[j])
    t_err = np.linalg.norm(E[:, :3, 3], axis=1) / seg
    # the devkit's angle, acos of the trace: on real GT rotations (not quite orthonormal) the skew-part formula
    # of rotation_angles differs in the 6th digit, and this is the benchmark's number
    r_err = np.arccos(np.clip(0.5 * (np.trace(E[:, :3, :3], axis1=1, axis2=2) - 1.0), -1.0, 1.0)) / seg
    return SegmentDrift(_mean(t_err) * 100.0, _mean(r_err) * 180.0 / math.pi * 100.0, lengths, step,
                        pairs, seg, t_err, r_err)


# ---------------------------------------------------------------- Monodepth2 snippet ATE


def compute_ate(gt_xyz: np.ndarray, pred_xyz: np.ndarray) -> float:
    """The reference's snippet error: first points made to coincide, least-squares scale, then
    sqrt(Σ‖s·p − g‖²) / n_points (not a true RMS: kept so numbers compare with the papers)."""
    gt_xyz = np.asarray(gt_xyz, dtype=np.float64)
    pred_xyz = np.asarray(pred_xyz, dtype=np.float64)
    p = pred_xyz + (gt_xyz[0] - pred_xyz[0])[None, :]
    denom = float(np.sum(p**2))
    scale = float(np.sum(gt_xyz * p)) / denom if denom > 0 else 1.0
    err = p * scale - gt_xyz
    return float(np.sqrt(np.sum(err**2)) / gt_xyz.shape[0])


def _dump_xyz(local: np.ndarray) -> np.ndarray:
    """Positions along a chain of local transforms starting at the identity (SfMLearner's `dump_xyz`)."""
    T = np.eye(4)
    xyz = [T[:3, 3].copy()]
    for M in local:
        T = T @ M
        xyz.append(T[:3, 3].copy())
    return np.array(xyz)


@dataclass
class SnippetAte:
    mean: float
    std: float
    values: np.ndarray
    length: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n_snippets": int(self.values.size), "length": self.length}


def snippet_ate(pred: np.ndarray, gt: np.ndarray, length: int = 5) -> SnippetAte:
    """Monodepth2's pose evaluation from two global trajectories of equal length.

    Like the reference, the local transforms are inv(T_{i-1}⁻¹ T_i) (the pose net's earlier→later point map,
    the inverse of the camera motion) for GT and prediction alike; one snippet starts at every frame but the
    last, so the final length-2 snippets are shorter, exactly as `evaluate_pose.py` slices them.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if len(p) != len(g) or len(p) < 2:
        raise DepthNodeError(f"snippet ATE needs two trajectories of equal length ≥ 2, got {len(p)} and {len(g)}")
    # general inverses, as the reference: KITTI's 7-digit rotations are not quite orthonormal, and the
    # rigid-inverse shortcut would move the numbers in the 8th digit
    inv = np.linalg.inv
    local_p = inv(inv(p[:-1]) @ p[1:])
    local_g = inv(inv(g[:-1]) @ g[1:])
    vals = np.array(
        [
            compute_ate(_dump_xyz(local_g[i : i + length - 1]), _dump_xyz(local_p[i : i + length - 1]))
            for i in range(len(g) - 1)
        ]
    )
    return SnippetAte(float(np.mean(vals)), float(np.std(vals)), vals, length)


# ---------------------------------------------------------------- everything at once


@dataclass
class TrajectoryEvaluation:
    """What `eval-pose` reports; `to_dict()` is its JSON."""

    summary: dict
    aligned: dict[str, np.ndarray]  # mode → aligned predicted poses (for plots)
    gt: np.ndarray
    ate_errors: dict[str, np.ndarray]  # mode → per-pose translation error
    stamps: np.ndarray | None = None  # of the paired GT poses (None: index-based)

    def to_dict(self) -> dict:
        return self.summary


def evaluate_trajectory(
    pred: Trajectory,
    gt: Trajectory,
    *,
    alignments: tuple[str, ...] = ("se3", "sim3"),
    max_diff: float = 0.01,
    offset: float = 0.0,
    delta: int = 1,
    delta_m: float | None = None,
    all_pairs: bool = False,
    snippet_length: int = 5,
    segment_lengths: tuple[float, ...] | None = None,
    segment_step: int = 1,
) -> TrajectoryEvaluation:
    """Associate, then ATE/RPE under each alignment, distance-based RPE, the snippet ATE and the KITTI segment
    drift (`t_rel_pct`, `r_rel_deg_per_100m`, `segment_lengths_m` at the top level; see segment_drift.py).

    `ate_pct_of_path` = ATE RMSE / GT path length × 100 (the demo's acceptance figure, SE(3)-aligned).
    `rpe_m` errors come with `trans_pct`: mean of ‖E_t‖ / GT path distance of the pair × 100 (KITTI-style drift).
    """
    p, g, by = associate_trajectories(pred, gt, max_diff, offset)
    if len(p) < 3:
        raise DepthNodeError(f"only {len(p)} poses could be paired; need at least 3 for an alignment")
    path_len = g.path_length()
    frame_pairs = pairs_by_frames(len(g), delta, all_pairs)
    summary: dict = {
        "n_pred": len(pred),
        "n_gt": len(gt),
        "n_matched": len(p),
        "association": {"by": by, "max_diff_s": max_diff if by == "time" else None,
                        "offset_s": offset if by == "time" else None},
        "gt_path_length": path_len,
        "pred_path_length": p.path_length(),
        "ate": {},
        "rpe": {},
    }
    aligned: dict[str, np.ndarray] = {}
    ate_err: dict[str, np.ndarray] = {}
    dist_pairs = None
    if delta_m is not None:
        dist_pairs = pairs_by_distance(g.positions, delta_m, all_pairs=all_pairs)
        summary["rpe_m"] = {}
    for mode in alignments:
        P, al = align(p.poses, g.poses, mode)
        aligned[mode] = P
        a = ate(P, g.poses)
        ate_err[mode] = a.trans
        entry = a.to_dict()
        entry["alignment"] = al.to_dict()
        entry["pct_of_path"] = 100.0 * entry["trans"]["rmse"] / path_len if path_len > 0 else math.nan
        summary["ate"][mode] = entry
        r = rpe(P, g.poses, frame_pairs) if len(frame_pairs) else None
        summary["rpe"][mode] = {"delta": delta, "unit": "frames", "all_pairs": all_pairs,
                                **(r.to_dict() if r is not None else {})}
        if dist_pairs is not None:
            if len(dist_pairs):
                rd = rpe(P, g.poses, dist_pairs)
                seg = accumulated_distances(g.positions)
                seg_len = seg[dist_pairs[:, 1]] - seg[dist_pairs[:, 0]]
                pct = 100.0 * float(np.mean(rd.trans / np.maximum(seg_len, 1e-12)))
                summary["rpe_m"][mode] = {"delta": delta_m, "unit": "m", "all_pairs": all_pairs,
                                          **rd.to_dict(), "trans_pct": pct}
            else:
                summary["rpe_m"][mode] = {"delta": delta_m, "unit": "m", "n": 0,
                                          "note": "path shorter than delta"}
    if snippet_length >= 2:
        summary["snippet_ate"] = snippet_ate(p.poses, g.poses, snippet_length).to_dict()
    if "se3" in summary["ate"]:
        summary["ate_se3_pct_of_path"] = summary["ate"]["se3"]["pct_of_path"]
    summary.update(_segment_summary(p.poses, g.poses, segment_lengths, segment_step))
    return TrajectoryEvaluation(summary, aligned, g.poses, ate_err, g.stamps if by == "time" else None)


def _segment_summary(pred: np.ndarray, gt: np.ndarray, lengths: tuple[float, ...] | None, step: int) -> dict:
    """The segment drift's two figures and the lengths used at the top level, the details under `segment_drift`."""
    d = segment_drift(pred, gt, lengths, step).to_dict()
    return {"t_rel_pct": d["t_rel_pct"], "r_rel_deg_per_100m": d["r_rel_deg_per_100m"],
            "segment_lengths_m": d["segment_lengths_m"], "segment_drift": d}
