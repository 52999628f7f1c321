"""Organized clouds: depth_image_proc's layout, NaN placement, agreement with backprojection, a reused builder."""

from __future__ import annotations

import numpy as np
import pytest

from depth_node.geometry.camera import Intrinsics, backproject
from depth_node.geometry.pointcloud import (
    OrganizedCloudBuilder,
    build_cloud,
    cloud_bytes,
    cloud_dtype,
    cloud_layout,
    pack_rgb,
    unpack_rgb,
)

INTR = Intrinsics(300.0, 310.0, 159.5, 47.5, 320, 96)


def _depth(h: int = 96, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(0)
    d = (2.0 + 10.0 * rng.random((h, w))).astype(np.float32)
    d[5, 7] = np.nan
    d[6, 8] = 0.0
    d[7, 9] = -1.0
    d[8, 10] = np.inf
    return d


def _as_read_by_sensor_msgs_py(data: bytes, fields: list[tuple[str, int]], point_step: int, n: int) -> np.ndarray:
    """What sensor_msgs_py.point_cloud2.read_points does: a dtype from the field list and the point_step."""
    dt = np.dtype({"names": [f for f, _ in fields], "formats": ["<f4"] * len(fields),
                   "offsets": [o for _, o in fields], "itemsize": point_step})
    return np.frombuffer(data, dtype=dt, count=n)


@pytest.mark.parametrize("rgb", [False, True])
def test_layout_matches_depth_image_proc(rgb: bool) -> None:
    dt = cloud_dtype(rgb)
    if rgb:
        assert dt.itemsize == 32 and [dt.fields[n][1] for n in "x y z rgb".split()] == [0, 4, 8, 16]
    else:
        assert dt.itemsize == 16 and [dt.fields[n][1] for n in "xyz"] == [0, 4, 8]
    colours = np.zeros((96, 320, 3), np.uint8) if rgb else None
    cloud = build_cloud(_depth(), INTR, rgb=colours)
    lay = cloud_layout(cloud)
    assert (lay.height, lay.width, lay.point_step, lay.row_step) == (96, 320, dt.itemsize, 320 * dt.itemsize)
    fields = [("x", 0), ("y", 4), ("z", 8)] + ([("rgb", 16)] if rgb else [])
    back = _as_read_by_sensor_msgs_py(bytes(cloud_bytes(cloud)), fields, dt.itemsize, 96 * 320).reshape(96, 320)
    for f, _ in fields:
        np.testing.assert_array_equal(back[f], cloud[f])


def test_points_agree_with_backprojection_and_nan_where_invalid() -> None:
    d = _depth()
    cloud = build_cloud(d, INTR)
    ref = backproject(np.where(np.isfinite(d) & (d > 0), d, np.nan), INTR)
    for i, f in enumerate("xyz"):
        np.testing.assert_allclose(cloud[f], ref[..., i], rtol=1e-6, equal_nan=True)
    for v, u in [(5, 7), (6, 8), (7, 9), (8, 10)]:
        assert all(np.isnan(cloud[f][v, u]) for f in "xyz")
    assert np.isfinite(cloud["z"]).sum() == d.size - 4
    # projection of each point lands on its own pixel (organized: pixel (u, v) ↔ point [v, u])
    v, u = 40, 200
    p = cloud[v, u]
    assert INTR.fx * p["x"] / p["z"] + INTR.cx == pytest.approx(u, abs=1e-3)
    assert INTR.fy * p["y"] / p["z"] + INTR.cy == pytest.approx(v, abs=1e-3)


def test_stride_decimates_on_the_original_pixel_grid() -> None:
    d = _depth(97, 321)  # odd sizes
    intr = Intrinsics(300.0, 300.0, 160.0, 48.0, 321, 97)
    full = build_cloud(d, intr)
    dec = build_cloud(d, intr, stride=4)
    assert dec.shape == (25, 81)
    for f in "xyz":
        np.testing.assert_array_equal(dec[f], full[f][::4, ::4])


def test_rgb_packing_round_trips_and_matches_pcl() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 34, 56]]], np.uint8)
    packed = pack_rgb(rgb)
    words = packed.view(np.uint32)
    assert list(words[0]) == [0xFF0000, 0x00FF00, 0x0000FF, (12 << 16) | (34 << 8) | 56]
    np.testing.assert_array_equal(unpack_rgb(packed), rgb)
    d = np.full((1, 4), 3.0, np.float32)
    cloud = build_cloud(d, Intrinsics(2.0, 2.0, 1.5, 0.0, 4, 1), rgb=rgb)
    np.testing.assert_array_equal(unpack_rgb(cloud["rgb"]), rgb)


def test_max_range_and_errors() -> None:
    d = np.array([[1.0, 5.0, 50.0]], np.float32)
    cloud = build_cloud(d, Intrinsics(1.0, 1.0, 1.0, 0.0, 3, 1), max_range=10.0)
    assert np.isfinite(cloud["z"][0, :2]).all() and np.isnan(cloud["z"][0, 2])
    with pytest.raises(ValueError, match="intrinsics"):
        build_cloud(d, INTR)
    with pytest.raises(ValueError, match="stride"):
        build_cloud(d, Intrinsics(1.0, 1.0, 1.0, 0.0, 3, 1), stride=0)


