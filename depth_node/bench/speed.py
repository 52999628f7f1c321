"""Whether the CPU ran at full speed while a benchmark block was timed.

A VM's cores can lose a third of their speed for seconds at a time without any sign in /proc/stat: measured on the
2-core EPYC VM this project is benchmarked on (2026-12-07, 150 s of back-to-back int8 depth inference between
probes), a NumPy fp32 GEMM of 512x512 ran at ~195 GFLOP/s and dropped to ~138 in stretches of 5-20 s; the int8
depth graph went from 26-29 ms to 34-38 ms in exactly those stretches; a 32 MB copy's bandwidth did not follow
(the memory was not the cause) and the hypervisor reported no steal time. The likely cause is another guest on
the same physical cores. `LoadMonitor` cannot see that, and interleaving only spreads it at random over the
candidates, so a candidate timed mostly in slow stretches looked slower than it is.

`SpeedProbe` runs a small fixed GEMM (three products of 1.3-1.6 ms) before and after every timed block; the slower of
the two readings is the block's speed. It runs through PyTorch, whose OpenMP threads stop spinning within about a
millisecond; NumPy's OpenBLAS threads spin for up to ~0.1 s after a product and took the cores from the next
timed calls (a first version with NumPy put every row's p90 at 1.5x its median). `timing.interleaved` then
leaves out the blocks whose speed fell under FULL_SPEED of the fastest reading of the whole run, times them
again, and reports how many it left out."""

from __future__ import annotations

import torch

from depth_node.bench.peak import gemm_gflops

PROBE_N = 512  # 0.27 GFLOP: 1.3-1.6 ms on two Zen 4 cores (170-207 GFLOP/s)
PROBE_RUNS = 3
FULL_SPEED = 0.9  # a block whose probe read under 90 % of the run's fastest ran in a slow stretch
# passes that time again the blocks run slow: two bound the cost (the default bench, 7.5 min with three on a VM
# in a slow spell, 146 blocks timed again) while a slow stretch of 5-20 s is usually over by the second
MAKEUP_PASSES = 2


class SpeedProbe:
    """Callable: the CPU's fp32 GEMM rate now (GFLOP/s); remembers the fastest reading (`best`)."""

    def __init__(self, n: int = PROBE_N, runs: int = PROBE_RUNS):
        gen = torch.Generator().manual_seed(0)
        self._a, self._b = (torch.randn(n, n, generator=gen) for _ in range(2))
        self._runs = runs
        self.best = 0.0
        self.readings = 0
        gemm_gflops(self._a, self._b, 1)  # first-call costs (BLAS thread start) are no reading

    def __call__(self) -> float:
        rate = gemm_gflops(self._a, self._b, self._runs)
        self.best = max(self.best, rate)
        self.readings += 1
        return rate

    def is_slow(self, rate: float | None) -> bool:
        """Whether a reading is under FULL_SPEED of the fastest so far."""
        return rate is not None and rate < FULL_SPEED * self.best

    def summary(self) -> dict:
        return {"probe": f"PyTorch fp32 GEMM {PROBE_N}x{PROBE_N}, best of {self._runs}, before and after each block",
                "best_gflops": round(self.best, 1), "readings": self.readings, "full_speed_fraction": FULL_SPEED}
