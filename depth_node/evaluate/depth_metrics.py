"""Depth metrics exactly as Monodepth2's `evaluate_depth.py` computes them, usable without the CLI.

Per image: the prediction is resized to the GT size by interpolating inverse depth (the reference resizes the
disparity), GT is masked to min < gt < max (plus the Garg or Eigen crop), the prediction is multiplied by a
fixed factor, then by the per-image median ratio median(gt)/median(pred) (mono models; off for metric ones),
clamped to [min, max], and `compute_errors` runs on the masked pixels. Metrics are averaged over images (not
pixels), and the ratios' median and std(ratios/median) are reported, as the reference prints them: the median
is the factor that makes a mono model metric on this data, the std says how stable that factor is.

`DepthEvaluator` streams (one image at a time, nothing kept but numbers), so the trainer's validation, the
demo and `eval-depth` share one code path; `evaluate_depth(pairs)` is the one-call form.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from depth_node.errors import DepthNodeError

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
CROPS = ("none", "garg", "eigen")
# Fractions of (H, W) of the crops, [top, bottom, left, right): Garg et al. (ECCV 2016) as Monodepth2 uses it,
# and Eigen et al. (NIPS 2014) as Monodepth (v1) defines it.
CROP_FRACTIONS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}

# The reference's evaluation range (Monodepth2 / the KITTI Eigen protocol): ground truth between 1 mm and 80 m
# counts. Every depth score of the package uses these unless a dataset says otherwise (TUM, NYU: 10 m).
EVAL_MIN_DEPTH, EVAL_MAX_DEPTH = 1e-3, 80.0


def compute_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The reference's `compute_errors`, operation for operation (same dtype, same order), so the numbers are
    bit-identical on the same arrays. Inputs: 1-D arrays of valid, positive depths."""
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
    vals = (abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3)
    return {k: float(v) for k, v in zip(METRICS, vals)}


def crop_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    """Boolean (H, W) crop; the bounds are truncated to int as the reference's `astype(np.int32)` does."""
    h, w = shape
    m = np.zeros((h, w), dtype=bool)
    if crop == "none":
        m[:] = True
        return m
    if crop not in CROP_FRACTIONS:
        raise DepthNodeError(f"unknown crop {crop!r}; choose one of {', '.join(CROPS)}")
    f = CROP_FRACTIONS[crop]
    top, bottom, left, right = np.array([f[0] * h, f[1] * h, f[2] * w, f[3] * w]).astype(np.int32)
    m[top:bottom, left:right] = True
    return m


def gt_mask(gt: np.ndarray, min_depth: float = EVAL_MIN_DEPTH, max_depth: float = EVAL_MAX_DEPTH,
            crop: str = "none") -> np.ndarray:
    """Pixels that count: min < gt < max (NaN and 0 = no GT fall out) inside the crop."""
    with np.errstate(invalid="ignore"):
        m = (gt > min_depth) & (gt < max_depth)
    return m & crop_mask(gt.shape, crop)


