"""Synthetic drives: ground truth consistent with the images (reprojection), determinism, motion profile."""

from __future__ import annotations

import numpy as np
import pytest

from depth_node.geometry.camera import backproject, project
from depth_node.geometry.poses import OPTICAL_TO_BODY, invert_se3
from depth_node.sim import Drive, DriveConfig, render_drive
from depth_node.sim.labels import SemanticClass


def config(seed: int = 5, frames: int = 30, width: int = 640, height: int = 192, **traffic) -> DriveConfig:
    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera.width, cfg.camera.height = width, height
    cfg.traffic.oncoming_cars = traffic.get("oncoming", 0)
    cfg.traffic.lead_cars = traffic.get("lead", 0)
    return cfg


@pytest.fixture(scope="module")
def static_pair():
    """Two consecutive stereo frames of a drive without moving objects, at the training resolution."""
    cfg = config(seed=5, frames=30)
    cfg.camera.stereo = True
    drive = Drive(cfg)
    return drive.frame(12), drive.frame(13)


def bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    H, W = img.shape[:2]
    u0 = np.clip(np.floor(u).astype(int), 0, W - 2)
    v0 = np.clip(np.floor(v).astype(int), 0, H - 2)
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    a, b, c, d = img[v0, u0], img[v0, u0 + 1], img[v0 + 1, u0], img[v0 + 1, u0 + 1]
    return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv


def interior(depth: np.ndarray) -> np.ndarray:
    """Pixels whose 3×3 neighbourhood lies on one smooth surface: not at an occlusion edge, where a pixel's
    colour mixes two surfaces under any resampling."""
    d = np.where(np.isfinite(depth), depth, 1e6)
    pad = np.pad(d, 1, mode="edge")
    H, W = d.shape
    nb = np.stack([pad[i : i + H, j : j + W] for i in range(3) for j in range(3)])
    return (nb.max(0) - nb.min(0)) < 0.05 * d


def photometric_check(src_rgb, src_depth_next, ref, T_next_ref, baseline_only=False):
    """Warp `src_rgb` (the other view) into the reference view with the reference's GT depth and the GT motion;
    returns per-pixel abs error (0-1) over valid pixels."""
    K = ref.intrinsics
    P = backproject(ref.depth, K).reshape(-1, 3).astype(np.float64)
    fin = np.isfinite(P).all(1)
    Q = np.where(fin[:, None], P, 1.0) @ T_next_ref[:3, :3].T + T_next_ref[:3, 3]
    uv, z = project(Q, K)
    u, v = uv[:, 0], uv[:, 1]
    H, W = ref.depth.shape
    ok = fin & (z > 0.5) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    ui = np.clip(np.round(np.nan_to_num(u)).astype(int), 0, W - 1)
    vi = np.clip(np.round(np.nan_to_num(v)).astype(int), 0, H - 1)
    ok &= np.abs(src_depth_next[vi, ui] - z) < 0.02 * z + 0.05  # not occluded in the other view
    ok &= interior(ref.depth).reshape(-1)
    warped = bilinear(src_rgb.astype(np.float32) / 255, np.nan_to_num(u), np.nan_to_num(v))
    err = np.abs(warped - ref.rgb.reshape(-1, 3).astype(np.float32) / 255).mean(1)
    return err[ok], ok


def test_next_frame_reprojects_onto_this_one(static_pair):
    f0, f1 = static_pair
    assert np.linalg.norm(f1.pose[:3, 3] - f0.pose[:3, 3]) > 0.3  # the car moved
    T = invert_se3(f1.pose) @ f0.pose
    err, ok = photometric_check(f1.rgb, f1.depth, f0, T)
    assert ok.mean() > 0.6
    assert np.median(err) < 2 / 255
    assert (err < 6 / 255).mean() > 0.9
    # and the check has teeth: a translation 30 % too long breaks it
    T_bad = T.copy()
    T_bad[:3, 3] *= 1.3
    err_bad, _ = photometric_check(f1.rgb, f1.depth, f0, T_bad)
    assert np.median(err_bad) > 2 * np.median(err) and (err_bad < 6 / 255).mean() < 0.85


def test_right_view_warps_onto_left_with_054_m_baseline(static_pair):
    f0, _ = static_pair
    assert f0.rgb_right is not None and f0.baseline == pytest.approx(0.54)
    T_right_left = invert_se3(f0.pose_right) @ f0.pose
    np.testing.assert_allclose(T_right_left[:3, 3], [-0.54, 0, 0], atol=1e-12)
    err, ok = photometric_check(f0.rgb_right, f0.depth_right, f0, T_right_left)
    assert ok.mean() > 0.6
    assert np.median(err) < 2 / 255
    assert (err < 6 / 255).mean() > 0.9
    # rectified: a left pixel and its match share the row, and depth = fx·B / disparity
    K = f0.intrinsics
    v, u = 150, 320
    z = float(f0.depth[v, u])
    u_r = u - K.fx * 0.54 / z
    assert f0.depth_right[v, round(u_r)] == pytest.approx(z, rel=0.02)


def test_same_seed_same_frames_other_seed_other_frames():
    a = list(render_drive(config(seed=11, frames=3, width=160, height=48, oncoming=2, lead=1)))
    b = list(render_drive(config(seed=11, frames=3, width=160, height=48, oncoming=2, lead=1)))
    c = list(render_drive(config(seed=12, frames=3, width=160, height=48, oncoming=2, lead=1)))
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.rgb, fb.rgb)
        np.testing.assert_array_equal(fa.depth, fb.depth)
        np.testing.assert_array_equal(fa.instance, fb.instance)
        np.testing.assert_array_equal(fa.pose, fb.pose)
        assert fa.stamp_ns == fb.stamp_ns
    assert not np.array_equal(a[1].rgb, c[1].rgb)
    assert not np.allclose(a[-1].pose, c[-1].pose)


