"""Training samples: frame triplets (t − s, t, t + s) and/or stereo pairs at the training size, with intrinsics
normalised by image size and rescaled per pyramid scale, and Monodepth2's augmentations.

Frames are resized once (the same antialiased bilinear resize the inference path uses, so the network sees
the same statistics in training and deployment) and kept as uint8 in RAM ("memory"), in .npy memmaps under
the cache folder ("disk": survives restarts, shared by DataLoader workers through the page cache), or read
per sample ("none", random-access sources only).

Randomness: every sample's augmentation comes from a NumPy generator seeded with (seed, epoch, position in
the epoch), handed over by `EpochBatchSampler` with the index. The result does not depend on the number of
DataLoader workers or processes, and a resumed run replays the rest of an epoch exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from depth_node.geometry.depth import NOMINAL_STEREO_BASELINE
from depth_node.inference import preprocess
from depth_node.train.augment import apply_jitter, draw_jitter
from depth_node.train.config import AugmentConfig, TrainConfig
from depth_node.train.sources import DataError, FrameData, FrameSource

log = logging.getLogger(__name__)

THUMB_FACTOR = 8


# ------------------------------------------------------------------------------------------------ resizing


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (H, W, 3) → uint8 (height, width, 3) with the inference path's resize (`preprocess.resize_rgb`)."""
    return preprocess.resize_rgb(rgb, height, width)


