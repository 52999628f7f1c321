"""Depth metrics: bit-identical to Monodepth2's `compute_errors`, its evaluation loop (masking, median scaling,
clamping, per-image averaging), and `eval-depth` end to end on a synthetic KITTI folder and real KITTI frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FLAT_DEPTH, REPO, flat_model_file, make_model_file, require_shared, write_small_drive

from depth_node.errors import DepthNodeError
from depth_node.evaluate.depth_metrics import (
    METRICS,
    DepthEvaluator,
    compute_errors,
    crop_mask,
    evaluate_depth,
    resize_to,
)


def reference_compute_errors(gt, pred):
    """Monodepth2 `evaluate_depth.compute_errors`, transcribed from the published code."""
    thresh = np.maximum((gt / pred), (pred / gt))
    a1 = (thresh < 1.25).mean()
    a2 = (thresh < 1.25**2).mean()
    a3 = (thresh < 1.25**3).mean()
    rmse = (gt - pred) ** 2
    rmse = np.sqrt(rmse.mean())
    rmse_log = (np.log(gt) - np.log(pred)) ** 2
    rmse_log = np.sqrt(rmse_log.mean())
    abs_rel = np.mean(np.abs(gt - pred) / gt)
    sq_rel = np.mean(((gt - pred) ** 2) / gt)
    return abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3


def reference_eval_loop(gt_depths, pred_depths, median_scaling=True, min_depth=1e-3, max_depth=80.0, garg=True):
    """The per-image part of Monodepth2's `evaluate()` (eigen split), predictions already at GT size."""
    errors, ratios = [], []
    for gt_depth, pred_depth in zip(gt_depths, pred_depths):
        gt_height, gt_width = gt_depth.shape[:2]
        mask = np.logical_and(gt_depth > min_depth, gt_depth < max_depth)
        if garg:
            crop = np.array([0.40810811 * gt_height, 0.99189189 * gt_height,
                             0.03594771 * gt_width, 0.96405229 * gt_width]).astype(np.int32)
            crop_mask_ = np.zeros(mask.shape)
            crop_mask_[crop[0]:crop[1], crop[2]:crop[3]] = 1
            mask = np.logical_and(mask, crop_mask_)
        pred_depth = pred_depth[mask]
        gt_depth = gt_depth[mask]
        pred_depth *= 1.0
        if median_scaling:
            ratio = np.median(gt_depth) / np.median(pred_depth)
            ratios.append(ratio)
            pred_depth *= ratio
        pred_depth[pred_depth < min_depth] = min_depth
        pred_depth[pred_depth > max_depth] = max_depth
        errors.append(reference_compute_errors(gt_depth, pred_depth))
    ratios = np.array(ratios)
    med = np.median(ratios) if ratios.size else None
    return np.array(errors).mean(0), med, (np.std(ratios / med) if ratios.size else None)


# ---------------------------------------------------------------- compute_errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compute_errors_bit_identical_to_reference(dtype):
    rng = np.random.default_rng(7)
    gt = rng.uniform(1.0, 80.0, 5000).astype(dtype)
    pred = (gt * rng.lognormal(0.0, 0.25, gt.size)).astype(dtype)
    ours = compute_errors(gt, pred)
    ref = reference_compute_errors(gt, pred)
    assert list(ours) == list(METRICS)
    for k, r in zip(METRICS, ref):
        assert ours[k] == float(r), k  # exact, not approximate
    assert 0 < ours["a1"] < ours["a2"] < ours["a3"] < 1


def test_compute_errors_hand_computed():
    gt = np.array([1.0, 2.0, 4.0])
    pred = np.array([1.0, 2.5, 3.0])  # ratios 1, 1.25 (not < 1.25), 4/3
    e = compute_errors(gt, pred)
    assert e["abs_rel"] == pytest.approx((0 + 0.5 / 2 + 1 / 4) / 3)
    assert e["sq_rel"] == pytest.approx((0 + 0.25 / 2 + 1 / 4) / 3)
    assert e["rmse"] == pytest.approx(np.sqrt((0 + 0.25 + 1) / 3))
    assert e["rmse_log"] == pytest.approx(np.sqrt((np.log(2 / 2.5) ** 2 + np.log(4 / 3) ** 2) / 3))
    assert e["a1"] == pytest.approx(1 / 3)
    assert e["a2"] == 1.0 and e["a3"] == 1.0


