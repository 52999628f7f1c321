"""Pre- and post-processing shared by every backend: any input size and aspect in, network size through the
backend, back to input or network size out (with the intrinsics scaled to match)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from depth_node.geometry.camera import Intrinsics


def to_network_input(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxWx3 uint8 RGB (or float in [0, 1]) → float32 [1, 3, height, width] in [0, 1].

    Area-like (antialiased bilinear) downscaling, as the reference resizes with Lanczos/antialias: plain bilinear
    decimation of a 1242-px frame to 640 px aliases fine texture and shifts predictions."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.shape[0] == height and rgb.shape[1] == width:  # no resize: NumPy is ~100× cheaper than torch here
        x = rgb.transpose(2, 0, 1)[None].astype(np.float32)
        return x * np.float32(1.0 / 255.0) if rgb.dtype == np.uint8 else np.ascontiguousarray(x)
    if not rgb.flags.writeable:  # decoded images and memory-mapped files are read-only; torch needs writable
        rgb = rgb.copy()
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
    t = t.float().div_(255.0) if rgb.dtype == np.uint8 else t.float()
    if t.shape[2] != height or t.shape[3] != width:
        antialias = t.shape[2] > height or t.shape[3] > width
        t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias)
        t = t.clamp_(0.0, 1.0)
    return t.contiguous().numpy()


def stack_pair(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Pose-net input: [1, 6, H, W], earlier frame's RGB first (the reference's temporal order)."""
    return np.concatenate([earlier, later], axis=1)


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a depth map by interpolating inverse depth (as the reference evaluation does), keeping NaN holes."""
    if depth.shape == (height, width):
        return depth
    d = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]
    valid = torch.isfinite(d) & (d > 0)
    inv = torch.where(valid, 1.0 / d.clamp_min(1e-6), torch.zeros_like(d))
    inv = F.interpolate(inv, size=(height, width), mode="bilinear", align_corners=False)
    mask = F.interpolate(valid.float(), size=(height, width), mode="bilinear", align_corners=False)
    out = torch.where(mask > 0.999, 1.0 / inv.clamp_min(1e-9), torch.full_like(inv, float("nan")))
    return out[0, 0].numpy()


def output_intrinsics(intr: Intrinsics, height: int, width: int) -> Intrinsics:
    return intr if (intr.width, intr.height) == (width, height) else intr.scaled(width, height)
