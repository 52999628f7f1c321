"""What a real camera does to the picture, applied to the rendered RGB only: motion blur (renders averaged
over the exposure), exposure (a per-drive offset and a slow auto-exposure wander), white balance,
vignetting, shot and read noise, JPEG compression.

Depth, poses, intrinsics and labels are untouched, so ground truth stays exact; every random draw comes from
the drive's seed (per-drive parameters) and the frame index and view (per-frame noise), so frames stay
reproducible. All effects are off by default (`photo` section of the drive config): existing drives render
bit for bit as before.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from depth_node.sim.config import PhotoConfig


@dataclass(frozen=True)
class PhotoParams:
    """One drive's draws."""

    stops: float  # exposure offset
    wb: np.ndarray  # (3,) channel gains, mean luminance kept
    drift_period: float  # s, of the auto-exposure wander
    drift_phase: float


def enabled(cfg: PhotoConfig) -> bool:
    return bool(cfg.exposure_stops or cfg.exposure_drift or cfg.white_balance or cfg.vignetting or cfg.noise
                or cfg.read_noise or cfg.jpeg_quality[1] > 0 or blur_times(cfg, 0.0).size > 1)


def blur_times(cfg: PhotoConfig, t: float) -> np.ndarray:
    """Instants averaged into the picture taken at t: the frame's instant is the middle of the exposure."""
    if cfg.shutter_s <= 0 or cfg.blur_samples < 2:
        return np.array([t])
    return t + cfg.shutter_s * (np.arange(cfg.blur_samples) / (cfg.blur_samples - 1) - 0.5)


def drive_params(cfg: PhotoConfig, rng: np.random.Generator) -> PhotoParams:
    stops = float(rng.uniform(-cfg.exposure_stops, cfg.exposure_stops))
    wb = 1.0 + rng.uniform(-cfg.white_balance, cfg.white_balance, 3)
    wb = wb / float(np.dot(wb, (0.299, 0.587, 0.114)))
    return PhotoParams(stops, wb.astype(np.float32), float(rng.uniform(5.0, 20.0)), float(rng.uniform(0, 2 * np.pi)))


def vignette(height: int, width: int, strength: float) -> np.ndarray:
    """(H, W) brightness factor 1 − strength·r², r = 1 at the image corners (pixel centres)."""
    y = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / max((height - 1) / 2, 1e-6)
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / max((width - 1) / 2, 1e-6)
    r2 = (x[None, :] ** 2 + y[:, None] ** 2) / 2.0
    return (1.0 - strength * r2).astype(np.float32)


def apply(rgb: np.ndarray, cfg: PhotoConfig, params: PhotoParams, t: float, rng: np.random.Generator) -> np.ndarray:
    """The camera's picture of a rendered (H, W, 3) uint8 frame at time t (s); a new array."""
    img = rgb.astype(np.float32) / 255.0
    stops = params.stops + cfg.exposure_drift * np.sin(2 * np.pi * t / params.drift_period + params.drift_phase)
    gain = params.wb * np.float32(2.0**stops)
    img *= gain[None, None, :]
    if cfg.vignetting:
        img *= vignette(img.shape[0], img.shape[1], cfg.vignetting)[..., None]
    if cfg.noise or cfg.read_noise:
        sigma = np.sqrt(cfg.noise**2 * np.clip(img, 0.0, 1.0) + cfg.read_noise**2)
        img += sigma * rng.standard_normal(img.shape, dtype=np.float32)
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    lo, hi = cfg.jpeg_quality
    if hi > 0:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=round(rng.uniform(max(lo, 1), hi)))
        buf.seek(0)
        with Image.open(buf) as im:
            out = np.asarray(im.convert("RGB")).copy()
    return out
