"""End-of-training report: metrics of the chosen epoch, loss and validation curves (PNG), sample depth maps of
validation frames next to their GT (a run without validation data, such as the adapt workflow: training frames
and their predicted depth, labelled as such), and one self-contained HTML page (`report/index.html`) tying them
together. Built on depth_node.evaluate.report so every report in the project looks and reads the same: the summary card
(the run's headline figures, PASS/FAIL where `output.max_abs_rel` sets a limit, and the facts: model, training
camera, steps, wall time, device), then the pictures, then the full metric table collapsed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from depth_node.evaluate.report import (
    MIN_BAR_WIDTH,
    CardItem,
    depth_panel,
    depth_range,
    panel_legend,
    plot_curves,
    save_png,
    write_html_report,
    write_json,
)
from depth_node.train.config import TrainConfig
from depth_node.train.data import CachedSequence, ValFrame, ValidationSet
from depth_node.train.distributed import DistInfo
from depth_node.train.result import TrainResult


class TrainedRun(Protocol):
    """What the report reads from a finished trainer (`loop.TrainingLoop` provides it)."""

    cfg: TrainConfig
    out: Path
    valset: ValidationSet
    train_seconds: float
    device: torch.device
    dist: DistInfo
    amp_dtype: torch.dtype | None

    @property
    def median_scaling(self) -> bool: ...

    @property
    def train_sequences(self) -> list[CachedSequence]: ...

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
    images = _curves(result, out) + _samples(trainer, out, result.model_path)
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
    write_json(out / "metrics.json", {**metrics, "history": result.history})
    notes = [
        f"Model file: {result.model_path}",
        "Metrics are on held-out validation data at the chosen (lowest abs_rel) epoch; mono models are "
        "median-scaled per image, stereo-trained models scaled by baseline/0.1, metric models not scaled.",
    ]
    if not len(trainer.valset):
        notes.append("No validation data with ground truth: no accuracy figures. The pictures show training frames "
                     "with the model's predicted depth (what it sees, not how accurate it is); give held-out frames "
                     "with depth (--val-data) to measure it.")
    return write_html_report(out / "index.html", f"depth_node training report ({trainer.cfg.mode})", metrics,
                             images, notes, card=summary_card(trainer.cfg, result),
                             facts=run_facts(trainer, result))


def summary_card(cfg: TrainConfig, result: TrainResult) -> list[CardItem]:
    """The headline figures: validation abs_rel of the chosen epoch (judged against `output.max_abs_rel` when
    set), δ<1.25 and rmse there, the last validated epoch's abs_rel when another epoch was chosen, and the last
    epoch's training loss (metric runs: boundary F1 and the FOV head's error too). A run without validation data
    shows abs_rel n/a (and FAILs a set limit)."""
    best = result.best or {}
    m = best.get("metrics") or {}
    items = [CardItem.judged(f"validation abs_rel (best epoch {best.get('epoch', 'n/a')})", m.get("abs_rel"),
                             cfg.output.max_abs_rel)]
    for key, label, unit in (("a1", "validation δ<1.25", ""), ("rmse", "validation rmse", "m"),
                             ("boundary_f1", "validation boundary F1", ""),
                             ("fov_abs_err_deg", "validation FOV error", "°")):
        if m.get(key) is not None:
            items.append(CardItem(label, m[key], unit))
    validated = [h for h in result.history if h.get("val")]
    if validated and validated[-1]["step"] != best.get("step"):
        items.append(CardItem(f"validation abs_rel (last epoch {validated[-1]['epoch']})",
                              validated[-1]["val"].get("abs_rel")))
    trained = [h for h in result.history if h.get("train_loss") is not None]
    if trained:
        items.append(CardItem(f"training loss (epoch {trained[-1]['epoch']} mean)", trained[-1]["train_loss"]))
    return items


def run_facts(trainer: TrainedRun, result: TrainResult) -> dict[str, str]:
    """Model, training camera and data, steps, wall time and device of the run, for the summary card."""
    cfg, seqs = trainer.cfg, trainer.train_sequences
    m = cfg.model
    if cfg.is_metric:
        arch = f"Depth Pro-style metric ViT, preset {cfg.metric.preset}" + (" (customised)" if cfg.metric.network
                                                                             else "")
    else:
        arch = f"Monodepth2 ResNet-{m.num_layers} depth" + (f" + ResNet-{m.pose_num_layers} pose"
                                                            if cfg.use_temporal else "")
    model = f"{arch}, mode {cfg.mode}" + (f" → {result.model_path.name}" if result.model_path else "")
    hfov = sorted(math.degrees(2.0 * math.atan(0.5 / float(s.K_norm[0, 0]))) for s in seqs)
    fov = "" if not hfov else (f", hfov {hfov[0]:.0f}°" if hfov[-1] - hfov[0] < 0.5
                               else f", hfov {hfov[0]:.0f}–{hfov[-1]:.0f}°")
    names = [s.name for s in seqs]
    data = ", ".join(names[:3]) + (f" … ({len(names)} in all)" if len(names) > 3 else "")
    device = str(trainer.device)
    if trainer.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(trainer.device)})"
    device += f", amp {str(trainer.amp_dtype).removeprefix('torch.') if trainer.amp_dtype else 'off'}"
    if trainer.dist.world_size > 1:
        device += f", {trainer.dist.world_size} processes (DDP, {trainer.dist.backend})"
    return {
        "model": model,
        "training camera": f"frames {cfg.data.width}×{cfg.data.height}{fov}",
        "training data": f"{len(seqs)} sequence(s): {data}" if seqs else "n/a",
        "scaling": trainer.scaling_label(),
        "steps": f"{result.steps} steps, {result.epochs_done} epochs, batch {cfg.optim.batch_size}",
        "wall time": f"{trainer.train_seconds / 60.0:.1f} min (training and validation)",
        "device": device,
    }


def _curves(result: TrainResult, out: Path) -> list[tuple[str, Path]]:
    """Training loss (per step, or per epoch for a resumed session that trained no step) and validation curves."""
    images: list[tuple[str, Path]] = []
    history = result.history
    if result.losses:
        images.append(("training loss per step (running mean over 20 steps; this session)",
                       plot_curves(out / "loss.png", {"loss": smooth(result.losses, 20)}, "step", "training loss")))
    elif any(h.get("train_loss") is not None for h in history):
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
    return images


def _samples(trainer: TrainedRun, out: Path, model_path: Path | None = None) -> list[tuple[str, Path]]:
    """Image | prediction | GT | relative error panels of evenly spread validation frames; without validation
    frames, image | predicted depth panels of training frames spread over the data (`_training_samples`)."""
    from depth_node.evaluate.depth_metrics import resize_to

    samples = trainer.valset.frames
    if not samples:
        return _training_samples(trainer, out, model_path)
    n = min(trainer.cfg.output.report_samples, len(samples))
    if not n:
        return []
    chosen = [samples[k] for k in np.linspace(0, len(samples) - 1, n).round().astype(int)]
    images = []
    for f, p in zip(chosen, trainer.predict_val(chosen)):
        gt = np.where(np.isfinite(f.depth) & (f.depth > 0), f.depth, np.nan).astype(np.float32)
        p = _to_gt_scale(p * trainer.scale_factor(), gt, median=trainer.median_scaling)
        rgb = _resize_rgb(f.rgb, gt.shape[1], gt.shape[0])
        panel = depth_panel(rgb, resize_to(p, gt.shape), gt, max_depth=trainer.cfg.data.eval_max_depth)
        images.append((f"{f.name}: image | prediction | GT | relative error",
                       save_png(out / f"{f.name.replace('/', '_')}.png", panel)))
    return images


PANEL_MIN_WIDTH = 2 * MIN_BAR_WIDTH  # px: smaller training frames are enlarged so the panel has its colour bar


def _training_samples(trainer: TrainedRun, out: Path, model_path: Path | None) -> list[tuple[str, Path]]:
    """Image | predicted depth panels of training frames evenly spread over all training sequences, for a run
    without validation data (the adapt workflow): no GT, so no error row. In metres with the report's colour bar
    where the model file has a metric scale (`_display_scale`); relative models get per-frame colours and no bar
    (their depth has no unit)."""
    from depth_node.evaluate.depth_metrics import resize_to

    refs = [(s, i) for s in trainer.train_sequences for i in range(len(s))]
    n = min(trainer.cfg.output.report_samples, len(refs))
    if not n:
        return []
    refs = [refs[k] for k in np.linspace(0, len(refs) - 1, n).round().astype(int)]
    frames = []
    for s, i in refs:
        rgb = s.frame(i)
        frames.append(ValFrame(rgb, np.full(rgb.shape[:2], np.nan, np.float32), f"{s.name}/{i:06d}",
                               float(s.K_norm[0, 0])))
    factor = _display_scale(trainer, model_path)
    images = []
    for f, p in zip(frames, trainer.predict_val(frames)):
        h, w = f.rgb.shape[:2]
        k = max(1, math.ceil(PANEL_MIN_WIDTH / w))  # enlarge small frames (a 128-px frame has no room for a bar)
        rgb = _resize_rgb(f.rgb, w * k, h * k)
        depth = resize_to(np.asarray(p, dtype=np.float32) * (factor or 1.0), (h * k, w * k))
        rng = depth_range(depth, None, trainer.cfg.data.eval_max_depth) if factor else None
        panel = depth_panel(rgb, depth, max_depth=trainer.cfg.data.eval_max_depth, scale_bars=factor is not None)
        legend = (panel_legend(rng, with_error=False) if factor else
                  "relative depth (the model has no metric scale): colours per frame, near = red, far = blue")
        images.append((f"{f.name}: training frame (no GT) | predicted depth; {legend}",
                       save_png(out / f"train_{f.name.replace('/', '_')}.png", panel)))
    return images


def _display_scale(trainer: TrainedRun, model_path: Path | None) -> float | None:
    """Network depth → metres for the pictures: the factor of the written model file's `meta.scale` (the scale
    the node will use: stereo baseline, camera-height fit, the init model's, or metric), else the trainer's;
    None for a relative-scale model."""
    scale = None
    if model_path is not None:
        try:
            scale = torch.load(model_path, map_location="cpu", weights_only=True)["meta"].get("scale")
        except Exception:  # unreadable model file: fall back to what the trainer knows
            scale = None
    if isinstance(scale, dict) and "kind" in scale:
        factor = scale.get("factor", 1.0)
        ok = scale["kind"] in ("stereo", "metric") and isinstance(factor, (int, float)) and math.isfinite(factor)
        return float(factor) if ok and factor > 0 else None
    return None if trainer.median_scaling else float(trainer.scale_factor())


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
