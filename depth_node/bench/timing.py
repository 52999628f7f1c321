"""Latency measurement: warm-up, then per-call wall times; medians and p90 rather than means, because a shared
2-core machine produces outliers that would dominate a mean.

`interleaved` times several candidates in alternating blocks (A B C A B C ...) rather than one after the other,
so a machine that gets busier or quieter during the run (other users, thermal limits) slows every candidate
alike and their ratios stay honest; it also measures the other processes' CPU share during each candidate's
own blocks."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from depth_node.bench.load import CpuTimes, cpu_times, is_loaded


@dataclass
class Timing:
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    iters: int
    other_cpu: float | None = None  # other processes' share of the machine during this candidate's blocks

    @classmethod
    def from_times(cls, times_ms: list[float], other_cpu: float | None = None) -> Timing:
        a = np.asarray(times_ms)
        return cls(float(np.median(a)), float(np.percentile(a, 90)), float(a.mean()), float(a.min()), len(a),
                   other_cpu)

    def as_dict(self) -> dict[str, float | int | bool | None]:
        return {
            "median_ms": round(self.median_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
            "min_ms": round(self.min_ms, 3),
            "iters": self.iters,
            "other_cpu": self.other_cpu,
            "loaded": None if self.other_cpu is None else is_loaded(self.other_cpu, None),
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


def interleaved(fns: dict[Hashable, Callable[[], object]], iters: int, warmup: int, rounds: int = 3,
                syncs: dict[Hashable, Callable[[], None]] | None = None) -> dict[Hashable, Timing]:
    """`iters` timed calls of each fn, split over `rounds` alternating blocks. Each block starts with one untimed
    call: the previous candidate's runtime may still hold the cores (ONNX Runtime's threads spin after a run)."""
    syncs = syncs or {}
    for key, fn in fns.items():
        for _ in range(max(0, warmup)):
            fn()
        if key in syncs:
            syncs[key]()
    rounds = max(1, min(rounds, iters))
    times: dict[Hashable, list[float]] = {k: [] for k in fns}
    busy: dict[Hashable, list[tuple[CpuTimes, CpuTimes]]] = {k: [] for k in fns}
    for r in range(rounds):
        n = iters // rounds + (1 if r < iters % rounds else 0)
        for key, fn in fns.items():
            fn()
            before = cpu_times()
            times[key] += _timed(fn, n, syncs.get(key))
            after = cpu_times()
            if before is not None and after is not None:
                busy[key].append((before, after))
    return {k: Timing.from_times(times[k], _share(busy[k])) for k in fns}


def _share(windows: list[tuple[CpuTimes, CpuTimes]]) -> float | None:
    """Other processes' share over the union of a candidate's blocks."""
    total = sum(b.total - a.total for a, b in windows)
    if total <= 0:
        return None
    other = sum((b.busy - a.busy) - (b.own - a.own) for a, b in windows)
    return round(min(1.0, max(0.0, other / total)), 3)
