"""Direct-alignment refinement of frame-to-frame motion (odom.refine) on synthetic frames with exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_node.geometry.odometry import rotation_vector
from depth_node.geometry.pose_refine import _image_jacobian, area_downsample, gray, refine_motion, se3_exp
from depth_node.geometry.poses import invert_se3, rot_from_axisangle


@pytest.fixture(scope="module")
def drive():
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive

    cfg = DriveConfig(seed=9003, frames=120)
    cfg.camera.width, cfg.camera.height = 320, 96
    return Drive(cfg)


def _deg(T: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(rotation_vector(T[:3, :3]))))


def test_se3_exp_matches_rodrigues_and_inverts():
    xi = np.array([0.3, -0.1, 1.2, 0.02, -0.5, 0.1])
    T = se3_exp(xi)
    R = rot_from_axisangle(torch.tensor(xi[3:], dtype=torch.float64).reshape(1, 1, 3))[0, :3, :3].numpy()
    np.testing.assert_allclose(T[:3, :3], R, atol=1e-6)  # the reference's helper adds 1e-7 to the angle
    np.testing.assert_allclose(se3_exp(-xi) @ T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(se3_exp(np.zeros(6)), np.eye(4))


@pytest.mark.parametrize("shape", [(6, 10), (3, 5), (5, 7)])
def test_area_downsample_is_the_mean_of_each_cells_window(shape):
    """Each output cell is the mean of its input window [floor(i·H/h), ceil((i+1)·H/h)) (adaptive average
    pooling), summed here cell by cell in float64: the same float32 numbers, whole cells or not."""
    a = (np.random.default_rng(1).random((12, 20)) * 50).astype(np.float32)
    h, w = shape
    want = np.empty(shape, np.float32)
    for i in range(h):
        for j in range(w):
            r0, r1 = (i * 12) // h, -((-(i + 1) * 12) // h)
            c0, c1 = (j * 20) // w, -((-(j + 1) * 20) // w)
            want[i, j] = np.float32(a[r0:r1, c0:c1].astype(np.float64).sum() / ((r1 - r0) * (c1 - c0)))
    got = area_downsample(a, h, w)
    if 12 % h == 0 and 20 % w == 0:
        np.testing.assert_array_equal(got, want)
    else:  # the integral image's differences round in the last bits
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_image_jacobian_is_the_gradient_through_the_projection():
    """gx·∂u/∂X + gy·∂v/∂X against central differences of the pinhole projection u = fx·X/Z + cx, v = fy·Y/Z + cy."""
    rng = np.random.default_rng(2)
    K = np.array([[210.0, 0.0, 160.0], [0.0, 190.0, 48.0], [0.0, 0.0, 1.0]])
    X = rng.normal(size=(50, 3)) + np.array([0.0, 0.0, 6.0])
    gx, gy = rng.normal(size=50), rng.normal(size=50)

    def f(P):  # the gradient-weighted projection
        return gx * (K[0, 0] * P[:, 0] / P[:, 2] + K[0, 2]) + gy * (K[1, 1] * P[:, 1] / P[:, 2] + K[1, 2])

    eps = 1e-6
    want = np.stack([(f(X + eps * e) - f(X - eps * e)) / (2 * eps) for e in np.eye(3)], 1)
    np.testing.assert_allclose(_image_jacobian(K, X, gx, gy), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k", [10, 45, 80, 110])
def test_a_constant_forward_guess_becomes_the_true_motion(drive, k):
    """The start is what an untrained pose net says (1 m straight ahead, no rotation); with the frame's exact
    depth the alignment must find the drive's motion, rotation included."""
    f0, f1 = drive.frame(k), drive.frame(k + 1)
    gt = invert_se3(f0.pose) @ f1.pose
    guess = np.eye(4)
    guess[2, 3] = 1.0
    depth = np.where(np.isfinite(f0.depth), f0.depth, np.nan).astype(np.float32)
    res = refine_motion(gray(f0.rgb), gray(f1.rgb), depth, f0.intrinsics.K, guess)
    assert res.used and res.residual_after < res.residual_before
    err = invert_se3(gt) @ res.motion
    assert _deg(err) < min(0.12, 0.6 * _deg(gt) + 0.03), (_deg(err), _deg(gt))  # the guess was off by _deg(gt)
    assert np.linalg.norm(err[:3, 3]) < 0.03 * max(np.linalg.norm(gt[:3, 3]), 0.5)


