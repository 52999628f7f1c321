"""Depth and calibration files of public datasets, as they store them: 16-bit depth PNGs with a per-dataset
scale (KITTI metres × 256, TUM × 5000, NYU × 1000; 0 = no measurement) and KITTI's `KEY: numbers` calibration
text files. Pure formats: the renderer's KITTI-like writer, the evaluators and the commands all read them here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError


class DepthFileError(DepthNodeError):
    """A depth or calibration file that cannot be read as asked."""


# units per metre of the datasets' uint16 depth PNGs
KITTI_DEPTH_SCALE = 256.0
TUM_DEPTH_SCALE = 5000.0
NYU_DEPTH_SCALE = 1000.0


def read_depth_png(path: str | Path, units_per_metre: float) -> np.ndarray:
    """(H, W) float32 metres from a 16-bit depth PNG; 0 (no measurement) stays 0. 8-bit files are refused:
    they cannot hold depth, and a silently wrong scale would look like a bad model."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            raw = np.asarray(im)
    except Exception as exc:
        raise DepthFileError(f"cannot read depth image {path}: {exc}") from exc
    if raw.dtype not in (np.uint16, np.int32) or raw.ndim != 2:
        raise DepthFileError(f"{path}: depth PNGs must be single-channel 16-bit, got {raw.dtype} {raw.shape}")
    return (raw.astype(np.float32) / np.float32(units_per_metre)).astype(np.float32)


def read_depth_file(path: str | Path) -> np.ndarray:
    """(H, W) float32 metres from a depth file as the tools take one: .npy in metres, or a KITTI 16-bit PNG
    (metres × 256); 0 = no measurement either way."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        return read_depth_png(path, KITTI_DEPTH_SCALE)
    try:
        d = np.squeeze(np.load(path)).astype(np.float32)
    except Exception as exc:
        raise DepthFileError(f"cannot read depth {path}: {exc}") from exc
    if d.ndim != 2:
        raise DepthFileError(f"{path}: depth must be (H, W) metres, got shape {d.shape}")
    return d


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """KITTI calibration text: 'KEY: numbers' lines → float arrays (non-numeric values such as calib_time are
    skipped)."""
    out: dict[str, np.ndarray] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DepthFileError(f"cannot read calibration {path}: {exc}") from exc
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            out[key.strip()] = np.array([float(v) for v in value.split()])
        except ValueError:
            continue
    return out
