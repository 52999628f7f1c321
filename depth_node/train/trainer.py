"""Self-supervised Monodepth2 training (modes M, S, MS): what `TrainingLoop` (loop.py) trains for these modes —
triplet/stereo samples, the depth and pose ResNets, the photometric loss, median-scaled (mono) or baseline-scaled
(stereo) validation and a monodepth2 model file.

Deliberate differences from the reference trainer (nianticlabs/monodepth2 `trainer.py`):
- StepLR is stepped *after* each epoch's optimiser steps (the reference steps it first, so its LR drops one
  epoch early); `scheduler_step_size` epochs run at the initial LR.
- grid_sample's `align_corners` is explicit and matches the pixel normalisation (see `geometry.py`).
- The two pose pairs of a triplet go through the pose net as one batch (same math, one pass; BatchNorm sees
  both pairs' statistics together).
- Colour pyramids for the smoothness weights are box-filtered in the batch, not resized per scale on load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from depth_node.checkpoints.camera_record import training_camera_record
from depth_node.checkpoints.model_file import ModelFile
from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.depth import disp_to_depth, stereo_scale
from depth_node.geometry.poses import transformation_from_parameters
from depth_node.networks.monodepth2 import DepthNet, PoseNet
from depth_node.train import distributed as ddp
from depth_node.train.config import TrainConfig
from depth_node.train.data import CachedSequence, TripletDataset, ValFrame
from depth_node.train.errors import DataError
from depth_node.train.loop import TrainingLoop
from depth_node.train.losses import LossOutput, LossSettings, monodepth_loss
from depth_node.train.scale_calib import camera_height_factor, inherited_scale, plane_distances

log = logging.getLogger(__name__)


def build_networks(cfg: TrainConfig) -> tuple[DepthNet, PoseNet | None]:
    """Depth net with all four decoder heads (model files hold all), pose net for temporal modes. The ResNet
    classifier is dropped: it is never used and would leave parameters without gradients (DDP complains)."""
    depth = DepthNet(cfg.model.num_layers)
    depth.encoder.encoder.fc = nn.Identity()
    pose = None
    if cfg.use_temporal:
        pose = PoseNet(cfg.model.pose_num_layers)
        pose.pose_encoder.encoder.fc = nn.Identity()
    return depth, pose


def init_from_model_file(path: str, depth: nn.Module, pose: nn.Module | None) -> dict[str, Any]:
    """Load a model file's weights into the networks; returns the file's scale entry."""
    from depth_node.checkpoints.model_file import load_model

    mf = load_model(path)
    if mf.arch != "monodepth2":
        raise DepthNodeError(f"model.init: {path} is a {mf.arch} model; training starts from monodepth2 files only")
    depth_sd = {k: v for k, v in mf.depth_state.items() if ".fc." not in k}
    missing, unexpected = depth.load_state_dict(depth_sd, strict=False)
    if [k for k in missing if not k.endswith("num_batches_tracked")] or unexpected:
        raise DepthNodeError(f"model.init: depth weights of {path} do not fit (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}; model.num_layers must match the file)")
    if pose is not None and mf.pose_state is not None:
        pose.load_state_dict({k: v for k, v in mf.pose_state.items() if ".fc." not in k}, strict=False)
    log.info("initialised from %s", path)
    return dict(mf.meta.get("scale") or {})


class Trainer(TrainingLoop):
    """Monodepth2 M / S / MS on the shared loop."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, resume: bool = False, **kw) -> None:
        super().__init__(cfg, out_dir, resume, **kw)
        self.loss_settings = LossSettings(
            cfg.loss.ssim_weight, cfg.loss.smoothness, cfg.loss.automask, cfg.loss.min_reprojection,
            cfg.loss.seg_weight, cfg.model.min_depth, cfg.model.max_depth, tuple(sorted(cfg.model.scales)),
        )

    # ---------------------------------------------------------------------------------------- networks

    def make_dataset(self, sequences: list[CachedSequence]) -> TripletDataset:
        return TripletDataset(sequences, self.cfg, train=True)

    def build_networks(self) -> tuple[nn.Module, nn.Module | None]:
        return build_networks(self.cfg)

    def init_from(self, path: str, depth: nn.Module, pose: nn.Module | None) -> None:
        self.init_scale = init_from_model_file(path, depth, pose)

    @property
    def kept_scale(self) -> dict[str, Any] | None:
        """Mode M fine-tune of a metric model (model.keep_init_scale): the init's scale, which it keeps."""
        if self.cfg.mode != "M" or not self.cfg.model.keep_init_scale:
            return None
        return inherited_scale(getattr(self, "init_scale", None))

    # ---------------------------------------------------------------------------------------- one step

    def forward_loss(self, batch: dict[str, torch.Tensor],
                     keep_visuals: bool = False) -> tuple[LossOutput, dict[int, torch.Tensor]]:
        """(loss, disparities per scale) of a batch on the device: depth of frame 0, poses to its sources."""
        cfg = self.cfg
        color, color_aug = batch["color"], batch["color_aug"]  # (B, F, 3, H, W)
        target_in = color_aug[:, 0]
        if self.channels_last:
            target_in = target_in.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            disps = self.depth(target_in, tuple(sorted(cfg.model.scales)))
        disps = {s: d.float() for s, d in disps.items()}
        sources: dict[Any, torch.Tensor] = {}
        motions: dict[Any, torch.Tensor] = {}
        if cfg.use_temporal:
            motions = self._temporal_motions(color_aug)
            sources = {o: color[:, k + 1] for k, o in enumerate(motions)}
        if cfg.use_stereo:
            sources["s"] = batch["color_s"]
            motions["s"] = batch["stereo_T"]
        seg = batch["seg"] if cfg.loss.seg_weight > 0 else None
        return monodepth_loss(disps, color[:, 0], sources, motions, batch["K"], batch["inv_K"], self.loss_settings,
                              seg, keep_visuals), disps

    def _temporal_motions(self, color_aug: torch.Tensor) -> dict[int, torch.Tensor]:
        """Target→source motion per frame offset (−stride, +stride), both pairs through the pose net at once."""
        assert self.pose is not None
        offsets = [-self.cfg.data.frame_stride, self.cfg.data.frame_stride]
        pairs = []
        for k, o in enumerate(offsets, start=1):  # always (earlier, later), as the reference
            pair = (color_aug[:, k], color_aug[:, 0]) if o < 0 else (color_aug[:, 0], color_aug[:, k])
            pairs.append(torch.cat(pair, 1))
        pose_in = torch.cat(pairs, 0)
        if self.channels_last:
            pose_in = pose_in.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            axisangle, translation = self.pose(pose_in)
        axisangle, translation = axisangle.float(), translation.float()
        B = color_aug.shape[0]
        motions = {}
        for k, o in enumerate(offsets):
            aa, tr = axisangle[k * B:(k + 1) * B, 0], translation[k * B:(k + 1) * B, 0]
            motions[o] = transformation_from_parameters(aa, tr, invert=o < 0)
        return motions

    def step_scalars(self, out: LossOutput) -> dict[str, float]:
        scalars = {}
        for name, v in (("photometric", out.photometric), ("smoothness", out.smooth), ("seg_planarity", out.seg)):
            if v is not None:
                scalars[name] = float(v)
        for k, v in enumerate(out.per_scale):
            scalars[f"loss_scale{self.loss_settings.scales[k]}"] = float(v.detach())
        return scalars

    def log_images(self, batch: dict[str, torch.Tensor], out: LossOutput, visuals: dict[int, torch.Tensor]) -> None:
        from depth_node.colormap import colorize

        w, s = self.writer, self.step
        assert w is not None
        w.add_image("img/target", batch["color"][0, 0].clamp(0, 1).cpu(), s)
        d0 = visuals[min(visuals)][0, 0].detach().cpu().numpy()
        disp_rgb = colorize(1.0 / np.maximum(d0, 1e-6), bgr=False)
        w.add_image("img/disparity", torch.from_numpy(np.ascontiguousarray(disp_rgb)).permute(2, 0, 1), s)
        for k, v in out.warped.items():
            w.add_image(f"img/warped_{k}", v[0].clamp(0, 1).cpu(), s)
        if out.automask is not None:
            w.add_image("img/automask", out.automask[0].cpu(), s)

    # -------------------------------------------------------------------------------------- validation

    @torch.no_grad()
    @torch.no_grad()
    def predict_depth(self, rgbs: list[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """Depth (network units) at training size for uint8 frames already at training size."""
        net = ddp.unwrap(self.depth)
        was_training = net.training
        net.eval()
        out = []
        for i in range(0, len(rgbs), batch_size):
            x = torch.from_numpy(np.stack(rgbs[i:i + batch_size])).permute(0, 3, 1, 2).float().div_(255.0)
            x = x.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                disp = net(x, (0,))[0].float()
            _, depth = disp_to_depth(disp, self.cfg.model.min_depth, self.cfg.model.max_depth)
            out += [d[0].cpu().numpy() for d in depth]
        net.train(was_training)
        return out

    def predict_val(self, frames: list[ValFrame]) -> list[np.ndarray]:
        """Depth (network units, training size) of validation frames."""
        return self.predict_depth([f.rgb for f in frames])

    @property
    def median_scaling(self) -> bool:
        """Mono models are judged median-scaled unless they keep the init model's metric factor. With
        `model.scale_camera_height_m` the factor the model ships with is measured only on the final weights, so
        validation is median-scaled too rather than judged with a factor the model will not carry."""
        cfg = self.cfg
        return not cfg.use_stereo and (self.kept_scale is None or cfg.model.scale_camera_height_m is not None)

    def scale_factor(self) -> float:
        """Network depth → metres: baseline/0.1 for stereo-trained models, the init's factor for a mono
        fine-tune that keeps it, 1 (median scaling) for other mono models."""
        if self.cfg.use_stereo:
            return stereo_scale(self.ref_baseline)
        kept = self.kept_scale
        return float(kept.get("factor", 1.0)) if kept is not None and not self.median_scaling else 1.0

    def scaling_label(self) -> str:
        if self.cfg.use_stereo:
            return f"stereo ×{self.scale_factor():.3g}"
        if self.cfg.model.scale_camera_height_m is not None:
            return (f"median (mono; the model's metric factor comes from the camera height "
                    f"{self.cfg.model.scale_camera_height_m:g} m, measured at the end)")
        return "median (mono)" if self.kept_scale is None else f"init model's ×{self.scale_factor():.3g}"

    def _spread_frames(self, n: int) -> tuple[list[np.ndarray], list[Intrinsics]]:
        """About `n` training frames spread over every sequence, with their intrinsics at the training size."""
        seqs = [s for s in (self._train_seqs or []) if len(s)]
        frames, intrs = [], []
        for seq in seqs:
            K = seq.K_norm.copy()
            K[0, :] *= seq.width
            K[1, :] *= seq.height
            intr = Intrinsics.from_K(K, seq.width, seq.height)
            for i in np.linspace(0, len(seq) - 1, num=min(len(seq), max(1, n // len(seqs))), dtype=int):
                frames.append(seq.frame(int(i)))
                intrs.append(intr)
        return frames, intrs

    def setup(self) -> None:
        super().setup()
        h = self.cfg.model.scale_camera_height_m
        if h is not None and self.main and not self.resume:
            self._check_ground_is_visible(h)

    def _check_ground_is_visible(self, camera_height_m: float) -> None:
        """The camera-height scale is measured on the final weights, from the floor in the lower part of the
        frames: warn before training when the starting weights find it in too few of them, not after the run."""
        frames, intrs = self._spread_frames(20)
        if not frames:
            return
        found = len(plane_distances(self.predict_depth(frames), intrs, camera_height_m, seed=self.cfg.seed))
        if found * 4 < len(frames):
            log.warning("model.scale_camera_height_m: the starting weights find a ground plane in %d of %d training "
                        "frames; the scale is measured at the end of training and needs the floor in the lower "
                        "40 %% of the image in most frames (check the camera's view, or unset the key)",
                        found, len(frames))

    def mono_scale(self, depth_sd: dict) -> dict[str, Any]:
        """The scale entry of a mode-M model: measured from the camera height, kept from a metric init, or
        relative. Both metric cases are written as kind `metric` (the node then applies the factor as is)."""
        cfg = self.cfg
        h = cfg.model.scale_camera_height_m
        kept = self.kept_scale
        if h is not None:
            ddp.unwrap(self.depth).load_state_dict(depth_sd)
            frames, intrs = self._spread_frames(60)
            try:
                factor, n = camera_height_factor(self.predict_depth(frames), intrs, h, seed=cfg.seed)
            except DataError as exc:
                raise DataError(f"{exc}. The trained weights are kept ({self.ckpt_dir / 'last.pt'}): `depth-node "
                                f"train --out {self.out} --resume model.scale_camera_height_m=null` writes the model "
                                "with the init model's scale instead") from exc
            log.info("scale from camera height %.3g m: ×%.4g (%d of %d frames fitted)", h, factor, n, len(frames))
            return {"kind": "metric", "factor": factor, "from": f"ground plane, camera height {h} m",
                    "frames_fitted": n, "init_scale": kept}
        if kept is not None:
            return {"kind": "metric", "factor": float(kept.get("factor", 1.0)),
                    "from": f"kept from model.init ({kept.get('kind')})", "init_scale": kept}
        return {"kind": "relative", "factor": 1.0}

    # ------------------------------------------------------------------------------------------ finish

    def model_file(self, depth_sd: dict, pose_sd: dict | None, provenance: dict[str, Any]) -> ModelFile:
        cfg = self.cfg
        if cfg.use_stereo:
            scale = {"kind": "stereo", "baseline_m": self.ref_baseline, "factor": stereo_scale(self.ref_baseline)}
        else:
            scale = self.mono_scale(depth_sd)
        meta = {"min_depth": cfg.model.min_depth, "max_depth": cfg.model.max_depth, "scale": scale,
                "provenance": provenance}
        camera = self.camera_record()
        if camera is not None:
            meta["camera"] = camera
        return ModelFile(
            "monodepth2",
            {"num_layers": cfg.model.num_layers, "pose_num_layers": cfg.model.pose_num_layers},
            cfg.data.height,
            cfg.data.width,
            {k: v for k, v in depth_sd.items() if ".fc." not in k},
            {k: v for k, v in pose_sd.items() if ".fc." not in k} if pose_sd is not None else None,
            meta,
        )

    def camera_record(self) -> dict[str, Any] | None:
        """The canonical camera of this training (`meta.camera`): the training frames' own camera at the network
        size, so the node's focal correction (`inference.canonical`) knows what the network learned, whatever
        camera or folder it was trained on (without it, every camera would be compared with the default
        synthetic one). None without training sequences (nothing to record)."""
        cfg = self.cfg
        seqs = [s for s in (self._train_seqs or []) if len(s)]
        if not seqs:
            return None
        cams = [(float(s.K_norm[0, 0]) * cfg.data.width, float(s.K_norm[1, 1]) * cfg.data.height, len(s))
                for s in seqs]
        record, spread = training_camera_record(cams, cfg.data.height, cfg.data.width,
                                                cfg.model.scale_camera_height_m)
        if spread > 0.05 and self.main:
            log.warning("the training frames come from cameras whose focal lengths differ by %.0f %%: the model's "
                        "canonical camera is their median (fx %.1f px at %dx%d)", 100 * spread,
                        record["canonical"]["fx"], cfg.data.width, cfg.data.height)
        return record