def test_depth_in_other_units_scales_the_translation_only(drive):
    f0, f1 = drive.frame(60), drive.frame(61)
    gt = invert_se3(f0.pose) @ f1.pose
    depth = np.where(np.isfinite(f0.depth), f0.depth, np.nan).astype(np.float32) / 5.4  # a stereo model's units
    res = refine_motion(gray(f0.rgb), gray(f1.rgb), depth, f0.intrinsics.K, np.eye(4))
    assert res.used
    np.testing.assert_allclose(res.motion[:3, 3] * 5.4, gt[:3, 3], atol=0.03)
    assert _deg(invert_se3(gt) @ res.motion) < 0.05


def test_unrelated_frames_keep_the_network_answer(drive):
    """Frames from far apart do not align: the refinement must not invent a motion."""
    f0, f1 = drive.frame(5), drive.frame(100)
    guess = np.eye(4)
    guess[2, 3] = 1.0
    depth = np.where(np.isfinite(f0.depth), f0.depth, np.nan).astype(np.float32)
    res = refine_motion(gray(f0.rgb), gray(f1.rgb), depth, f0.intrinsics.K, guess)
    if res.used:  # allowed only if it lowered the residual and stayed within 5° of the guess
        assert res.residual_after <= res.residual_before * 1.02
        assert _deg(invert_se3(guess) @ res.motion) <= 5.0
    else:
        np.testing.assert_array_equal(res.motion, guess)
    no_depth = np.full_like(depth, np.nan)
    res = refine_motion(gray(f0.rgb), gray(f1.rgb), no_depth, f0.intrinsics.K, guess)
    assert not res.used and np.array_equal(res.motion, guess)


def test_translation_is_not_biased_long_by_the_coarse_levels(drive):
    """With exact depth, the refined translation must have the true length on average.

    The coarse pyramid levels prefer longer translations (cells across occluding edges get a depth too far for
    the foreground edge they contain); the full-resolution level has to converge, not stop after a few
    iterations, or odometry comes out systematically long. The start is the true motion 10 % too long, like
    the pose network's translation on the demo drive."""
    ratios = []
    for k in range(8, 110, 3):
        f0, f1 = drive.frame(k), drive.frame(k + 1)
        gt = invert_se3(f0.pose) @ f1.pose
        length = float(np.linalg.norm(gt[:3, 3]))
        if length < 0.3:  # standing still: no scale to speak of
            continue
        guess = gt.copy()
        guess[:3, 3] *= 1.1
        depth = np.where(np.isfinite(f0.depth), f0.depth, np.nan).astype(np.float32)
        res = refine_motion(gray(f0.rgb), gray(f1.rgb), depth, f0.intrinsics.K, guess)
        ratios.append(float(np.linalg.norm(res.motion[:3, 3])) / length)
    r = np.array(ratios)
    assert r.size >= 20
    assert abs(r.mean() - 1.0) < 0.005, r.mean()  # 3 iterations at full resolution: +0.7 %
    assert np.abs(r - 1.0).max() < 0.03, r  # and one step stayed at the +10 % start


def _exact_depth(f) -> np.ndarray:
    return np.where(np.isfinite(f.depth), f.depth, np.nan).astype(np.float32)


def test_road_plane_of_exact_depth_is_the_camera_height(drive):
    from depth_node.geometry.pose_refine import road_plane

    f = drive.frame(30)
    n, d = road_plane(_exact_depth(f), f.intrinsics.K)
    assert d == pytest.approx(drive.config.camera.height_m, rel=0.01)
    assert n[1] < -0.99  # about −y: up in the optical frame (the camera is level up to the 0.3° sway)


