"""The `depth-node train` command's body: config + overrides → the trainer the mode asks for → a summary.

Self-supervised Monodepth2 (`trainer.Trainer`) for modes M / S / MS, the supervised metric ViT
(`metric_trainer.MetricTrainer`) for mode metric; both run the one loop in `loop.py`."""

from __future__ import annotations

import os
from pathlib import Path

from depth_node.train.config import TrainConfig
from depth_node.train.result import TrainingInterrupted, TrainResult


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, **kw) -> TrainResult:
    """Run a whole training of the mode's trainer (`kw`: train_sequences / val_sequences given in memory)."""
    if cfg.is_metric:
        from depth_node.train.metric_trainer import MetricTrainer

        return MetricTrainer(cfg, out_dir, resume, **kw).train()
    from depth_node.train.trainer import Trainer

    return Trainer(cfg, out_dir, resume, **kw).train()


def train_from_files(config: str | Path, overrides: list[str], out_dir: str | Path, resume: bool = False) -> int:
    """Train from a YAML config with `section.key=value` overrides, print what came out; the exit status
    (128 + signal number when a signal stopped the run after saving a checkpoint)."""
    cfg = TrainConfig.from_yaml(config, overrides)
    try:
        result = train(cfg, out_dir, resume=resume)
    except TrainingInterrupted as exc:
        print(str(exc))
        return 128 + exc.signum
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    best = result.best or {}
    m = best.get("metrics") or {}
    print(f"trained {result.steps} steps ({result.epochs_done} epochs) → {result.model_path}")
    if m:
        print("best epoch {}: abs_rel {:.4f}  sq_rel {:.4f}  rmse {:.3f}  rmse_log {:.4f}  a1 {:.3f}".format(
            best.get("epoch"), m["abs_rel"], m["sq_rel"], m["rmse"], m["rmse_log"], m["a1"]))
    if result.onnx_dir:
        print(f"ONNX: {result.onnx_dir}")
    if result.report:
        print(f"report: {result.report}")
    return 0
