"""What the exported graphs take as input: RGB frames resized to the network's size, [0, 1] float, NCHW (and
frame pairs for the pose net). It lives in export, below inference, because int8 calibration prepares its
frames the same way the runtime does; `depth_node.inference.preprocess` re-exports it for the runtime."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, 3) → uint8 (height, width, 3): antialiased bilinear when shrinking, bilinear when enlarging.

    The one image resize of the package (training caches, inference, reports), so the network sees the same
    pixels in training and deployment. Area-like antialiasing, as the reference resizes with Lanczos/antialias:
    plain bilinear decimation of a 1242-px frame to 640 px aliases fine texture and shifts predictions. It runs
    on torch's uint8 channels-last kernel: 3× faster than the float path at 640×192 → 320×96 and 12× at KITTI's
    1242×375 → 640×192 on 2 cores, the node's largest pre-processing cost; it differs from float-then-round by
    at most one grey level (its fixed-point rounding lifts the mean by 0–0.25 level)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(rgb)
    # a writable contiguous copy only when needed: decoded images and memmaps are read-only, torch needs writable
    src = rgb if rgb.dtype == np.uint8 and rgb.flags.writeable and rgb.flags.c_contiguous else np.array(
        rgb, dtype=np.uint8)
    t = torch.from_numpy(src).permute(2, 0, 1).unsqueeze(0)  # channels-last strides: the vectorised uint8 path
    antialias = rgb.shape[0] > height or rgb.shape[1] > width
    out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias)
    return out[0].permute(1, 2, 0).contiguous().numpy()


def to_network_input(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxWx3 uint8 RGB (or float in [0, 1]) → float32 [1, 3, height, width] in [0, 1], resized by `resize_rgb`
    (float input: the same filter in float)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        x = resize_rgb(rgb, height, width).transpose(2, 0, 1)[None].astype(np.float32)
        return x * np.float32(1.0 / 255.0)
    if rgb.shape[0] == height and rgb.shape[1] == width:
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
    t = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    antialias = t.shape[2] > height or t.shape[3] > width
    t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias)
    return t.clamp_(0.0, 1.0).contiguous().numpy()


def stack_pair(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Pose-net input: [1, 6, H, W], earlier frame's RGB first (the reference's temporal order)."""
    return np.concatenate([earlier, later], axis=1)