@pytest.mark.parametrize("k", [20, 70])
def test_road_planes_restore_pitch_roll_and_height_but_not_yaw(drive, k):
    """A step with a pitch/roll and vertical error the road planes of both frames can see: the correction
    removes them and leaves the yaw and the forward motion alone."""
    from depth_node.geometry.pose_refine import road_consistent, road_plane

    f0, f1 = drive.frame(k), drive.frame(k + 1)
    gt = invert_se3(f0.pose) @ f1.pose
    p0, p1 = road_plane(_exact_depth(f0), f0.intrinsics.K), road_plane(_exact_depth(f1), f1.intrinsics.K)
    bad = gt.copy()
    bad[:3, :3] = gt[:3, :3] @ se3_exp(np.radians([0, 0, 0, 0.4, 0.0, 0.2]))[:3, :3]  # pitch + roll error
    bad[:3, 3] += [0.0, -0.04, 0.0]  # 4 cm up
    fixed = road_consistent(bad, p0, p1)
    err_bad, err_fixed = invert_se3(gt) @ bad, invert_se3(gt) @ fixed
    assert _deg(err_bad) > 0.4 and _deg(err_fixed) < 0.06, (_deg(err_bad), _deg(err_fixed))
    assert abs(err_fixed[1, 3]) < 0.01 and abs(fixed[2, 3] - gt[2, 3]) < 0.01
    yaw = se3_exp(np.radians([0, 0, 0, 0.0, 0.8, 0.0]))  # about optical y ≈ the road normal
    turned = road_consistent(gt @ yaw, p0, p1)
    assert _deg(invert_se3(gt) @ turned) == pytest.approx(0.8, abs=0.05)
    # a disagreement larger than a step can hold keeps the visual motion; no plane: unchanged
    tilted = gt.copy()
    tilted[:3, :3] = gt[:3, :3] @ se3_exp(np.radians([0, 0, 0, 3.0, 0, 0]))[:3, :3]
    np.testing.assert_allclose(road_consistent(tilted, p0, p1), tilted)
    np.testing.assert_allclose(road_consistent(bad, None, p1), bad)


def _yaw_deg(T: np.ndarray) -> float:
    """Rotation about the optical frame's y axis (down): the camera's yaw, signed."""
    return float(np.degrees(rotation_vector(T[:3, :3])[1]))