def test_perfect_and_doubled_predictions():
    rng = np.random.default_rng(0)
    gt = rng.uniform(2.0, 39.0, (40, 60)).astype(np.float32)  # 2·gt stays under the 80 m cap
    r = evaluate_depth([(gt, gt.copy())], median_scaling=False)
    assert r.metrics["abs_rel"] == 0.0 and r.metrics["rmse"] == 0.0 and r.metrics["a1"] == 1.0
    r = evaluate_depth([(gt, 2 * gt)], median_scaling=True)
    assert r.metrics["abs_rel"] == pytest.approx(0.0, abs=1e-7) and r.metrics["a1"] == 1.0
    assert r.ratio_median == pytest.approx(0.5) and r.ratio_std == pytest.approx(0.0)
    r = evaluate_depth([(gt, 2 * gt)], median_scaling=False)
    assert r.metrics["abs_rel"] == pytest.approx(1.0) and r.metrics["a1"] == 0.0 and r.ratio_median is None


# ---------------------------------------------------------------- evaluation protocol


def test_crop_bounds_as_reference():
    m = crop_mask((375, 1242), "garg")
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (153, 371, 44, 1197)  # monodepth2's [153:371, 44:1197]
    m = crop_mask((375, 1242), "eigen")
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (124, 342, 44, 1197)
    assert crop_mask((10, 20), "none").all()
    with pytest.raises(DepthNodeError, match="unknown crop"):
        crop_mask((10, 20), "bogus")


def test_evaluation_loop_identical_to_reference():
    rng = np.random.default_rng(3)
    gts, preds = [], []
    for h, w in ((375, 1242), (370, 1224), (375, 1242)):
        gt = rng.uniform(0.5, 100.0, (h, w)).astype(np.float32)
        gt[rng.random((h, w)) < 0.9] = 0.0  # LiDAR-like sparsity; some GT beyond 80 m, some below 1 m
        pred = (np.where(gt > 0, gt, 30.0) * rng.lognormal(0.3, 0.3, (h, w))).astype(np.float32)
        gts.append(gt)
        preds.append(pred)
    for median in (True, False):
        ours = evaluate_depth(zip(gts, [p.copy() for p in preds]), median_scaling=median, crop="garg")
        ref, med, std = reference_eval_loop(gts, [p.copy() for p in preds], median_scaling=median)
        for k, v in zip(METRICS, ref):
            assert ours.metrics[k] == float(v), k  # exact
        if median:
            assert ours.ratio_median == float(med)
            assert ours.ratio_std == float(std)
    assert ours.n_images == 3 and ours.n_pixels > 1000
    # the caller's predictions are not scaled in place
    p0 = preds[0].copy()
    evaluate_depth([(gts[0], preds[0])])
    np.testing.assert_array_equal(preds[0], p0)


def test_mean_is_over_images_not_pixels():
    gt_small = np.full((2, 2), 10.0)
    gt_big = np.full((20, 20), 10.0)
    r = evaluate_depth([(gt_small, gt_small * 1.5), (gt_big, gt_big.copy())], median_scaling=False)
    assert r.metrics["abs_rel"] == pytest.approx(0.25)  # (0.5 + 0) / 2, not pixel-weighted 4/404·0.5


def test_gt_range_mask_and_prediction_clamp():
    gt = np.array([[0.0, 0.0005, 5.0, 90.0, np.nan, np.inf]], dtype=np.float64)
    pred = np.array([[1.0, 1.0, 200.0, 1.0, 1.0, 1.0]])
    ev = DepthEvaluator(median_scaling=False, min_depth=1e-3, max_depth=80.0)
    res = ev.add(gt, pred)
    assert res.n_pixels == 1  # only 5.0 lies in (1e-3, 80)
    assert res.errors["abs_rel"] == pytest.approx(abs(80.0 - 5.0) / 5.0)  # 200 clamped to 80


