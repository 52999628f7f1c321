"""Synthetic drives for training runs without `--data`: the config's `synth:` section names drives by seed;
each is rendered once with depth_node.sim at the training size straight into the disk cache (uint8 frames,
segment ids, GT depth), so a rerun or a resume starts at once and nothing is re-encoded as PNG.

Rendering is the slow part of a fresh run (≈ 0.05–0.2 s per frame), so drives are rendered in parallel
worker processes (`synth.workers`); each worker writes its own cache folder.
"""

from __future__ import annotations

import copy
import logging
import math
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.train.config import CameraRandomization, SynthSplit, TrainConfig
from depth_node.train.data import CachedSequence, build_sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthJob:
    seed: int
    frames: int
    overrides: dict[str, Any]
    stereo: bool
    width: int
    height: int
    train_width: int
    train_height: int
    cache_dir: str
    need_depth: bool
    name: str


def drive_config(job: SynthJob):
    from depth_node.sim.config import DriveConfig

    cfg = DriveConfig.from_dict(copy.deepcopy(job.overrides))
    cfg.seed = job.seed
    cfg.frames = job.frames
    cfg.camera.width, cfg.camera.height = job.width, job.height
    cfg.camera.stereo = job.stereo
    return cfg


RANDOMIZE_STREAM = 0x5EED_CA3  # the camera draws' own random stream, apart from the drive's scene draws
_UNIFORM_KEYS = ("hfov_deg", "cx_offset", "cy_offset", "pitch_deg", "roll_deg")


def randomized_overrides(overrides: dict[str, Any], rnd: CameraRandomization, seed: int) -> dict[str, Any]:
    """The drive's overrides with its random camera (and scene kind) filled in, a pure function of the seed.

    Every draw is made whatever is enabled, so switching one setting on or off leaves the others' values for a
    seed unchanged. The kind's preset (camera height, speeds) applies first, the drawn camera over it."""
    rng = np.random.default_rng([RANDOMIZE_STREAM, int(seed)])
    u = rng.random(len(_UNIFORM_KEYS) + 3)
    out = copy.deepcopy(overrides)
    cam = dict(out.get("camera") or {})
    if rnd.kinds:
        out["scene"] = {**(out.get("scene") or {}), "kind": rnd.kinds[min(int(u[0] * len(rnd.kinds)),
                                                                        len(rnd.kinds) - 1)]}
    if rnd.aspects:
        cam["aspect"] = rnd.aspects[min(int(u[1] * len(rnd.aspects)), len(rnd.aspects) - 1)]
    if rnd.height_m:
        lo, hi = math.log(rnd.height_m[0]), math.log(rnd.height_m[1])
        cam["height_m"] = float(math.exp(lo + u[2] * (hi - lo)))
    for k, key in enumerate(_UNIFORM_KEYS, start=3):
        rng_ = getattr(rnd, key)
        if rng_:
            cam[key] = float(rng_[0] + u[k] * (rng_[1] - rng_[0]))
    if cam:
        out["camera"] = cam
    return out


def _render(job: SynthJob) -> CachedSequence:
    from depth_node.train.sources import SimDriveSource

    src = SimDriveSource(drive_config(job), job.name)
    return build_sequence(src, job.train_width, job.train_height, "disk", Path(job.cache_dir), need_right=job.stereo,
                          need_depth=job.need_depth, need_seg=True)


def _render_quiet(job: SynthJob) -> str:
    _render(job)
    return job.name


def jobs_for(cfg: TrainConfig, split: str, cache_dir: Path) -> list[SynthJob]:
    assert cfg.synth is not None
    sp: SynthSplit = getattr(cfg.synth, split)
    stereo = cfg.use_stereo if cfg.synth.stereo is None else cfg.synth.stereo
    w = cfg.synth.width or cfg.data.width
    h = cfg.synth.height or cfg.data.height
    return [
        SynthJob(int(seed), sp.frames, randomized_overrides(sp.overrides, sp.randomize, int(seed)), bool(stereo),
                 int(w), int(h), cfg.data.width,
                 cfg.data.height, str(cache_dir), split == "val" or cfg.is_metric, f"synth_{split}_seed{seed}")
        for seed in sp.seeds
    ]


def synth_sequences(cfg: TrainConfig, split: str, cache_dir: Path, progress: bool = True) -> list[CachedSequence]:
    """Render (or reuse from the cache) the drives of one split; returns them as cached sequences."""
    jobs = jobs_for(cfg, split, cache_dir)
    workers = max(1, min(cfg.synth.workers if cfg.synth else 1, len(jobs)))
    if workers > 1:
        ctx = mp.get_context("spawn")  # no fork of a process that may hold torch threads
        with ctx.Pool(workers) as pool:
            it = pool.imap_unordered(_render_quiet, jobs)
            if progress:
                from tqdm import tqdm

                it = tqdm(it, total=len(jobs), desc=f"rendering {split} drives", leave=False)
            for _ in it:
                pass
    elif progress and jobs:
        log.info("rendering %d %s drive(s) into %s", len(jobs), split, cache_dir)
    return [_render(j) for j in jobs]  # cache hits after the pool; renders here when single-process
