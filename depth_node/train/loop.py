"""The one training loop both trainers run: data → networks → Adam, epochs with a time/step budget, validation
each epoch, atomic resumable checkpoints, SIGINT/SIGTERM saves, torchrun/DDP, TensorBoard, and at the end the
best epoch as a model file + ONNX + report.

`TrainingLoop` owns all of that once. What is trained comes from the hooks a trainer implements (listed under
"hooks" below): the dataset, the networks, the loss of a batch, validation predictions, the model file, and an
optional phase after the epochs. `trainer.Trainer` (self-supervised Monodepth2) and
`metric_trainer.MetricTrainer` (supervised metric ViT) are the two; neither replaces the loop, the checkpoint or
the resume code, and this module imports neither.

Output folder: `checkpoints/last.pt` (resume), `checkpoints/best.pt` (weights of the best validation epoch),
`tb/` (TensorBoard), `history.json`, `model.pt` (depth_node model file), `onnx/`, `report/index.html`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import time
from abc import ABC, abstractmethod
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import depth_node
from depth_node.cpu_info import has_native_bf16
from depth_node.errors import DepthNodeError
from depth_node.train import distributed as ddp
from depth_node.train.checkpoint import atomic_torch_save, load_checkpoint, save_checkpoint, set_rng_state
from depth_node.train.config import TrainConfig, check_resume_compatible
from depth_node.train.data import (
    CachedSequence,
    EpochBatchSampler,
    ValFrame,
    ValidationSet,
    build_sequence,
    reference_baseline,
    validation_set,
)
from depth_node.train.result import TrainingInterrupted, TrainResult

if TYPE_CHECKING:
    from depth_node.checkpoints.model_file import ModelFile

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def autocast_settings(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use GradScaler). `auto` is fp16 on CUDA, bf16 on a CPU where bf16 is native and
    fp32 elsewhere: emulated bf16 is an order of magnitude slower than fp32 (`cpu_info.has_native_bf16`)."""
    amp = cfg.system.amp
    if amp == "auto":
        amp = "fp16" if device.type == "cuda" else "bf16" if has_native_bf16() else "off"
    elif amp == "bf16" and device.type == "cpu" and not has_native_bf16():
        log.warning("system.amp=bf16 on a CPU without native bf16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
                    "oneDNN emulates it and training runs ~10x slower than fp32; use system.amp=auto or off")
    if amp == "off":
        return None, False
    if amp == "fp16":
        if device.type != "cuda":
            raise DepthNodeError("system.amp=fp16 needs CUDA; on CPU use bf16 or off")
        return torch.float16, True
    return torch.bfloat16, False


def set_train_mode(net: nn.Module, freeze_bn: bool) -> None:
    """Training mode; with `freeze_bn` the BatchNorm layers keep normalising by (and stop updating) their
    running statistics while their scale and shift still train."""
    net.train()
    if freeze_bn:
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