def test_invalid_predictions_are_left_out_and_counted():
    gt = np.full((4, 4), 10.0)
    pred = np.full((4, 4), 10.0)
    pred[0, :] = np.nan
    pred[1, 0] = -1.0
    res = evaluate_depth([(gt, pred)], median_scaling=False)
    assert res.n_pred_invalid == 5 and res.n_pixels == 11 and res.metrics["abs_rel"] == 0.0


def test_images_without_gt_are_skipped_not_averaged():
    gt = np.full((4, 4), 10.0)
    r = evaluate_depth([(gt, gt * 1.1), (np.zeros((4, 4)), gt)], median_scaling=False)
    assert r.n_images == 1 and r.n_skipped == 1
    assert r.metrics["abs_rel"] == pytest.approx(0.1)


def test_prediction_resize_interpolates_inverse_depth():
    pred = np.array([[1.0, 4.0]], dtype=np.float32)
    out = resize_to(pred, (1, 4))
    # bilinear (half-pixel centres) on 1/d = [1, 0.25]: [1, 0.8125, 0.4375, 0.25]
    np.testing.assert_allclose(out[0], [1.0, 1 / 0.8125, 1 / 0.4375, 4.0], rtol=1e-6)
    r = evaluate_depth([(np.full((8, 12), 7.0), np.full((2, 3), 3.5))], median_scaling=True)
    assert r.metrics["abs_rel"] == pytest.approx(0.0, abs=1e-6) and r.ratio_median == pytest.approx(2.0)


def test_boundary_f1_only_with_dense_gt():
    gt = np.full((32, 48), 20.0)
    gt[8:20, 10:30] = 5.0
    r = evaluate_depth([(gt, gt * 3)], median_scaling=True)
    assert r.boundary_f1 == pytest.approx(1.0) and r.n_boundary == 1
    sparse = gt.copy()
    sparse[np.random.default_rng(0).random(gt.shape) < 0.9] = 0.0
    r = evaluate_depth([(sparse, gt * 3)], median_scaling=True)
    assert r.boundary_f1 is None and r.n_boundary == 0
    r = evaluate_depth([(gt, gt * 3)], boundary=False)
    assert r.boundary_f1 is None


def test_settings_are_validated():
    with pytest.raises(DepthNodeError, match="min_depth"):
        evaluate_depth([], min_depth=5.0, max_depth=1.0)


# ---------------------------------------------------------------- CLI end to end


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """Deterministic untrained weights at 64×192, relative scale (median scaling by default)."""
    from depth_node.checkpoints.model_file import save_model

    path = tmp_path_factory.mktemp("eval_models") / "tiny.pt"
    save_model(path, make_model_file(64, 192, pose=False, scale={"kind": "relative", "factor": 1.0}))
    return path


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory) -> Path:
    """Three frames of a synthetic drive at 320×96, written by the sim's KITTI writer."""
    return write_small_drive(tmp_path_factory.mktemp("synth") / "drive", seed=5, frames=3)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "depth_node.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_cli_on_synthetic_folder_writes_metrics_and_report(tmp_path, tiny_model, synth_folder):
    out = tmp_path / "depth.json"
    html = tmp_path / "report.html"
    r = _cli("eval-depth", "--model", str(tiny_model), "--data", str(synth_folder), "--json", str(out),
             "--html", str(html), "--samples", "2", "--backend", "torch", "--per-image")
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert set(d["metrics"]) == set(METRICS)
    assert d["settings"]["scaling"] == "median" and d["settings"]["crop"] == "none"
    assert d["counts"]["images"] == 3 and d["counts"]["skipped"] == 0 and d["counts"]["pixels"] > 0
    assert d["scaling"]["ratio_median"] > 0 and d["scaling"]["ratio_std"] >= 0
    assert d["counts"]["boundary_images"] == 3 and 0.0 <= d["boundary_f1"] <= 1.0  # dense synthetic GT
    assert 0 <= d["metrics"]["a1"] <= d["metrics"]["a2"] <= d["metrics"]["a3"] <= 1
    assert d["model"]["arch"] == "monodepth2" and d["model"]["input"] == [64, 192]
    assert len(d["per_image"]) == 3
    text = html.read_text()
    assert text.count("data:image/png;base64") == 2 and "metrics.abs_rel" in text


