"""Organized clouds: depth_image_proc's layout, NaN placement, agreement with backprojection, speed."""

from __future__ import annotations

import time

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


def test_cloud_640x192_is_fast() -> None:
    """Goal: ≤ 2 ms for 640×192 xyz+rgb (median of repeated builds with cached rays)."""
    intr = Intrinsics(350.0, 350.0, 320.0, 96.0, 640, 192)
    d = (1.0 + 20.0 * np.random.default_rng(1).random((192, 640))).astype(np.float32)
    rgb = np.random.default_rng(2).integers(0, 255, (192, 640, 3), dtype=np.uint8)
    b = OrganizedCloudBuilder()
    times = []
    for _ in range(30):
        t = time.perf_counter()
        c = b.build(d, intr, rgb=rgb)
        bytes(cloud_bytes(c))
        times.append(time.perf_counter() - t)
    med = float(np.median(times)) * 1e3
    print(f"cloud 640x192 xyz+rgb: {med:.2f} ms")
    assert med < 8.0  # generous on a loaded 2-core CI machine; the bench reports the real figure


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
