"""Depth-boundary sharpness: Depth Pro's scale-invariant boundary F1 (paper §3.2, `eval/boundary_metrics.py`).

Between 4-neighbours i, j an occluding contour exists where inverse depth jumps by more than a ratio:
c(i, j) = [inv(j)/inv(i) > t], evaluated in four directional maps (left, top, right, bottom) so that the side
of the occluder counts. Precision/recall compare predicted with GT contours per direction; F1 is computed at
thresholds t = linspace(1.05, 1.25, 10) and averaged with weights t/Σt. Being ratio-based, the score ignores
any global scale of either map, so a relative-depth model is scored like a metric one, and it is not fooled by
good average depth with smeared edges (which is exactly what abs_rel cannot see).

Two modes:
- `reference=True` is the released code, literally: depth clipped at 1e-6 and inverted, every direction
  counts with weight ¼ (a direction with no GT contour contributes recall 0), F1 = 0 when P + R = 0.
  Use it to compare with published tables.
- default: pairs touching an invalid pixel (NaN, ≤ 0, outside `valid`) are ignored in both maps; a direction
  contributes to recall only when GT has contours in it and to precision only when the prediction has; a
  threshold at which neither map has a contour scores 1 (nothing to find, nothing invented). The reference
  scores a perfect prediction of a scene with edges in only one direction 0.25, and a perfect flat one 0,
  which is useless for a validation signal. On scenes with contours in all four directions (any object in
  front of a background) and dense GT the two modes agree.
+inf depth (REP 117 "too far", e.g. sky) is valid with inverse depth 0, so sky/skyline edges count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def thresholds_and_weights(t_min: float = 1.05, t_max: float = 1.25, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The reference's `get_thresholds_and_weights`: linearly spaced ratios, weights proportional to them."""
    t = np.linspace(t_min, t_max, n)
    return t, t / t.sum()


def _inverse(depth: np.ndarray, reference: bool) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(depth, dtype=np.float64)
    if reference:
        return 1.0 / np.clip(d, 1e-6, None), np.ones(d.shape, dtype=bool)
    valid = ~np.isnan(d) & (d > 0)
    inv = np.zeros(d.shape)
    np.divide(1.0, d, out=inv, where=valid)  # +inf → 0
    return inv, valid


def contour_maps(inv: np.ndarray, t: float) -> tuple[np.ndarray, ...]:
    """(left, top, right, bottom) maps of inverse-depth ratio > t between neighbours (reference `fgbg_depth`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        right = (inv[:, 1:] / inv[:, :-1]) > t
        left = (inv[:, :-1] / inv[:, 1:]) > t
        bottom = (inv[1:, :] / inv[:-1, :]) > t
        top = (inv[:-1, :] / inv[1:, :]) > t
    return left, top, right, bottom


def _pair_valid(valid: np.ndarray) -> tuple[np.ndarray, ...]:
    h = valid[:, 1:] & valid[:, :-1]
    v = valid[1:, :] & valid[:-1, :]
    return h, v, h, v


@dataclass
class BoundaryF1:
    f1: float  # weighted over thresholds
    thresholds: np.ndarray
    weights: np.ndarray
    f1_per_threshold: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    gt_contours: np.ndarray  # contour pixels (all directions) per threshold
    pred_contours: np.ndarray
    reference: bool = False

    def to_dict(self) -> dict:
        return {
            "boundary_f1": self.f1,
            "thresholds": self.thresholds.tolist(),
            "weights": self.weights.tolist(),
            "f1": self.f1_per_threshold.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "gt_contours": self.gt_contours.tolist(),
            "pred_contours": self.pred_contours.tolist(),
            "reference_mode": self.reference,
        }


def boundary_f1_details(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    t_min: float = 1.05,
    t_max: float = 1.25,
    n: int = 10,
    valid: np.ndarray | None = None,
    reference: bool = False,
) -> BoundaryF1:
    """Scale-invariant boundary F1 between two dense (H, W) depth maps, with per-threshold P/R/F1."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"boundary F1 needs two (H, W) maps of the same shape, got {pred.shape} and {gt.shape}")
    ts, ws = thresholds_and_weights(t_min, t_max, n)
    inv_p, vp = _inverse(pred, reference)
    inv_g, vg = _inverse(gt, reference)
    pair_ok = None
    if not reference:
        v = vp & vg if valid is None else vp & vg & np.asarray(valid, dtype=bool)
        pair_ok = _pair_valid(v)
    f1s, ps, rs, ng, npd = [], [], [], [], []
    for t in ts:
        cp = contour_maps(inv_p, float(t))
        cg = contour_maps(inv_g, float(t))
        if pair_ok is not None:
            cp = tuple(c & ok for c, ok in zip(cp, pair_ok))
            cg = tuple(c & ok for c, ok in zip(cg, pair_ok))
        match = [int(np.count_nonzero(a & b)) for a, b in zip(cp, cg)]
        n_g = [int(np.count_nonzero(c)) for c in cg]
        n_p = [int(np.count_nonzero(c)) for c in cp]
        if reference:
            r = 0.25 * sum(m / max(k, 1) for m, k in zip(match, n_g))
            p = 0.25 * sum(m / max(k, 1) for m, k in zip(match, n_p))
            f = 0.0 if r + p == 0 else 2 * r * p / (r + p)
        elif sum(n_g) == 0 and sum(n_p) == 0:
            r = p = f = 1.0
        else:
            rr = [m / k for m, k in zip(match, n_g) if k > 0]
            pp = [m / k for m, k in zip(match, n_p) if k > 0]
            r = float(np.mean(rr)) if rr else 0.0
            p = float(np.mean(pp)) if pp else 0.0
            f = 0.0 if r + p == 0 else 2 * r * p / (r + p)
        f1s.append(f)
        ps.append(p)
        rs.append(r)
        ng.append(sum(n_g))
        npd.append(sum(n_p))
    f1s_a = np.array(f1s)
    return BoundaryF1(
        float(np.sum(f1s_a * ws)), ts, ws, f1s_a, np.array(ps), np.array(rs), np.array(ng), np.array(npd), reference
    )


def boundary_f1(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    t_min: float = 1.05,
    t_max: float = 1.25,
    n: int = 10,
    valid: np.ndarray | None = None,
    reference: bool = False,
) -> float:
    """Weighted boundary F1 in [0, 1]; see `boundary_f1_details` for the per-threshold numbers."""
    return boundary_f1_details(pred, gt, t_min=t_min, t_max=t_max, n=n, valid=valid, reference=reference).f1
