"""Colour-mapped depth for people (PNG reports, `depth/colored`): near = warm, far = cool, invalid = black."""

from __future__ import annotations

import numpy as np

# A compact perceptual ramp (magma-like), sampled at 9 stops; interpolated to 256 entries once.
_STOPS = np.array(
    [
        [0, 0, 4],
        [28, 16, 68],
        [79, 18, 123],
        [129, 37, 129],
        [181, 54, 122],
        [229, 80, 100],
        [251, 135, 97],
        [254, 194, 135],
        [252, 253, 191],
    ],
    dtype=np.float32,
)
_LUT = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_STOPS)), _STOPS[:, c]) for c in range(3)], axis=1
).astype(np.uint8)


def colorize_depth(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(H, W) depth → (H, W, 3) uint8 RGB, by inverse depth so near structure gets most of the colour range."""
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if not valid.any():
        return out
    inv = np.zeros(depth.shape, dtype=np.float32)
    inv[valid] = 1.0 / depth[valid]
    lo = 1.0 / vmax if vmax else float(np.percentile(inv[valid], 2))
    hi = 1.0 / vmin if vmin else float(np.percentile(inv[valid], 98))
    t = np.clip((inv - lo) / max(hi - lo, 1e-9), 0, 1)
    out[valid] = _LUT[(t[valid] * 255).astype(np.uint8)]
    return out
