"""Odometry chaining, frame conventions, covariance growth and restarts (pure NumPy)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from depth_node.geometry.odometry import (
    OdometryNoise,
    VisualOdometry,
    default_camera_to_base,
    rotation_vector,
    transform_from_xyz_quat,
)
from depth_node.geometry.poses import OPTICAL_TO_BODY, invert_se3, quaternion_from_matrix


def _rot(axis: str, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def _T(R=None, t=(0, 0, 0)) -> np.ndarray:
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    T[:3, 3] = t
    return T


def test_forward_camera_motion_is_body_forward() -> None:
    vo = VisualOdometry()
    vo.start(0.0)
    for k in range(1, 11):  # camera moves 1 unit along optical z per frame
        vo.step(_T(t=(0, 0, 1.0)), stamp=0.1 * k, scale=2.0)
    np.testing.assert_allclose(vo.pose[:3, 3], [20.0, 0.0, 0.0], atol=1e-9)  # body x forward, scaled
    np.testing.assert_allclose(vo.twist[:3], [20.0, 0.0, 0.0], atol=1e-6)  # 2 m per 0.1 s
    assert vo.distance == pytest.approx(20.0)


def test_turn_left_is_positive_yaw() -> None:
    """Optical yaw-left is a rotation about −y (y points down); the body must report +z yaw."""
    vo = VisualOdometry()
    vo.start(0.0)
    step = _T(_rot("y", -math.radians(10)))
    for k in range(1, 10):
        vo.step(step, stamp=0.1 * k)
    yaw = math.atan2(vo.pose[1, 0], vo.pose[0, 0])
    assert yaw == pytest.approx(math.radians(90), abs=1e-9)
    assert vo.twist[5] == pytest.approx(math.radians(100), rel=1e-6)


def test_chain_matches_composed_ground_truth_with_extrinsic() -> None:
    """Random camera trajectory: chained motions reproduce the body trajectory for a non-trivial mount."""
    rng = np.random.default_rng(3)
    T_bc = transform_from_xyz_quat([1.2, 0.1, 1.5, *quaternion_from_matrix(OPTICAL_TO_BODY @ _rot("x", 0.1))])
    cam = [np.eye(4)]
    for _ in range(50):
        R = _rot("y", rng.normal(0, 0.05)) @ _rot("x", rng.normal(0, 0.01))
        cam.append(cam[-1] @ _T(R, rng.normal([0, 0, 1.0], 0.05)))
    vo = VisualOdometry(camera_to_base=T_bc)
    vo.start(0.0)
    for k in range(1, len(cam)):
        vo.step(invert_se3(cam[k - 1]) @ cam[k], stamp=0.1 * k)
    expect = T_bc @ cam[-1] @ invert_se3(T_bc)  # body pose in odom = body motion from the first frame
    np.testing.assert_allclose(vo.pose, expect, atol=1e-8)


def test_covariance_is_not_identity_and_grows() -> None:
    vo = VisualOdometry()
    vo.start(0.0)
    traces = []
    for k in range(1, 30):
        vo.step(_T(_rot("y", -0.02), (0, 0, 1.0)), stamp=0.1 * k, scale_rel_std=0.02)
        traces.append(np.trace(vo.covariance[:3, :3]))
        assert np.allclose(vo.covariance, vo.covariance.T)
        assert np.all(np.linalg.eigvalsh(vo.covariance) > 0)
    assert not np.allclose(vo.covariance, np.eye(6))
    assert all(b > a for a, b in itertools.pairwise(traces))
    # heading uncertainty turns into lateral (y) uncertainty growing faster than linearly
    assert vo.covariance[1, 1] > vo.covariance[0, 0]
    # more scale uncertainty → more covariance
    a, b = VisualOdometry(), VisualOdometry()
    for vo2, s in ((a, 0.0), (b, 0.2)):
        vo2.start(0.0)
        vo2.step(_T(t=(0, 0, 1.0)), 0.1, scale_rel_std=s)
    assert np.trace(b.covariance) > np.trace(a.covariance)
    assert np.all(np.diag(a.twist_covariance) > 0)


def test_stationary_covariance_grows_from_floor() -> None:
    vo = VisualOdometry(noise=OdometryNoise(translation_noise_floor=0.01))
    vo.start(0.0)
    vo.step(np.eye(4), 0.1)
    assert vo.covariance[0, 0] == pytest.approx(1e-4)


def test_time_checks_and_restarts() -> None:
    vo = VisualOdometry(max_gap=1.0)
    assert vo.check_time(5.0).kind == "first"
    vo.start(5.0)
    vo.step(_T(t=(0, 0, 1.0)), 5.1)
    assert vo.check_time(5.2).kind == "ok"
    assert vo.check_time(5.1).kind == "duplicate"
    assert vo.check_time(4.9).kind == "out_of_order"
    c = vo.check_time(1.0)
    assert c.kind == "jump_back" and c.restart
    assert vo.check_time(7.0).kind == "gap"
    # gap: pairing restarts, the pose is kept (odom stays continuous)
    vo.reset(keep_pose=True)
    np.testing.assert_allclose(vo.pose[:3, 3], [1.0, 0, 0])
    assert vo.check_time(7.0).kind == "first"
    # jump back (bag loop): back to the origin
    vo.reset(keep_pose=False)
    np.testing.assert_allclose(vo.pose, np.eye(4))
    assert vo.restarts == 2 and np.all(vo.covariance == 0)


def test_rotation_vector_round_trip() -> None:
    for ang in (0.0, 1e-9, 0.3, 2.0, math.pi - 1e-6):
        for axis in ("x", "y", "z"):
            rv = rotation_vector(_rot(axis, ang))
            assert np.linalg.norm(rv) == pytest.approx(ang, abs=1e-6)
    with pytest.raises(ValueError):
        transform_from_xyz_quat([0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(
        transform_from_xyz_quat([0, 0, 0, -0.5, 0.5, -0.5, 0.5]), default_camera_to_base(), atol=1e-12
    )


def test_planar_mode_keeps_the_body_on_the_ground_plane() -> None:
    """odom.planar: a camera that pitches and climbs a little each step yields level poses at z = 0, with the
    same heading and ground track as the full 6-DoF chain."""
    full, flat = VisualOdometry(), VisualOdometry(planar=True)
    step = _T(_rot("y", -math.radians(2)) @ _rot("x", math.radians(0.3)), t=(0.05, -0.02, 1.0))  # yaw, pitch, up
    for vo in (full, flat):
        vo.start(0.0)
        for k in range(1, 31):
            vo.step(step, stamp=0.1 * k)
    assert full.pose[2, 3] > 0.5  # the full chain climbs
    assert flat.pose[2, 3] == 0.0 and np.allclose(flat.pose[2, :3], [0, 0, 1]) and np.allclose(flat.pose[:3, 2],
                                                                                              [0, 0, 1])
    yaw = math.atan2(flat.pose[1, 0], flat.pose[0, 0])
    assert yaw == pytest.approx(math.radians(60), abs=0.01)  # 30 × 2° (the pitch tilts the full chain's yaw axis)
    assert np.hypot(*flat.pose[:2, 3]) == pytest.approx(np.hypot(*full.pose[:2, 3]), rel=0.02)
