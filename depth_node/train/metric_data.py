"""Samples for supervised metric training (mode: metric): one frame with its ground-truth depth and focal length.

The network sees the frame resized to its square input exactly as the node feeds it (`to_network_input`); the
loss compares canonical inverse depth at the frame's own size, where the ground truth lives. A random crop-and-zoom
changes the field of view the network sees (the focal length in image widths grows by 1/crop), which is what lets
the FOV head learn anything on drives filmed by one camera, and teaches the depth head that canonical inverse depth,
not pixel size, carries the metric scale. Augmentations draw from the per-sample seed of `EpochBatchSampler`, so a
resumed run sees the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from depth_node.inference.preprocess import to_network_input
from depth_node.train.augment import apply_jitter, draw_jitter
from depth_node.train.config import TrainConfig
from depth_node.train.data import CachedSequence, DataError


def fov_from_focal(f_norm: float) -> float:
    """Horizontal field of view (degrees) of a camera whose focal length is `f_norm` image widths."""
    return math.degrees(2.0 * math.atan(0.5 / f_norm))


def _depth_at(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """GT depth at the frame size (nearest neighbour: depth must not be blended across edges)."""
    d = np.asarray(depth, dtype=np.float32)
    if d.shape == (height, width):
        return d
    rows = np.minimum((np.arange(height) + 0.5) * d.shape[0] / height, d.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * d.shape[1] / width, d.shape[1] - 1).astype(int)
    return d[rows][:, cols]


class MetricFrameDataset(Dataset):
    """Every frame with ground-truth depth; `dataset[(index, seed)]` → image (3, S, S) in [0, 1], depth (1, H, W)
    in metres (0 = no ground truth), f_norm (focal length in image widths) and fov_deg."""

    def __init__(self, sequences: Sequence[CachedSequence], cfg: TrainConfig, network_size: int,
                 train: bool = True) -> None:
        self.sequences = list(sequences)
        self.cfg = cfg
        self.size = int(network_size)
        self.train = train
        self.items = [(si, i) for si, s in enumerate(self.sequences) if s.depth is not None
                      for i in range(len(s)) if s.depth[i] is not None]
        if not self.items:
            names = ", ".join(s.name for s in self.sequences) or "none"
            raise DataError(f"mode metric trains on ground-truth depth, but no training frame has any (sources: "
                            f"{names}); use KITTI-like folders with depth, or synthetic drives")
        self.n_static = 0  # the trainer's log line is shared with the self-supervised dataset

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: Any) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (int(key), None)
        si, i = self.items[index]
        seq = self.sequences[si]
        h, w = seq.height, seq.width
        rgb = seq.frame(i)
        depth = _depth_at(seq.depth[i], h, w)  # type: ignore[index]
        f_norm = float(seq.K_norm[0, 0])
        rng = np.random.default_rng(seed) if (seed is not None and self.train) else None
        m, a = self.cfg.metric, self.cfg.augment
        if rng is not None and rng.random() < m.zoom_p:
            s = float(rng.uniform(m.zoom_min, 1.0))
            cw, ch = max(8, round(w * s)), max(8, round(h * s))
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            rgb = rgb[y0:y0 + ch, x0:x0 + cw]
            depth = _depth_at(depth[y0:y0 + ch, x0:x0 + cw], h, w)
            f_norm *= w / cw
        image = torch.from_numpy(to_network_input(np.ascontiguousarray(rgb), self.size, self.size)[0])
        depth_t = torch.from_numpy(np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32))[None]
        if rng is not None and rng.random() < a.flip_p:
            image, depth_t = image.flip(-1), depth_t.flip(-1)
        if rng is not None and rng.random() < a.color_jitter_p:
            image = apply_jitter(image, draw_jitter(rng, a.brightness, a.contrast, a.saturation, a.hue))
        return {
            "image": image.contiguous(),
            "depth": depth_t.contiguous(),
            "f_norm": torch.tensor(f_norm, dtype=torch.float32),
            "fov_deg": torch.tensor(fov_from_focal(f_norm), dtype=torch.float32),
            "index": torch.tensor(index),
        }


def resize_prediction(pred: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Network output (B, 1, S, S) → (B, 1, height, width), bilinear as `canonical_to_metric` resizes."""
    if tuple(pred.shape[-2:]) == (height, width):
        return pred
    return F.interpolate(pred, size=(height, width), mode="bilinear", align_corners=False)
