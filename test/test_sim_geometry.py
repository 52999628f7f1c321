"""The ray caster's depth is exact: hand-built scenes against closed-form depths computed here independently."""

from __future__ import annotations

import numpy as np
import pytest

from depth_node.geometry.camera import Intrinsics
from depth_node.sim.labels import SemanticClass
from depth_node.sim.render import RayCaster
from depth_node.sim.road import Road
from depth_node.sim.scene import Kind, PrimitiveBuilder, Scene, Street
from depth_node.sim.trajectory import camera_pose_from

# integer principal point: the centre pixel's ray is exactly the optical axis
INTR = Intrinsics(80.0, 80.0, 40.0, 30.0, 81, 61)


def pixel_rays_world(T: np.ndarray, intr: Intrinsics) -> np.ndarray:
    u, v = np.meshgrid(np.arange(intr.width, dtype=np.float64), np.arange(intr.height, dtype=np.float64))
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)
    return rays @ T[:3, :3].T


def scene_of(builder: PrimitiveBuilder, ground: bool = False, street: Street | None = None) -> Scene:
    return Scene(static=builder.build(), ground=ground, street=street)


def test_axis_aligned_box_face_has_constant_depth():
    b = PrimitiveBuilder()
    b.box((10.0, 0.0, 1.65), (1.0, 3.0, 4.0), semantic=SemanticClass.BUILDING, instance=7)
    T = camera_pose_from((0.0, 0.0, 1.65), heading=0.0)
    out = RayCaster(INTR).render(scene_of(b), T)
    hit = out.instance == 7
    # the face spans ±3 m across at 9 m: |u - cx| ≤ 80·3/9 ≈ 26.7 px; ±4 m tall covers all 61 rows
    assert hit[:, 40 - 26 : 40 + 27].all() and not hit[:, :13].any() and not hit[:, 68:].any()
    np.testing.assert_allclose(out.depth[hit], 9.0, rtol=0, atol=2e-5)
    assert np.isinf(out.depth[~hit]).all()
    assert (out.semantic[hit] == SemanticClass.BUILDING).all() and (out.semantic[~hit] == SemanticClass.SKY).all()


def slab_depth(T: np.ndarray, centre, half, yaw: float) -> np.ndarray:
    """Independent float64 ray/oriented-box intersection per pixel (inf where missed)."""
    rays = pixel_rays_world(T, INTR)
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    o = R.T @ (T[:3, 3] - np.asarray(centre))
    d = rays @ R  # rows: R^T r
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-np.asarray(half) - o) / d
        t2 = (np.asarray(half) - o) / d
    tn = np.minimum(t1, t2).max(-1)
    tf = np.maximum(t1, t2).min(-1)
    return np.where((tn <= tf) & (tn > 0), tn, np.inf)


