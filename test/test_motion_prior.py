"""The odometry's constant-velocity prior (odom.motion_prior): the last step continued, and the refinement from
it at PRIOR_LEVELS on synthetic frames with exact ground truth; the shared gray pyramid changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from depth_node.geometry.odometry import rotation_vector
from depth_node.geometry.pose_refine import (
    PRIOR_ITERATIONS,
    PRIOR_LEVELS,
    PRIOR_STEP_RELAX,
    GrayPyramid,
    gray,
    refine_motion,
)
from depth_node.geometry.poses import invert_se3
from depth_node.runtime.pipeline import MAX_PRIOR_DT_RATIO, constant_velocity_prior


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' formula written out (independent of se3_exp)."""
    k = axis / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def _deg(T: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(rotation_vector(T[:3, :3]))))


def test_the_prior_continues_the_last_step_over_the_new_time_step_in_the_new_units():
    axis, angle = np.array([0.1, 1.0, -0.2]), np.radians(1.5)
    last = np.eye(4)
    last[:3, :3] = _axis_angle(axis, angle)
    last[:3, 3] = [0.05, -0.01, 1.2]  # in units where × 2.0 gives metres
    prior = constant_velocity_prior(last, 2.0, 0.1, 0.15, 2.1)  # 1.5× the time step, units where × 2.1 gives metres
    np.testing.assert_allclose(prior[:3, :3], _axis_angle(axis, 1.5 * angle), atol=1e-12)
    np.testing.assert_allclose(prior[:3, 3] * 2.1, 1.5 * last[:3, 3] * 2.0, rtol=1e-12)
    np.testing.assert_array_equal(prior[3], [0, 0, 0, 1])
    assert constant_velocity_prior(last, 2.0, 0.1, 0.1 * MAX_PRIOR_DT_RATIO + 1e-3, 2.0) is None  # frames lost
    assert constant_velocity_prior(last, 2.0, 0.0, 0.1, 2.0) is None
    assert constant_velocity_prior(last, 2.0, 0.1, 0.1, 0.0) is None


def test_no_prior_across_a_scale_correction():
    """A scale source's first fit (1 → 5.5), a re-acquire or a new camera height: the last step's metres were
    measured in the old, wrong units, so the pose network answers this step (the prior made it half its length).
    A small drift of the smoothed scale (≤ 10 %) still carries the step over, converted to the new units."""
    last = np.eye(4)
    last[:3, 3] = [0.0, 0.0, 1.0]
    assert constant_velocity_prior(last, 1.0, 0.1, 0.1, 5.46) is None
    assert constant_velocity_prior(last, 5.46, 0.1, 0.1, 1.0) is None
    near = constant_velocity_prior(last, 2.0, 0.1, 0.1, 2.1)
    np.testing.assert_allclose(near[:3, 3], [0.0, 0.0, 2.0 / 2.1], rtol=1e-12)


@pytest.fixture(scope="module")
def drive():
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive

    cfg = DriveConfig(seed=9003, frames=120)
    cfg.camera.width, cfg.camera.height = 320, 96
    return Drive(cfg)


def _depth(f) -> np.ndarray:
    return np.where(np.isfinite(f.depth), f.depth, np.nan).astype(np.float32)


@pytest.mark.parametrize("k", [11, 46, 81, 111])
def test_from_a_prior_off_by_half_a_degree_the_prior_levels_find_the_true_motion(drive, k):
    """A prior 0.5° off in yaw and 10 % too long (the vehicle turned and braked between the frames; the drive's
    own step-to-step change is ≤ 0.14°): the 1/2 and full-resolution levels alone, on exact depth, must bring
    the rotation within 0.06° and the translation within 2 %."""
    f0, f1 = drive.frame(k), drive.frame(k + 1)
    gt = invert_se3(f0.pose) @ f1.pose
    prior = gt.copy()
    prior[:3, :3] = gt[:3, :3] @ _axis_angle(np.array([0.0, 1.0, 0.0]), np.radians(0.5))  # optical y: yaw
    prior[:3, 3] *= 1.1
    res = refine_motion(gray(f0.rgb), gray(f1.rgb), _depth(f0), f0.intrinsics.K, prior, PRIOR_LEVELS,
                        PRIOR_ITERATIONS, step_relax=PRIOR_STEP_RELAX)
    assert res.used
    err = invert_se3(gt) @ res.motion
    assert _deg(err) < 0.06, _deg(err)
    assert np.linalg.norm(err[:3, 3]) < 0.02 * np.linalg.norm(gt[:3, 3])


def test_a_shared_pyramid_gives_what_fresh_images_give(drive):
    """A frame's GrayPyramid, already used as frame t+1 of one step, serves as frame t of the next with the
    same result as the plain gray images."""
    f0, f1, f2 = drive.frame(30), drive.frame(31), drive.frame(32)
    p0, p1, p2 = (GrayPyramid(gray(f.rgb)) for f in (f0, f1, f2))
    guess = np.eye(4)
    guess[2, 3] = 1.0
    a = refine_motion(p0, p1, _depth(f0), f0.intrinsics.K, guess)
    b = refine_motion(p1, p2, _depth(f1), f1.intrinsics.K, guess)
    c = refine_motion(gray(f1.rgb), gray(f2.rgb), _depth(f1), f1.intrinsics.K, guess)
    assert a.used and b.used
    np.testing.assert_array_equal(b.motion, c.motion)
