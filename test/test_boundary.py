"""Scale-invariant boundary F1 (Depth Pro): behaviour on hand-made scenes, and the reference mode against an
independent transcription of the published definition."""

from __future__ import annotations

import numpy as np
import pytest

from depth_node.evaluate.boundary import boundary_f1, boundary_f1_details, thresholds_and_weights


def box_scene(h: int = 48, w: int = 64, top: int = 12, left: int = 20, size: int = 16, near: float = 5.0,
              far: float = 20.0) -> np.ndarray:
    """A near box in front of a far wall: occluding contours in all four directions."""
    d = np.full((h, w), far, dtype=np.float32)
    d[top : top + size, left : left + size] = near
    return d


def step_scene(h: int = 32, w: int = 48, col: int = 24, near: float = 4.0, far: float = 10.0) -> np.ndarray:
    """One vertical edge: contours in one direction only."""
    d = np.full((h, w), far, dtype=np.float32)
    d[:, :col] = near
    return d


def reference_si_boundary_f1(pred: np.ndarray, gt: np.ndarray, t_min=1.05, t_max=1.25, n=10) -> float:
    """Depth Pro's SI boundary F1 written from the paper's definition and the released code's conventions:
    c(i,j) = inv_d(j)/inv_d(i) > t in four directions, P/R averaged over directions with max(count, 1),
    F1 = 0 when P+R = 0, thresholds linspace(t_min, t_max, n) weighted by t/Σt."""

    def inv(d):
        return 1.0 / np.maximum(d.astype(np.float64), 1e-6)

    def dirs(x, t):
        return [x[:, :-1] / x[:, 1:] > t, x[:-1, :] / x[1:, :] > t, x[:, 1:] / x[:, :-1] > t,
                x[1:, :] / x[:-1, :] > t]

    ts = np.linspace(t_min, t_max, n)
    total = 0.0
    for t in ts:
        P, G = dirs(inv(pred), t), dirs(inv(gt), t)
        r = sum((p & g).sum() / max(g.sum(), 1) for p, g in zip(P, G)) / 4
        pr = sum((p & g).sum() / max(p.sum(), 1) for p, g in zip(P, G)) / 4
        f = 0.0 if r + pr == 0 else 2 * r * pr / (r + pr)
        total += f * t / ts.sum()
    return total


def test_thresholds_and_weights_as_reference():
    t, w = thresholds_and_weights()
    np.testing.assert_allclose(t, np.linspace(1.05, 1.25, 10))
    assert w.sum() == pytest.approx(1.0)
    assert np.all(np.diff(w) > 0)  # higher thresholds weigh more


@pytest.mark.parametrize("reference", [False, True])
def test_identical_maps_score_one(reference):
    gt = box_scene()
    assert boundary_f1(gt, gt, reference=reference) == pytest.approx(1.0)


def test_one_direction_edge_identical_scores_one_unlike_reference():
    gt = step_scene()
    assert boundary_f1(gt, gt) == pytest.approx(1.0)
    # the released code averages over four directions, three of which have nothing to find
    assert boundary_f1(gt, gt, reference=True) == pytest.approx(0.25)


def test_shifted_edge_scores_lower():
    gt = box_scene()
    shifted = box_scene(left=22)
    f = boundary_f1(shifted, gt)
    assert 0.0 < f < 0.9
    assert boundary_f1(box_scene(left=21), gt) > f - 1e-9  # less shift, no worse
    assert boundary_f1(box_scene(left=30), gt) < 1.0


def test_scale_invariance():
    gt = box_scene()
    pred = box_scene(left=21, near=6.0, far=17.0)
    base = boundary_f1(pred, gt)
    for k in (0.01, 3.7, 1000.0):
        assert boundary_f1(pred * k, gt) == pytest.approx(base, abs=1e-12)
        assert boundary_f1(pred, gt * k) == pytest.approx(base, abs=1e-12)


def test_blurred_edge_scores_lower_than_sharp():
    gt = box_scene()
    blurred = gt.astype(np.float64).copy()
    for _ in range(3):  # smear the box edges over several pixels: ratios per pixel fall under the thresholds
        p = np.pad(blurred, 1, mode="edge")
        blurred = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] + p[1:-1, 1:-1]) / 5
    assert boundary_f1(blurred, gt) < boundary_f1(gt, gt)


def test_weak_edge_counts_only_at_low_thresholds():
    gt = box_scene(near=10.0, far=11.5)  # a 15 % inverse-depth jump: above 1.05…1.15, below 1.175…1.25
    d = boundary_f1_details(gt, gt)
    assert np.all(d.gt_contours[d.thresholds < 1.15] > 0)
    assert np.all(d.gt_contours[d.thresholds > 1.16] == 0)
    assert d.f1 == pytest.approx(1.0)  # nothing found where nothing exists


def test_empty_edge_cases():
    flat = np.full((20, 30), 7.0)
    assert boundary_f1(flat, flat) == pytest.approx(1.0)  # nothing to find, nothing invented
    assert boundary_f1(flat, flat, reference=True) == 0.0  # the released code's convention
    assert boundary_f1(box_scene(), np.full((48, 64), 20.0)) == 0.0  # invented edges only
    assert boundary_f1(np.full((48, 64), 20.0), box_scene()) == 0.0  # missed every edge
    tiny = np.ones((1, 1))
    assert boundary_f1(tiny, tiny) == pytest.approx(1.0)


def test_invalid_pixels_are_ignored_and_sky_counts():
    gt = box_scene()
    pred = gt.copy()
    pred[0:5, :] = np.nan  # a band of invalid prediction away from the box
    assert boundary_f1(pred, gt) == pytest.approx(1.0)
    sky = box_scene()
    sky[:6, :] = np.inf  # REP 117 "too far": skyline is an edge
    d = boundary_f1_details(sky, sky)
    assert d.gt_contours[0] > boundary_f1_details(gt, gt).gt_contours[0]
    masked = boundary_f1_details(box_scene(left=22), gt, valid=np.zeros(gt.shape, bool))
    assert masked.f1 == pytest.approx(1.0) and masked.gt_contours.sum() == 0


def test_reference_mode_matches_transcription():
    rng = np.random.default_rng(0)
    gt = box_scene(64, 96, top=20, left=30, size=24) * rng.uniform(0.98, 1.02, (64, 96))
    gt[40:50, 5:15] = 3.0
    pred = np.roll(gt, 1, axis=1) * rng.uniform(0.9, 1.1, gt.shape)
    ours = boundary_f1(pred, gt, reference=True)
    assert ours == pytest.approx(reference_si_boundary_f1(pred, gt), abs=1e-12)
    assert 0.05 < ours < 0.95


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        boundary_f1(np.ones((4, 5)), np.ones((5, 4)))
