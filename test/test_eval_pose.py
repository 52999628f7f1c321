"""Trajectory I/O and ATE/RPE, checked against evo (the oracle) on real GT trajectories, plus the Monodepth2
snippet ATE against an independent transcription of the reference, and the `eval-pose` CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, require_shared

from depth_node.errors import DepthNodeError
from depth_node.evaluate import pose_metrics as pm
from depth_node.geometry.poses import invert_se3, matrix_from_quaternion
from depth_node.io.trajectories import (
    Trajectory,
    detect_format,
    read_euroc,
    read_kitti,
    read_trajectory,
    read_tum,
    write_kitti,
    write_tum,
)

evo = pytest.importorskip("evo")
from evo.core import metrics as evo_metrics  # noqa: E402
from evo.core import sync as evo_sync  # noqa: E402
from evo.core.units import Unit  # noqa: E402
from evo.tools import file_interface as evo_io  # noqa: E402

REL = 1e-6  # required relative agreement with evo


def gt_file(name: str) -> Path:
    return require_shared(f"realdata/gt_trajectories/{name}")


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    th = float(np.linalg.norm(aa))
    if th < 1e-15:
        return np.eye(3)
    k = aa / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * K @ K


def perturb(gt: Trajectory, seed: int, scale: float = 1.3, t_noise: float = 0.003, r_noise: float = 0.002,
            drift: float = 1.02) -> Trajectory:
    """A plausible VO output from a GT: relative motions with noise and a length drift, chained, re-scaled and
    expressed in another world frame (so alignment has real work to do)."""
    rng = np.random.default_rng(seed)
    rel = invert_se3(gt.poses[:-1]) @ gt.poses[1:]
    P = [np.eye(4)]
    for M in rel:
        M = M.copy()
        M[:3, 3] = M[:3, 3] * drift + rng.normal(0, t_noise, 3)
        M[:3, :3] = M[:3, :3] @ _rodrigues(rng.normal(0, r_noise, 3))
        N = P[-1] @ M
        U, _, Vt = np.linalg.svd(N[:3, :3])
        N[:3, :3] = U @ Vt  # keep rotations orthonormal (evo checks)
        P.append(N)
    P = np.array(P)
    P[:, :3, 3] *= scale
    A = np.eye(4)
    A[:3, :3] = matrix_from_quaternion([0.1, 0.2, 0.3, 0.9])
    A[:3, 3] = [5.0, -2.0, 1.0]
    stamps = None if gt.stamps is None else gt.stamps + rng.uniform(-0.003, 0.003, len(gt))
    return Trajectory(A @ P, stamps, "pred")


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _assert_stats(ours: dict, theirs: dict, what: str) -> float:
    worst = 0.0
    for k in ("rmse", "mean", "median", "std", "min", "max"):
        r = _rel(ours[k], float(theirs[k]))
        worst = max(worst, r)
        assert r < REL, f"{what}.{k}: ours {ours[k]!r} vs evo {theirs[k]!r} (rel {r:.2e})"
    return worst


# ---------------------------------------------------------------- trajectory I/O


def test_readers_match_evo_readers():
    tum = gt_file("evo_test_data/freiburg1_xyz-groundtruth.txt")
    ours = read_tum(tum)
    ev = evo_io.read_tum_trajectory_file(str(tum))
    assert len(ours) == ev.num_poses == 3000
    np.testing.assert_allclose(ours.stamps, ev.timestamps, rtol=0, atol=0)
    np.testing.assert_allclose(ours.poses, np.array(ev.poses_se3), atol=1e-12)

    kit = gt_file("pyslam_kitti/06.txt")
    ours = read_kitti(kit)
    ev = evo_io.read_kitti_poses_file(str(kit))
    assert ours.stamps is None and len(ours) == 1101
    np.testing.assert_array_equal(ours.poses, np.array(ev.poses_se3))

    eu = gt_file("orbslam3_euroc_left_cam/MH01_GT.txt")
    ours = read_euroc(eu)
    ev = evo_io.read_euroc_csv_trajectory(str(eu))
    np.testing.assert_allclose(ours.stamps, ev.timestamps, rtol=1e-15)
    np.testing.assert_allclose(ours.poses, np.array(ev.poses_se3), atol=1e-12)


def test_format_detection_on_real_files():
    assert detect_format(gt_file("evo_test_data/freiburg1_xyz-groundtruth.txt")) == "tum"
    assert detect_format(gt_file("evo_test_data/KITTI_00_gt.txt")) == "kitti"
    assert detect_format(gt_file("orbslam3_euroc_left_cam/V101_GT.txt")) == "euroc"


def test_write_read_round_trip(tmp_path):
    gt = read_tum(gt_file("evo_test_data/freiburg1_xyz-groundtruth.txt"))
    back = read_tum(write_tum(tmp_path / "t.txt", gt))
    np.testing.assert_allclose(back.stamps, gt.stamps, atol=1e-9)
    np.testing.assert_allclose(back.poses, gt.poses, atol=1e-8)
    # evo reads what we write
    ev = evo_io.read_tum_trajectory_file(str(tmp_path / "t.txt"))
    np.testing.assert_allclose(np.array(ev.poses_se3), gt.poses, atol=1e-8)

    kg = read_kitti(gt_file("pyslam_kitti/06.txt"))
    kb = read_kitti(write_kitti(tmp_path / "k.txt", kg))
    np.testing.assert_allclose(kb.poses, kg.poses, atol=1e-12, rtol=1e-8)
    with pytest.raises(DepthNodeError, match="timestamps"):
        write_tum(tmp_path / "x.txt", kg)


def test_kitti_with_times_file_is_timestamped():
    t = read_kitti(gt_file("pyslam_kitti/06.txt"), gt_file("pyslam_kitti/06_times.txt"))
    assert t.timestamped and len(t.stamps) == 1101 and np.all(np.diff(t.stamps) > 0)


@pytest.mark.parametrize(
    "content, fmt, pattern",
    [
        ("# c\n1.0 0 0 0 0 0 0 1\n2.0 0 0 0 0 0 1\n", "tum", r":3: expected 8 numbers"),
        ("1.0 0 0 0 0 0 0 1\n2.0 0 0 x 0 0 0 1\n", "tum", r":2: not a number: 'x'"),
        ("1.0 0 0 0 0 0 0 1\n2.0 0 0 nan 0 0 0 1\n", "tum", r":2: non-finite"),
        ("1.0 0 0 0 0 0 0 0\n", "tum", r":1: zero quaternion"),
        ("2.0 0 0 0 0 0 0 1\n1.0 0 0 0 0 0 0 1\n", "tum", r":2: timestamp 1.0 is before"),
        ("# only a comment\n\n", "tum", r"no poses"),
        ("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 0 0 0 1\n", "kitti", r":2: expected 12 numbers"),
        ("2 0 0 0 0 1 0 0 0 0 1 0\n", "kitti", r":1: the 3×3 part is not a rotation"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path, content, fmt, pattern):
    f = tmp_path / "bad.txt"
    f.write_text(content)
    with pytest.raises(DepthNodeError, match=pattern):
        read_trajectory(f, fmt)


def test_repeated_stamp_in_real_gt_is_accepted():
    # TUM fr2/desk has one repeated timestamp (line 10863): real files must load, as they do in evo.
    t = read_tum(gt_file("evo_test_data/fr2_desk_groundtruth.txt"))
    assert np.count_nonzero(np.diff(t.stamps) == 0) == 1


# ---------------------------------------------------------------- association


def test_association_matches_evo():
    gt = read_tum(gt_file("evo_test_data/freiburg1_xyz-groundtruth.txt"))
    rng = np.random.default_rng(1)
    stamps = np.sort(gt.stamps[::3] + rng.uniform(-0.012, 0.012, len(gt.stamps[::3])))
    ia, ib = pm.associate(stamps, gt.stamps, max_diff=0.003)
    ea, eb = evo_sync.matching_time_indices(stamps, gt.stamps, max_diff=0.003)
    assert 0 < len(ia) < len(stamps)  # some fall outside max_diff: the test exercises both branches
    np.testing.assert_array_equal(ia, ea)
    np.testing.assert_array_equal(ib, eb)


def test_association_rules():
    a = np.array([0.0, 1.0, 1.5, 2.0, 9.0])
    b = np.array([0.005, 0.995, 1.49, 1.51, 2.02])
    ia, ib = pm.associate(a, b, max_diff=0.011)
    assert ia.tolist() == [0, 1, 2] and ib.tolist() == [0, 1, 2]  # 1.5: 1.49 and 1.51 tie → earlier
    ia, ib = pm.associate(a, b, max_diff=0.03)
    assert ia.tolist() == [0, 1, 2, 3] and ib.tolist() == [0, 1, 2, 4]


def test_index_pairing_requires_equal_lengths():
    gt = read_kitti(gt_file("pyslam_kitti/06.txt"))
    with pytest.raises(DepthNodeError, match="index by index"):
        pm.associate_trajectories(gt.subset(np.arange(100)), gt)
    with pytest.raises(DepthNodeError, match="one trajectory has timestamps"):
        pm.associate_trajectories(Trajectory(gt.poses, np.arange(len(gt), dtype=float)), gt)


# ---------------------------------------------------------------- alignment


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    R = matrix_from_quaternion([0.3, -0.2, 0.5, 0.8])
    y = 2.5 * x @ R.T + [1.0, 2.0, 3.0]
    R2, t2, s2 = pm.umeyama(x, y, with_scale=True)
    np.testing.assert_allclose(R2, R, atol=1e-12)
    np.testing.assert_allclose(t2, [1, 2, 3], atol=1e-12)
    assert s2 == pytest.approx(2.5, rel=1e-12)
    _, _, s1 = pm.umeyama(x, y, with_scale=False)
    assert s1 == 1.0


def test_straight_line_and_static_trajectories_still_align():
    # evo refuses rank-deficient point sets; a straight drive (rank 1) must still evaluate here
    n = 20
    gt = np.tile(np.eye(4), (n, 1, 1))
    gt[:, 2, 3] = np.arange(n) * 1.3
    pred = gt.copy()
    pred[:, :3, 3] *= 0.5
    P, al = pm.align(pred, gt, "sim3")
    assert al.scale == pytest.approx(2.0)
    assert np.abs(P[:, :3, 3] - gt[:, :3, 3]).max() < 1e-12
    still = np.tile(np.eye(4), (5, 1, 1))
    P, al = pm.align(still, still, "se3")
    assert np.allclose(P, still)


LINE_DIR = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])  # not along an axis: no exact zeros


def _line_poses(n: int = 30, seed: int = 0) -> np.ndarray:
    """A straight drive (positions exactly collinear up to rounding) whose orientations wobble around a heading."""
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, 3] = [3.0, -1.0, 0.5] + np.arange(n)[:, None] * 1.3 * LINE_DIR
    base = matrix_from_quaternion([0.2, -0.1, 0.4, 0.9])
    for i in range(n):
        T[i, :3, :3] = _rodrigues(rng.normal(0, 0.05, 3)) @ base
    return T


def _rigid(R: np.ndarray, t) -> np.ndarray:
    A = np.eye(4)
    A[:3, :3], A[:3, 3] = R, t
    return A


def _direct_umeyama(x: np.ndarray, y: np.ndarray, with_scale: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Umeyama (1991) eqs. 38-42 written out independently: the expected alignment of well-conditioned points."""
    mx, my = x.mean(0), y.mean(0)
    cov = (y - my).T @ (x - mx) / len(x)
    U, D, Vt = np.linalg.svd(cov)
    S = np.diag([1.0, 1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt))])
    R = U @ S @ Vt
    s = float(np.trace(np.diag(D) @ S) / np.mean(np.sum((x - mx) ** 2, axis=1))) if with_scale else 1.0
    return R, my - s * R @ mx, s


