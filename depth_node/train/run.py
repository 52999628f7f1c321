"""The `depth-node train` command's body: config + overrides → the trainer the mode asks for → a summary.

Self-supervised Monodepth2 (`trainer.Trainer`) for modes M / S / MS, the supervised metric ViT
(`metric_trainer.MetricTrainer`) for mode metric; both run the one loop in `loop.py`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from depth_node.errors import DepthNodeError
from depth_node.runtime.params import flatten
from depth_node.train.config import TrainConfig, check_resume_compatible
from depth_node.train.result import TrainingInterrupted, TrainResult

log = logging.getLogger(__name__)


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, **kw) -> TrainResult:
    """Run a whole training of the mode's trainer (`kw`: train_sequences / val_sequences given in memory)."""
    if cfg.is_metric:
        from depth_node.train.metric_trainer import MetricTrainer

        return MetricTrainer(cfg, out_dir, resume, **kw).train()
    from depth_node.train.trainer import Trainer

    return Trainer(cfg, out_dir, resume, **kw).train()


def resume_config(out_dir: str | Path, overrides: list[str], config: str | Path | None = None) -> TrainConfig:
    """The configuration `--resume` continues the run in `out_dir` with: the run's own saved `<out>/config.yaml`
    (the whole configuration it ran with, data included; the checkpoint's copy if that file is missing) with this
    command's `overrides` on top. Overrides of checkpoint-bound keys (input size, networks, mode:
    `config.RESUME_FIXED_KEYS`) that change them are refused with one ConfigError naming key, saved and new value.

    `config` (optional) is checked, not used: the file plus `overrides` must agree with the run on the
    checkpoint-bound keys (else the same refusal); where it differs on other keys the run's saved values are kept
    and a warning names those keys. A config file sets every key, so letting it win would silently undo the run's
    own command-line settings (its data, size, batch size...); change a key on resume with `key=value`."""
    out = Path(out_dir)
    last = out / "checkpoints" / "last.pt"
    if not last.is_file():
        raise DepthNodeError(f"--resume: no checkpoint at {last} (is --out the run's output folder?)")
    saved_path = out / "config.yaml"
    if saved_path.is_file():
        saved = TrainConfig.from_yaml(saved_path)
        where = str(saved_path)
    else:
        from depth_node.train.checkpoint import load_checkpoint

        saved_dict = load_checkpoint(last).get("config")
        if saved_dict is None:
            raise DepthNodeError(f"--resume: {out} has neither config.yaml nor a config in {last}")
        saved = TrainConfig.from_dict(saved_dict, f"{last} (config)")
        where = str(last)
    saved_d = saved.to_dict()
    cfg = saved.with_overrides(overrides)
    check_resume_compatible(saved_d, cfg.to_dict(), run=where, source="this command line")
    if config is not None:
        given = TrainConfig.from_yaml(config, overrides).to_dict()
        check_resume_compatible(saved_d, given, run=where, source=f"--config {config}")
        mine, theirs = flatten(cfg.to_dict()), flatten(given)
        ignored = sorted(k for k in theirs.keys() | mine.keys() if theirs.get(k) != mine.get(k))
        if ignored:
            log.warning("--resume continues with the run's saved config (%s); %s differs on %s: kept as saved "
                        "(give key=value to change a key)", where, config, ", ".join(ignored))
    return cfg


def train_from_files(config: str | Path | None, overrides: list[str], out_dir: str | Path,
                     resume: bool = False) -> int:
    """Train from a YAML config with `section.key=value` overrides, print what came out; the exit status
    (128 + signal number when a signal stopped the run after saving a checkpoint). `resume`: continue the run in
    `out_dir` from its own saved configuration (`resume_config`; `config` is then optional and only checked)."""
    if resume:
        cfg = resume_config(out_dir, overrides, config)
    elif config is None:
        raise DepthNodeError("give --config FILE or --preset NAME (or --resume to continue the run in --out)")
    else:
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
