"""What the exported graphs take as input: RGB frames resized to the network's size, [0, 1] float, NCHW (and
frame pairs for the pose net). It lives in export, below inference, because int8 calibration prepares its
frames the same way the runtime does; `depth_node.inference.preprocess` re-exports it for the runtime."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, 3) → uint8 (height, width, 3): antialiased bilinear when shrinking, bilinear when enlarging.

    The one image resize of the package (training caches, inference, reports), so the network sees the same
    pixels in training and deployment. Area-like antialiasing, as the reference resizes with Lanczos/antialias:
    plain bilinear decimation of a 1242-px frame to 640 px aliases fine texture and shifts predictions. It runs
    on Pillow's fixed-point separable resampler (the algorithm torch's uint8 `antialias=True` kernel was ported
    from; the two agree to one grey level), so the node needs no torch on the ONNX Runtime/OpenVINO/TensorRT
    paths; it differs from float-then-round by at most one grey level."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(rgb)
    return _resized(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB"), height, width)


def _resized(img: Image.Image, height: int, width: int) -> np.ndarray:
    """Pillow's bilinear, antialiased when shrinking, over the whole image at once (reducing_gap=None)."""
    return np.array(img.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None))


def resize_float_channels(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """float (H, W, C) → float32 (height, width, C) with `resize_rgb`'s filter, in float (Pillow's "F" mode)."""
    img = np.asarray(img, dtype=np.float32)
    return np.stack([_resized(Image.fromarray(np.ascontiguousarray(img[:, :, c]), "F"), height, width)
                     for c in range(img.shape[2])], axis=-1)


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
    out = np.clip(resize_float_channels(rgb, height, width), 0.0, 1.0)
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None])


def stack_pair(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Pose-net input: [1, 6, H, W], earlier frame's RGB first (the reference's temporal order)."""
    return np.concatenate([earlier, later], axis=1)
