"""Depth Pro's supervised objectives: zero at the target, sensitive to what each is meant to see."""

from __future__ import annotations

import math

import pytest
import torch

from depth_node.train.metric_losses import (
    canonical_inverse_depth,
    derivative_losses,
    fov_loss,
    log_loss,
    mae_loss,
    metric_depth_loss,
)


def _scene(h=64, w=96):
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    depth = 5.0 + 20.0 * (y / h) + torch.where(x > w / 2, 10.0, 0.0)  # a ramp with a depth step (an edge)
    return depth[None, None]


def test_canonical_inverse_depth_round_trips_metric_depth():
    d = _scene()
    f, w = 700.0, d.shape[-1]
    c = canonical_inverse_depth(d, f, w)
    assert torch.allclose(1.0 / (c * w / f), d, rtol=1e-5)
    bad = d.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert canonical_inverse_depth(bad, f, w)[0, 0, 0, 0] == 0


def test_losses_vanish_at_target_and_ignore_invalid_pixels():
    t = canonical_inverse_depth(_scene(), 700.0, 96)
    m = torch.ones_like(t)
    total, parts = metric_depth_loss(t.clone(), t, m, stage=2)
    assert float(total) == pytest.approx(0.0, abs=1e-7) and set(parts) == {"mae", "mage", "msge", "male"}
    p = t.clone()
    p[..., :8, :] += 5.0
    m[..., :8, :] = 0
    assert float(mae_loss(p, t, m)) == pytest.approx(0.0, abs=1e-7)


def test_trimmed_mae_discards_worst_fraction():
    t = torch.zeros(1, 1, 10, 10)
    p = t.clone()
    p.view(-1)[:10] = 100.0  # 10 % outliers
    m = torch.ones_like(t)
    assert float(mae_loss(p, t, m)) == pytest.approx(10.0)
    assert float(mae_loss(p, t, m, trim=0.2)) == pytest.approx(0.0)


def test_log_loss_weighs_relative_error_alike_near_and_far():
    """The same 10 % depth error costs MAE on C 10× more at 5 m than at 50 m; the log term costs it the same."""
    near, far = torch.full((1, 1, 4, 4), 5.0), torch.full((1, 1, 4, 4), 50.0)
    m = torch.ones_like(near)
    costs = {}
    for name, d in (("near", near), ("far", far)):
        t = canonical_inverse_depth(d, 700.0, 96)
        p = canonical_inverse_depth(d * 1.1, 700.0, 96)
        costs[name] = (float(mae_loss(p, t, m)), float(log_loss(p, t, m)))
    assert costs["near"][0] == pytest.approx(10 * costs["far"][0], rel=1e-4)
    assert costs["near"][1] == pytest.approx(costs["far"][1], rel=1e-4) == pytest.approx(math.log(1.1), rel=1e-4)
    t = canonical_inverse_depth(near, 700.0, 96)
    dead = torch.zeros_like(t)  # a dead ReLU output: finite loss, masked pixels ignored
    assert math.isfinite(float(log_loss(dead, t, m))) and float(log_loss(dead, t, torch.zeros_like(m))) == 0.0
    total, parts = metric_depth_loss(t * 1.1, t, m, stage=1, weights={"log": 0.5})
    assert set(parts) == {"mae", "log"} and float(total) == pytest.approx(parts["mae"] + 0.5 * parts["log"], rel=1e-5)


def test_derivative_losses_see_blur_that_mae_barely_sees():
    t = canonical_inverse_depth(_scene(), 700.0, 96)
    m = torch.ones_like(t)
    blurred = torch.nn.functional.avg_pool2d(t, 5, 1, 2, count_include_pad=False)
    shifted = t + 0.002  # a constant offset: no gradient error at all
    d_blur, d_shift = derivative_losses(blurred, t, m), derivative_losses(shifted, t, m)
    assert d_shift["mage"] < 1e-7 and d_blur["mage"] > 1e-4
    assert d_blur["male"] > 10 * d_shift["male"]


def test_fov_loss_is_l2_in_degrees():
    assert float(fov_loss(torch.tensor([60.0]), torch.tensor([63.0]))) == pytest.approx(9.0)
    assert math.isfinite(float(fov_loss(torch.tensor([[[[1.0]]]]), torch.tensor([1.0]))))