def resize_ids(ids: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of an integer map, sampling at pixel centres (ids stay exact)."""
    h, w = ids.shape
    if (h, w) == (height, width):
        return np.ascontiguousarray(ids)
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return np.ascontiguousarray(ids[rows][:, cols])


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Grey 1/8-size float image, for cheap "did the camera move" checks."""
    g = rgb.astype(np.float32).mean(2) / 255.0
    h, w = g.shape[0] // THUMB_FACTOR, g.shape[1] // THUMB_FACTOR
    return g[: h * THUMB_FACTOR, : w * THUMB_FACTOR].reshape(h, THUMB_FACTOR, w, THUMB_FACTOR).mean((1, 3))


def scaled_K(K_norm: np.ndarray, width: int, height: int, scale: int) -> np.ndarray:
    """4×4 pixel K at pyramid scale s from Monodepth2's size-normalised K."""
    K = K_norm.copy()
    K[0, :] *= width // (2**scale)
    K[1, :] *= height // (2**scale)
    return K


# ------------------------------------------------------------------------------------------------ sequences


@dataclass
class CachedSequence:
    """One recording at training size. Arrays are (N, H, W, 3) uint8 / (N, H, W) int32, in RAM or memmaps;
    with cache "none", `source` is read per sample instead."""

    name: str
    K_norm: np.ndarray  # 4×4, fx/W, cx/W, fy/H, cy/H
    baseline_m: float | None
    length: int
    width: int
    height: int
    rgb: Any = None
    rgb_right: Any = None
    seg: Any = None
    seg_right: Any = None
    thumbs: np.ndarray | None = None
    depth: list[np.ndarray] | None = None  # native-size GT (validation)
    source: FrameSource | None = None
    has_right: bool = False
    has_seg: bool = False

    def __len__(self) -> int:
        return self.length

    def frame(self, i: int, right: bool = False) -> np.ndarray:
        arr = self.rgb_right if right else self.rgb
        if arr is not None:
            return np.asarray(arr[i])
        assert self.source is not None
        return resize_rgb(self.source.read(i, right), self.width, self.height)

    def segments(self, i: int, right: bool = False) -> np.ndarray | None:
        if not self.has_seg:
            return None
        arr = self.seg_right if right else self.seg
        if arr is not None:
            return np.asarray(arr[i])
        if self.source is None:
            return None
        s = self.source.read_seg(i, right)
        return None if s is None else resize_ids(s, self.width, self.height)


def _cache_key(source: FrameSource, width: int, height: int, flags: tuple) -> str:
    # "u8": frames resized by the uint8 kernel; caches written by the earlier float resize are not mixed in
    ident: list[Any] = [type(source).__name__, source.name, len(source), width, height, flags, "u8"]
    if getattr(source, "cache_ident", None):  # rendered sources: their whole drive config
        ident.append(source.cache_ident)
    for attr in ("drive", "folder", "path"):
        p = getattr(source, attr, None)
        if isinstance(p, Path) and p.exists():
            ident += [str(p.resolve()), p.stat().st_mtime_ns]
    return hashlib.sha256(repr(ident).encode()).hexdigest()[:16]


def build_sequence(
    source: FrameSource,
    width: int,
    height: int,
    cache: str = "memory",
    cache_dir: Path | None = None,
    need_right: bool = False,
    need_depth: bool = False,
    need_seg: bool = True,
    progress: bool = False,
) -> CachedSequence:
    """Decode + resize a source once (all of it for "memory"/"disk" and for sequential sources)."""
    intr = source.intrinsics
    right = need_right and source.has_right
    seg = need_seg and source.has_seg
    seq = CachedSequence(source.name, intr.normalized(), source.baseline_m, len(source), width, height,
                         has_right=right, has_seg=seg)
    if cache == "none" and not source.random_access:
        log.info("%s cannot be read per sample (sequential format): caching it in memory", source.name)
        cache = "memory"
    disk = None
    if cache == "disk":
        if cache_dir is None:
            raise DataError("data.cache 'disk' needs a cache folder (data.cache_dir or --out)")
        disk = Path(cache_dir) / f"{source.name}_{_cache_key(source, width, height, (right, seg, need_depth))}"
        if (disk / "done.json").is_file():
            return _load_disk(seq, disk, need_depth)
    if cache == "none":
        seq.source = source
        thumbs = [thumbnail(resize_rgb(source.read(i), width, height)) for i in range(len(source))]
        seq.thumbs = np.stack(thumbs)
        if need_depth:
            seq.depth = [source.read_depth(i) for i in range(len(source))]
        return seq

    frames: list[np.ndarray] = []
    frames_r: list[np.ndarray] = []
    segs: list[np.ndarray] = []
    segs_r: list[np.ndarray] = []
    depth: list[np.ndarray] = []
    it: Iterator[FrameData] = source.iter_frames(with_depth=need_depth)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(source), desc=f"caching {source.name}", leave=False)
    for fd in it:
        frames.append(resize_rgb(fd.rgb, width, height))
        if right:
            if fd.rgb_right is None:
                raise DataError(f"{source.name}: frame {len(frames) - 1} has no right image")
            frames_r.append(resize_rgb(fd.rgb_right, width, height))
        if seg:
            unknown = np.full((height, width), -1, np.int32)
            segs.append(unknown if fd.seg is None else resize_ids(fd.seg, width, height).astype(np.int32))
            if right:
                segs_r.append(unknown if fd.seg_right is None else resize_ids(fd.seg_right, width, height))
        if need_depth:
            depth.append(fd.depth)
    if len(frames) != seq.length:
        seq.length = len(frames)
    seq.rgb = np.stack(frames)
    seq.rgb_right = np.stack(frames_r) if right else None
    seq.seg = np.stack(segs).astype(np.int32) if seg else None
    seq.seg_right = np.stack(segs_r).astype(np.int32) if seg and right else None
    seq.thumbs = np.stack([thumbnail(f) for f in frames])
    seq.depth = depth if need_depth else None
    if disk is not None:
        _save_disk(seq, disk)
        return _load_disk(seq, disk, need_depth)
    return seq


_ARRAYS = ("rgb", "rgb_right", "seg", "seg_right", "thumbs")


