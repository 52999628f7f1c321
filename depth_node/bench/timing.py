"""Latency measurement: warm-up, then per-call wall times; medians and p90 rather than means, because a shared
2-core machine produces outliers that would dominate a mean."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    iters: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median_ms": round(self.median_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
            "min_ms": round(self.min_ms, 3),
            "iters": self.iters,
        }


def measure(fn: Callable[[], object], iters: int, warmup: int, sync: Callable[[], None] | None = None) -> Timing:
    """Times `fn` end to end (input copy, run, output copy): what a caller waits for. `sync` (e.g.
    torch.cuda.synchronize) runs inside the timed region for asynchronous devices."""
    for _ in range(max(0, warmup)):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(max(1, iters)):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    a = np.asarray(times)
    return Timing(float(np.median(a)), float(np.percentile(a, 90)), float(a.mean()), float(a.min()), len(a))
