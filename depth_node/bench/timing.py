"""Latency measurement: warm-up, then per-call wall times; medians and p90 rather than means, because a shared
2-core machine produces outliers that would dominate a mean.

`interleaved` times several candidates in alternating blocks (A B C A B C ...) rather than one after the other,
so a machine that gets busier or quieter during the run (other users, thermal limits) slows every candidate
alike and their ratios stay honest; it also measures the other processes' CPU share during each candidate's
own blocks, and, given a `SpeedProbe`, the CPU's speed around each block: blocks timed while the CPU ran slow
(`bench.speed`) are left out and timed again."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from depth_node.bench.load import CpuTimes, cpu_times, is_loaded
from depth_node.bench.speed import MAKEUP_PASSES, SpeedProbe


@dataclass
class Timing:
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    iters: int
    other_cpu: float | None = None  # other processes' share of the machine during this candidate's blocks
    cpu_speed: float | None = None  # median probe reading of the blocks used, as a fraction of the run's fastest
    slow_blocks: int = 0  # blocks timed while the CPU ran slow, left out
    throttled: bool = False  # every block of this candidate ran slow: its figures are the slow CPU's

    @classmethod
    def from_times(cls, times_ms: list[float], other_cpu: float | None = None, **speed) -> Timing:
        a = np.asarray(times_ms)
        return cls(float(np.median(a)), float(np.percentile(a, 90)), float(a.mean()), float(a.min()), len(a),
                   other_cpu, **speed)

    def as_dict(self) -> dict[str, float | int | bool | None]:
        return {
            "median_ms": round(self.median_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
            "min_ms": round(self.min_ms, 3),
            "iters": self.iters,
            "other_cpu": self.other_cpu,
            "loaded": None if self.other_cpu is None else is_loaded(self.other_cpu, None),
            "cpu_speed": self.cpu_speed,
            "slow_blocks_left_out": self.slow_blocks,
            "throttled": self.throttled,
        }


def _timed(fn: Callable[[], object], n: int, sync: Callable[[], None] | None) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def measure(fn: Callable[[], object], iters: int, warmup: int, sync: Callable[[], None] | None = None) -> Timing:
    """Times `fn` end to end (input copy, run, output copy): what a caller waits for. `sync` (e.g.
    torch.cuda.synchronize) runs inside the timed region for asynchronous devices."""
    for _ in range(max(0, warmup)):
        fn()
    if sync:
        sync()
    return Timing.from_times(_timed(fn, max(1, iters), sync))


@dataclass
class _Block:
    times: list[float]
    speed: float | None  # the probe's slower reading around the block (None without a probe)
    window: tuple[CpuTimes, CpuTimes] | None = None


def _block(fn: Callable[[], object], n: int, sync: Callable[[], None] | None, probe: SpeedProbe | None) -> _Block:
    """A probe reading, one untimed call (the previous candidate's runtime or the probe may still hold the cores:
    ONNX Runtime's threads spin after a run), n timed calls, a second probe reading."""
    s0 = probe() if probe else None
    fn()
    if sync:
        sync()
    before = cpu_times()
    times = _timed(fn, n, sync)
    after = cpu_times()
    speed = min(s0, probe()) if probe and s0 is not None else None
    return _Block(times, speed, (before, after) if before is not None and after is not None else None)


def interleaved(fns: dict[Hashable, Callable[[], object]], iters: int, warmup: int, rounds: int = 3,
                syncs: dict[Hashable, Callable[[], None]] | None = None, probe: SpeedProbe | None = None
                ) -> dict[Hashable, Timing]:
    """`iters` timed calls of each fn, split over `rounds` alternating blocks. With a `probe`, a block timed while
    the CPU ran slow (`SpeedProbe.is_slow` against the whole run's fastest reading) is left out and a new block
    is timed in its place, for up to MAKEUP_PASSES passes; a candidate left with no full-speed block keeps all
    of its blocks and is marked `throttled`."""
    syncs = syncs or {}
    for key, fn in fns.items():
        for _ in range(max(0, warmup)):
            fn()
        if key in syncs:
            syncs[key]()
    rounds = max(1, min(rounds, iters))
    sizes = [iters // rounds + (1 if r < iters % rounds else 0) for r in range(rounds)]
    blocks: dict[Hashable, list[_Block]] = {k: [] for k in fns}
    for n in sizes:
        for key, fn in fns.items():
            blocks[key].append(_block(fn, n, syncs.get(key), probe))
    for _ in range(MAKEUP_PASSES if probe else 0):  # make-up passes, interleaved like the first ones
        # each candidate's slow blocks, as many as it still lacks of `rounds` full-speed ones
        fast = {k: sum(not probe.is_slow(b.speed) for b in bs) for k, bs in blocks.items()}
        missing = {k: min(len(bs) - fast[k], rounds - fast[k]) for k, bs in blocks.items()}
        if max(missing.values(), default=0) <= 0:
            break
        for i in range(max(missing.values())):
            for key, fn in fns.items():
                if missing[key] > i:
                    blocks[key].append(_block(fn, sizes[0], syncs.get(key), probe))
    return {k: _timing(bs, probe) for k, bs in blocks.items()}


def _timing(blocks: list[_Block], probe: SpeedProbe | None) -> Timing:
    """The Timing of a candidate's full-speed blocks (all of them without a probe, or when none ran at full
    speed)."""
    fast = [b for b in blocks if probe is None or not probe.is_slow(b.speed)]
    used = fast or blocks
    speed = {}
    if probe is not None and probe.best > 0:
        speed = {"cpu_speed": round(float(np.median([b.speed / probe.best for b in used])), 3),
                 "slow_blocks": len(blocks) - len(fast), "throttled": not fast}
    return Timing.from_times([t for b in used for t in b.times], _share([b.window for b in used if b.window]),
                             **speed)


def _share(windows: list[tuple[CpuTimes, CpuTimes]]) -> float | None:
    """Other processes' share over the union of a candidate's blocks."""
    total = sum(b.total - a.total for a, b in windows)
    if total <= 0:
        return None
    other = sum((b.busy - a.busy) - (b.own - a.own) for a, b in windows)
    return round(min(1.0, max(0.0, other / total)), 3)
