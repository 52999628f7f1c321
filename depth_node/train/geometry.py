"""Batched view synthesis for the photometric loss: back-project target pixels with predicted depth, move them
into a source camera, project, and sample the source image there.

Conventions (one place, used by the loss and its tests):
- pixel (u, v) has its centre at integer coordinates, as `depth_node.geometry.camera` says;
- `T` maps target-camera points into the source camera (p_src = T p_tgt), Monodepth2's `cam_T_cam`;
- sampling uses `F.grid_sample(..., align_corners=True)` with u → 2u/(W−1) − 1, which puts pixel centres
  exactly on the grid the sampler interpolates; border padding repeats edge pixels for points that leave the
  view (the reference's behaviour; those pixels are later out-voted by the per-pixel minimum or the automask).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ALIGN_CORNERS = True


class PixelGrid:
    """Homogeneous pixel coordinates (3, H·W) cached per (H, W, device): rebuilt only when the size changes."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, str, torch.dtype], torch.Tensor] = {}

    def __call__(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (height, width, str(device), dtype)
        grid = self._cache.get(key)
        if grid is None:
            v, u = torch.meshgrid(
                torch.arange(height, dtype=dtype, device=device),
                torch.arange(width, dtype=dtype, device=device),
                indexing="ij",
            )
            grid = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], 0)
            self._cache[key] = grid
        return grid


_PIXELS = PixelGrid()


def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) z-depth and (B, 3|4, 3|4) inverse intrinsics → (B, 4, H·W) homogeneous camera points."""
    B, _, H, W = depth.shape
    pix = _PIXELS(H, W, depth.device, depth.dtype)
    rays = inv_K[:, :3, :3] @ pix.unsqueeze(0)  # (B, 3, HW)
    pts = rays * depth.reshape(B, 1, H * W)
    return torch.cat([pts, torch.ones_like(pts[:, :1])], 1)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 4, N) target points, (B, 4, 4) K, (B, 4, 4) target→source motion → (B, H, W, 2) sampling grid in
    grid_sample's [-1, 1] coordinates (align_corners=True)."""
    P = (K @ T)[:, :3, :]
    cam = P @ points  # (B, 3, N)
    z = cam[:, 2:3].clamp(min=1e-7)  # points behind the camera land far away and are sampled as border
    pix = cam[:, :2] / z
    B = points.shape[0]
    pix = pix.reshape(B, 2, height, width).permute(0, 2, 3, 1)
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=pix.dtype, device=pix.device)
    return pix * scale - 1.0


def warp(source: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample `source` (B, C, H, W) at `grid` (B, H, W, 2)."""
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=ALIGN_CORNERS)


def synthesize(
    source: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, inv_K: torch.Tensor, T: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The target view re-rendered from `source` with target `depth` and motion `T`; also returns the grid."""
    H, W = depth.shape[-2:]
    grid = project(backproject(depth, inv_K), K, T, H, W)
    return warp(source, grid), grid


def to_4x4(K: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) or (B, 4, 4) → (B, 4, 4)."""
    if K.shape[-1] == 4:
        return K
    out = torch.eye(4, dtype=K.dtype, device=K.device).expand(K.shape[0], 4, 4).clone()
    out[:, :3, :3] = K
    return out