@pytest.mark.parametrize("mode", ["se3", "sim3"])
def test_straight_line_against_itself_has_no_rotation_error(mode):
    # positions alone leave the roll about the line free, and the SVD's arbitrary roll used to show up as ~86°
    # of ATE rotation (`eval-pose` on a synthetic straight drive against itself); the orientations settle it
    gt = _line_poses()
    P, al = pm.align(gt, gt, mode)
    e = pm.ate(P, gt)
    assert e.rot_deg.max() < 1e-9 and e.trans.max() < 1e-9
    np.testing.assert_allclose(al.R, np.eye(3), atol=1e-12)
    assert al.scale == pytest.approx(1.0, abs=1e-12)
    s = pm.evaluate_trajectory(Trajectory(gt), Trajectory(gt), alignments=(mode,)).summary
    assert s["ate"][mode]["rot_deg"]["max"] < 1e-9 and s["ate"][mode]["trans"]["max"] < 1e-9


@pytest.mark.parametrize("mode", ["se3", "sim3"])
@pytest.mark.parametrize("roll", [0.0, 0.7, -2.0, 3.1])
def test_straight_line_recovers_a_rigid_transform_with_roll_about_the_line(mode, roll):
    gt = _line_poses()
    # the estimate's world: GT's rotated about the line (the part positions cannot see) and about another axis
    B = _rigid(_rodrigues(np.array([0.3, -0.4, 0.2])) @ _rodrigues(roll * LINE_DIR), [5.0, -2.0, 1.0])
    pred = B @ gt
    scale = 0.4 if mode == "sim3" else 1.0
    pred[:, :3, 3] *= scale
    P, al = pm.align(pred, gt, mode)
    e = pm.ate(P, gt)
    assert e.rot_deg.max() < 1e-9 and e.trans.max() < 1e-9
    np.testing.assert_allclose(al.R, B[:3, :3].T, atol=1e-12)
    assert al.scale == pytest.approx(1.0 / scale, rel=1e-12)
    # positions rounded to 12 digits, as in a KITTI/TUM file: nearly collinear, the roll still from orientations
    rounded = np.vectorize(lambda v: float(f"{v:.12e}"))(pred)
    P, al = pm.align(rounded, gt, mode)
    e = pm.ate(P, gt)
    assert e.rot_deg.max() < 1e-8 and e.trans.max() < 1e-9
    np.testing.assert_allclose(al.R, B[:3, :3].T, atol=1e-10)