def test_config_changes_what_it_names():
    base = config(seed=3, frames=2, width=160, height=48)
    dense = base.with_overrides(["scene.building_density=0.0", "lighting.sun_intensity=0.2"])
    assert dense.scene.building_density == 0.0 and base.scene.building_density > 0
    # the road and the ego path do not depend on scene content: same poses, different pictures
    d0, d1 = Drive(base), Drive(dense)
    np.testing.assert_allclose(d0.poses(), d1.poses())
    assert not any(d1.scene.static.semantic == SemanticClass.BUILDING)
    assert any(d0.scene.static.semantic == SemanticClass.BUILDING)


def test_intrinsics_default_to_kitti_and_scale_with_size():
    cfg = DriveConfig()
    K = cfg.camera.intrinsics()
    assert (K.width, K.height, K.fx, K.cx, K.cy) == (1242, 375, 721.5377, 609.5593, 172.854)
    small = config(width=640, height=192).camera.intrinsics()
    assert small.fx == pytest.approx(721.5377 * 640 / 1242) and small.fy == pytest.approx(721.5377 * 192 / 375)
    assert small.cy == pytest.approx(172.854 * 192 / 375)


def test_speed_profile_curves_and_stops():
    cfg = config(seed=2, frames=1200)
    cfg.trajectory.stops_per_km = 6.0
    cfg.trajectory.curviness = 0.8
    drive = Drive(cfg)
    P = drive.poses()
    np.testing.assert_allclose(P[0], np.eye(4), atol=1e-12)
    step = np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1)
    moving = step > 0.05
    assert 0.6 < np.median(step[moving]) < 1.4  # about KITTI's 1 m per frame at 10 Hz
    assert (step < 1e-6).sum() >= 10  # full stops: consecutive identical poses (static frames)
    # the heading turns: optical z axes of first and some later frame differ by more than 20°
    cosang = np.clip(np.einsum("i,ni->n", P[0, :3, 2], P[:, :3, 2]), -1, 1)
    assert np.degrees(np.arccos(cosang)).max() > 20
    # camera stays at about 1.65 m over the road: the y (down) axis of frame 0 changes little
    assert np.abs(P[:, 1, 3]).max() < 0.5 + 0.02 * np.abs(P[:, :3, 3]).max()


def test_twist_agrees_with_pose_differences():
    drive = Drive(config(seed=4, frames=60))
    dt = 1.0 / drive.config.trajectory.fps
    for k in (5, 30, 50):
        T0 = invert_se3(drive.pose(k)) @ drive.pose(k + 1)  # camera motion k → k+1 in the camera frame
        body = OPTICAL_TO_BODY @ T0[:3, 3] / dt
        tw = drive.twist(k)
        np.testing.assert_allclose(tw[:3], body, atol=0.15 * max(1.0, np.linalg.norm(body)))
        assert tw[0] > 0  # forward


def test_labels_and_moving_objects():
    cfg = config(seed=9, frames=5, width=320, height=96, oncoming=3, lead=1)
    frames = list(render_drive(cfg))
    f = frames[0]
    present = set(np.unique(f.semantic).tolist())
    assert {SemanticClass.SKY, SemanticClass.ROAD, SemanticClass.BUILDING} <= present
    assert (f.instance[f.semantic == SemanticClass.SKY] == 0).all()
    assert (f.instance[f.semantic == SemanticClass.ROAD] == 0).all()
    assert np.isinf(f.depth[f.semantic == SemanticClass.SKY]).all()
    assert np.isfinite(f.depth[f.semantic != SemanticClass.SKY]).all()
    # the lead car drives ahead in our lane, at about our speed: visible in every frame, in the image centre
    assert len(f.moving_instances) == 4
    for fr in frames:
        mask = fr.moving_mask()
        assert mask.sum() > 20
        assert (fr.semantic[mask] == SemanticClass.CAR).all()
    # yet it moves in the world: its depth stays about constant while the camera advances ~1 m per frame
    lead = frames[0].moving_instances[0]
    z0 = np.median(frames[0].depth[frames[0].instance == lead])
    z4 = np.median(frames[4].depth[frames[4].instance == lead])
    travelled = np.linalg.norm(frames[4].pose[:3, 3] - frames[0].pose[:3, 3])
    assert travelled > 2.0 and abs(z4 - z0) < travelled / 2


def test_texture_has_gradients_at_full_and_eighth_resolution(static_pair):
    f0, _ = static_pair
    g = f0.rgb.astype(np.float32).mean(2)
    ground_truth_valid = np.isfinite(f0.depth)
    for s, min_median in ((1, 2.0), (8, 6.0)):
        h, w = g.shape[0] // s, g.shape[1] // s
        gs = g[: h * s, : w * s].reshape(h, s, w, s).mean((1, 3))
        valid = ground_truth_valid[: h * s, : w * s].reshape(h, s, w, s).all((1, 3))[:-1, :-1]
        grad = np.hypot(np.abs(np.diff(gs, axis=1))[:-1], np.abs(np.diff(gs, axis=0))[:, :-1])
        assert np.median(grad[valid]) > min_median, f"too little texture at 1/{s}"
