"""Camera effects on the synthetic RGB: off by default (drives render as before), ground truth untouched when
on, reproducible by seed, and each effect does what its setting says (expectations written out here)."""

from __future__ import annotations

import numpy as np
import pytest

from depth_node.sim import Drive, DriveConfig
from depth_node.sim.config import PhotoConfig
from depth_node.sim.photometric import PhotoParams, apply, vignette

EFFECTS = ["photo.exposure_stops=0.7", "photo.exposure_drift=0.3", "photo.white_balance=0.12",
           "photo.vignetting=0.35", "photo.noise=0.03", "photo.read_noise=0.01", "photo.jpeg_quality=[40, 90]"]


def _drive(*sets: str, seed: int = 4) -> Drive:
    cfg = DriveConfig().with_overrides(["scene.kind=indoor", "camera.width=64", "camera.aspect=4:3", *sets])
    cfg.seed, cfg.frames = seed, 4
    return Drive(cfg)


def test_off_by_default_and_ground_truth_untouched_when_on():
    plain = _drive()
    assert plain.photo is None
    f = plain.frame(2)
    t = plain.time(2)
    raw = plain.caster.render(plain.scene, plain.world_pose(2), t, float(plain.path.arc_length(t)))
    np.testing.assert_array_equal(f.rgb, raw.rgb)  # no effect applied: the renderer's own pixels
    a, b = _drive(*EFFECTS).frame(2), _drive(*EFFECTS).frame(2)
    for name in ("depth", "semantic", "instance", "pose"):
        np.testing.assert_array_equal(getattr(a, name), getattr(f, name))
    np.testing.assert_array_equal(a.rgb, b.rgb)  # reproducible by seed
    assert np.abs(a.rgb.astype(int) - f.rgb).mean() > 3.0


def test_vignetting_falls_off_as_r_squared():
    v = vignette(5, 9, 0.3)
    assert v[2, 4] == 1.0  # the centre pixel
    assert v[0, 0] == pytest.approx(0.7) and v[4, 8] == pytest.approx(0.7)  # the corners lose 30 %
    assert v[2, 0] == pytest.approx(1 - 0.3 * 0.5)  # the middle of an edge: r² = 1/2


def test_exposure_gain_and_noise_level():
    grey = np.full((256, 256, 3), 128, np.uint8)
    flat = PhotoParams(stops=0.5, wb=np.ones(3, np.float32), drift_period=10.0, drift_phase=0.0)
    out = apply(grey, PhotoConfig(exposure_stops=0.5), flat, 0.0, np.random.default_rng(0))
    assert np.all(out == round(128 * 2**0.5))  # half a stop brighter, exactly
    cfg = PhotoConfig(noise=0.1)
    noisy = apply(grey, cfg, PhotoParams(0.0, np.ones(3, np.float32), 10.0, 0.0), 0.0, np.random.default_rng(1))
    sigma = np.sqrt(0.1**2 * 128 / 255) * 255  # shot noise at I = 128/255, in 8-bit steps
    assert noisy.astype(float).std() == pytest.approx(sigma, rel=0.02)
    assert noisy.astype(float).mean() == pytest.approx(128, abs=0.3)


def test_motion_blur_averages_the_exposure_and_keeps_the_ground_truth():
    cfg = DriveConfig().with_overrides(["camera.width=64", "camera.aspect=16:9"])
    cfg.seed, cfg.frames = 2, 4
    sharp = Drive(cfg)
    blurred = Drive(cfg.with_overrides(["photo.shutter_s=0.04", "photo.blur_samples=3"]))
    a, b = sharp.frame(2), blurred.frame(2)
    for name in ("depth", "semantic", "instance", "pose"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    t = sharp.time(2)
    renders = [sharp.caster.render(sharp.scene, sharp.path.camera_pose(ti), ti, float(sharp.path.arc_length(ti))).rgb
               for ti in (t - 0.02, t, t + 0.02)]  # start, middle and end of a 40 ms exposure
    mean = np.mean(np.stack(renders).astype(np.float64), axis=0)
    assert np.abs(b.rgb - mean).max() <= 0.5 + 1e-4  # their average, rounded
    assert not np.array_equal(a.rgb, b.rgb)