def test_static_trajectory_takes_rotation_from_orientations():
    gt = _line_poses(8)
    gt[:, :3, 3] = [1.0, 2.0, 3.0]  # identical positions: no rotation from them at all
    B = _rigid(_rodrigues(np.array([0.5, 0.1, -0.7])), [0.0, 4.0, 0.0])
    P, al = pm.align(B @ gt, gt, "se3")
    e = pm.ate(P, gt)
    assert e.rot_deg.max() < 1e-9 and e.trans.max() < 1e-12
    np.testing.assert_allclose(al.R, B[:3, :3].T, atol=1e-12)


@pytest.mark.parametrize("mode", ["se3", "sim3"])
@pytest.mark.parametrize("bend", [1.0, 1e-3])  # a curve, and a nearly straight but still well-conditioned drive
def test_well_conditioned_alignment_is_plain_umeyama(mode, bend):
    # orientations must not move the alignment off Umeyama's (evo's) when the positions determine it
    rng = np.random.default_rng(7)
    n = 40
    gt = _line_poses(n, seed=1)
    u = np.arange(n) / n
    gt[:, :3, 3] += bend * np.stack([np.sin(3 * u), u**2, np.cos(2 * u) - 1], axis=1) * 5.0
    pred = _rigid(_rodrigues(np.array([0.2, 0.9, -0.3])), [1.0, 2.0, 3.0]) @ gt
    pred[:, :3, 3] = 0.7 * pred[:, :3, 3] + rng.normal(0, 0.01, (n, 3))
    for i in range(n):  # orientations far off: they would pull any orientation-based alignment away
        pred[i, :3, :3] = _rodrigues(rng.normal(0, 0.5, 3)) @ pred[i, :3, :3]
    R, t, s = _direct_umeyama(pred[:, :3, 3], gt[:, :3, 3], with_scale=mode == "sim3")
    P, al = pm.align(pred, gt, mode)
    np.testing.assert_allclose(al.R, R, atol=1e-12)
    np.testing.assert_allclose(al.t, t, atol=1e-12)
    assert al.scale == pytest.approx(s, rel=1e-12)
    R2, t2, s2 = pm.umeyama(pred[:, :3, 3], gt[:, :3, 3], mode == "sim3")  # positions only: the same numbers
    assert np.array_equal(R2, al.R) and np.array_equal(t2, al.t) and s2 == al.scale
    np.testing.assert_allclose(P, pm.apply_sim3(pred, R, t, s), atol=1e-12)


