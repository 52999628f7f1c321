"""Monodepth2's self-supervised loss, plus a segmentation-aware smoothness term in the spirit of SegDepth.

Photometric error: 0.85·(1 − SSIM)/2 + 0.15·L1, channel mean, SSIM over 3×3 windows with reflection padding.
Per-pixel minimum over the source views (occlusions are visible in at least one); auto-masking puts the
*unwarped* sources' errors (plus 1e-5 noise to break ties) into the same minimum, so pixels that look the same
without any motion (static camera, objects moving with the camera, textureless areas) stop steering the depth.
With `min_reprojection` off (the reference's `--avg_reprojection` ablation) the warped errors are averaged over
the sources and so are the unwarped ones: the mask then compares one average with the other.
Full-resolution multi-scale: every scale's disparity is upsampled to the input size before warping, so every
scale is judged on the same pixels; smoothness stays at each scale's own resolution, weight 1e-3 / 2^s.

Segmentation term (`seg_weight`, 0 disables). Driving scenes are piecewise planar: road, kerb, facades and
box faces are planes, and a plane's *disparity* is an affine function of pixel coordinates (1/z = n·K⁻¹[u,v,1]/c).
So within one segment (same semantic class and instance) the second derivative of disparity should be ~0,
whatever the texture says; across a segment border nothing should be assumed. The term therefore
(1) penalises |∂²d| over pixel triples that lie inside one segment (x and y; mean-normalised disparity),
which irons out texture-copy artefacts (windows, signs, car paint) that edge-aware first-order smoothness
leaves alone, and (2) removes the edge-aware first-order smoothness across segment borders, so depth is free
to jump at object outlines (it does not force a jump: a car touching the road has no depth edge at its wheels,
which a "make edges here" term would get wrong). SegDepth instead feeds the disparity to a segmentation
network trained on pseudo-labels (hakansivuk/SegDepth); it needs an extra network and its own gains were within noise.
Segment ids < 0 mean "unknown" (frames without masks): such pixels take no part in the term.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from depth_node.geometry.depth import MAX_DEPTH, MIN_DEPTH, disp_to_depth
from depth_node.train.geometry import backproject, project, warp


class SSIM(nn.Module):
    """(1 − SSIM)/2 per pixel and channel, clamped to [0, 1]; 3×3 mean filters after reflection padding.

    The five local means (x, y, x², y², xy) run as one depthwise 3×3 convolution over the stacked channels:
    the same numbers as the reference's five AvgPool2d(3, 1) calls (to float rounding), at about a third of
    the CPU time (avg_pool2d was a fifth of a whole training step)."""

    C1 = 0.01**2
    C2 = 0.03**2

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = self.pad(x), self.pad(y)
        c = x.shape[1]
        stack = torch.cat([x, y, x * x, y * y, x * y], 1)
        weight = torch.full((5 * c, 1, 3, 3), 1.0 / 9.0, dtype=stack.dtype, device=stack.device)
        mu_x, mu_y, xx, yy, xy = F.conv2d(stack, weight, groups=5 * c).split(c, 1)
        sigma_x = xx - mu_x * mu_x
        sigma_y = yy - mu_y * mu_y
        sigma_xy = xy - mu_x * mu_y
        n = (2 * mu_x * mu_y + self.C1) * (2 * sigma_xy + self.C2)
        d = (mu_x * mu_x + mu_y * mu_y + self.C1) * (sigma_x + sigma_y + self.C2)
        return torch.clamp((1 - n / d) / 2, 0, 1)


_SSIM = SSIM()


def photometric_error(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """(B, 3, H, W) pair → (B, 1, H, W) error; ssim_weight 0 gives plain L1."""
    l1 = (target - pred).abs().mean(1, keepdim=True)
    if ssim_weight <= 0:
        return l1
    return ssim_weight * _SSIM(pred, target).mean(1, keepdim=True) + (1 - ssim_weight) * l1


def smoothness(disp: torch.Tensor, img: torch.Tensor, free_x=None, free_y=None) -> torch.Tensor:
    """Edge-aware first-order smoothness of disparity (normalise it first): |∂d|·exp(−mean_c|∂I|).
    `free_x`/`free_y` (same shapes as the x/y differences) zero the weight where a jump is allowed."""
    gdx = (disp[:, :, :, :-1] - disp[:, :, :, 1:]).abs()
    gdy = (disp[:, :, :-1, :] - disp[:, :, 1:, :]).abs()
    wx = torch.exp(-(img[:, :, :, :-1] - img[:, :, :, 1:]).abs().mean(1, keepdim=True))
    wy = torch.exp(-(img[:, :, :-1, :] - img[:, :, 1:, :]).abs().mean(1, keepdim=True))
    if free_x is not None:
        wx = wx * (~free_x).to(wx.dtype)
        wy = wy * (~free_y).to(wy.dtype)
    return (gdx * wx).mean() + (gdy * wy).mean()


def segment_borders(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool maps of neighbour pairs in x (B,1,H,W−1) and y (B,1,H−1,W) whose known segment ids differ."""
    known = ids >= 0
    bx = (ids[..., :, :-1] != ids[..., :, 1:]) & known[..., :, :-1] & known[..., :, 1:]
    by = (ids[..., :-1, :] != ids[..., 1:, :]) & known[..., :-1, :] & known[..., 1:, :]
    return bx, by