def test_depth_error_on_one_side_bends_the_yaw_less_with_depth_weighting(drive):
    """The demo's yaw drift in miniature: the depth of one side of the street 6 % too far (the network's error
    on near facades). Forward motion makes those pixels flow outward by less than they do, and the alignment
    explains the difference with a turn. Weighting each pixel by how much its residual depends on its depth
    (`depth_rel_std`) leaves rotation to the pixels whose flow the depth does not change: the mean yaw error
    over straight steps must at least halve, and exact depth must keep its accuracy. Both runs use the same
    dense sampling (3000 pixels, 20 iterations at full resolution) so that only the weighting differs."""
    errs = {0.0: [], None: []}
    exact_errs = []
    for k in range(10, 100, 6):
        f0, f1 = drive.frame(k), drive.frame(k + 1)
        gt = invert_se3(f0.pose) @ f1.pose
        depth = np.where(np.isfinite(f0.depth), f0.depth, np.nan).astype(np.float32)
        biased = depth.copy()
        biased[:, depth.shape[1] // 2:] *= 1.06
        for std in errs:
            kw = {} if std is None else {"depth_rel_std": std}
            res = refine_motion(gray(f0.rgb), gray(f1.rgb), biased, f0.intrinsics.K, gt, max_points=3000,
                                iterations=(12, 6, 20), **kw)
            errs[std].append(_yaw_deg(invert_se3(gt) @ res.motion))
        res = refine_motion(gray(f0.rgb), gray(f1.rgb), depth, f0.intrinsics.K, gt)
        exact_errs.append(_deg(invert_se3(gt) @ res.motion))
    plain, weighted = abs(np.mean(errs[0.0])), abs(np.mean(errs[None]))
    assert plain > 0.01, plain  # the bias is there without the weighting
    assert weighted < 0.5 * plain, (weighted, plain)
    assert max(exact_errs) < 0.05, exact_errs


def test_depth_consistency_residual_and_its_jacobian(drive):
    """The depth-consistency term (`geometric_weight`): on exact depth its residual 1 − Z'/D1 vanishes at the
    true motion (median |r| < 1 %, a few pixels at occluding edges aside) and not at a wrong one; its Jacobian
    matches central differences of the residual along the sideways and yaw directions it is used for
    (X' ← exp(ξ)·X')."""
    from depth_node.geometry.pose_refine import _Level

    f0, f1 = drive.frame(50), drive.frame(51)
    gt = invert_se3(f0.pose) @ f1.pose
    T = invert_se3(gt)  # camera t → camera t+1 point map, as the solver's T
    lv = _Level(gray(f0.rgb), gray(f1.rgb), _exact_depth(f0), f0.intrinsics.K, 1, 80.0, 1000, _exact_depth(f1))
    lv.residuals(T)
    r, J, X = lv.geo
    assert r.size > 300 and np.median(np.abs(r)) < 0.01
    off = se3_exp(np.array([0.3, 0, 0, 0, 0, 0])) @ T  # 30 cm sideways
    lv.residuals(off)
    assert np.median(np.abs(lv.geo[0])) > 5 * np.median(np.abs(r))
    lv.residuals(T)
    Jfull = np.concatenate([J, np.cross(X, J)], 1)
    h = 1e-4  # 0.1 mm, 0.006°: small against the motion, large against float noise
    checked = 0
    for j in (0, 4):  # the directions the term acts on (sideways, yaw: optical x, y); forward needs the Z' factor
        e = np.zeros(6)
        e[j] = h
        lv.residuals(se3_exp(e) @ T)
        rp = lv.geo[0]
        lv.residuals(se3_exp(-e) @ T)
        rm = lv.geo[0]
        if not rp.size == rm.size == r.size:  # a point crossed the valid area's edge: the sets differ
            continue
        num, a = (rp - rm) / (2 * h), Jfull[:, j]
        # the Jacobian uses central-difference gradients of 1/D1 and holds the Z' factor fixed (IRLS), and
        # points on depth edges have no useful derivative: compare the slope over the 90 % smoothest points
        smooth = np.abs(a) < np.quantile(np.abs(a), 0.9)
        slope = float(num[smooth] @ a[smooth] / (a[smooth] @ a[smooth]))
        corr = float(np.corrcoef(num[smooth], a[smooth])[0, 1])
        assert 0.9 < slope < 1.1 and corr > 0.9, (j, slope, corr)
        checked += 1
    assert checked == 2


def test_road_step_carries_a_smoothed_road_plane(drive):
    """The step is made consistent with frame t+1's plane pulled toward its fit by the gain, and that plane is
    what it hands on; gain 1 is the plain two-fit consistency; a disagreement too large for a step keeps the
    visual motion and hands on the fit."""
    from depth_node.geometry.pose_refine import road_consistent, road_plane, road_step

    f0, f1 = drive.frame(40), drive.frame(41)
    gt = invert_se3(f0.pose) @ f1.pose
    p0, p1 = road_plane(_exact_depth(f0), f0.intrinsics.K), road_plane(_exact_depth(f1), f1.intrinsics.K)
    bad = gt.copy()
    bad[:3, :3] = gt[:3, :3] @ se3_exp(np.radians([0, 0, 0, 0.3, 0.0, 0.0]))[:3, :3]
    motion, plane = road_step(bad, p0, p1, 0.25)
    # frame t's plane seen from t+1 (X_t = R X_t+1 + t): normal Rᵀn0, offset n0·t + d0; expected: the blend
    R, t = bad[:3, :3], bad[:3, 3]
    moved_n, moved_d = R.T @ p0[0], float(p0[0] @ t + p0[1])
    want_n = 0.75 * moved_n + 0.25 * p1[0]
    want_n /= np.linalg.norm(want_n)
    np.testing.assert_allclose(plane[0], want_n, atol=1e-12)
    assert plane[1] == pytest.approx(0.75 * moved_d + 0.25 * p1[1], rel=1e-12)
    Rf, tf = motion[:3, :3], motion[:3, 3]  # the returned motion carries frame t's plane onto that plane
    np.testing.assert_allclose(Rf.T @ p0[0], plane[0], atol=1e-9)
    assert float(p0[0] @ tf + p0[1]) == pytest.approx(plane[1], abs=1e-9)
    full, fit = road_step(bad, p0, p1, 1.0)
    np.testing.assert_allclose(full, road_consistent(bad, p0, p1), atol=1e-12)
    np.testing.assert_allclose(fit[0], p1[0], atol=1e-12)
    tilted = gt.copy()
    tilted[:3, :3] = gt[:3, :3] @ se3_exp(np.radians([0, 0, 0, 6.0, 0, 0]))[:3, :3]  # a quarter: 1.5° > 1°
    kept, handed = road_step(tilted, p0, p1, 0.25)
    np.testing.assert_array_equal(kept, tilted)
    assert handed is p1
    assert road_step(bad, None, p1)[1] is p1


def test_level_step_sets_the_ground_from_the_body_plane(drive):
    """At a chain's start the motion is kept and the ground handed on is the running mean of frame t's carried
    plane (moved by the step) and the body's own x–y plane at the fitted height; a fit further than 2° from the
    mount's level is taken as it is."""
    from depth_node.geometry.pose_refine import level_step, road_plane

    f0, f1 = drive.frame(40), drive.frame(41)
    gt = invert_se3(f0.pose) @ f1.pose
    p0, p1 = road_plane(_exact_depth(f0), f0.intrinsics.K), road_plane(_exact_depth(f1), f1.intrinsics.K)
    up = np.array([0.0, -1.0, 0.0])  # body z in the optical frame (REP 103 mount)
    motion, plane = level_step(gt, p0, p1, up, 1.0 / 3.0)
    np.testing.assert_array_equal(motion, gt)
    R, t = gt[:3, :3], gt[:3, 3]
    want_n = 2.0 / 3.0 * (R.T @ p0[0]) + 1.0 / 3.0 * up
    want_n /= np.linalg.norm(want_n)
    np.testing.assert_allclose(plane[0], want_n, atol=1e-12)
    assert plane[1] == pytest.approx(2.0 / 3.0 * float(p0[0] @ t + p0[1]) + 1.0 / 3.0 * p1[1], rel=1e-12)
    steep = (se3_exp(np.radians([0, 0, 0, 5.0, 0, 0]))[:3, :3] @ up, p1[1])  # 5° off the mount's level
    _, handed = level_step(gt, None, steep, up, 0.5)
    assert handed is steep
    _, first = level_step(gt, None, p1, up, 0.5)
    np.testing.assert_array_equal(first[0], up)
    assert level_step(gt, p0, None, up, 0.5)[1][1] == pytest.approx(float(p0[0] @ t + p0[1]))


def test_road_plane_uses_the_ground_plane_settings(drive):
    """The refinement's road fit is the ground-plane scale source's, with the node's `ground_plane.*` settings
    (region, thresholds), not its defaults: tuned for a camera, they reach the pitch/roll/height correction."""
    from depth_node.geometry.pose_refine import road_plane
    from depth_node.geometry.scale import GroundPlaneConfig, GroundPlaneScale

    f = drive.frame(30)
    rng = np.random.default_rng(0)
    depth = (_exact_depth(f) * (1 + 0.03 * rng.standard_normal(_exact_depth(f).shape))).astype(np.float32)
    intr = f.intrinsics
    tuned = GroundPlaneConfig(roi_top=0.85, inlier_threshold=0.02)
    got = road_plane(depth, intr.K, None, tuned)
    want = GroundPlaneScale(GroundPlaneConfig(roi_top=0.85, inlier_threshold=0.02)).plane_of(depth, intr)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]
    default = road_plane(depth, intr.K)
    assert default[1] != got[1]  # another region and threshold: another fit