def resize_to(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Prediction to GT size by bilinear interpolation of inverse depth (the reference's resize of disparity)."""
    if pred.shape == tuple(shape):
        return pred
    from depth_node.inference.preprocess import resize_depth

    return resize_depth(pred.astype(np.float32), int(shape[0]), int(shape[1]))


@dataclass
class DepthEvalSettings:
    median_scaling: bool = True
    min_depth: float = EVAL_MIN_DEPTH
    max_depth: float = EVAL_MAX_DEPTH
    crop: str = "none"
    scale_factor: float = 1.0  # applied before median scaling (reference: --pred_depth_scale_factor)
    boundary: bool | None = None  # boundary F1 per image; None = only where GT is dense
    dense_fraction: float = 0.5  # "dense": this share of the crop has valid GT

    def __post_init__(self) -> None:
        if not (0 < self.min_depth < self.max_depth):
            raise DepthNodeError(f"need 0 < min_depth < max_depth, got {self.min_depth} and {self.max_depth}")
        if self.crop not in CROPS:
            raise DepthNodeError(f"unknown crop {self.crop!r}; choose one of {', '.join(CROPS)}")
        if not (self.scale_factor > 0 and math.isfinite(self.scale_factor)):
            raise DepthNodeError(f"scale factor must be positive, got {self.scale_factor}")


@dataclass
class ImageResult:
    """Per-image outcome; `errors` is empty for a skipped image (no valid GT/prediction pixel)."""

    index: int
    errors: dict[str, float]
    ratio: float | None
    n_pixels: int
    n_pred_invalid: int
    boundary_f1: float | None = None
    name: str = ""


@dataclass
class DepthEvalResult:
    settings: DepthEvalSettings
    metrics: dict[str, float]
    n_images: int
    n_skipped: int
    n_pixels: int
    n_pred_invalid: int
    ratio_median: float | None
    ratio_std: float | None
    boundary_f1: float | None
    n_boundary: int
    per_image: list[ImageResult] = field(default_factory=list)

    def to_dict(self, per_image: bool = True) -> dict:
        out = {
            "metrics": self.metrics,
            "settings": asdict(self.settings),
            "counts": {
                "images": self.n_images,
                "skipped": self.n_skipped,
                "pixels": self.n_pixels,
                "pred_invalid_pixels": self.n_pred_invalid,
                "boundary_images": self.n_boundary,
            },
            "scaling": {"ratio_median": self.ratio_median, "ratio_std": self.ratio_std},
            "boundary_f1": self.boundary_f1,
        }
        if per_image:
            out["per_image"] = [asdict(r) for r in self.per_image]
        return out


class DepthEvaluator:
    """Accumulates per-image metrics; `add` returns the image's result, `result` the averages."""

    def __init__(self, settings: DepthEvalSettings | None = None, **kwargs) -> None:
        self.settings = settings or DepthEvalSettings(**kwargs)
        self.per_image: list[ImageResult] = []
        self._ratios: list = []  # as computed (NumPy scalars, input dtype): std(ratios/median) as the reference

    def add(self, gt: np.ndarray, pred: np.ndarray, name: str = "") -> ImageResult:
        """`gt`, `pred`: (H, W) depth; pred of any size (resized to GT). NaN/≤0 pred pixels are left out of
        the metrics and counted (the reference never sees them; a model emitting them is reported, not hidden)."""
        s = self.settings
        gt = np.asarray(gt)
        if gt.ndim != 2:
            raise DepthNodeError(f"GT depth must be (H, W), got shape {gt.shape}")
        pred = resize_to(np.asarray(pred), gt.shape)
        mask = gt_mask(gt, s.min_depth, s.max_depth, s.crop)
        with np.errstate(invalid="ignore"):
            pred_ok = np.isfinite(pred) & (pred > 0)
        n_bad = int(np.count_nonzero(mask & ~pred_ok))
        mask &= pred_ok
        idx = len(self.per_image)
        bf1 = self._boundary(gt, pred, mask)
        if not mask.any():
            res = ImageResult(idx, {}, None, 0, n_bad, bf1, name)
            self.per_image.append(res)
            return res
        g = gt[mask]
        p = pred[mask]
        p = p * s.scale_factor  # new array: never scale the caller's prediction in place
        ratio = None
        if s.median_scaling:
            raw = np.median(g) / np.median(p)
            self._ratios.append(raw)
            ratio = float(raw)
            p *= raw
        p[p < s.min_depth] = s.min_depth
        p[p > s.max_depth] = s.max_depth
        res = ImageResult(idx, compute_errors(g, p), ratio, int(g.size), n_bad, bf1, name)
        self.per_image.append(res)
        return res

    def _boundary(self, gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float | None:
        s = self.settings
        if s.boundary is False:
            return None
        region = crop_mask(gt.shape, s.crop)
        dense = np.count_nonzero(mask) >= s.dense_fraction * np.count_nonzero(region)
        if s.boundary is None and not dense:
            return None
        from depth_node.evaluate.boundary import boundary_f1

        return boundary_f1(pred, gt, valid=mask)

    def result(self) -> DepthEvalResult:
        s = self.settings
        done = [r for r in self.per_image if r.errors]
        if done:
            mean = np.array([[r.errors[k] for k in METRICS] for r in done]).mean(0)
            metrics = {k: float(v) for k, v in zip(METRICS, mean)}
        else:
            metrics = {k: math.nan for k in METRICS}
        ratio_med = ratio_std = None
        if s.median_scaling and done:
            ratios = np.array(self._ratios)
            med = np.median(ratios)
            ratio_med, ratio_std = float(med), float(np.std(ratios / med))
        bf = [r.boundary_f1 for r in self.per_image if r.boundary_f1 is not None]
        return DepthEvalResult(
            s,
            metrics,
            len(done),
            len(self.per_image) - len(done),
            sum(r.n_pixels for r in done),
            sum(r.n_pred_invalid for r in self.per_image),
            ratio_med,
            ratio_std,
            float(np.mean(bf)) if bf else None,
            len(bf),
            list(self.per_image),
        )


def evaluate_depth(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    median_scaling: bool = True,
    min_depth: float = EVAL_MIN_DEPTH,
    max_depth: float = EVAL_MAX_DEPTH,
    crop: str = "none",
    scale_factor: float = 1.0,
    boundary: bool | None = None,
) -> DepthEvalResult:
    """Metrics over (gt, pred) depth pairs (any iterable, consumed once), averaged over images."""
    ev = DepthEvaluator(
        DepthEvalSettings(median_scaling, min_depth, max_depth, crop, scale_factor, boundary)
    )
    for gt, pred in pairs:
        ev.add(gt, pred)
    return ev.result()
