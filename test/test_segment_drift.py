"""KITTI segment drift (t_rel, r_rel) checked against two independent computations on real GT trajectories:
a literal transcription of the devkit's `calcSequenceErrors` (loops, general inverses, acos of the trace) and
evo's relative pose errors over the same segments; plus hand cases that pin the segment-end rule and the units."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import require_shared
from test_eval_pose import _cli, perturb

from depth_node.evaluate import pose_metrics as pm
from depth_node.io.trajectories import Trajectory, read_euroc, read_kitti, read_tum, write_kitti

REL = 1e-6  # required relative agreement with the independent implementations


def _devkit(gt: np.ndarray, pred: np.ndarray, lengths: tuple[float, ...], step: int) -> tuple[float, float, list]:
    """evaluate_odometry.cpp, transcribed line by line (float64 instead of float)."""
    dist = [0.0]
    for i in range(1, len(gt)):
        d = gt[i - 1][:3, 3] - gt[i][:3, 3]
        dist.append(dist[i - 1] + math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]))
    errs = []
    for first in range(0, len(gt), step):
        for length in lengths:
            last = -1
            for i in range(first, len(dist)):
                if dist[i] > dist[first] + length:
                    last = i
                    break
            if last == -1:
                continue
            delta_gt = np.linalg.inv(gt[first]) @ gt[last]
            delta_res = np.linalg.inv(pred[first]) @ pred[last]
            e = np.linalg.inv(delta_res) @ delta_gt
            r = math.acos(max(min(0.5 * (e[0, 0] + e[1, 1] + e[2, 2] - 1.0), 1.0), -1.0))
            t = math.sqrt(e[0, 3] ** 2 + e[1, 3] ** 2 + e[2, 3] ** 2)
            errs.append((first, last, r / length, t / length))
    t_rel = 100.0 * sum(e[3] for e in errs) / len(errs)
    r_rel = 100.0 * 180.0 / math.pi * sum(e[2] for e in errs) / len(errs)
    return t_rel, r_rel, errs


def _evo_segment_errors(gt: np.ndarray, pred: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """evo's RPE (translation part, rotation angle) of each (i, j) pair: the pairs' poses interleaved, RPE over
    consecutive frames, every second error kept. evo's E is the inverse of the devkit's: same norm and angle."""
    from evo.core import metrics as evo_metrics
    from evo.core.trajectory import PoseTrajectory3D
    from evo.core.units import Unit

    idx = pairs.reshape(-1)
    stamps = np.arange(idx.size, dtype=np.float64)
    ref = PoseTrajectory3D(poses_se3=list(gt[idx]), timestamps=stamps)
    est = PoseTrajectory3D(poses_se3=list(pred[idx]), timestamps=stamps)
    out = []
    for rel in (evo_metrics.PoseRelation.translation_part, evo_metrics.PoseRelation.rotation_angle_rad):
        rpe = evo_metrics.RPE(rel, delta=1, delta_unit=Unit.frames, all_pairs=True)
        rpe.process_data((ref, est))
        out.append(np.asarray(rpe.error)[::2])
    return out[0], out[1]


def _real(name: str) -> Trajectory:
    path = require_shared(f"realdata/gt_trajectories/{name}")
    if name.endswith("_GT.txt") or name.endswith(".csv"):
        return read_euroc(path)
    return read_kitti(path) if "KITTI" in name or "kitti" in name else read_tum(path)


CASES = [  # (file, step, KITTI's lengths scaled to the drive: those shorter than its path are used)
    ("evo_test_data/KITTI_00_gt.txt", 10, (100, 200, 300, 400, 500, 600, 700, 800)),  # 3.7 km
    ("pyslam_kitti/06.txt", 1, (100, 200, 300, 400, 500, 600, 700, 800)),  # 1.2 km
    ("evo_test_data/freiburg1_xyz-groundtruth.txt", 5, (1, 2, 3, 4, 5, 6, 7, 8)),  # 9.2 m
    ("orbslam3_euroc_left_cam/MH01_GT.txt", 20, (10, 20, 30, 40, 50, 60, 70, 80)),
]


@pytest.mark.parametrize("name, step, lengths", CASES)
def test_segment_drift_matches_devkit_and_evo_on_real_trajectories(name, step, lengths):
    pytest.importorskip("evo")
    gt = _real(name)
    path = gt.path_length()
    expected = tuple(float(L) for L in lengths if L < path)
    assert pm.segment_lengths_for(path) == expected, f"{name}: path {path:.1f} m"
    pred = perturb(gt, seed=7, scale=1.0, drift=1.01, r_noise=0.0005)
    ours = pm.segment_drift(pred.poses, gt.poses, step=step)
    assert ours.lengths_m == expected
    t_ref, r_ref, errs = _devkit(gt.poses, pred.poses, expected, step)
    assert ours.pairs.tolist() == [[e[0], e[1]] for e in errs]
    assert ours.t_rel_pct > 0.1 and ours.r_rel_deg_per_100m > 0.01  # a real error, not a vacuous zero
    assert abs(ours.t_rel_pct - t_ref) <= REL * t_ref, (ours.t_rel_pct, t_ref)
    assert abs(ours.r_rel_deg_per_100m - r_ref) <= REL * r_ref, (ours.r_rel_deg_per_100m, r_ref)
    # evo inverts poses rigidly (Rᵀ), the devkit generally: on GT rotations stored to 7 digits the two differ by
    # ~1e-5 over 800 m, so evo is compared on GT made orthonormal (same segments, same formulas otherwise)
    g = _orthonormal(gt.poses)
    ours_o = pm.segment_drift(pred.poses, g, step=step)
    t_evo, r_evo = _evo_segment_errors(g, pred.poses, ours_o.pairs)
    np.testing.assert_allclose(ours_o.t_err * ours_o.seg_len, t_evo, rtol=REL)
    np.testing.assert_allclose(ours_o.r_err * ours_o.seg_len, r_evo, rtol=REL)
    assert ours_o.t_rel_pct == pytest.approx(100 * np.mean(t_evo / ours_o.seg_len), rel=REL)
    assert ours_o.r_rel_deg_per_100m == pytest.approx(np.degrees(np.mean(r_evo / ours_o.seg_len)) * 100, rel=REL)


def _orthonormal(poses: np.ndarray) -> np.ndarray:
    out = poses.copy()
    U, _, Vt = np.linalg.svd(out[:, :3, :3])
    out[:, :3, :3] = U @ Vt
    return out


def _line(n: int, step_m: float = 1.0, yaw_per_frame: float = 0.0) -> np.ndarray:
    """Poses along a path in the x–z plane (optical frame: y down), turning by yaw_per_frame about y."""
    T = [np.eye(4)]
    for _ in range(n - 1):
        M = np.eye(4)
        c, s = math.cos(yaw_per_frame), math.sin(yaw_per_frame)
        M[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
        M[2, 3] = step_m
        T.append(T[-1] @ M)
    return np.array(T)


def test_hand_cases_pin_segment_end_and_units():
    gt = _line(40)  # 39 m straight, 1 m per frame
    assert pm.segment_lengths_for(39.0) == (10.0, 20.0, 30.0)
    long = gt.copy()
    long[:, :3, 3] *= 1.02
    d = pm.segment_drift(long, gt, lengths=(10.0,))
    # the end is the first frame MORE than 10 m on: 11 m of GT motion, 0.22 m error over L = 10 m
    assert d.pairs[0].tolist() == [0, 11] and d.pairs.shape[0] == 40 - 11
    assert d.t_rel_pct == pytest.approx(2.2, rel=1e-12)
    assert d.r_rel_deg_per_100m == pytest.approx(0.0, abs=1e-9)
    turning = _line(40, yaw_per_frame=math.radians(0.05))  # 0.05° per metre of path
    d = pm.segment_drift(turning, gt, lengths=(10.0,))
    assert d.r_rel_deg_per_100m == pytest.approx(0.05 * 11 / 10 * 100, rel=1e-9)
    assert pm.segment_drift(gt, gt, step=3).t_rel_pct == pytest.approx(0.0, abs=1e-12)
    assert pm.KITTI_STEP_FRAMES == 10


def test_segment_drift_is_rigid_invariant_and_scale_sensitive():
    gt = _real("pyslam_kitti/06.txt").subset(np.arange(400))
    pred = perturb(gt, seed=1, scale=1.0, drift=1.0)
    a = pm.segment_drift(pred.poses, gt.poses, step=5)
    A = np.eye(4)
    A[:3, :3] = _line(2, yaw_per_frame=0.7)[1][:3, :3]
    A[:3, 3] = [30.0, -4.0, 12.0]
    moved = pm.segment_drift(A @ pred.poses, gt.poses, step=5)
    assert moved.t_rel_pct == pytest.approx(a.t_rel_pct, rel=1e-9)
    assert moved.r_rel_deg_per_100m == pytest.approx(a.r_rel_deg_per_100m, rel=1e-9)
    P = pred.poses.copy()
    P[:, :3, 3] *= 1.05
    b = pm.segment_drift(P, gt.poses, step=5)
    assert b.t_rel_pct > a.t_rel_pct + 2.0 and b.r_rel_deg_per_100m == pytest.approx(a.r_rel_deg_per_100m)


def test_cli_reports_segment_drift(tmp_path):
    gt_path = require_shared("realdata/gt_trajectories/pyslam_kitti/06.txt")
    gt = read_kitti(gt_path)
    pred_path = write_kitti(tmp_path / "pred.txt", perturb(gt, seed=4, scale=1.0, r_noise=0.0003))
    r = _cli("eval-pose", "--pred", str(pred_path), "--gt", str(gt_path), "--json", str(tmp_path / "a.json"),
             "--segment-step", "10")
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "a.json").read_text())
    t_ref, r_ref, _ = _devkit(gt.poses, read_kitti(pred_path).poses, pm.KITTI_LENGTHS_M, 10)
    assert d["segment_lengths_m"] == list(pm.KITTI_LENGTHS_M) and d["segment_drift"]["segment_step_frames"] == 10
    assert d["t_rel_pct"] == pytest.approx(t_ref, rel=REL) and d["r_rel_deg_per_100m"] == pytest.approx(r_ref, rel=REL)
    assert "t_rel" in r.stdout and "100, 200" in r.stdout
    bad = _cli("eval-pose", "--pred", str(pred_path), "--gt", str(gt_path), "--json", str(tmp_path / "b.json"),
               "--segment-lengths", "0")
    assert bad.returncode == 2 and "segment lengths must be positive" in bad.stderr