def segment_planarity(disp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean |∂²d| over pixel triples inside one known segment (x and y), zero-weighted elsewhere."""
    known = ids >= 0
    ix = (ids[..., :, :-2] == ids[..., :, 1:-1]) & (ids[..., :, 1:-1] == ids[..., :, 2:]) & known[..., :, 1:-1]
    iy = (ids[..., :-2, :] == ids[..., 1:-1, :]) & (ids[..., 1:-1, :] == ids[..., 2:, :]) & known[..., 1:-1, :]
    d2x = (disp[..., :, :-2] - 2 * disp[..., :, 1:-1] + disp[..., :, 2:]).abs()
    d2y = (disp[..., :-2, :] - 2 * disp[..., 1:-1, :] + disp[..., 2:, :]).abs()
    return (d2x * ix.to(d2x.dtype)).mean() + (d2y * iy.to(d2y.dtype)).mean()


def downsample_ids(ids: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest (top-left) subsampling that keeps integer ids exact (interpolate would go through float)."""
    return ids if factor == 1 else ids[..., ::factor, ::factor]


@dataclass
class LossSettings:
    """The loss's knobs (the trainer fills them from `LossConfig`)."""

    ssim_weight: float = 0.85
    smoothness: float = 1e-3
    automask: bool = True
    min_reprojection: bool = True  # False = average over sources (ablation)
    seg_weight: float = 0.0
    min_depth: float = MIN_DEPTH
    max_depth: float = MAX_DEPTH
    scales: tuple[int, ...] = (0, 1, 2, 3)


@dataclass
class LossOutput:
    total: torch.Tensor
    per_scale: list[torch.Tensor] = field(default_factory=list)
    photometric: torch.Tensor | None = None  # scale 0, after min/automask
    smooth: torch.Tensor | None = None
    seg: torch.Tensor | None = None
    warped: dict = field(default_factory=dict)  # source id → (B, 3, H, W) at scale 0 (detached)
    automask: torch.Tensor | None = None  # (B, 1, H, W) 1 where a reprojection beat every identity error


def area_pyramid(img: torch.Tensor, scales) -> dict[int, torch.Tensor]:
    """Colour at each scale by 2^s×2^s box filtering (the reference resizes with PIL LANCZOS per scale; for the
    smoothness weights only image gradients matter, and a box filter computed in the batch is cheaper)."""
    out = {0: img}
    for s in scales:
        if s > 0:
            out[s] = F.avg_pool2d(img, 2**s)
    return out


def monodepth_loss(
    disps: dict[int, torch.Tensor],
    target: torch.Tensor,
    sources: dict,
    motions: dict,
    K: torch.Tensor,
    inv_K: torch.Tensor,
    settings: LossSettings,
    seg_ids: torch.Tensor | None = None,
    keep_visuals: bool = False,
) -> LossOutput:
    """Total loss of one batch.

    disps: scale → (B, 1, H/2^s, W/2^s) sigmoid disparity; target (B, 3, H, W) un-augmented frame 0;
    sources: id → (B, 3, H, W) un-augmented source images; motions: id → (B, 4, 4) target→source;
    K / inv_K: (B, 4, 4) at H×W; seg_ids: (B, 1, H, W) int64 segment ids or None.
    """
    B, _, H, W = target.shape
    ids = list(sources)
    n = len(ids)
    src = torch.cat([sources[i] for i in ids], 0)  # (nB, 3, H, W): one sampling call for all sources
    T = torch.cat([motions[i] for i in ids], 0)
    Kn = K.repeat(n, 1, 1)
    tgt_n = target.repeat(n, 1, 1, 1)

    identity = None
    if settings.automask:
        with torch.no_grad():
            identity = photometric_error(src, tgt_n, settings.ssim_weight)
        identity = identity.reshape(n, B, 1, H, W).permute(1, 0, 2, 3, 4).reshape(B, n, H, W)
        if not settings.min_reprojection:  # averaged like the reprojection errors, as the reference does
            identity = identity.mean(1, keepdim=True)
        identity = identity + torch.randn(identity.shape, device=identity.device) * 1e-5

    pyramid = area_pyramid(target, settings.scales)
    free = {}
    if seg_ids is not None and settings.seg_weight > 0:
        for s in settings.scales:
            free[s] = segment_borders(downsample_ids(seg_ids, 2**s))

    out = LossOutput(total=target.new_zeros(()))
    for s in settings.scales:
        disp = disps[s]
        disp_full = disp if s == 0 else F.interpolate(disp, (H, W), mode="bilinear", align_corners=False)
        _, depth = disp_to_depth(disp_full, settings.min_depth, settings.max_depth)
        pts = backproject(depth, inv_K).repeat(n, 1, 1)
        grid = project(pts, Kn, T, H, W)
        pred = warp(src, grid)
        reproj = photometric_error(pred, tgt_n, settings.ssim_weight)
        reproj = reproj.reshape(n, B, 1, H, W).permute(1, 0, 2, 3, 4).reshape(B, n, H, W)
        if not settings.min_reprojection:
            reproj = reproj.mean(1, keepdim=True)
        combined = reproj if identity is None else torch.cat([identity, reproj], 1)
        to_optimise, idx = torch.min(combined, dim=1)
        photo = to_optimise.mean()

        norm_disp = disp / (disp.mean((2, 3), keepdim=True) + 1e-7)
        fx, fy = free.get(s, (None, None))
        smooth = smoothness(norm_disp, pyramid[s], fx, fy)
        loss_s = photo + settings.smoothness * smooth / (2**s)
        seg_term = None
        if s in free:
            seg_term = segment_planarity(norm_disp, downsample_ids(seg_ids, 2**s))
            loss_s = loss_s + settings.seg_weight * seg_term / (2**s)
        out.per_scale.append(loss_s)
        out.total = out.total + loss_s
        if s == settings.scales[0]:
            out.photometric, out.smooth, out.seg = photo.detach(), smooth.detach(), (
                None if seg_term is None else seg_term.detach()
            )
            if keep_visuals:
                pred_b = pred.detach().reshape(n, B, 3, H, W)
                out.warped = {i: pred_b[k] for k, i in enumerate(ids)}
                n_id = 0 if identity is None else identity.shape[1]
                out.automask = (idx >= n_id).unsqueeze(1).float()
    out.total = out.total / len(settings.scales)
    return out
