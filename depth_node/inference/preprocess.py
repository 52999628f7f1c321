"""Pre- and post-processing shared by every backend: any input size and aspect in, network size through the
backend, back to input or network size out (with the intrinsics scaled to match)."""

from __future__ import annotations

import numpy as np

from depth_node.export.graph_input import resize_rgb, stack_pair, to_network_input
from depth_node.geometry.camera import Intrinsics

__all__ = ["output_intrinsics", "resize_depth", "resize_rgb", "stack_pair", "to_network_input"]


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centred bilinear taps (align_corners=False, edges clamped): indices i0, i1 and weight of i1."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.intp), n_in - 1)
    return i0, np.minimum(i0 + 1, n_in - 1), (src - i0).astype(np.float32)


def _bilinear(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Plain (not antialiased) bilinear resize of a float32 2-D array, separable."""
    y0, y1, wy = _bilinear_taps(a.shape[0], height)
    x0, x1, wx = _bilinear_taps(a.shape[1], width)
    rows = a[y0] * (1.0 - wy)[:, None] + a[y1] * wy[:, None]
    return rows[:, x0] * (1.0 - wx) + rows[:, x1] * wx


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a depth map by interpolating inverse depth (as the reference evaluation does), keeping NaN holes:
    an output pixel is a hole unless every input pixel it blends from is valid."""
    if depth.shape == (height, width):
        return depth
    d = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    inv = np.where(valid, 1.0 / np.maximum(np.where(valid, d, 1.0), 1e-6), 0.0).astype(np.float32)
    inv = _bilinear(inv, height, width)
    mask = _bilinear(valid.astype(np.float32), height, width)
    with np.errstate(divide="ignore"):
        return np.where(mask > 0.999, 1.0 / np.maximum(inv, 1e-9), np.nan).astype(np.float32)


def output_intrinsics(intr: Intrinsics, height: int, width: int) -> Intrinsics:
    return intr if (intr.width, intr.height) == (width, height) else intr.scaled(width, height)