# ---------------------------------------------------------------- agreement with evo


def _evo_compare(pred_path: Path, gt_path: Path, fmt: str, delta_m: float, tmp: Path) -> dict:
    """Our evaluate_trajectory vs evo APE/RPE on the same files; returns the worst relative differences."""
    if fmt == "tum":
        ev_ref = evo_io.read_tum_trajectory_file(str(gt_path))
        ev_est = evo_io.read_tum_trajectory_file(str(pred_path))
        ev_ref, ev_est = evo_sync.associate_trajectories(ev_ref, ev_est, max_diff=0.01)
    else:
        ev_ref = evo_io.read_kitti_poses_file(str(gt_path))
        ev_est = evo_io.read_kitti_poses_file(str(pred_path))
    ours = pm.evaluate_trajectory(
        read_trajectory(pred_path, fmt), read_trajectory(gt_path, fmt), max_diff=0.01, delta=1, delta_m=delta_m
    ).summary
    assert ours["n_matched"] == ev_est.num_poses
    worst: dict[str, float] = {}
    for mode, correct_scale in (("se3", False), ("sim3", True)):
        est = copy.deepcopy(ev_est)
        r_a, _t_a, s = est.align(ev_ref, correct_scale=correct_scale)
        al = ours["ate"][mode]["alignment"]
        assert _rel(al["scale"], s) < REL
        np.testing.assert_allclose(al["R"], r_a, atol=1e-9)
        for rel_, key in ((evo_metrics.PoseRelation.translation_part, "trans"),
                          (evo_metrics.PoseRelation.rotation_angle_deg, "rot_deg")):
            ape = evo_metrics.APE(rel_)
            ape.process_data((ev_ref, est))
            worst[f"ate.{mode}.{key}"] = _assert_stats(ours["ate"][mode][key], ape.get_all_statistics(),
                                                       f"ATE {mode} {key}")
            rpe = evo_metrics.RPE(rel_, delta=1, delta_unit=Unit.frames)
            rpe.process_data((ev_ref, est))
            worst[f"rpe.{mode}.{key}"] = _assert_stats(ours["rpe"][mode][key], rpe.get_all_statistics(),
                                                       f"RPE {mode} {key}")
            rpm = evo_metrics.RPE(rel_, delta=delta_m, delta_unit=Unit.meters, pairs_from_reference=True)
            rpm.process_data((ev_ref, est))
            assert ours["rpe_m"][mode][key]["n"] == len(rpm.error)
            worst[f"rpe_m.{mode}.{key}"] = _assert_stats(ours["rpe_m"][mode][key], rpm.get_all_statistics(),
                                                         f"RPE {delta_m} m {mode} {key}")
        if mode == "se3":  # the demo's acceptance figure, from evo's numbers
            ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
            ape.process_data((ev_ref, est))
            evo_pct = 100 * ape.get_statistic(evo_metrics.StatisticsType.rmse) / ev_ref.path_length
            assert _rel(ours["ate_se3_pct_of_path"], evo_pct) < REL
    assert _rel(ours["gt_path_length"], ev_ref.path_length) < 1e-12
    return worst


