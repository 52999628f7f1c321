"""Depth Pro's canonical inverse depth → metric depth, without torch (arrays of NumPy or torch alike).

The exported graph stops at canonical inverse depth (and the FOV head's angle); every backend finishes with
metric = 1 / clamp(cid · W / f_px), W the width the graph saw and f_px the focal length at that width. Kept
free of torch so the node runs an ONNX metric model on a robot that has no torch installed."""

from __future__ import annotations

import math

INVERSE_DEPTH_CLAMP = (1e-4, 1e4)


def focal_from_hfov(fov_deg: float, width: int) -> float:
    """Horizontal focal length (px) of an image `width` px wide with horizontal field of view `fov_deg`."""
    return 0.5 * width / math.tan(0.5 * math.radians(float(fov_deg)))


def inverse_depth_from_canonical(cid, width: int, f_px):
    """Canonical inverse depth → metric inverse depth (1/m) at the network's width."""
    return cid * (width / f_px)


def depth_from_inverse(inverse):
    """Metric depth from metric inverse depth, clamped to the reference's range [1e-4, 1e4] m."""
    return 1.0 / inverse.clip(INVERSE_DEPTH_CLAMP[0], INVERSE_DEPTH_CLAMP[1])
