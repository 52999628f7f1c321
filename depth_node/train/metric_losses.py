"""Supervised objectives of Depth Pro (Bochkovskii et al. 2024, §3.3) for the metric ViT.

The network predicts canonical inverse depth C = f_px / (W · d): inverse depth normalised by the focal length
in image widths, so one prediction serves every camera and metric depth follows from camera_info's fx.
- MAE on C, optionally discarding each image's worst `trim` fraction of pixels (noisy real ground truth).
- Multi-scale derivative losses on C: MAGE (mean absolute Scharr-gradient error), MSGE (mean squared
  Scharr-gradient error), MALE (mean absolute Laplacian error), each averaged over a pyramid of blurred,
  2×-downsampled copies — they sharpen boundaries, which synthetic ground truth renders exactly.
- Optional (weight `log`, 0 in the paper's recipe): L1 on log C, i.e. on relative depth error. MAE on C counts
  a pixel's relative depth error with weight ∝ 1/d, so far pixels barely count; a small model that cannot fit
  everything then spends its capacity near the camera, while abs_rel and δ1 weigh every pixel alike.
  The CPU recipe turns it on.
- Curriculum: stage 1 = MAE (+ trimmed MAE for real data); stage 2 = MAE + derivative losses on synthetic
  data only. The FOV head is trained afterwards on frozen depth features with an L2 loss on the field of view.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SCHARR_X = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 32.0
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def canonical_inverse_depth(depth: torch.Tensor, f_px: torch.Tensor | float, width: int) -> torch.Tensor:
    """Ground-truth target from metric depth (NaN/≤0 stay invalid → 0 with the mask handling them)."""
    f = torch.as_tensor(f_px, dtype=depth.dtype, device=depth.device).reshape(-1, *([1] * (depth.dim() - 1)))
    valid = torch.isfinite(depth) & (depth > 0)
    return torch.where(valid, f / (width * depth.clamp_min(1e-6)), torch.zeros_like(depth))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def mae_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, trim: float = 0.0) -> torch.Tensor:
    """Mean absolute error over valid pixels; `trim` drops each image's largest errors (0.2 in the paper)."""
    err = (pred - target).abs() * mask
    if trim <= 0:
        return _masked_mean(err, mask)
    losses = []
    for e, m in zip(err.flatten(1), mask.flatten(1)):
        vals = e[m > 0]
        if vals.numel() == 0:
            continue
        k = max(1, round(vals.numel() * (1.0 - trim)))
        losses.append(torch.topk(vals, k, largest=False).values.mean())
    return torch.stack(losses).mean() if losses else err.sum() * 0.0


def log_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |log C_pred − log C_true| over valid pixels (relative error; a dead ReLU output is clamped, not NaN)."""
    err = (pred.clamp_min(1e-4).log() - target.clamp_min(1e-6).log()).abs()
    return _masked_mean(torch.where(mask > 0, err, torch.zeros_like(err)), mask)


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    k = kernel.to(x)[None, None]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _filter(x, _SCHARR_X), _filter(x, _SCHARR_X.t())


def _valid_after_filter(mask: torch.Tensor) -> torch.Tensor:
    """A filtered pixel is trustworthy only if its whole 3×3 support is valid."""
    return (-F.max_pool2d(-mask, 3, 1, 1) > 0.5).to(mask.dtype)


def _pyramid(x: torch.Tensor, mask: torch.Tensor, scales: int):
    for s in range(scales):
        yield x, mask
        if s + 1 < scales:
            x = F.avg_pool2d(x * mask, 2) / F.avg_pool2d(mask, 2).clamp_min(1e-6)
            mask = (F.avg_pool2d(mask, 2) > 0.999).to(mask.dtype)


def derivative_losses(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, scales: int = 4
) -> dict[str, torch.Tensor]:
    """MAGE, MSGE and MALE averaged over `scales` pyramid levels; inputs (B, 1, H, W)."""
    mage = msge = male = pred.new_zeros(())
    for (p, m), (t, _) in zip(_pyramid(pred, mask, scales), _pyramid(target, mask, scales)):
        vm = _valid_after_filter(m)
        pgx, pgy = _gradients(p)
        tgx, tgy = _gradients(t)
        dx, dy = pgx - tgx, pgy - tgy
        mage = mage + _masked_mean(dx.abs() + dy.abs(), vm)
        msge = msge + _masked_mean(dx * dx + dy * dy, vm)
        male = male + _masked_mean((_filter(p, _LAPLACE) - _filter(t, _LAPLACE)).abs(), vm)
    return {"mage": mage / scales, "msge": msge / scales, "male": male / scales}


def metric_depth_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    stage: int,
    trim: float = 0.0,
    weights: dict[str, float] | None = None,
    scales: int = 4,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The curriculum's loss for `stage` 1 or 2; returns (total, logged parts)."""
    w = {"mae": 1.0, "mage": 1.0, "msge": 1.0, "male": 1.0, **(weights or {})}
    parts = {"mae": mae_loss(pred, target, mask, trim if stage == 1 else 0.0)}
    if w.get("log", 0.0) > 0:
        parts["log"] = log_loss(pred, target, mask)
    if stage >= 2:
        parts.update(derivative_losses(pred, target, mask, scales))
    total = sum(w[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def fov_loss(pred_fov_deg: torch.Tensor, true_fov_deg: torch.Tensor) -> torch.Tensor:
    """L2 on the horizontal field of view in degrees (the FOV head's objective)."""
    return F.mse_loss(pred_fov_deg.reshape(-1), true_fov_deg.reshape(-1).to(pred_fov_deg))