def test_agrees_with_evo_tum_with_association(tmp_path):
    gt_path = gt_file("evo_test_data/freiburg1_xyz-groundtruth.txt")
    gt = read_tum(gt_path)
    pred = perturb(gt, seed=0).subset(np.arange(0, len(gt), 3))  # sparser, jittered stamps
    worst = _evo_compare(write_tum(tmp_path / "pred.txt", pred), gt_path, "tum", 0.2, tmp_path)
    print("TUM fr1/xyz worst relative difference to evo:", f"{max(worst.values()):.2e}")


@pytest.mark.parametrize("name, n", [("evo_test_data/KITTI_00_gt.txt", 1500), ("pyslam_kitti/06.txt", None)])
def test_agrees_with_evo_kitti(tmp_path, name, n):
    gt = read_kitti(gt_file(name))
    if n:
        gt = gt.subset(np.arange(n))
    gt_path = write_kitti(tmp_path / "gt.txt", gt)
    pred = perturb(gt, seed=2, r_noise=0.0005)
    worst = _evo_compare(write_kitti(tmp_path / "pred.txt", pred), gt_path, "kitti", 50.0, tmp_path)
    print(f"{name} worst relative difference to evo:", f"{max(worst.values()):.2e}")


# ---------------------------------------------------------------- behaviour


