"""Scale sources: fixed, stereo, ground plane (robust fit + smoothing), built explicitly from a node config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.scale import (
    GroundPlaneConfig,
    GroundPlaneScale,
    ScaleError,
    ScaleInput,
    resolve_source,
)
from depth_node.runtime.params import validate
from depth_node.runtime.scale_sources import build_scale_source

INTR = Intrinsics(360.0, 360.0, 320.0, 96.0, 640, 192)


def road_depth(height_m: float, pitch_deg: float, intr: Intrinsics = INTR, roll_deg: float = 0.0) -> np.ndarray:
    """Exact z-depth of a flat road seen by a camera `height_m` above it, pitched down; NaN above horizon."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    # road normal (toward the camera, "up") in optical coordinates: −y tilted by pitch (about x) and roll (about z)
    up = np.array([0.0, -1.0, 0.0])
    Rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    Rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    n = Rz @ Rx @ up
    u = (np.arange(intr.width) - intr.cx) / intr.fx
    v = (np.arange(intr.height) - intr.cy) / intr.fy
    rays = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)
    denom = rays @ n  # plane: n·p + h = 0 → z = −h / (n·ray)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(denom < -1e-6, height_m / -denom, np.nan)
    return z.astype(np.float32)


def noisy_scene(height_m: float, factor: float, seed: int, pitch: float = 2.0, roll: float = 0.0) -> np.ndarray:
    """Road seen in model units (depth / factor), 2 % noise, 25 % outliers in the road region, a car."""
    rng = np.random.default_rng(seed)
    d = road_depth(height_m, pitch, roll_deg=roll)
    d = d * (1.0 + 0.02 * rng.standard_normal(d.shape))
    h, _w = d.shape
    out = rng.random(d.shape) < 0.25
    d[out] = rng.uniform(1.0, 60.0, out.sum())  # obstacles, reflections, junk
    d[int(0.6 * h):int(0.8 * h), 250:380] = 8.0  # a car ahead: a fronto-parallel wall in the road region
    return (d / factor).astype(np.float32)


def test_ground_plane_recovers_height_within_one_percent_single_frame() -> None:
    factor = 7.3  # the model's unknown units: metres / factor
    est = GroundPlaneScale(GroundPlaneConfig(camera_height=1.65))
    s = est.update(ScaleInput(noisy_scene(1.65, factor, 0), INTR))
    assert s == pytest.approx(factor, rel=0.01)
    assert est.ready and est.last["fit"] == "ok"


@pytest.mark.parametrize("pitch,roll", [(0.0, 0.0), (5.0, 0.0), (-1.0, 3.0)])
def test_ground_plane_smoothed_over_frames(pitch: float, roll: float) -> None:
    factor = 0.37
    est = GroundPlaneScale(GroundPlaneConfig(camera_height=1.2, initial_scale=1.0))
    for k in range(15):
        est.update(ScaleInput(noisy_scene(1.2, factor, k, pitch, roll), INTR))
    assert est.scale == pytest.approx(factor, rel=0.01)
    assert est.rel_std < 0.05
    st = est.state()
    assert st["state"] == "tracking" and st["source"] == "ground_plane"


def test_ground_plane_gates_outlier_frames_and_reacquires() -> None:
    est = GroundPlaneScale(GroundPlaneConfig(camera_height=1.65, reacquire_after=4))
    for k in range(5):
        est.update(ScaleInput(noisy_scene(1.65, 2.0, k), INTR))
    assert est.scale == pytest.approx(2.0, rel=0.01)
    est.update(ScaleInput(noisy_scene(1.65, 4.0, 10), INTR))  # one wild frame: held
    assert est.scale == pytest.approx(2.0, rel=0.01) and est.rejected == 1
    for k in range(4):  # the scale really changed (new run): re-acquired
        est.update(ScaleInput(noisy_scene(1.65, 4.0, 20 + k), INTR))
    assert est.scale == pytest.approx(4.0, rel=0.02)


