"""The wider synthetic world: sidewalk and indoor scenes, cameras by field of view / aspect / principal point,
mounting height, pitch and roll. Ground truth stays exact: depths of known planes against closed forms
computed here, determinism by seed, K as the settings say, and depth + poses that reproject between frames."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.sim import Drive, DriveConfig
from depth_node.sim.labels import SemanticClass
from depth_node.sim.render import RayCaster


def _config(kind: str, *sets: str, seed: int = 0, frames: int = 6) -> DriveConfig:
    cfg = DriveConfig().with_overrides([f"scene.kind={kind}", "camera.width=96", "camera.aspect=4:3", *sets])
    cfg.seed, cfg.frames = seed, frames
    return cfg


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _world_ray_z(intr: Intrinsics, pitch: float, roll: float) -> np.ndarray:
    """Vertical component of each pixel's ray (optical z = 1) for a camera pitched (> 0 down) and rolled
    (> 0 right side down) on level ground, whatever its heading: written from the definitions, not the code."""
    u, v = np.meshgrid(np.arange(intr.width, dtype=float), np.arange(intr.height, dtype=float))
    x, y = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    body = np.stack([np.ones_like(x), -x, -y], -1)  # optical (right, down, forward) → body (forward, left, up)
    return (body @ (_rot_y(pitch) @ _rot_x(roll)).T)[..., 2]


@pytest.mark.parametrize("hfov, aspect, size", [(90.0, "4:3", (96, 72)), (45.0, "16:9", (96, 54)),
                                                (110.0, "1:1", (96, 96)), (60.0, "10:3", (100, 30))])
def test_camera_settings_give_the_intrinsics(hfov, aspect, size):
    w = size[0]
    cfg = DriveConfig().with_overrides([f"camera.width={w}", f"camera.aspect={aspect}", f"camera.hfov_deg={hfov}",
                                        "camera.cx_offset=0.05", "camera.cy_offset=-0.1"])
    k = cfg.camera.intrinsics()
    f = (w / 2) / np.tan(np.radians(hfov) / 2)  # the image's outer pixel edges span the field of view
    assert (k.width, k.height) == size
    assert k.fx == pytest.approx(f, rel=1e-12) and k.fy == pytest.approx(f, rel=1e-12)
    assert k.cx == pytest.approx((w - 1) / 2 + 0.05 * w) and k.cy == pytest.approx((size[1] - 1) / 2 - 0.1 * size[1])
    assert Drive(DriveConfig().with_overrides([f"camera.width={w}", f"camera.aspect={aspect}"])).intrinsics.height \
        == size[1]


def test_bad_camera_and_scene_settings_are_clear_errors():
    with pytest.raises(DepthNodeError, match=r"camera\.aspect"):
        DriveConfig().with_overrides(["camera.aspect=5:4"]).camera.intrinsics()
    with pytest.raises(DepthNodeError, match=r"scene\.kind"):
        DriveConfig().with_overrides(["scene.kind=forest"])
    with pytest.raises(DepthNodeError, match="quote"):
        DriveConfig.from_dict({"camera": {"aspect": 969}})  # what YAML makes of an unquoted 16:9


def test_kind_preset_comes_first_and_overrides_win():
    cfg = DriveConfig().with_overrides(["camera.height_m=0.25", "scene.kind=sidewalk"])
    assert cfg.scene.kind == "sidewalk" and cfg.camera.height_m == 0.25 and cfg.trajectory.cruise_speed == 1.4
    assert DriveConfig.from_dict({"scene": {"kind": "indoor"}, "camera": {"height_m": 0.3}}).camera.height_m == 0.3
    assert DriveConfig().with_overrides(["scene.kind=indoor"]).traffic.lead_cars == 0


@pytest.mark.parametrize("layout", ["corridor", "warehouse", "office"])
def test_indoor_floor_and_ceiling_depth_are_exact_with_pitch_and_roll(layout):
    h, pitch, roll = 0.45, 6.0, -2.5
    cfg = _config("indoor", f"indoor.layout={layout}", f"camera.height_m={h}", f"camera.pitch_deg={pitch}",
                  f"camera.roll_deg={roll}", "trajectory.pitch_wobble_deg=0", "camera.hfov_deg=100", seed=3)
    d = Drive(cfg)
    f = d.frame(2)
    assert d.layout.kind == layout
    wz = _world_ray_z(f.intrinsics, np.radians(pitch), np.radians(roll))
    floor = f.semantic == SemanticClass.FLOOR
    assert floor.sum() > 0.1 * floor.size
    np.testing.assert_allclose(f.depth[floor], h / -wz[floor], rtol=2e-6)
    ceil = f.semantic == SemanticClass.CEILING
    if ceil.any():  # mostly the slab's underside; the rest on light fittings (4 cm tall) under it
        slab = np.isclose(f.depth, (d.layout.ceiling - h) / wz, rtol=2e-6)
        z = h + f.depth * wz  # height of the hit
        assert slab[ceil].mean() > 0.8
        assert (z[ceil] > d.layout.ceiling - 0.04 - 1e-5).all() and (z[ceil] < d.layout.ceiling + 1e-5).all()
    assert np.isfinite(f.depth).all()  # a closed room: no sky anywhere
    assert (f.depth > 0.2).all()  # the lane keeps the camera clear of every object


def test_sidewalk_camera_height_above_the_sidewalk():
    h, pitch = 0.3, 4.0
    cfg = _config("sidewalk", f"camera.height_m={h}", f"camera.pitch_deg={pitch}", "trajectory.pitch_wobble_deg=0",
                  "traffic.oncoming_cars=0", seed=5)
    f = Drive(cfg).frame(3)
    wz = _world_ray_z(f.intrinsics, np.radians(pitch), 0.0)
    near_walk = (f.semantic == SemanticClass.SIDEWALK) & (f.depth < 8.0)
    assert near_walk.sum() > 0.15 * near_walk.size
    np.testing.assert_allclose(f.depth[near_walk], h / -wz[near_walk], rtol=2e-6)


@pytest.mark.parametrize("kind", ["sidewalk", "indoor"])
def test_same_seed_same_frames_other_seed_other_frames(kind):
    a, b = Drive(_config(kind, seed=7)).frame(4), Drive(_config(kind, seed=7)).frame(4)
    for name in ("rgb", "depth", "semantic", "instance", "pose"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = Drive(_config(kind, seed=8)).frame(4)
    assert not np.array_equal(a.depth, c.depth) and not np.array_equal(a.rgb, c.rgb)


@pytest.mark.parametrize("kind, sets", [("indoor", ("indoor.layout=office",)),
                                        ("sidewalk", ("traffic.lead_cars=1",))])
def test_depth_and_poses_reproject_between_frames(kind, sets):
    """Points seen in frame 0, moved by the GT relative pose into frame 8, are exactly where frame 8's own ray
    through their projection ends (or behind what that ray hits first: occlusion can only make it shorter)."""
    cfg = _config(kind, "camera.pitch_deg=3", "camera.roll_deg=1", *sets, seed=11, frames=10)
    d = Drive(cfg)
    f0, f1 = d.frame(0), d.frame(8)
    k = f0.intrinsics
    rng = np.random.default_rng(0)
    # static points far enough to stay in front after the move
    vs, us = np.nonzero((f0.depth > 2.0) & (f0.depth < 40.0) & ~f0.moving_mask())
    pick = rng.choice(len(us), 60, replace=False)
    z0 = f0.depth[vs[pick], us[pick]].astype(np.float64)
    X0 = np.stack([(us[pick] - k.cx) / k.fx * z0, (vs[pick] - k.cy) / k.fy * z0, z0, np.ones_like(z0)])
    X1 = np.linalg.inv(f1.pose) @ f0.pose @ X0
    assert np.linalg.norm(f1.pose[:3, 3] - f0.pose[:3, 3]) > 0.3  # the camera really moved
    t = d.time(8)
    agree = tried = 0
    for x, y, z in X1[:3].T:
        u, v = k.fx * x / z + k.cx, k.fy * y / z + k.cy
        if z < 0.5 or not (-0.5 < u < k.width - 0.5 and -0.5 < v < k.height - 0.5):
            continue  # out of frame 8's view
        tried += 1
        ray = RayCaster(Intrinsics(k.fx, k.fy, k.cx - u, k.cy - v, 1, 1))  # its only pixel looks through (u, v)
        seen = float(ray.render(d.scene, d.world_pose(8), t, float(d.path.arc_length(t))).depth[0, 0])
        assert seen <= z * (1 + 2e-5) + 1e-5
        agree += abs(seen - z) <= 2e-5 * z + 1e-5
    assert tried >= 30 and agree >= 0.75 * tried  # the others hide behind nearer surfaces (never farther)


def test_synth_cli_reaches_the_new_settings(tmp_path):
    out = tmp_path / "indoor"
    r = subprocess.run([sys.executable, "-m", "depth_node.cli", "synth", "--out", str(out), "--frames", "2",
                        "--width", "64", "--height", "8", "--set", "camera.aspect=4:3", "--set", "scene.kind=indoor",
                        "--set", "camera.hfov_deg=90", "--set", "camera.height_m=0.35", "--workers", "1",
                        "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    from depth_node.io.kitti_folder import KittiDrive

    drive = KittiDrive(out)
    k = drive.intrinsics
    assert (k.width, k.height) == (64, 48) and k.fx == pytest.approx(32.0, rel=1e-6)
    assert drive.image(drive.frame_ids[0]).shape == (48, 64, 3)
    assert "64×48" in r.stdout


@pytest.mark.parametrize("kind", ["sidewalk", "indoor"])
def test_the_camera_path_stays_clear_of_every_object(kind):
    """Over whole drives (300 frames, several seeds, every indoor layout), the camera centre keeps 15 cm from
    every static primitive's box: it never drives into furniture, racks, kiosks, trees or poles."""
    layouts = set()
    for seed in range(4):
        cfg = DriveConfig().with_overrides([f"scene.kind={kind}", "camera.width=32", "camera.aspect=4:3"])
        cfg.seed, cfg.frames = seed, 300
        d = Drive(cfg)
        p = d.scene.static
        for k in range(0, 300, 3):
            rel = d.world_pose(k)[:3, 3][None, :] - p.center
            c, s = np.cos(p.yaw), np.sin(p.yaw)
            local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], 1)
            assert not (np.abs(local) < p.half + 0.15).all(axis=1).any(), f"seed {seed} frame {k}"
        layouts.add(d.layout.kind if d.layout else kind)
    assert layouts == ({"corridor", "warehouse", "office"} if kind == "indoor" else {"sidewalk"})


