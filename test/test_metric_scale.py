"""`scale_source: metric_model`: a metric model beside the fast one fixes its scale (median ratio, smoothed),
without ever blocking the frame path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_model_file, weights_recipe

from depth_node.checkpoints.model_file import save_model
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.scale import ScaleError, ScaleInput
from depth_node.inference.estimator import DepthEstimator
from depth_node.inference.factory import create_backend
from depth_node.inference.metric_scale import MetricModelConfig, MetricModelScale, ratio_measurement
from depth_node.runtime.params import NodeConfig, validate
from depth_node.runtime.scale_sources import build_scale_source


def _frames(n: int = 6, h: int = 96, w: int = 320) -> list[np.ndarray]:
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive

    cfg = DriveConfig(seed=9002, frames=n * 3)
    cfg.camera.width, cfg.camera.height = w, h
    d = Drive(cfg)
    return [d.frame(3 * k).rgb for k in range(n)]


def test_ratio_is_the_median_of_metric_over_fast_and_spread_is_robust():
    rng = np.random.default_rng(0)
    fast = rng.uniform(2, 20, (96, 320))  # metric stays inside 0.5..80 m
    noise = rng.normal(0, 0.05, fast.shape)
    metric = 3.0 * fast * np.exp(noise)
    metric[:10] = 500.0  # outliers beyond the range: ignored
    fast[10:20] = np.nan  # invalid fast pixels: ignored
    ratio, spread, frac = ratio_measurement(metric, fast)
    assert ratio == pytest.approx(3.0, rel=0.01)
    assert spread == pytest.approx(0.05, rel=0.1)
    assert frac == pytest.approx(1 - 20 / 96, abs=1e-6)
    assert ratio_measurement(np.full((4, 4), np.nan), np.ones((4, 4))) is None


def test_same_network_as_metric_teacher_gives_its_factor_exactly(tmp_path):
    """Teacher = the fast network's own weights declared metric ×5.4: every pixel's ratio is 5.4, so the scale
    must converge to 5.4 with zero spread — and the frame path never waits for the teacher."""
    student_path = save_model(tmp_path / "student.pt", make_model_file(96, 320, scale={"kind": "relative",
                                                                                       "factor": 1.0}))
    teacher_path = save_model(tmp_path / "teacher.pt", make_model_file(96, 320, scale={"kind": "stereo",
                                                                                       "baseline_m": 0.54,
                                                                                       "factor": 5.4}))
    student = DepthEstimator(create_backend(student_path, "torch", "fp32", "cpu"))
    teacher = DepthEstimator(create_backend(teacher_path, "torch", "fp32", "cpu"))
    src = MetricModelScale(teacher, MetricModelConfig(period=0.0, smoothing=1.0, initial_scale=1.0))
    try:
        assert not src.ready and src.scale == 1.0
        intr = Intrinsics(250.0, 250.0, 160.0, 48.0, 320, 96)
        for k, rgb in enumerate(_frames(3)):
            res = student.depth(student.prepare(rgb), intr)
            src.update(ScaleInput(res.depth, res.intrinsics, 0.1 * k, res.outputs, rgb))
            src.wait_idle()
        assert src.ready and src.accepted >= 1
        assert src.scale == pytest.approx(5.4, rel=1e-4)
        st = src.state()
        assert st["state"] == "tracking" and st["spread"] < 1e-3 and st["runs"] >= 1
    finally:
        src.close()
        student.backend.close()


def test_gating_holds_the_scale_against_a_wild_result_then_reacquires():
    class Teacher:  # a stand-in *input* (what the teacher returns), not the unit under test
        def __init__(self):
            self.factor = 2.0

        def depth(self, image, intrinsics, shape):
            from types import SimpleNamespace

            return SimpleNamespace(depth=np.full(shape, self.factor, np.float32))

    t = Teacher()
    src = MetricModelScale(t, MetricModelConfig(period=0.0, smoothing=0.5, reacquire_after=3))
    fast = np.full((20, 20), 1.0, np.float32)
    img = np.zeros((20, 20, 3), np.uint8)

    def step(stamp):
        src.update(ScaleInput(fast, None, stamp, {}, img))
        src.wait_idle()

    step(0.0)
    assert src.scale == pytest.approx(2.0)
    t.factor = 20.0  # one wild result: |log 10| > gate → held
    step(0.1)
    assert src.scale == pytest.approx(2.0) and src.rejected == 1
    step(0.2)
    step(0.3)  # the third outlier in a row: the scene really changed → re-acquire
    assert src.scale == pytest.approx(20.0)
    t.factor = 22.0  # a plausible change is smoothed in log space
    step(0.4)
    assert src.scale == pytest.approx(math.exp(0.5 * math.log(20) + 0.5 * math.log(22)))
    src._pool.shutdown()  # the stand-in has no backend to close


def test_factory_refuses_a_non_metric_teacher(tmp_path):
    p = save_model(tmp_path / "stereo.pt", make_model_file(96, 320))
    cfg = validate({"scale_source": "metric_model", "metric_model.model": str(p), "backend": "torch"})
    with pytest.raises(ScaleError, match="not a metric model"):
        build_scale_source(cfg, {"kind": "relative"}, np.eye(4))


def test_empty_model_parameter_means_the_bundled_metric_model(monkeypatch, tmp_path):
    from depth_node import paths
    from depth_node.checkpoints.model_file import load_model

    bundled = paths.bundled_metric_model()
    assert bundled.endswith("models/metric_small.pt") and load_model(bundled).scale_kind == "metric"
    monkeypatch.setattr("depth_node.paths.share_dir", lambda: tmp_path)  # an installation without it
    assert paths.bundled_metric_model() == ""
    with pytest.raises(ScaleError, match=r"needs metric_model\.model.*no bundled metric_small\.pt"):
        build_scale_source(NodeConfig(scale_source="metric_model"), {"kind": "relative"}, np.eye(4))


@pytest.mark.slow
def test_pipeline_with_a_depth_pro_teacher(tmp_path, small_model_path):
    """The node's FramePipeline with scale_source metric_model and a (tiny) Depth Pro-style teacher: the
    published depth is the fast depth × median(teacher / fast) of the frame the teacher saw."""
    from depth_node.checkpoints.depth_pro import import_depth_pro
    from depth_node.networks.depth_pro import build_depth_pro
    from depth_node.runtime.pipeline import FramePipeline

    recipe = weights_recipe()
    ckpt = tmp_path / "dp_tiny.pt"
    torch.save(recipe.fill_state_dict(build_depth_pro("tiny").state_dict()), ckpt)
    teacher_path = save_model(tmp_path / "teacher.pt", import_depth_pro(ckpt))
    cfg = validate({"model": str(small_model_path), "backend": "torch", "scale_source": "metric_model",
                      "metric_model.model": str(teacher_path), "metric_model.period": 0.0,
                      "metric_model.smoothing": 1.0})
    pipe = FramePipeline(small_model_path, cfg)
    try:
        rgb = _frames(1)[0]
        intr = Intrinsics(250.0, 250.0, 160.0, 48.0, 320, 96)
        first = pipe.depth(rgb, intr, 0.0)
        assert first.scale == 1.0  # initial_scale until the teacher answered
        pipe.scale.wait_idle(timeout=120)
        teacher = DepthEstimator(create_backend(teacher_path, "torch", "fp32", "cpu"))
        metric = teacher.depth(rgb, first.intrinsics, first.depth.shape).depth.astype(np.float64)
        fast = first.depth.astype(np.float64)
        # the claim written out by hand: the median of metric / fast over pixels valid in both (0.5..80 m)
        ok = np.isfinite(metric) & np.isfinite(fast) & (fast > 0) & (metric > 0.5) & (metric < 80.0)
        assert ok.sum() >= 50
        expect = float(np.median(metric[ok] / fast[ok]))
        second = pipe.depth(rgb, intr, 0.1)
        assert second.scale == pytest.approx(expect, rel=1e-3)
        np.testing.assert_allclose(second.depth, first.depth * second.scale, rtol=1e-5)
        assert pipe.scale.state()["source"] == "metric_model"
    finally:
        pipe.close()