def test_rigid_and_scaled_copies():
    gt = read_kitti(gt_file("pyslam_kitti/06.txt")).subset(np.arange(300))
    A = np.eye(4)
    A[:3, :3] = matrix_from_quaternion([0.0, 0.3, 0.1, 0.9])
    A[:3, 3] = [10, 20, 30]
    moved = Trajectory(A @ gt.poses)
    s = pm.evaluate_trajectory(moved, gt).summary
    assert s["ate"]["se3"]["trans"]["rmse"] < 1e-9 and s["ate_se3_pct_of_path"] < 1e-9
    assert s["rpe"]["se3"]["rot_deg"]["max"] < 1e-6
    assert s["snippet_ate"]["mean"] < 1e-9

    half = gt.poses.copy()
    half[:, :3, 3] *= 0.5
    s = pm.evaluate_trajectory(Trajectory(A @ half), gt).summary
    assert s["ate"]["se3"]["pct_of_path"] > 5  # unscaled: fails the demo's acceptance
    assert s["ate"]["sim3"]["trans"]["rmse"] < 1e-9
    assert s["ate"]["sim3"]["alignment"]["scale"] == pytest.approx(2.0, rel=1e-9)
    assert s["snippet_ate"]["mean"] < 1e-9  # per-snippet scale forgives any global scale


def _reference_snippet_ate(gt_global: np.ndarray, pred_local: list[np.ndarray], track_length: int = 5):
    """Monodepth2 evaluate_pose.py, transcribed from the published code (numpy only)."""

    def dump_xyz(source_to_target_transformations):
        xyzs = []
        cam_to_world = np.eye(4)
        xyzs.append(cam_to_world[:3, 3])
        for source_to_target_transformation in source_to_target_transformations:
            cam_to_world = np.dot(cam_to_world, source_to_target_transformation)
            xyzs.append(cam_to_world[:3, 3])
        return xyzs

    def compute_ate(gtruth_xyz, pred_xyz_o):
        offset = gtruth_xyz[0] - pred_xyz_o[0]
        pred_xyz = pred_xyz_o + offset[None, :]
        scale = np.sum(gtruth_xyz * pred_xyz) / np.sum(pred_xyz**2)
        alignment_error = pred_xyz * scale - gtruth_xyz
        rmse = np.sqrt(np.sum(alignment_error**2)) / gtruth_xyz.shape[0]
        return rmse

    gt_local_poses = []
    for i in range(1, len(gt_global)):
        gt_local_poses.append(np.linalg.inv(np.dot(np.linalg.inv(gt_global[i - 1]), gt_global[i])))
    ates = []
    num_frames = gt_global.shape[0]
    for i in range(0, num_frames - 1):
        local_xyzs = np.array(dump_xyz(pred_local[i : i + track_length - 1]))
        gt_local_xyzs = np.array(dump_xyz(gt_local_poses[i : i + track_length - 1]))
        ates.append(compute_ate(gt_local_xyzs, local_xyzs))
    return np.mean(ates), np.std(ates)


def test_snippet_ate_matches_reference_on_real_kitti():
    gt = read_kitti(gt_file("pyslam_kitti/06.txt")).subset(np.arange(400))
    pred = perturb(gt, seed=5, scale=0.37, t_noise=0.02, r_noise=0.003)
    # the reference's pred_poses: the pose net's M for pair (i-1, i) = inv(camera motion)
    pred_local = [np.linalg.inv(np.linalg.inv(pred.poses[i - 1]) @ pred.poses[i]) for i in range(1, len(pred))]
    ref_mean, ref_std = _reference_snippet_ate(gt.poses, pred_local)
    ours = pm.snippet_ate(pred.poses, gt.poses)
    assert ours.values.size == len(gt) - 1
    assert ours.mean == pytest.approx(ref_mean, rel=1e-9)
    assert ours.std == pytest.approx(ref_std, rel=1e-9)
    assert ours.mean > 1e-3  # the noise is visible


