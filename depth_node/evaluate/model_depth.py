"""A model's depth scored against ground truth, as Monodepth2's evaluate_depth.py does it (`depth_metrics`), end to
end: frames from `depth_data`, predictions through `DepthEstimator` on any backend, a JSON of metrics, settings,
model and timing, and an optional HTML report with sample panels. `depth-node eval-depth` runs it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.evaluate.depth_data import EvalFrame, GroundTruthSource
from depth_node.evaluate.depth_metrics import (
    EVAL_MAX_DEPTH,
    EVAL_MIN_DEPTH,
    DepthEvalResult,
    DepthEvalSettings,
    DepthEvaluator,
    ImageResult,
)


@dataclass(frozen=True)
class ModelDepthOptions:
    scaling: str | None = None  # "median" (per image), "metric" (none), None: metric models metric, others median
    scale_factor: float = 1.0
    min_depth: float = EVAL_MIN_DEPTH
    max_depth: float = EVAL_MAX_DEPTH
    crop: str = "none"
    boundary: bool | None = None  # boundary F1 per image; None: where GT is dense
    backend: str = "auto"
    precision: str = "auto"
    device: str = "auto"
    per_image: bool = False  # per-image metrics in the JSON
    samples: int = 4  # panels in the HTML report


class _Panels:
    """The HTML report's sample panels (image | prediction | GT | error) for evenly spaced frames."""

    def __init__(self, html: Path | None, n: int, samples: int, settings: DepthEvalSettings) -> None:
        self.settings = settings
        self.dir = html.with_name(html.stem + "_files") if html else None
        self.wanted = set(np.linspace(0, n - 1, min(samples, n)).round().astype(int).tolist()) if html else set()
        self.images: list[tuple[str, Path]] = []

    def add(self, k: int, fr: EvalFrame, pred: np.ndarray, res: ImageResult) -> None:
        if k not in self.wanted or self.dir is None:
            return
        from depth_node.evaluate.depth_metrics import gt_mask
        from depth_node.evaluate.report import depth_panel, save_png

        s = self.settings
        shown = pred * s.scale_factor * (res.ratio or 1.0)
        panel = depth_panel(fr.rgb, shown, fr.gt, gt_mask(fr.gt, s.min_depth, s.max_depth, s.crop),
                            max_depth=s.max_depth)
        path = save_png(self.dir / f"{k:05d}_{fr.name}.png", panel)
        ab = res.errors.get("abs_rel", float("nan"))
        self.images.append((f"{fr.name}: image | prediction{' (median-scaled)' if res.ratio else ''} | GT | "
                            f"|pred−gt|/gt (0…0.5); abs_rel {ab:.4f}", path))


def evaluate_model_depth(model: Path, source: GroundTruthSource, json_path: Path, html: Path | None = None,
                         options: ModelDepthOptions = ModelDepthOptions()) -> DepthEvalResult:
    """Score `model` on the frames of `source`; writes `json_path` (and `html`). A clear error when the model or
    the data is missing, or when no frame has GT within the depth range."""
    from tqdm import tqdm

    from depth_node.inference.estimator import DepthEstimator
    from depth_node.inference.factory import create_backend

    if not model.is_file():
        raise DepthNodeError(f"model file not found: {model}")
    n, frames, where = source.open()
    est = DepthEstimator(create_backend(model, options.backend, options.precision, options.device))
    scaling = options.scaling or ("metric" if est.metric else "median")
    settings = DepthEvalSettings(median_scaling=scaling == "median", min_depth=options.min_depth,
                                 max_depth=options.max_depth, crop=options.crop, scale_factor=options.scale_factor,
                                 boundary=options.boundary)
    ev = DepthEvaluator(settings)
    panels = _Panels(html, n, options.samples, settings)
    t0 = time.perf_counter()
    infer_s = 0.0
    for k, fr in enumerate(tqdm(frames, total=n, desc="eval-depth", unit="img")):
        ti = time.perf_counter()
        pred = est.depth(fr.rgb, fr.intrinsics, out_size=fr.gt.shape).depth
        infer_s += time.perf_counter() - ti
        panels.add(k, fr, pred, ev.add(fr.gt, pred, fr.name))
    if not ev.per_image:
        raise DepthNodeError(f"no frames to evaluate in {where}")
    result = ev.result()
    if result.n_images == 0:
        raise DepthNodeError(
            f"none of the {len(ev.per_image)} frames has a GT pixel within ({options.min_depth}, {options.max_depth}) m"
            + (f" inside the {options.crop} crop" if options.crop != "none" else "")
        )
    out = _summary(result, scaling, model, est, options.per_image)
    out["data"] = {"source": where, "frames": len(ev.per_image)}
    out["timing"] = {"total_s": time.perf_counter() - t0, "inference_s": infer_s}
    _write(out, json_path, html, panels.images,
           f"Model {model} on {where}: {result.n_images} images, scaling {scaling}, crop {options.crop}, "
           f"depth range ({options.min_depth}, {options.max_depth}) m.", model)
    return result


def _summary(result: DepthEvalResult, scaling: str, model: Path, est, per_image: bool) -> dict[str, Any]:
    out = result.to_dict(per_image=per_image)
    out["settings"]["scaling"] = scaling
    out["model"] = {
        "file": str(model), "arch": est.info.arch, "input": [est.height, est.width], "metric": est.metric,
        "scale": est.info.scale, "digest": est.info.digest, "backend": est.backend.name,
        "precision": est.backend.precision,
    }
    return out


def _write(out: dict[str, Any], json_path: Path, html: Path | None, images: list[tuple[str, Path]], note: str,
           model: Path) -> None:
    from depth_node.evaluate.report import write_html_report, write_json

    write_json(json_path, out)
    if html:
        write_html_report(html, f"eval-depth: {model.name}", out, images, [note])


def summary_lines(result: DepthEvalResult) -> list[str]:
    """The metrics table as `depth-node eval-depth` prints it."""
    m = result.metrics
    lines = ["   " + " ".join(f"{k:>9}" for k in m), "   " + " ".join(f"{v:9.4f}" for v in m.values())]
    if result.ratio_median is not None:
        lines.append(f"   scaling ratios: median {result.ratio_median:.4f}, std {result.ratio_std:.4f}")
    if result.boundary_f1 is not None:
        lines.append(f"   boundary F1: {result.boundary_f1:.4f} ({result.n_boundary} images)")
    if result.n_skipped:
        lines.append(f"   {result.n_skipped} frames without valid GT were skipped")
    return lines