@pytest.fixture(scope="module")
def flat_model(tmp_path_factory) -> Path:
    from depth_node.checkpoints.model_file import save_model

    path = tmp_path_factory.mktemp("eval_models") / "flat.pt"
    save_model(path, flat_model_file())
    return path


def test_cli_scores_a_flat_model_as_computed_by_hand(tmp_path, flat_model, synth_folder):
    """A constant prediction makes every metric a closed form of the GT alone: with median scaling the prediction
    becomes each image's GT median, without it stays FLAT_DEPTH. GT read with np.load, metrics written out here."""
    gts = [np.load(p).astype(np.float64) for p in sorted(synth_folder.rglob("gt_depth/image_02/*.npy"))]
    valid = [g[(g > 1e-3) & (g < 80.0)] for g in gts]  # the default depth range; sky (inf) is out
    assert len(valid) == 3 and all(v.size > 1000 for v in valid)
    for flag in ("--median-scaling", "--metric"):
        out = tmp_path / f"{flag}.json"
        r = _cli("eval-depth", "--model", str(flat_model), "--data", str(synth_folder), "--json", str(out),
                 "--backend", "torch", flag)
        assert r.returncode == 0, r.stderr
        d = json.loads(out.read_text())
        preds = [np.full_like(v, np.median(v) if flag == "--median-scaling" else FLAT_DEPTH) for v in valid]
        abs_rel = np.mean([np.mean(np.abs(v - p) / v) for v, p in zip(valid, preds)])
        a1 = np.mean([np.mean(np.maximum(v / p, p / v) < 1.25) for v, p in zip(valid, preds)])
        assert d["metrics"]["abs_rel"] == pytest.approx(abs_rel, rel=1e-5), flag
        assert d["metrics"]["a1"] == pytest.approx(a1, abs=1e-6), flag
        assert d["counts"]["pixels"] == sum(v.size for v in valid)
        if flag == "--median-scaling":
            ratio = np.median([np.median(v) / FLAT_DEPTH for v in valid])
            assert d["scaling"]["ratio_median"] == pytest.approx(ratio, rel=1e-5)
        else:
            assert d["scaling"]["ratio_median"] is None and d["settings"]["scaling"] == "metric"


def test_cli_on_real_kitti_lidar(tmp_path, tiny_model):
    root = require_shared("realdata/kitti_raw_2011_09_26_drive_0001")
    images = root / "2011_09_26/2011_09_26_drive_0001_sync/image_02/data"
    out = tmp_path / "kitti.json"
    r = _cli("eval-depth", "--model", str(tiny_model), "--images", str(images), "--gt-depth",
             str(root / "derived/velodyne_depth_image_02"), "--crop", "garg", "--limit", "2", "--json", str(out),
             "--backend", "torch")
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["counts"]["images"] == 2 and d["settings"]["crop"] == "garg"
    # LiDAR: ~4 % of pixels, fewer inside the Garg crop and the 80 m cap
    assert 2_000 < d["counts"]["pixels"] < 0.04 * 2 * 375 * 1242
    assert d["boundary_f1"] is None  # sparse GT: no boundary metric
    assert np.isfinite(d["metrics"]["abs_rel"]) and d["scaling"]["ratio_median"] > 0


def test_cli_errors_exit_2(tmp_path, tiny_model, synth_folder):
    r = _cli("eval-depth", "--model", str(tiny_model), "--images", str(tmp_path), "--gt-depth",
             str(tmp_path / "nope"), "--json", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "no such GT depth folder" in r.stderr
    r = _cli("eval-depth", "--model", str(tiny_model), "--data", str(tmp_path), "--json", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "no KITTI drive" in r.stderr
    r = _cli("eval-depth", "--model", str(tmp_path / "missing.pt"), "--data", str(synth_folder), "--json",
             str(tmp_path / "x.json"))
    assert r.returncode == 2 and "model file not found" in r.stderr
    assert not (tmp_path / "x.json").exists()
