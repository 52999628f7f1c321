"""Training throughput (samples/s) of the Monodepth2 trainer, for `depth-node bench --train`.

Measures full optimiser steps — data from the in-memory cache (collation and augmentation included), depth and
pose nets forward and backward, the multi-scale loss, Adam — on frames of a short synthetic drive rendered at
each resolution, for modes M and MS. Warm-up steps (allocator, oneDNN primitive caches) are not timed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from typing import Any

import torch

from depth_node.bench.load import LoadMonitor
from depth_node.bench.machine import machine_with_load, write_report
from depth_node.cpu_info import cpu_model

log = logging.getLogger(__name__)

DEFAULT_RESOLUTIONS = ((640, 192), (320, 96))
DEFAULT_MODES = ("M", "MS")


def _opt(args: Any, name: str, default: Any) -> Any:
    v = getattr(args, name, None) if args is not None else None
    return default if v is None else v


def _sequences(width: int, height: int, stereo: bool, frames: int, seed: int = 7):
    from depth_node.sim.config import DriveConfig
    from depth_node.train.data import build_sequence
    from depth_node.train.sources import SimDriveSource

    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera.width, cfg.camera.height, cfg.camera.stereo = width, height, stereo
    return [build_sequence(SimDriveSource(cfg), width, height, "memory", need_right=stereo, need_seg=False)]


def bench_one(mode: str, width: int, height: int, batch_size: int, steps: int, warmup: int, amp: str,
              channels_last: str, threads: int | None, frames: int = 0) -> dict[str, Any]:
    """samples/s of one (mode, resolution); the trainer's own code path, nothing written to disk."""
    from depth_node.train.config import TrainConfig
    from depth_node.train.data import EpochBatchSampler
    from depth_node.train.trainer import Trainer

    frames = frames or max(batch_size + 2, 8)
    cfg = TrainConfig.from_dict({
        "mode": mode,
        "data": {"width": width, "height": height, "num_workers": 0, "filter_static": False},
        "optim": {"batch_size": batch_size},
        "system": {"device": "cpu" if not torch.cuda.is_available() else "auto", "amp": amp,
                   "channels_last": channels_last, "threads": threads, "progress": False},
        "output": {"export_onnx": False, "report": False},
    })
    seqs = _sequences(width, height, "S" in mode, frames)
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, tmp, train_sequences=seqs, val_sequences=[])
        tr.setup()
        ds = tr.dataset
        keys = next(iter(EpochBatchSampler(len(ds), batch_size, 0, 0)))
        from torch.utils.data import default_collate

        def one() -> None:
            tr.train_step(default_collate([ds[k] for k in keys]))

        for _ in range(warmup):
            one()
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            one()
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    return {
        "mode": mode,
        "width": width,
        "height": height,
        "batch_size": batch_size,
        "steps": steps,
        "amp": tr.amp_dtype.__repr__().replace("torch.", "") if tr.amp_dtype else "off",
        "channels_last": tr.channels_last,
        "seconds_per_step": dt / steps,
        "samples_per_s": batch_size * steps / dt,
    }


def _resolutions(value: Any) -> list[tuple[int, int]]:
    """"640x192,320x96" or [(640, 192), ...]."""
    if isinstance(value, str):
        try:
            return [(int(w), int(h)) for w, h in (r.lower().split("x") for r in value.split(",") if r.strip())]
        except ValueError:
            from depth_node.errors import DepthNodeError

            raise DepthNodeError(f"resolutions must look like 640x192,320x96; got {value!r}") from None
    return [(int(w), int(h)) for w, h in value]


def run_train_bench(args: Any = None) -> dict[str, Any]:
    """Optional attributes of `args` (an argparse namespace or anything with attributes): train_modes ("M,MS"),
    resolutions ("640x192,320x96" or [(W, H)]), train_batch_size, iters (timed steps), warmup, train_amp
    (auto/off/bf16/fp16), train_channels_last, threads. Returns {"device", "threads", "torch", "results"}."""
    modes = _opt(args, "train_modes", DEFAULT_MODES)
    modes = tuple(m.strip() for m in modes.split(",")) if isinstance(modes, str) else tuple(modes)
    resolutions = _resolutions(_opt(args, "resolutions", DEFAULT_RESOLUTIONS))
    batch = int(_opt(args, "train_batch_size", 8))
    steps = int(_opt(args, "iters", 3))
    warmup = int(_opt(args, "warmup", 1))
    amp = str(_opt(args, "train_amp", "auto"))
    cl = str(_opt(args, "train_channels_last", "auto"))
    threads = _opt(args, "threads", None)
    results = []
    with LoadMonitor() as monitor:  # other processes' CPU use while the steps run
        for w, h in resolutions:
            for mode in modes:
                r = bench_one(mode, int(w), int(h), batch, steps, warmup, amp, cl, threads)
                log.info("train %s %dx%d: %.2f samples/s", mode, w, h, r["samples_per_s"])
                results.append(r)
    load = monitor.summary()
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu_model()
    return {"device": dev, "threads": torch.get_num_threads(), "torch": torch.__version__, "results": results,
            "machine": machine_with_load(load)}


def add_arguments(p: Any) -> None:
    """Options of `depth-node bench --train` (--resolutions, --iters, --warmup and --json are shared)."""
    p.add_argument("--train-modes", default=None, help="training benchmark: modes, default M,MS")
    p.add_argument("--train-batch-size", type=int, default=None, help="training benchmark: batch size (default 8)")
    p.add_argument("--train-amp", default=None, help="training benchmark: auto, off, bf16, fp16 (default auto: fp16 "
                   "on CUDA; on a CPU bf16 where it has AVX-512 BF16/AMX, about 2x fp32 there, else fp32)")


def run(args: Any) -> int:
    """`depth-node bench --train`: table on stdout, JSON to --json when given."""
    rep = run_train_bench(args)
    print(format_table(rep))
    write_report(rep, getattr(args, "json", None))
    return 0


def format_table(report: dict[str, Any]) -> str:
    lines = [f"training throughput on {report['device']} ({report['threads']} threads)",
             f"{'mode':<4} {'size':>9} {'batch':>5} {'amp':>8} {'s/step':>8} {'samples/s':>10}"]
    for r in report["results"]:
        lines.append(f"{r['mode']:<4} {r['width']:>4}x{r['height']:<4} {r['batch_size']:>5} {r['amp']:>8} "
                     f"{r['seconds_per_step']:>8.3f} {r['samples_per_s']:>10.2f}")
    if report.get("machine", {}).get("loaded"):
        lines.append("LOADED machine: other processes used the CPU during the run (machine.load); the figures are low")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m depth_node.bench.train_bench
    import json
    import sys

    rep = run_train_bench()
    print(format_table(rep))
    json.dump(rep, sys.stdout, indent=2)
