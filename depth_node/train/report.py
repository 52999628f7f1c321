"""End-of-training report: metrics of the chosen epoch, loss and validation curves (PNG), sample depth maps of
validation frames next to their GT, and one self-contained HTML page (`report/index.html`) tying them together.
Built on depth_node.evaluate.report so every report in the project looks and reads the same."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from depth_node.evaluate.report import depth_panel, plot_curves, save_png, write_html_report, write_json
from depth_node.train.config import TrainConfig
from depth_node.train.data import ValFrame, ValidationSet
from depth_node.train.result import TrainResult


class TrainedRun(Protocol):
    """What the report reads from a finished trainer (`loop.TrainingLoop` provides it)."""

    cfg: TrainConfig
    out: Path
    valset: ValidationSet
    train_seconds: float

    @property
    def median_scaling(self) -> bool: ...

    def predict_val(self, frames: list[ValFrame]) -> list[np.ndarray]: ...

    def scale_factor(self) -> float: ...

    def scaling_label(self) -> str: ...


def smooth(values: list[float], window: int) -> list[float]:
    """Running mean (training loss per step is noisy; the trend is what a reader wants)."""
    if not values:
        return []
    window = max(1, min(window, len(values)))
    c = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    out = (c[window:] - c[:-window]) / window
    return [float(v) for v in np.concatenate([np.asarray(values[: window - 1], dtype=np.float64), out])]


def write_report(trainer: TrainedRun, result: TrainResult) -> Path:
    out = trainer.out / "report"
    out.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, Path]] = []
    history = result.history
    if result.losses:
        images.append(("training loss per step (running mean over 20 steps; this session)",
                       plot_curves(out / "loss.png", {"loss": smooth(result.losses, 20)}, "step", "training loss")))
    elif any(h.get("train_loss") is not None for h in history):  # a resumed session that trained no step
        epochs = [h for h in history if h.get("train_loss") is not None]
        images.append(("training loss per epoch (mean over the epoch's steps)",
                       plot_curves(out / "loss.png", {"loss": [h["train_loss"] for h in epochs]}, "epoch index",
                                   "training loss")))
    val = [h for h in history if h.get("val")]
    if val:
        curves = {k: [h["val"][k] for h in val] for k in ("abs_rel", "rmse_log") if k in val[0]["val"]}
        curves["a1 (δ<1.25)"] = [h["val"]["a1"] for h in val]
        images.append(("validation metrics per epoch", plot_curves(out / "val.png", curves, "epoch index",
                                                                   "validation")))
    samples = trainer.valset.frames
    n = min(trainer.cfg.output.report_samples, len(samples))
    if n:
        pick = np.linspace(0, len(samples) - 1, n).round().astype(int)
        chosen = [samples[k] for k in pick]
        preds = trainer.predict_val(chosen)
        for f, p in zip(chosen, preds):
            gt = np.where(np.isfinite(f.depth) & (f.depth > 0), f.depth, np.nan).astype(np.float32)
            p = _to_gt_scale(p * trainer.scale_factor(), gt, median=trainer.median_scaling)
            from depth_node.evaluate.depth_metrics import resize_to

            p_full = resize_to(p, gt.shape)
            rgb = _resize_rgb(f.rgb, gt.shape[1], gt.shape[0])
            panel = depth_panel(rgb, p_full, gt, max_depth=trainer.cfg.data.eval_max_depth)
            name = f.name.replace("/", "_")
            images.append((f"{f.name}: image | prediction | GT | relative error", save_png(out / f"{name}.png",
                                                                                           panel)))
    best = result.best or {}
    metrics: dict[str, Any] = {
        "mode": trainer.cfg.mode,
        "resolution": f"{trainer.cfg.data.width}x{trainer.cfg.data.height}",
        "steps": result.steps,
        "epochs": result.epochs_done,
        "train_minutes": round(trainer.train_seconds / 60.0, 2),
        "best_epoch": best.get("epoch"),
        "best": best.get("metrics") or {},
        "scaling": trainer.scaling_label(),
    }
    write_json(out / "metrics.json", {**metrics, "history": history})
    notes = [
        f"Model file: {result.model_path}",
        "Metrics are on held-out validation data at the chosen (lowest abs_rel) epoch; mono models are "
        "median-scaled per image, stereo-trained models scaled by baseline/0.1, metric models not scaled.",
    ]
    return write_html_report(out / "index.html", f"depth_node training report ({trainer.cfg.mode})", metrics,
                             images, notes)


def _to_gt_scale(pred: np.ndarray, gt: np.ndarray, median: bool) -> np.ndarray:
    if not median:
        return pred
    from depth_node.evaluate.depth_metrics import resize_to

    p = resize_to(pred, gt.shape)
    ok = np.isfinite(gt) & np.isfinite(p) & (p > 0)
    if not ok.any():
        return pred
    r = float(np.median(gt[ok]) / np.median(p[ok]))
    return pred * r if math.isfinite(r) else pred


def _resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    from depth_node.train.data import resize_rgb

    return resize_rgb(rgb, width, height)