def test_ground_plane_without_road_holds_initial_scale() -> None:
    est = GroundPlaneScale(GroundPlaneConfig(initial_scale=3.0))
    wall = np.full((192, 640), 5.0, np.float32)  # nothing plane-like below the camera
    assert est.update(ScaleInput(wall, INTR)) == 3.0
    assert not est.ready and "waiting" in est.state()["state"]
    assert est.update(ScaleInput(np.full((192, 640), np.nan, np.float32), INTR)) == 3.0
    assert est.update(ScaleInput(wall, None)) == 3.0 and est.rel_std > 0.1


def test_runtime_changes_apply_on_the_next_frame() -> None:
    """A new camera height rescales the fitted scale at once (scale = height / plane distance: a 1.2 m camera seeing
    the plane that read as 1.65 m has factor × 1.2 / 1.65), not after many gated frames; a new initial scale
    applies while no plane has been fitted."""
    est = GroundPlaneScale(GroundPlaneConfig(camera_height=1.65, initial_scale=1.0))
    est.configure(initial_scale=3.0)
    assert est.scale == 3.0
    for k in range(5):
        est.update(ScaleInput(noisy_scene(1.65, 2.0, k), INTR))
    fitted = est.scale
    est.configure(camera_height=1.2)
    assert est.scale == pytest.approx(fitted * 1.2 / 1.65, rel=1e-12)
    assert est.update(ScaleInput(noisy_scene(1.65, 2.0, 9), INTR)) == pytest.approx(2.0 * 1.2 / 1.65, rel=0.01)
    assert est.rejected == 0


def _built(source: str, model_scale: dict, **params) -> object:
    return build_scale_source(validate({"scale_source": source, **params}), model_scale, np.eye(4))


def test_fixed_stereo_auto_and_explicit_sources() -> None:
    mono = {"kind": "relative", "factor": 1.0}
    stereo = {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}
    assert _built("fixed", mono, scale_factor=2.5).scale == 2.5
    assert _built("stereo", stereo).scale == 1.0  # DepthEstimator applied 5.4 already
    assert _built("stereo", stereo, stereo_baseline=0.12).scale == pytest.approx(0.12 / 0.54)
    with pytest.raises(ScaleError, match=r"stereo pairs.*'relative': use ground_plane .*metric_model or fixed"):
        _built("stereo", mono)
    with pytest.raises(ScaleError, match=r"'metric': use fixed, which applies the model's own metric factor"):
        _built("stereo", {"kind": "metric", "factor": 1.0})
    assert resolve_source("auto", mono) == "ground_plane"
    assert resolve_source("auto", stereo) == "stereo"
    assert resolve_source("auto", {"kind": "metric"}) == "fixed"
    assert _built("auto", {"kind": "metric"}).source == "fixed"
    with pytest.raises(ScaleError, match="unknown scale_source 'lidar'; choose one of auto, fixed, stereo"):
        resolve_source("lidar", mono)
    gp = _built("ground_plane", mono, **{"ground_plane.camera_height": 2.0, "ground_plane.roi_top": 0.5})
    assert isinstance(gp, GroundPlaneScale) and gp.cfg.camera_height == 2.0 and gp.cfg.roi_top == 0.5


def test_plane_of_is_the_same_whatever_was_fitted_before() -> None:
    """`plane_of` (odometry's per-frame road fit, one fitter reused) restarts its sampling from the seed: a frame's
    plane does not depend on the frames fitted before it, and equals a fresh fitter's; on exact road depth the
    height and normal are the road's."""
    a, b = noisy_scene(1.65, 1.0, 1), noisy_scene(1.2, 1.0, 2, pitch=4.0)
    reused = GroundPlaneScale()
    first = reused.plane_of(a, INTR)
    reused.plane_of(b, INTR)
    again = reused.plane_of(a, INTR)
    fresh = GroundPlaneScale().plane_of(a, INTR)
    assert first is not None and again is not None and fresh is not None
    np.testing.assert_array_equal(again[0], first[0])
    assert again[1] == first[1] == fresh[1]
    n, d = GroundPlaneScale().plane_of(road_depth(1.4, 3.0), INTR)
    p = math.radians(3.0)
    assert d == pytest.approx(1.4, rel=1e-6)
    np.testing.assert_allclose(n, [0.0, -math.cos(p), -math.sin(p)], atol=1e-6)