def _save_disk(seq: CachedSequence, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in _ARRAYS:
        arr = getattr(seq, name)
        if arr is not None:
            np.save(folder / f"{name}.npy", arr)
    if seq.depth is not None:
        np.savez_compressed(folder / "depth.npz", *[d if d is not None else np.zeros((0, 0)) for d in seq.depth])
    meta = {"length": seq.length, "K_norm": seq.K_norm.tolist(), "baseline_m": seq.baseline_m}
    (folder / "done.json").write_text(json.dumps(meta))


def _load_disk(seq: CachedSequence, folder: Path, need_depth: bool) -> CachedSequence:
    meta = json.loads((folder / "done.json").read_text())
    seq.length = int(meta["length"])
    for name in _ARRAYS:
        p = folder / f"{name}.npy"
        setattr(seq, name, np.load(p, mmap_mode="r") if p.is_file() else None)
    if seq.thumbs is not None:
        seq.thumbs = np.asarray(seq.thumbs)
    if need_depth and (folder / "depth.npz").is_file():
        with np.load(folder / "depth.npz") as z:
            seq.depth = [z[f"arr_{i}"] if z[f"arr_{i}"].size else None for i in range(len(z.files))]
    return seq


# ------------------------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class SampleRef:
    seq: int
    frame: int
    right: bool  # target is the right image (partner: left)


def frame_offsets(cfg: TrainConfig) -> list[int]:
    """Frame ids relative to the target: [0, −s, +s] with temporal sources, [0] for stereo only."""
    s = cfg.data.frame_stride
    return [0, -s, s] if cfg.use_temporal else [0]


class TripletDataset(Dataset):
    """Training samples. Keys are (index, augmentation seed) pairs from `EpochBatchSampler`; a plain int key
    means "no augmentation" (evaluation of training frames, tests)."""

    def __init__(self, sequences: Sequence[CachedSequence], cfg: TrainConfig, train: bool = True) -> None:
        self.sequences = list(sequences)
        self.cfg = cfg
        self.train = train
        self.offsets = frame_offsets(cfg)
        self.width, self.height = cfg.data.width, cfg.data.height
        self.scales = sorted(cfg.model.scales)
        self.ref_baseline = reference_baseline(self.sequences, cfg)
        self.items: list[SampleRef] = []
        self.n_static = 0
        for si, seq in enumerate(self.sequences):
            if cfg.use_stereo and not seq.has_right:
                raise DataError(f"{seq.name}: mode {cfg.mode} needs stereo pairs, but this data has no right camera")
            sides = [False, True] if (seq.has_right and cfg.data.both_sides) else [False]
            lo = max(0, -min(self.offsets))
            hi = len(seq) - max(0, max(self.offsets))
            for i in range(lo, hi):
                if cfg.use_temporal and cfg.data.filter_static and self._static(seq, i):
                    self.n_static += 1
                    continue
                for side in sides:
                    self.items.append(SampleRef(si, i, side))
        if not self.items:
            raise DataError(
                "no training samples: sequences are shorter than a triplet"
                + (f", or all {self.n_static} triplets look static (data.static_threshold)" if self.n_static else "")
            )

    def _static(self, seq: CachedSequence, i: int) -> bool:
        assert seq.thumbs is not None
        diffs = [float(np.abs(seq.thumbs[i] - seq.thumbs[i + o]).mean()) for o in self.offsets if o != 0]
        return min(diffs) < self.cfg.data.static_threshold

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: Any) -> dict[str, torch.Tensor]:
        if isinstance(key, tuple):
            index, aug_seed = key
        else:
            index, aug_seed = int(key), None
        ref = self.items[index]
        seq = self.sequences[ref.seq]
        a: AugmentConfig = self.cfg.augment
        rng = np.random.default_rng(aug_seed) if (aug_seed is not None and self.train) else None
        do_flip = rng is not None and rng.random() < a.flip_p
        do_jitter = rng is not None and rng.random() < a.color_jitter_p

        frames = [seq.frame(ref.frame + o, ref.right) for o in self.offsets]
        color = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)  # (F, 3, H, W)
        out: dict[str, torch.Tensor] = {}
        if self.cfg.use_stereo:
            partner = torch.from_numpy(np.array(seq.frame(ref.frame, not ref.right))).permute(2, 0, 1).float() / 255.0
        seg = seq.segments(ref.frame, ref.right)
        seg_t = torch.from_numpy(np.array(seg, dtype=np.int64))[None] if seg is not None else torch.full(
            (1, self.height, self.width), -1, dtype=torch.int64)

        K_norm = seq.K_norm.copy()
        if do_flip:
            color = color.flip(-1)
            seg_t = seg_t.flip(-1)
            if self.cfg.use_stereo:
                partner = partner.flip(-1)
            # exact mirror of the pixel grid: u' = W − 1 − u  ⇒  cx' = W − 1 − cx
            K_norm[0, 2] = (self.width - 1) / self.width - K_norm[0, 2]
        color_aug = color
        if do_jitter:
            assert rng is not None
            color_aug = apply_jitter(color, draw_jitter(rng, a.brightness, a.contrast, a.saturation, a.hue))
        out["color"] = color
        out["color_aug"] = color_aug
        if self.cfg.use_stereo:
            out["color_s"] = partner
            T = np.eye(4, dtype=np.float32)
            # target→partner motion: a left target sees the right camera at +baseline (points move by −b);
            # mirroring the images mirrors the rig, which flips the sign
            side_sign = 1.0 if ref.right else -1.0
            flip_sign = -1.0 if do_flip else 1.0
            b = NOMINAL_STEREO_BASELINE * (seq.baseline_m or self.ref_baseline) / self.ref_baseline
            T[0, 3] = side_sign * flip_sign * b
            out["stereo_T"] = torch.from_numpy(T)
        Ks = np.stack([scaled_K(K_norm, self.width, self.height, s) for s in range(max(self.scales) + 1)])
        out["K"] = torch.from_numpy(Ks[0].astype(np.float32))
        out["inv_K"] = torch.from_numpy(np.linalg.pinv(Ks[0]).astype(np.float32))
        out["K_scales"] = torch.from_numpy(Ks.astype(np.float32))
        out["seg"] = seg_t
        out["index"] = torch.tensor(index)
        return out


