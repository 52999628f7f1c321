"""Pre- and post-processing shared by every backend: any input size and aspect in, network size through the
backend, back to input or network size out (with the intrinsics scaled to match)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from depth_node.export.graph_input import resize_rgb, stack_pair, to_network_input
from depth_node.geometry.camera import Intrinsics

__all__ = ["output_intrinsics", "resize_depth", "resize_rgb", "stack_pair", "to_network_input"]


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