class TrainingLoop(ABC):
    # Boundary F1 costs a little per validation frame; a trainer that reports it sets this.
    validate_boundary = False

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | Path,
        resume: bool = False,
        train_sequences: list[CachedSequence] | None = None,
        val_sequences: list[CachedSequence] | None = None,
    ) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.resume = resume
        self.device = ddp.local_device(cfg.system.device)
        self.dist = ddp.init_distributed(self.device)
        if cfg.system.threads:
            torch.set_num_threads(cfg.system.threads)
        self.main = self.dist.is_main
        self.ckpt_dir = self.out / "checkpoints"
        self._train_seqs = train_sequences
        self._val_seqs = val_sequences
        self._stop_signal: int | None = None
        self.writer = None
        self.losses: list[float] = []
        self.stopped_by: str | None = None  # why the epochs ended early: "budget", "max_steps" or "signal"

    # ============================================================================================ hooks

    @abstractmethod
    def make_dataset(self, sequences: list[CachedSequence]) -> Dataset:
        """The training samples of these sequences (with augmentation)."""

    @abstractmethod
    def build_networks(self) -> tuple[nn.Module, nn.Module | None]:
        """(depth network, pose network or None), freshly initialised; called after the data is loaded."""

    @abstractmethod
    def init_from(self, path: str, depth: nn.Module, pose: nn.Module | None) -> None:
        """Load `model.init` weights into the new networks."""

    def trainable_parameters(self, depth: nn.Module, pose: nn.Module | None) -> list[nn.Parameter]:
        return list(depth.parameters()) + (list(pose.parameters()) if pose is not None else [])

    @abstractmethod
    def forward_loss(self, batch: dict[str, torch.Tensor], keep_visuals: bool = False) -> tuple[Any, Any]:
        """(step output with a scalar `.total` to minimise, visuals for `log_images` or None) of a batch
        already on the device."""

    def step_scalars(self, out: Any) -> dict[str, float]:
        """Loss parts worth a TensorBoard curve (the loop logs loss, lr, samples/s and epoch itself)."""
        return {}

    def log_images(self, batch: dict[str, torch.Tensor], out: Any, visuals: Any) -> None:
        """TensorBoard images of a step (called on rank 0 with an open writer)."""
        return None  # optional hook

    @abstractmethod
    def predict_val(self, frames: list[ValFrame]) -> list[np.ndarray]:
        """Depth of validation frames (network units unless the model is metric), evaluated against GT."""

    @property
    @abstractmethod
    def median_scaling(self) -> bool:
        """Validation and report scale each prediction by the GT median (relative-scale models)."""

    def scale_factor(self) -> float:
        """Network depth → metres before comparing with GT."""
        return 1.0

    @abstractmethod
    def scaling_label(self) -> str:
        """How predictions were scaled, for the report."""

    @abstractmethod
    def model_file(self, depth_sd: dict, pose_sd: dict | None, provenance: dict[str, Any]) -> ModelFile:
        """The deployable model file of the chosen weights."""

    def after_epochs(self) -> None:
        """A phase after the depth epochs (e.g. fitting a head on frozen weights); runs unless stopped."""
        return None  # optional hook

    def extra_state(self) -> dict[str, Any]:
        """Trainer-specific checkpoint entries (must round-trip through `load_extra_state`)."""
        return {}

    def load_extra_state(self, ck: dict[str, Any]) -> None:
        """Restore what `extra_state` saved, on --resume."""
        return None  # optional hook

    # ============================================================================================= data

    @property
    def train_sequences(self) -> list[CachedSequence]:
        """The training recordings (after `load_data`): the report's card names them and their camera."""
        return self._train_seqs or []

    def _cache_dir(self) -> Path:
        return Path(self.cfg.data.cache_dir) if self.cfg.data.cache_dir else self.out / "cache"

    def load_data(self) -> None:
        """Sequences from --data / config (each rank builds its own; the disk cache is built by rank 0 first)."""
        cfg = self.cfg
        if self._train_seqs is None:
            if self.dist.enabled and not self.main:
                ddp.barrier(self.dist)  # rank 0 renders/caches first
            self._train_seqs, self._val_seqs = self._open(cfg.data.train, cfg.data.val)
            if self.dist.enabled and self.main:
                ddp.barrier(self.dist)
        self.dataset = self.make_dataset(self._train_seqs)
        self.valset: ValidationSet = validation_set(self._val_seqs or [], cfg.data.val_max_frames)
        self.ref_baseline = reference_baseline(self._train_seqs, cfg)
        self.steps_per_epoch = EpochBatchSampler.steps_per_epoch(len(self.dataset), cfg.optim.batch_size,
                                                                 self.dist.world_size)
        if self.steps_per_epoch == 0:
            raise DepthNodeError(
                f"{len(self.dataset)} training samples are fewer than one batch of {cfg.optim.batch_size}"
                + (f" × {self.dist.world_size} processes" if self.dist.enabled else "")
                + "; lower optim.batch_size or add data"
            )
        if self.main:
            log.info("training samples: %d (%d static triplets dropped), %d steps/epoch; validation frames: %d",
                     len(self.dataset), getattr(self.dataset, "n_static", 0), self.steps_per_epoch,
                     len(self.valset))

    def _open(self, train: list[str], val: list[str]) -> tuple[list[CachedSequence], list[CachedSequence]]:
        cfg = self.cfg
        synth_dir = self._cache_dir() / "synth"
        if train:
            tr = self._open_specs(train, need_depth=cfg.is_metric)
        else:
            if cfg.synth is None or not cfg.synth.train.seeds:
                raise DepthNodeError("no training data: give --data DIR_OR_BAG (or data.train in the config), or a "
                                     "synth: section naming drives to render")
            from depth_node.train.synth_data import synth_sequences

            tr = synth_sequences(cfg, "train", synth_dir, progress=cfg.system.progress)
        if val:
            va = self._open_specs(val, need_depth=True)
        elif cfg.synth is not None and cfg.synth.val.seeds:
            from depth_node.train.synth_data import synth_sequences

            va = synth_sequences(cfg, "val", synth_dir, progress=cfg.system.progress)
        else:
            va = []
        return tr, va

    def _open_specs(self, specs: list[str], need_depth: bool) -> list[CachedSequence]:
        from depth_node.train.sources import open_sources

        d = self.cfg.data
        seqs = []
        for spec in specs:
            for src in open_sources(spec, d.intrinsics, d.stereo_baseline_m, d.bag, d.video_every_nth,
                                    want_right=self.cfg.use_stereo or d.both_sides):
                seqs.append(build_sequence(src, d.width, d.height, d.cache, self._cache_dir(),
                                           need_right=self.cfg.use_stereo or d.both_sides, need_depth=need_depth,
                                           need_seg=self.cfg.loss.seg_weight > 0, progress=self.cfg.system.progress
                                           and self.main))
        return seqs

    # =========================================================================================== set-up

    def setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.load_data()
        depth, pose = self.build_networks()
        if cfg.model.init:
            self.init_from(cfg.model.init, depth, pose)
        self.amp_dtype, use_scaler = autocast_settings(cfg, self.device)
        cl = cfg.system.channels_last
        self.channels_last = cl == "on" or (cl == "auto" and self.device.type == "cuda")
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        depth.to(self.device, memory_format=fmt)
        if pose is not None:
            pose.to(self.device, memory_format=fmt)
        params = self.trainable_parameters(depth, pose)
        try:  # the fused kernel: a quarter of the time of the per-tensor loop on CPU (~10% of a step otherwise)
            self.optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                              fused=True)
        except (RuntimeError, TypeError):
            self.optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, cfg.optim.scheduler_step_size,
                                                         cfg.optim.scheduler_gamma)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        partial_scales = sorted(cfg.model.scales) != [0, 1, 2, 3]
        self.depth = ddp.wrap(depth, self.dist, self.device, find_unused=partial_scales)
        self.pose = ddp.wrap(pose, self.dist, self.device) if pose is not None else None
        self.epoch = 0
        self.step = 0
        self.batch_in_epoch = 0
        self.train_seconds = 0.0
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self._rng_to_restore = None
        if self.resume:
            self._load_resume()
        elif self.main and (self.ckpt_dir / "last.pt").exists():
            raise DepthNodeError(f"{self.out} already holds a training run (checkpoints/last.pt): pass --resume to "
                                 "continue it, or choose another --out")

    def _load_resume(self) -> None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise DepthNodeError(f"--resume: no checkpoint at {path}")
        ck = load_checkpoint(path)
        if ck.get("config") is not None:  # the CLI checked <out>/config.yaml already; this guards every caller
            check_resume_compatible(ck["config"], self.cfg.to_dict(), run=str(path), source="this configuration")
        ddp.unwrap(self.depth).load_state_dict(ck["depth"])
        if self.pose is not None:
            if ck.get("pose") is None:
                raise DepthNodeError(f"{path} was trained without a pose net (mode S); cannot resume as "
                                     f"{self.cfg.mode}")
            ddp.unwrap(self.pose).load_state_dict(ck["pose"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self._resume_lr((ck.get("config") or {}).get("optim", {}).get("lr"))
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        self.epoch, self.step, self.batch_in_epoch = int(ck["epoch"]), int(ck["step"]), int(ck["batch_in_epoch"])
        self.train_seconds = float(ck.get("train_seconds", 0.0))
        self.best = ck.get("best")
        self.history = list(ck.get("history", []))
        if int(ck.get("world_size", 1)) == self.dist.world_size:
            self._rng_to_restore = ck["rng"]
        else:
            log.warning("resuming with %d processes instead of %d: data order continues, RNG streams restart",
                        self.dist.world_size, ck.get("world_size"))
        self.load_extra_state(ck)
        if self.main:
            log.info("resuming at epoch %d, step %d (batch %d of the epoch)", self.epoch, self.step,
                     self.batch_in_epoch)

    def _resume_lr(self, saved_lr: float | None) -> None:
        """An `optim.lr=` given on --resume applies: the optimiser's and the scheduler's saved state would
        otherwise bring the old rate back. Every group is scaled by new / old, so the schedule's decay so far and
        the groups' ratios stay."""
        new = float(self.cfg.optim.lr)
        if not saved_lr or float(saved_lr) == new:
            return
        k = new / float(saved_lr)
        for g in self.optimizer.param_groups:
            g["lr"] *= k
        self.scheduler.base_lrs = [b * k for b in self.scheduler.base_lrs]
        if self.main:
            log.info("resume: learning rate %g → %g (optim.lr), schedule kept", float(saved_lr), new)

    # ========================================================================================= one step

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        nb = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=nb) for k, v in batch.items()}

    def train_step(self, batch: dict[str, torch.Tensor], keep_visuals: bool = False):
        """One optimiser step on a CPU batch: (step output, visuals, the batch on the device)."""
        for net in (self.depth, self.pose):
            if net is not None:
                set_train_mode(net, self.cfg.model.freeze_bn)
        batch = self.to_device(batch)
        out, visuals = self.forward_loss(batch, keep_visuals)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return out, visuals, batch

    # ========================================================================================== signals

    def _on_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:  # second signal: stop now
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self._stop_signal = signum
        if self.main:
            log.warning("signal %d: finishing the current step, then saving a checkpoint (again to abort)", signum)

    def _install_signals(self) -> dict[int, Any]:
        old = {}
        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                old[s] = signal.signal(s, self._on_signal)
        except ValueError:  # not the main thread (embedded use): no handlers
            pass
        return old

    @property
    def stop_requested(self) -> bool:
        return self._stop_signal is not None

    def interrupt(self) -> None:
        """Save and raise `TrainingInterrupted` (for a phase run from `after_epochs` that saw a stop request)."""
        assert self._stop_signal is not None
        raise TrainingInterrupted(self._stop_signal, self.save())

    # ======================================================================================= checkpoint

    def state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "depth": ddp.unwrap(self.depth).state_dict(),
            "pose": ddp.unwrap(self.pose).state_dict() if self.pose is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "train_seconds": self.train_seconds,
            "best": self.best,
            "history": self.history,
            "world_size": self.dist.world_size,
            "input": {"height": self.cfg.data.height, "width": self.cfg.data.width},
            "ref_baseline_m": self.ref_baseline,
            **self.extra_state(),
        }

    def save(self) -> Path | None:
        if not self.main:
            return None
        return save_checkpoint(self.ckpt_dir / "last.pt", self.state())

    def save_best(self, depth_sd: dict | None = None) -> None:
        """Weights of the best epoch so far (`depth_sd` replaces the depth weights, e.g. after a later phase)."""
        state = {
            "depth": depth_sd if depth_sd is not None else ddp.unwrap(self.depth).state_dict(),
            "pose": ddp.unwrap(self.pose).state_dict() if self.pose is not None else None,
            "best": self.best,
        }
        atomic_torch_save(state, self.ckpt_dir / "best.pt")

    # ========================================================================================= the loop

    def _loader(self, epoch: int, start: int) -> DataLoader:
        sampler = EpochBatchSampler(len(self.dataset), self.cfg.optim.batch_size, self.cfg.seed, epoch,
                                    self.dist.rank, self.dist.world_size, start)
        nw = self.cfg.data.num_workers
        return DataLoader(
            self.dataset, batch_sampler=sampler, num_workers=nw, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.cfg.seed), persistent_workers=False,
            prefetch_factor=2 if nw > 0 else None,
        )

    def _budget_left(self) -> bool:
        o = self.cfg.optim
        if o.max_steps is not None and self.step >= o.max_steps:
            return False
        return not (o.max_minutes is not None and self.train_seconds >= o.max_minutes * 60.0)

    def train(self) -> TrainResult:
        """The whole run: set-up, epochs (then `after_epochs`), and on rank 0 the model file, ONNX, report."""
        self.setup()
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(_dump_yaml(self.cfg.to_dict()))
            self._open_writer()
        old = self._install_signals()
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
        try:
            self._epochs()
            if not self.stop_requested:
                self.after_epochs()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if self.writer is not None:
                self.writer.flush()
        result = TrainResult(self.out, self.step, self.epoch, self.best, self.history, losses=self.losses)
        if self.main:
            self._write_outputs(result)
        ddp.barrier(self.dist)
        ddp.cleanup(self.dist)
        return result

    def _write_outputs(self, result: TrainResult) -> None:
        (self.out / "history.json").write_text(json.dumps(self.history, indent=2))
        result.model_path = self.finish()
        if self.writer is not None:
            self.writer.close()
        if self.cfg.output.export_onnx and result.model_path is not None:
            from depth_node.export.onnx_export import export_model

            export_model(result.model_path, self.out / "onnx")
            result.onnx_dir = self.out / "onnx"
        if self.cfg.output.report and result.model_path is not None:
            from depth_node.train.report import write_report

            result.report = write_report(self, result)

    def _step_total(self) -> int:
        """Steps the run can take by its epochs and optim.max_steps (the time budget may end it sooner)."""
        o = self.cfg.optim
        total = o.epochs * self.steps_per_epoch
        return total if o.max_steps is None else min(total, o.max_steps)

    def progress_total(self) -> int:
        """The progress bar's total: the step total, or with a time budget (optim.max_minutes) the steps the
        budget leaves room for at the rate measured so far in this session (validation and checkpoints count, as
        they do for the budget), whichever is lower — so the bar's ETA is bounded by the budget."""
        total = self._step_total()
        minutes = self.cfg.optim.max_minutes
        step0, seconds0 = getattr(self, "_session_start", (self.step, self.train_seconds))
        done, seconds = self.step - step0, self.train_seconds - seconds0
        if minutes is None or done < 1 or seconds <= 0:
            return total
        left = max(0.0, minutes * 60.0 - self.train_seconds)
        return max(self.step, min(total, self.step + math.ceil(done / seconds * left)))

    def _epochs(self) -> None:
        cfg = self.cfg
        self.stopped_by = None
        self._session_start = (self.step, self.train_seconds)
        total = self._step_total()
        o = cfg.optim
        if self.main and o.max_steps is not None and o.max_steps > o.epochs * self.steps_per_epoch > self.step:
            log.info("optim.max_steps=%d is more than optim.epochs × steps/epoch = %d × %d: training ends after %d "
                     "steps (raise optim.epochs to train longer)", o.max_steps, o.epochs, self.steps_per_epoch,
                     total)
        progress = None
        if self.main and cfg.system.progress:
            from tqdm import tqdm

            progress = tqdm(total=total, initial=min(self.step, total), desc="train", unit="step", dynamic_ncols=True)
            if o.max_minutes is not None:
                progress.set_description(f"train (budget {o.max_minutes:g} min)", refresh=False)
        try:
            while self.epoch < cfg.optim.epochs:
                if not self._run_epoch(progress):
                    break
            if progress is not None and self.stopped_by is not None:
                progress.total = progress.n  # stopped early: the bar ends full, not at the steps it never took
                progress.refresh()
        finally:
            if progress is not None:
                progress.close()
        self._log_stop()

    def _log_stop(self) -> None:
        """Why the epochs ended, once, on rank 0: the time budget (how --preset adapt normally ends) or
        optim.max_steps; a run that trained all its epochs, or one stopped by a signal, says nothing here."""
        if not self.main or self.stopped_by not in ("budget", "max_steps"):
            return
        o = self.cfg.optim
        at = (f"in epoch {self.epoch + 1} of {o.epochs}, {self.batch_in_epoch} of its {self.steps_per_epoch} steps"
              if self.batch_in_epoch else f"at the end of epoch {self.epoch} of {o.epochs}")
        where = f"after {self.step} steps ({at}; {self.train_seconds / 60.0:.2f} min of training and validation)"
        if self.stopped_by == "budget":
            log.info("stopped: the %g-min budget (optim.max_minutes / --budget-min) was reached %s", o.max_minutes,
                     where)
        else:
            log.info("stopped: optim.max_steps=%d reached %s", o.max_steps, where)

    def _stop_reason(self) -> str:
        if self.stop_requested:
            return "signal"
        o = self.cfg.optim
        if o.max_steps is not None and self.step >= o.max_steps:
            return "max_steps"
        return "budget"  # this rank's clock, or another rank's (DDP stops all together)

    def _run_epoch(self, progress) -> bool:
        """One (rest of an) epoch; False when training stops (budget reached)."""
        self._clock = time.perf_counter()
        self._rate_since = (self._clock, 0)
        loader = self._loader(self.epoch, self.batch_in_epoch)
        it = iter(loader)
        while self.batch_in_epoch < self.steps_per_epoch:
            if ddp.any_flag(not self._budget_left() or self.stop_requested, self.dist, self.device):
                self.stopped_by = self._stop_reason()
                self._stop_here(loader)
                # budget ran out mid-epoch: judge the weights trained so far too (once: a --resume of a run that
                # stopped on its budget finds these weights already validated)
                done = bool(self.history) and self.history[-1]["step"] == self.step
                if self.batch_in_epoch > 0 and not ddp.any_flag(done, self.dist, self.device):
                    self._end_of_epoch(partial=True)
                return False
            try:
                batch = next(it)
            except StopIteration:
                break
            except Exception:
                if self.stop_requested:  # a worker died of the same Ctrl-C: nothing was lost
                    self.stopped_by = "signal"
                    self._stop_here(loader)
                    return False
                raise
            self._one_step(batch, progress)
        # epoch complete: LR schedule after the epoch's optimiser steps, then validation
        self.scheduler.step()
        self.epoch += 1
        self.batch_in_epoch = 0
        self._end_of_epoch()
        self.tick()
        return True

    def _one_step(self, batch: dict[str, torch.Tensor], progress) -> None:
        """A training step with its bookkeeping: counters, time, logging, periodic checkpoint."""
        cfg = self.cfg
        want_images = self.main and (self.step + 1) % cfg.system.image_every == 0
        out, visuals, dev_batch = self.train_step(batch, keep_visuals=want_images)
        loss = float(out.total.detach())
        if not math.isfinite(loss):
            raise DepthNodeError(f"loss became {loss} at step {self.step}; lower optim.lr or check the data "
                                 "(intrinsics, stereo baseline)")
        self.step += 1
        self.batch_in_epoch += 1
        self.tick()
        self.losses.append(loss)
        t_last, n_since = self._rate_since
        n_since += 1
        if progress is not None:
            if self.cfg.optim.max_minutes is not None:
                progress.total = self.progress_total()
            progress.update(1)
            progress.set_postfix(epoch=self.epoch, loss=f"{loss:.4f}")
        if self.main and self.step % cfg.system.log_every == 0:
            now = time.perf_counter()
            sps = n_since * cfg.optim.batch_size * self.dist.world_size / max(now - t_last, 1e-9)
            self._log_scalars(out, loss, sps)
            t_last, n_since = now, 0
        self._rate_since = (t_last, n_since)
        if want_images and self.writer is not None:
            self.log_images(dev_batch, out, visuals)
        if self.step % cfg.system.checkpoint_every == 0:
            self.save()

    def tick(self) -> None:
        """Training time = wall time inside the epoch loop (steps, data, logging, checkpoints, validation), so
        optim.max_minutes bounds the whole run apart from data preparation and the final export."""
        now = time.perf_counter()
        self.train_seconds += now - self._clock
        self._clock = now

    def start_clock(self) -> None:
        """Start timing a phase that runs outside the epochs (`after_epochs`)."""
        self._clock = time.perf_counter()

    def _stop_here(self, loader: DataLoader) -> None:
        path = self.save()
        del loader
        if self._stop_signal is not None:
            raise TrainingInterrupted(self._stop_signal, path)

    def _end_of_epoch(self, partial: bool = False) -> None:
        """Validation, best tracking and a checkpoint; `partial` = stopped inside an epoch (no LR step, the
        resume checkpoint was already written)."""
        if self.main:
            metrics = self.validate()
            entry = {"epoch": self.epoch + (0.5 if partial else 0), "step": self.step,
                     "lr": self.optimizer.param_groups[0]["lr"],
                     "train_loss": float(np.mean(self.losses[-self.steps_per_epoch:])) if self.losses else None,
                     "train_seconds": self.train_seconds, "val": metrics}
            self.history.append(entry)
            score = metrics["abs_rel"] if metrics else None
            if self.best is None or (score is not None and (self.best.get("abs_rel") is None or
                                                            score < self.best["abs_rel"])) or score is None:
                self.best = {"epoch": self.epoch, "step": self.step, "abs_rel": score, "metrics": metrics}
                self.save_best()
            if self.writer is not None and metrics:
                for k, v in metrics.items():
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        self.writer.add_scalar(f"val/{k}", v, self.step)
            (self.out / "history.json").write_text(json.dumps(self.history, indent=2))
            if metrics:
                log.info("epoch %s: val abs_rel %.4f, rmse %.3f, a1 %.3f", entry["epoch"], metrics["abs_rel"],
                         metrics["rmse"], metrics["a1"])
            self.save()
        ddp.barrier(self.dist)

    # ======================================================================================= validation

    def validate(self) -> dict[str, float] | None:
        if not len(self.valset):
            return None
        from depth_node.evaluate.depth_metrics import DepthEvalSettings, DepthEvaluator

        d = self.cfg.data
        ev = DepthEvaluator(DepthEvalSettings(
            median_scaling=self.median_scaling, min_depth=d.eval_min_depth, max_depth=d.eval_max_depth,
            crop="none", scale_factor=self.scale_factor(), boundary=self.validate_boundary,
        ))
        preds = self.predict_val(self.valset.frames)
        for f, p in zip(self.valset.frames, preds):
            gt = np.where(np.isfinite(f.depth), f.depth, 0.0).astype(np.float32)
            ev.add(gt, p, f.name)
        res = ev.result()
        m = dict(res.metrics)
        if res.ratio_median is not None:
            m["ratio_median"], m["ratio_std"] = res.ratio_median, res.ratio_std
        m["n_images"] = res.n_images
        if res.boundary_f1 is not None:
            m["boundary_f1"] = res.boundary_f1
        return m

    # ========================================================================================== logging

    def _open_writer(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency, but keep training without it
            log.warning("tensorboard not installed: no TensorBoard logs")
            return
        self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step if self.resume else None)

    def _log_scalars(self, out: Any, loss: float, sps: float) -> None:
        if self.writer is None:
            return
        w, s = self.writer, self.step
        w.add_scalar("train/loss", loss, s)
        for k, v in self.step_scalars(out).items():
            w.add_scalar(f"train/{k}", v, s)
        w.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], s)
        w.add_scalar("train/samples_per_s", sps, s)
        w.add_scalar("train/epoch", self.epoch, s)

    # =========================================================================================== finish

    def finish(self) -> Path | None:
        """Best (by validation abs_rel; the last epoch without validation data) weights → model file."""
        from depth_node.checkpoints.model_file import save_model
        from depth_node.train.checkpoint import load_torch_file

        best_path = self.ckpt_dir / "best.pt"
        if best_path.is_file():
            st = load_torch_file(best_path, "best checkpoint")
            depth_sd, pose_sd, best = st["depth"], st["pose"], st["best"] or {}
        else:  # stopped before the first epoch ended: the current weights
            depth_sd = ddp.unwrap(self.depth).state_dict()
            pose_sd = ddp.unwrap(self.pose).state_dict() if self.pose is not None else None
            best = {"epoch": self.epoch, "step": self.step, "abs_rel": None, "metrics": None}
        cfg = self.cfg
        provenance = {
            "trainer": f"depth_node {depth_node.__version__}",
            "mode": cfg.mode,
            "config": cfg.to_dict(),
            "data": {"train": [s.name for s in (self._train_seqs or [])],
                     "val": [s.name for s in (self._val_seqs or [])],
                     "train_samples": len(self.dataset)},  # type: ignore[arg-type]
            "seed": cfg.seed,
            "metrics": best.get("metrics"),
            "best_epoch": best.get("epoch"),
            "best_step": best.get("step"),
            "steps": self.step,
            "train_seconds": round(self.train_seconds, 1),
        }
        path = save_model(self.out / "model.pt", self.model_file(depth_sd, pose_sd, provenance))
        log.info("model file: %s (epoch %s, val abs_rel %s)", path, best.get("epoch"), best.get("abs_rel"))
        return path


def _dump_yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)