def _expected_cloud(depth: np.ndarray, intr: Intrinsics, stride: int, max_range: float) -> np.ndarray:
    """x, y, z of each kept pixel by the pinhole formula, in float64: (u - cx) / fx · z, NaN where invalid."""
    z = depth[::stride, ::stride].astype(np.float64)
    z = np.where(np.isfinite(z) & (z > 0) & (z < (max_range or np.inf)), z, np.nan)
    u = np.arange(0, intr.width, stride, dtype=np.float64)[None, :]
    v = np.arange(0, intr.height, stride, dtype=np.float64)[:, None]
    return np.stack([(u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z], axis=-1)


def test_reused_builder_stays_right_frame_after_frame() -> None:
    """The node's builder keeps rays and one buffer across frames: each frame must still be its own cloud when
    depth, intrinsics, stride, colour and range change between frames (a stale cache or buffer shows here), and
    the padding bytes stay zero. (Its speed is in `depth-node bench --node`, not here.)"""
    rng = np.random.default_rng(1)
    a = Intrinsics(350.0, 350.0, 320.0, 96.0, 640, 192)
    b = Intrinsics(410.0, 395.0, 300.5, 90.25, 640, 192)
    builder = OrganizedCloudBuilder()
    for intr, stride, with_rgb, max_range in [(a, 1, True, 0.0), (a, 1, True, 0.0), (b, 1, True, 0.0),
                                              (b, 3, False, 0.0), (b, 3, True, 12.0), (a, 1, False, 0.0),
                                              (a, 1, True, 0.0)]:
        depth = (1.0 + 20.0 * rng.random((192, 640))).astype(np.float32)
        depth[rng.random((192, 640)) < 0.01] = np.nan
        rgb = rng.integers(0, 256, (192, 640, 3), dtype=np.uint8)
        cloud = builder.build(depth, intr, stride, rgb if with_rgb else None, max_range)
        want = _expected_cloud(depth, intr, stride, max_range)
        assert cloud.shape == want.shape[:2]
        for i, f in enumerate("xyz"):
            np.testing.assert_allclose(cloud[f], want[..., i], rtol=2e-7, atol=0, equal_nan=True)
        raw = np.frombuffer(bytes(cloud_bytes(cloud)), np.uint8).reshape(*cloud.shape, -1)
        assert raw.shape[-1] == (32 if with_rgb else 16)
        assert not raw[..., 12:16].any()  # padding after z
        if with_rgb:
            np.testing.assert_array_equal(raw[..., 16:19], rgb[::stride, ::stride, ::-1])  # B, G, R, 0
            assert not raw[..., 19:].any()


def test_colorize_for_people() -> None:
    """depth/colored: near is warm (turbo's red end), invalid is black, BGR channel order for bgr8."""
    from depth_node.colormap import colorize, lut

    d = np.array([[1.0, 100.0, np.nan, 0.0]], np.float32)
    rgb = colorize(d, "turbo", min_depth=1.0, max_depth=100.0, bgr=False)
    np.testing.assert_array_equal(rgb[0, 0], lut("turbo")[255])  # nearest → top of the map
    np.testing.assert_array_equal(rgb[0, 1], lut("turbo")[0])
    assert not rgb[0, 2:].any()
    bgr = colorize(d, "turbo", min_depth=1.0, max_depth=100.0)
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)
    assert rgb[0, 0, 0] > rgb[0, 0, 2]  # warm: more red than blue
    auto = colorize((1.0 + np.arange(200, dtype=np.float32)).reshape(10, 20))
    assert auto.shape == (10, 20, 3) and auto.dtype == np.uint8 and len(np.unique(auto.reshape(-1, 3), axis=0)) > 50
    assert not colorize(np.full((3, 3), np.nan, np.float32)).any()


def test_colorize_bounds_can_be_set_one_at_a_time() -> None:
    """colored_min_depth / colored_max_depth are set one at a time (ros2 param set): a bound left at 0 comes from
    the frame. With only the far end fixed at 50 m, a pixel at 50 m is the map's bottom and the frame's nearest
    2 % reach its top; with only the near end fixed at 2 m, a pixel at 2 m is the top."""
    from depth_node.colormap import colorize, lut
    from depth_node.runtime.params import ParamError, validate

    table = lut("turbo")
    d = np.linspace(2.0, 50.0, 1000, dtype=np.float32).reshape(10, 100)
    far = colorize(d, "turbo", 0.0, 50.0, bgr=False)
    np.testing.assert_array_equal(far[-1, -1], table[0])
    np.testing.assert_array_equal(far[0, 0], table[255])
    near = colorize(d, "turbo", 2.0, 0.0, bgr=False)
    np.testing.assert_array_equal(near[0, 0], table[255])
    np.testing.assert_array_equal(near[-1, -1], table[0])  # the frame's far 2 % share the bottom
    assert validate({"colored_min_depth": 1.0}).colored_min_depth == 1.0  # alone: fine
    assert validate({"colored_max_depth": 20.0}).colored_max_depth == 20.0
    with pytest.raises(ParamError, match="colored_min_depth must be < colored_max_depth"):
        validate({"colored_min_depth": 30.0, "colored_max_depth": 20.0})