def test_compute_ate_hand_case():
    g = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
    p = np.array([[5.0, 5, 5], [5.5, 5, 5], [6, 5, 5]])  # offset and half scale: perfect after alignment
    assert pm.compute_ate(g, p) == pytest.approx(0.0, abs=1e-12)
    p2 = np.array([[0.0, 0, 0], [1, 1, 0], [2, 0, 0]])  # scale s = 5/6; error² = 1/36+25/36+4/36 = 30/36
    assert pm.compute_ate(g, p2) == pytest.approx(np.sqrt(30 / 36) / 3, rel=1e-12)


def test_rpe_pairs_like_evo():
    assert pm.pairs_by_frames(10, 3).tolist() == [[0, 3], [3, 6], [6, 9]]
    assert pm.pairs_by_frames(5, 2, all_pairs=True).tolist() == [[0, 2], [1, 3], [2, 4]]
    pos = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0]])
    assert pm.pairs_by_distance(pos, 2.0).tolist() == [[0, 2], [2, 4]]


# ---------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "depth_node.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_cli_tum_json_and_plot(tmp_path):
    gt_path = gt_file("evo_test_data/freiburg1_xyz-groundtruth.txt")
    pred_path = write_tum(tmp_path / "pred.txt", perturb(read_tum(gt_path), seed=3))
    out = tmp_path / "pose.json"
    r = _cli("eval-pose", "--pred", str(pred_path), "--gt", str(gt_path), "--json", str(out),
             "--plot", str(tmp_path / "traj.png"), "--delta-m", "0.5", "--html", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["association"]["by"] == "time" and d["n_matched"] > 2900
    for mode in ("se3", "sim3"):
        assert d["ate"][mode]["trans"]["rmse"] > 0
        assert d["rpe"][mode]["rot_deg"]["n"] == d["n_matched"] - 1
        assert "trans_pct" in d["rpe_m"][mode]
    assert d["ate"]["sim3"]["trans"]["rmse"] <= d["ate"]["se3"]["trans"]["rmse"]
    assert d["ate_se3_pct_of_path"] == pytest.approx(100 * d["ate"]["se3"]["trans"]["rmse"] / d["gt_path_length"])
    assert d["snippet_ate"]["n_snippets"] == d["n_matched"] - 1
    assert (tmp_path / "traj.png").stat().st_size > 10_000
    assert "ate.se3.trans.rmse" in (tmp_path / "r.html").read_text()


def test_cli_kitti_acceptance_threshold(tmp_path):
    gt_path = gt_file("pyslam_kitti/06.txt")
    gt = read_kitti(gt_path)
    pred_path = write_kitti(tmp_path / "pred.txt", perturb(gt, seed=4, scale=1.0, r_noise=0.0003))
    ok = _cli("eval-pose", "--pred", str(pred_path), "--gt", str(gt_path), "--format", "kitti",
              "--json", str(tmp_path / "a.json"), "--max-ate-pct", "100")
    assert ok.returncode == 0, ok.stderr
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["association"]["by"] == "index" and d["acceptance"]["passed"] is True
    tight = _cli("eval-pose", "--pred", str(pred_path), "--gt", str(gt_path), "--json", str(tmp_path / "b.json"),
                 "--max-ate-pct", "0.0001")
    assert tight.returncode == 1 and "FAIL" in tight.stdout


def test_cli_malformed_file_exits_2_with_line(tmp_path):
    gt_path = gt_file("pyslam_kitti/06.txt")
    lines = gt_path.read_text().splitlines()[:50]
    lines[17] = " ".join(lines[17].split()[:11])  # 11 numbers on line 18
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines) + "\n")
    r = _cli("eval-pose", "--pred", str(bad), "--gt", str(gt_path), "--format", "kitti", "--json",
             str(tmp_path / "x.json"))
    assert r.returncode == 2
    assert f"{bad}:18: expected 12 numbers" in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_cli_length_mismatch_exits_2(tmp_path):
    gt_path = gt_file("pyslam_kitti/06.txt")
    short = write_kitti(tmp_path / "short.txt", read_kitti(gt_path).subset(np.arange(100)))
    r = _cli("eval-pose", "--pred", str(short), "--gt", str(gt_path), "--json", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "index by index" in r.stderr