def reference_baseline(sequences: Sequence[CachedSequence], cfg: TrainConfig) -> float:
    """The rig baseline the nominal 0.1 stands for (data.stereo_baseline_m, else the first stereo sequence's)."""
    if cfg.data.stereo_baseline_m:
        return float(cfg.data.stereo_baseline_m)
    for s in sequences:
        if s.baseline_m:
            return float(s.baseline_m)
    return NOMINAL_STEREO_BASELINE


class EpochBatchSampler:
    """Batches of (index, augmentation seed) keys for one epoch: a permutation drawn from (seed, epoch),
    `drop_last` like the reference, sharded over `world` processes, starting at batch `start` (resume)."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 start: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world, self.start = rank, world, start

    @staticmethod
    def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
        return n // (batch_size * world)

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch(self.n, self.batch_size, self.world) - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        perm = np.random.default_rng([self.seed, self.epoch, 0x7A11]).permutation(self.n)
        g = self.batch_size * self.world
        for b in range(self.start, self.steps_per_epoch(self.n, self.batch_size, self.world)):
            lo = b * g + self.rank * self.batch_size
            keys = []
            for pos in range(lo, lo + self.batch_size):
                aug = int(np.random.SeedSequence([self.seed, self.epoch, pos]).generate_state(1)[0])
                keys.append((int(perm[pos]), aug))
            yield keys


# ------------------------------------------------------------------------------------------------ validation


@dataclass
class ValFrame:
    rgb: np.ndarray  # (H, W, 3) uint8 at training size
    depth: np.ndarray  # native-size GT, metres
    name: str
    f_norm: float | None = None  # focal length in image widths (metric models need it)


@dataclass
class ValidationSet:
    frames: list[ValFrame] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


def validation_set(sequences: Sequence[CachedSequence], max_frames: int) -> ValidationSet:
    """Frames with GT depth, evenly spread over all sequences (at most `max_frames`, 0 = all)."""
    refs = [(s, i) for s in sequences if s.depth is not None for i in range(len(s)) if s.depth[i] is not None]
    if max_frames and len(refs) > max_frames:
        pick = np.linspace(0, len(refs) - 1, max_frames).round().astype(int)
        refs = [refs[k] for k in pick]
    return ValidationSet([ValFrame(s.frame(i), s.depth[i], f"{s.name}/{i:06d}", float(s.K_norm[0, 0]))  # type: ignore[index]
                          for s, i in refs])
