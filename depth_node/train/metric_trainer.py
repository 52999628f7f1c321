"""Supervised training of the Depth Pro-style metric ViT (`mode: metric`) on ground-truth depth, on the same
infrastructure as the self-supervised trainer: config, data sources and synthetic drives, epochs, time budget,
atomic checkpoints with `--resume`, SIGINT/SIGTERM saves, DDP, TensorBoard, validation, model file, ONNX, report.

What differs (Bochkovskii et al. 2024, §3.3):
- Loss on canonical inverse depth C = f_px / (W · d) at the frame's own size (the prediction is resized back
  as `canonical_to_metric` does at inference): stage 1 = MAE (optionally trimmed), from `metric.stage2_epoch`
  on stage 2 = MAE + MAGE + MSGE + MALE (`metric_losses.py`).
- The FOV head (with its own ViT) is not trained with depth: after the depth epochs the best depth weights are
  frozen and `metric.fov_steps` steps fit the FOV head alone (L2 on degrees), on frames randomly cropped and
  zoomed so the field of view varies. Under DDP that phase runs on rank 0 (it is short).
- Validation is metric (no median scaling) and reports boundary F1 and the FOV error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from depth_node.checkpoints.model_file import ModelFile
from depth_node.errors import DepthNodeError
from depth_node.networks.depth_pro import (
    DepthPro,
    canonical_to_metric,
    network_input,
    network_size,
    preset,
    resolve_config,
)
from depth_node.train import distributed as ddp
from depth_node.train.data import CachedSequence, EpochBatchSampler, ValFrame
from depth_node.train.loop import TrainingLoop
from depth_node.train.metric_data import MetricFrameDataset, resize_prediction
from depth_node.train.metric_losses import canonical_inverse_depth, fov_loss, metric_depth_loss

log = logging.getLogger(__name__)


@dataclass
class MetricStep:
    total: torch.Tensor
    parts: dict[str, float]
    stage: int
    pred: torch.Tensor  # canonical inverse depth at frame size (B, 1, H, W)
    target: torch.Tensor
    mask: torch.Tensor


class MetricTrainer(TrainingLoop):
    """The Depth Pro-style metric ViT on the shared loop; the FOV head is fitted in `after_epochs`."""

    validate_boundary = True

    def __init__(self, cfg, out_dir, resume: bool = False, **kw) -> None:
        super().__init__(cfg, out_dir, resume, **kw)
        self.init_model = None
        if cfg.model.init:
            from depth_node.checkpoints.model_file import load_model

            self.init_model = load_model(cfg.model.init)
            if self.init_model.arch != "depth_pro":
                raise DepthNodeError(f"model.init: {cfg.model.init} is a {self.init_model.arch} model; mode metric "
                                     "starts from Depth Pro model files (depth-node import depth-pro)")
            self.net_config = resolve_config(self.init_model.config)
        else:
            net = {**preset(cfg.metric.preset), **cfg.metric.network}
            if cfg.metric.network:
                net["preset"] = f"{cfg.metric.preset}+custom"
            self.net_config = resolve_config(net)
        self.net_size = network_size(self.net_config)
        self.fov_step = 0
        self._fov_opt_state: dict | None = None

    # ------------------------------------------------------------------------------------------- hooks

    def make_dataset(self, sequences: list[CachedSequence]) -> MetricFrameDataset:
        return MetricFrameDataset(sequences, self.cfg, self.net_size, train=True)

    def build_networks(self) -> tuple[nn.Module, None]:
        net = DepthPro(self.net_config)
        # The head ends in a ReLU with a zero bias (the reference's init, harmless for released weights): from
        # scratch, half the outputs start negative and get no gradient, and the net can sit at zero. Start the
        # bias at the data's typical canonical inverse depth instead, so every output begins alive and near it.
        with torch.no_grad():
            net.head[4].bias.fill_(self.typical_target())
        return net, None

    def typical_target(self, n: int = 32) -> float:
        """Median canonical inverse depth over up to `n` training frames (evenly spread, no augmentation)."""
        plain = MetricFrameDataset(self.dataset.sequences, self.cfg, self.net_size, train=False)
        vals = []
        for k in np.linspace(0, len(plain) - 1, min(n, len(plain))).round().astype(int):
            s = plain[int(k)]
            d = s["depth"]
            vals.append(canonical_inverse_depth(d[d > 0], s["f_norm"], 1))
        v = torch.cat(vals) if vals else torch.zeros(0)
        return float(v.median()) if v.numel() else 0.05

    def init_from(self, path: str, depth: nn.Module, pose: nn.Module | None) -> None:
        assert self.init_model is not None
        depth.load_state_dict(self.init_model.depth_state)
        log.info("initialised from %s", path)

    def trainable_parameters(self, depth: nn.Module, pose: nn.Module | None) -> list[nn.Parameter]:
        """Everything but the FOV head, which is fitted afterwards on frozen features (DDP skips frozen ones)."""
        params = []
        for name, p in depth.named_parameters():
            if name.startswith("fov."):
                p.requires_grad_(False)
            else:
                params.append(p)
        return params

    @property
    def median_scaling(self) -> bool:
        return False

    def scaling_label(self) -> str:
        return "metric (no scaling; focal length from the data's intrinsics)"

    # ------------------------------------------------------------------------------------------ one step

    def stage(self) -> int:
        return 2 if self.epoch >= self.cfg.metric.stage2_epoch else 1

    def forward_loss(self, batch: dict[str, torch.Tensor], keep_visuals: bool = False) -> tuple[MetricStep, None]:
        """Canonical inverse depth against the GT's, at the frame's own size, with the epoch's stage."""
        m = self.cfg.metric
        x = network_input(batch["image"])  # the exported graph does this inside
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            cid, _ = self.depth(x, False)
        h, w = batch["depth"].shape[-2:]
        pred = resize_prediction(cid.float(), h, w)
        depth = batch["depth"]
        mask = (depth > 0).to(pred.dtype)
        target = canonical_inverse_depth(depth, batch["f_norm"], 1)
        stage = self.stage()
        total, parts = metric_depth_loss(pred, target, mask, stage, m.trim, m.weights, m.loss_scales)
        return MetricStep(total, parts, stage, pred.detach(), target, mask), None

    # ------------------------------------------------------------------------------------- FOV phase

    def after_epochs(self) -> None:
        if self.cfg.metric.fov_steps > 0 and self.net_config["use_fov_head"]:
            if self.main:
                net, opt = self._fov_start()
                self._fov_steps(net, opt)
                self._fov_done(net, opt)
            ddp.barrier(self.dist)

    def _fov_start(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The best depth weights, frozen, with the FOV head alone trainable (the paper's separate FOV stage)."""
        from depth_node.train.checkpoint import load_torch_file

        net = ddp.unwrap(self.depth)
        best_path = self.ckpt_dir / "best.pt"
        if best_path.is_file():
            best_sd = load_torch_file(best_path, "best checkpoint")["depth"]
            if self.fov_step:  # resumed inside this phase: the FOV head's progress is in the resume checkpoint
                now = net.state_dict()
                best_sd = {k: (now[k] if k.startswith("fov.") else v) for k, v in best_sd.items()}
            net.load_state_dict(best_sd)
        assert net.fov is not None
        for name, p in net.named_parameters():
            p.requires_grad_(name.startswith("fov."))
        opt = torch.optim.Adam([p for p in net.fov.parameters()], lr=self.cfg.metric.fov_lr)
        if self.fov_step and self._fov_opt_state:
            opt.load_state_dict(self._fov_opt_state)
        return net, opt

    def _fov_steps(self, net: nn.Module, opt: torch.optim.Optimizer) -> None:
        """`metric.fov_steps` steps (L2 on degrees) over zoomed frames, in a sample order of their own."""
        m = self.cfg.metric
        progress = None
        if self.cfg.system.progress:
            from tqdm import tqdm

            progress = tqdm(total=m.fov_steps, initial=self.fov_step, desc="fov head", unit="step",
                            dynamic_ncols=True)
        self.start_clock()
        epoch = 10_000  # sample order of its own, independent of the depth epochs
        n = max(EpochBatchSampler.steps_per_epoch(len(self.dataset), self.cfg.optim.batch_size), 1)
        batches: Any = iter(())
        try:
            while self.fov_step < m.fov_steps:
                if self.stop_requested:
                    self._fov_opt_state = opt.state_dict()
                    self.interrupt()
                batch = next(batches, None)
                if batch is None:
                    batches = iter(self._fov_loader(epoch + self.fov_step // n, self.fov_step % n))
                    continue
                batch = self.to_device(batch)
                x = network_input(batch["image"])
                net.eval()
                net.fov.train()
                with torch.no_grad(), self.autocast():
                    _, lowres = net.decoder(net.encoder(x))
                with self.autocast():
                    fov = net.fov(x, lowres)
                loss = fov_loss(fov.float(), batch["fov_deg"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.fov_step += 1
                self.tick()
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{loss.item():.3f}")
                if self.writer is not None and self.fov_step % self.cfg.system.log_every == 0:
                    self.writer.add_scalar("fov/train_l2_deg2", loss.item(), self.fov_step)
        finally:
            if progress is not None:
                progress.close()

    def _fov_done(self, net: nn.Module, opt: torch.optim.Optimizer) -> None:
        """FOV error on validation frames into best/history, the fitted head into best.pt and the checkpoint."""
        fov_err = self.validate_fov()
        if self.best is not None:
            self.best.setdefault("metrics", {})
            if self.best["metrics"] is not None and fov_err is not None:
                self.best["metrics"]["fov_abs_err_deg"] = fov_err
        if self.history and fov_err is not None:
            self.history[-1]["fov_abs_err_deg"] = fov_err
        if self.writer is not None and fov_err is not None:
            self.writer.add_scalar("val/fov_abs_err_deg", fov_err, self.step)
        self.save_best()
        self._fov_opt_state = opt.state_dict()  # a later --resume with more fov_steps continues exactly
        self.save()
        log.info("FOV head: %d steps, validation |FOV error| %.2f°", self.fov_step,
                 fov_err if fov_err is not None else float("nan"))

    def _fov_loader(self, epoch: int, start: int):
        from torch.utils.data import DataLoader

        sampler = EpochBatchSampler(len(self.dataset), self.cfg.optim.batch_size, self.cfg.seed, epoch, 0, 1, start)
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.cfg.data.num_workers)

    @torch.no_grad()
    def validate_fov(self) -> float | None:
        """Mean |FOV error| (degrees) of the FOV head on the validation frames (whole frames, no zoom)."""
        from depth_node.inference.preprocess import to_network_input
        from depth_node.train.metric_data import fov_from_focal

        net = ddp.unwrap(self.depth)
        frames = [f for f in self.valset.frames if f.f_norm]
        if net.fov is None or not frames:
            return None
        net.eval()
        errs = []
        for i in range(0, len(frames), 8):
            chunk = frames[i:i + 8]
            x = network_input(torch.from_numpy(np.concatenate(
                [to_network_input(f.rgb, self.net_size, self.net_size) for f in chunk])).to(self.device))
            with self.autocast():
                _, fov = net(x)
            true = torch.tensor([fov_from_focal(f.f_norm) for f in chunk])  # type: ignore[arg-type]
            errs += (fov.float().reshape(-1).cpu() - true).abs().tolist()
        return float(np.mean(errs))

    # ------------------------------------------------------------------------------------------ state

    def extra_state(self) -> dict[str, Any]:
        return {"fov_step": self.fov_step, "fov_optimizer": self._fov_opt_state, "net_config": self.net_config}

    def load_extra_state(self, ck: dict[str, Any]) -> None:
        self.fov_step = int(ck.get("fov_step", 0))
        self._fov_opt_state = ck.get("fov_optimizer")

    # ------------------------------------------------------------------------------------- validation

    @torch.no_grad()
    def predict_val(self, frames: list[ValFrame]) -> list[np.ndarray]:
        """Metric depth at frame size with the frame's own focal length (as the node with camera_info)."""
        from depth_node.inference.preprocess import to_network_input

        net = ddp.unwrap(self.depth)
        was_training = net.training
        net.eval()
        out = []
        for i in range(0, len(frames), 8):
            chunk = frames[i:i + 8]
            h, w = chunk[0].rgb.shape[:2]
            x = network_input(torch.from_numpy(np.concatenate(
                [to_network_input(f.rgb, self.net_size, self.net_size) for f in chunk])).to(self.device))
            with self.autocast():
                cid, _ = net(x, False)
            f_px = torch.tensor([(f.f_norm or float("nan")) * w for f in chunk])
            if not bool(torch.isfinite(f_px).all()):
                raise DepthNodeError("validation data without intrinsics: metric validation needs the focal length")
            depth, _, _ = canonical_to_metric(cid.float(), (h, w), f_px=f_px.to(cid.device))
            out += [d[0].cpu().numpy() for d in depth]
        net.train(was_training)
        return out

    # ---------------------------------------------------------------------------------------- logging

    def step_scalars(self, out: MetricStep) -> dict[str, float]:
        return {**out.parts, "stage": out.stage}

    def log_images(self, batch: dict[str, torch.Tensor], out: MetricStep, visuals: None) -> None:
        from depth_node.colormap import colorize

        w, s = self.writer, self.step
        assert w is not None
        w.add_image("img/input", batch["image"][0].clamp(0, 1).cpu(), s)
        f = float(batch["f_norm"][0])
        for name, c in (("prediction", out.pred[0, 0]), ("ground_truth", out.target[0, 0])):
            d = np.where(c.cpu().numpy() > 0, f / np.maximum(c.cpu().numpy(), 1e-6), np.nan)
            w.add_image(f"img/depth_{name}", torch.from_numpy(np.ascontiguousarray(colorize(d, bgr=False)))
                        .permute(2, 0, 1), s)

    # ----------------------------------------------------------------------------------------- finish

    def model_file(self, depth_sd: dict, pose_sd: dict | None, provenance: dict[str, Any]) -> ModelFile:
        from depth_node.checkpoints.depth_pro import depth_pro_model_file

        provenance = {**provenance, "preset": self.net_config.get("preset"), "fov_steps": self.fov_step}
        return depth_pro_model_file(self.net_config, depth_sd, provenance)