def test_ground_shadow_of_a_plate_is_the_plate_moved_along_the_sun():
    """A 2 × 1 m plate 1.5 m up with the sun at (0.3, −0.2, 0.93): its shadow on z = 0 is the plate shifted by
    −1.5·(sx, sy)/sz; ground points inside are shadowed, outside lit; also exact for a sphere's disc."""
    from depth_node.sim.render import _in_shadow
    from depth_node.sim.scene import PrimitiveBuilder

    sun = np.array([0.3, -0.2, 0.93])
    sun /= np.linalg.norm(sun)
    b = PrimitiveBuilder()
    b.box((4.0, 1.0, 1.5), (1.0, 0.5, 0.02))
    b.sphere((-4.0, 0.0, 2.0), 0.5)
    xs, ys = np.meshgrid(np.linspace(-8, 8, 321), np.linspace(-4, 4, 161))
    P = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1)
    got = _in_shadow(b.build(), sun, P)
    # plate: its underside z = 1.48 and top 1.52 shift differently: inside both shifts → shadow; outside both → lit
    shifts = [z * sun[:2] / sun[2] for z in (1.48, 1.52)]
    inside = [(np.abs(P[:, 0] + sx - 4.0) < 1.0) & (np.abs(P[:, 1] + sy - 1.0) < 0.5) for sx, sy in shifts]
    # sphere: the ray from P along the sun passes within 0.5 m of its centre
    rel = np.array([-4.0, 0.0, 2.0]) - P
    miss = np.linalg.norm(rel - (rel @ sun)[:, None] * sun, axis=1)
    sure_in = (inside[0] & inside[1]) | (miss < 0.5 - 1e-6)
    sure_out = ~(inside[0] | inside[1]) & (miss > 0.5 + 1e-6)
    assert sure_in.sum() > 200 and got[sure_in].all() and not got[sure_out].any()


def test_shadows_darken_only_the_ground_they_fall_on():
    cfg = _config("street", "traffic.oncoming_cars=0", seed=2)
    lit = Drive(cfg).frame(1)
    shaded = Drive(cfg.with_overrides(["lighting.shadows=true"])).frame(1)
    np.testing.assert_array_equal(lit.depth, shaded.depth)
    darker = shaded.rgb.astype(int).sum(2) < lit.rgb.astype(int).sum(2)
    ground = np.isin(lit.semantic, [SemanticClass.ROAD, SemanticClass.SIDEWALK, SemanticClass.TERRAIN])
    assert darker.any() and not (darker & ~ground).any()
    assert (shaded.rgb.astype(int).sum(2) <= lit.rgb.astype(int).sum(2)).all()