@pytest.mark.parametrize("yaw", [0.3, -0.9, 2.2])
def test_yawed_box_matches_closed_form(yaw):
    centre, half = (12.0, 1.5, 2.0), (2.0, 1.2, 2.5)
    b = PrimitiveBuilder()
    b.box(centre, half, yaw=yaw, instance=3)
    T = camera_pose_from((0.0, 0.0, 1.65), heading=0.1, pitch=0.05)
    out = RayCaster(INTR).render(scene_of(b), T)
    ref = slab_depth(T, centre, half, yaw)
    assert np.isfinite(ref).sum() > 200
    np.testing.assert_array_equal(np.isfinite(out.depth), np.isfinite(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(out.depth[fin], ref[fin], rtol=1e-5, atol=1e-5)


def test_flat_ground_depth_is_h_f_over_row_offset():
    T = camera_pose_from((3.0, -2.0, 1.65), heading=0.7)
    out = RayCaster(INTR).render(scene_of(PrimitiveBuilder(), ground=True), T)
    v = np.arange(INTR.height)[:, None].repeat(INTR.width, 1).astype(np.float64)
    below = v > INTR.cy
    expected = 1.65 * INTR.fy / (v[below] - INTR.cy)
    np.testing.assert_allclose(out.depth[below], expected, rtol=2e-6)
    assert np.isinf(out.depth[~below]).all()
    assert (out.semantic[below] == SemanticClass.ROAD).all()


def test_sphere_and_cylinder_on_the_optical_axis():
    b = PrimitiveBuilder()
    b.sphere((8.0, 0.0, 1.65), 1.5, instance=1)
    b.cylinder(5.0, 0.0, 0.0, 1.0, 0.4, instance=2)  # below the camera: seen in the lower image
    T = camera_pose_from((0.0, 0.0, 1.65), heading=0.0)
    out = RayCaster(INTR).render(scene_of(b), T)
    assert out.instance[30, 40] == 1
    assert out.depth[30, 40] == pytest.approx(8.0 - 1.5, abs=1e-5)
    # cylinder: the ray through row v hits the front surface line x = 5 - 0.4 at height 1.65 - (v - cy)/fy·z
    v = 30 + 15  # z = 4.6 → height 1.65 - 15/80·4.6 = 0.7875 ∈ [0, 1]
    assert out.instance[v, 40] == 2
    assert out.depth[v, 40] == pytest.approx(5.0 - 0.4, abs=1e-5)
    # its top cap, seen from above: a ray that meets z = 1 inside the disc
    T_up = camera_pose_from((0.0, 0.0, 3.0), heading=0.0, pitch=np.arctan2(2.0, 5.0))
    out = RayCaster(INTR).render(scene_of(b), T_up)
    # the optical axis now passes through (5, 0, 1): the cap's centre, at distance sqrt(25 + 4)
    assert out.instance[30, 40] == 2
    assert out.depth[30, 40] == pytest.approx(np.sqrt(29.0), abs=1e-4)


def test_street_heightfield_road_kerb_and_sidewalk_are_exact():
    street = Street(Road.straight(400.0), half_width=6.0, lane_width=3.5, sidewalk_width=3.5, kerb_height=0.15)
    # looking sideways at the left kerb: its face is the plane y = 6, parallel to the image plane
    cam_y = -1.75
    T = camera_pose_from((100.0, cam_y, 1.65), heading=np.pi / 2)
    intr = Intrinsics(200.0, 200.0, 60.0, 40.0, 121, 161)
    out = RayCaster(intr).render(Scene(static=PrimitiveBuilder().build(), ground=True, street=street), T)
    v = np.arange(intr.height)[:, None].repeat(intr.width, 1).astype(np.float64)
    z_road = 1.65 * intr.fy / np.maximum(v - intr.cy, 1e-9)
    z_side = (1.65 - 0.15) * intr.fy / np.maximum(v - intr.cy, 1e-9)
    kerb_z = 6.0 - cam_y
    road = z_road < kerb_z
    side = (z_side > kerb_z) & (v > intr.cy)
    kerb = ~road & ~side & (v > intr.cy)
    assert road.sum() > 100 and side.sum() > 100 and kerb.sum() > 100
    np.testing.assert_allclose(out.depth[road], z_road[road], rtol=2e-6)
    np.testing.assert_allclose(out.depth[side], z_side[side], rtol=2e-6)
    np.testing.assert_allclose(out.depth[kerb], kerb_z, atol=1e-4)
    assert (out.semantic[road] == SemanticClass.ROAD).all()
    walk = side & (z_side < 9.5 - cam_y)  # beyond the 3.5 m sidewalk lies terrain, at the same height
    assert (out.semantic[walk] == SemanticClass.SIDEWALK).all()
    assert (out.semantic[side & ~walk] == SemanticClass.TERRAIN).all()
    assert (out.semantic[kerb] == SemanticClass.SIDEWALK).all()


def test_curved_road_coordinates_round_trip():
    rng = np.random.default_rng(4)
    road = Road.generate(rng, 1500.0, curviness=0.9, min_radius=40.0)
    assert np.any(road.curvature != 0)
    s = rng.uniform(5.0, road.total_length - 5.0, 500)
    d = rng.uniform(-12.0, 12.0, 500)
    x, y, _ = road.point(s, d)
    s2, d2, nx, ny = road.locate(x, y)
    np.testing.assert_allclose(s2, s, atol=1e-6)
    np.testing.assert_allclose(d2, d, atol=1e-4)
    # the left normal at the closest centreline point
    _, _, th = road.pose(s)
    np.testing.assert_allclose(nx, -np.sin(th), atol=1e-5)
    np.testing.assert_allclose(ny, np.cos(th), atol=1e-5)


def test_primitive_kinds_cover_the_table():
    b = PrimitiveBuilder()
    b.box((0, 0, 0), (1, 1, 1))
    b.cylinder(0, 0, 0, 1, 0.5)
    b.sphere((0, 0, 0), 1)
    p = b.build()
    assert list(p.kind) == [Kind.BOX, Kind.CYLINDER, Kind.SPHERE]
    assert p.center.shape == (3, 3) and p.param.shape == (3, 4)
