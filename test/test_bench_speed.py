"""The benchmark's CPU-speed check (`bench.speed`, `timing.interleaved`): blocks timed while the CPU ran slow are
left out and timed again, and a candidate that never ran at full speed is marked, not passed off as measured on
a full-speed CPU. The slow stretches are scripted (a probe that reads the script, calls that sleep longer while
it says slow), so what the selection keeps can be computed here independently."""

from __future__ import annotations

import time

import numpy as np
import pytest

from depth_node.bench.speed import FULL_SPEED, MAKEUP_PASSES, SpeedProbe
from depth_node.bench.timing import interleaved

FAST_S, SLOW_S = 0.002, 0.04  # far apart: a loaded test machine oversleeps by milliseconds


class ScriptedMachine(SpeedProbe):
    """A SpeedProbe whose readings follow a script: reading k is slow when `slow(k)` is true (rate 50 against
    100). Its `work` sleeps longer while the latest reading was slow, like a call on a CPU at a third of its
    speed."""

    def __init__(self, slow):
        super().__init__(n=8, runs=1)
        self.slow, self.k, self.now_slow = slow, 0, False

    def __call__(self) -> float:
        self.now_slow = bool(self.slow(self.k))
        self.k += 1
        rate = 50.0 if self.now_slow else 100.0
        self.best = max(self.best, rate)
        self.readings += 1
        return rate

    def work(self) -> None:
        time.sleep(SLOW_S if self.now_slow else FAST_S)


def test_blocks_timed_while_the_cpu_ran_slow_are_left_out_and_timed_again():
    # readings 2..7 slow: with two candidates and two readings per block, the blocks 1-3 of the first round
    m = ScriptedMachine(lambda k: 2 <= k < 8)
    t = interleaved({"a": m.work, "b": m.work}, iters=9, warmup=0, rounds=3, probe=m)
    for key, timing in t.items():
        assert timing.iters == 9, key  # three full-speed blocks of three calls each, the slow ones replaced
        assert timing.median_ms < 1000 * (FAST_S + SLOW_S) / 2  # every kept call is a fast one
        assert timing.p90_ms < 1000 * (FAST_S + SLOW_S) / 2
        assert timing.cpu_speed == 1.0 and not timing.throttled
    assert t["a"].slow_blocks + t["b"].slow_blocks == 3  # blocks 1 (a), 2 (b), 3 (a) read slow at an end


def test_without_a_probe_every_block_counts_and_candidates_alternate():
    calls = []

    def work(key):
        calls.append(key)
        time.sleep(SLOW_S if len(calls) <= 3 else FAST_S)  # the first block runs slow: nobody can tell

    t = interleaved({"a": lambda: work("a"), "b": lambda: work("b")}, iters=6, warmup=0, rounds=3)
    assert calls == (["a"] * 3 + ["b"] * 3) * 3  # each block: one untimed call, then its two timed ones
    assert t["a"].iters == t["b"].iters == 6
    assert all(v.cpu_speed is None and v.slow_blocks == 0 and not v.throttled for v in t.values())
    assert t["a"].p90_ms > 1000 * (FAST_S + SLOW_S) / 2  # the slow calls stayed in


def test_a_candidate_that_never_ran_at_full_speed_is_marked_throttled():
    m = ScriptedMachine(lambda k: k > 0)  # one fast reading first, slow ever after
    t = interleaved({"a": m.work}, iters=6, warmup=0, rounds=3, probe=m)["a"]
    assert t.throttled and t.cpu_speed == 0.5
    # all blocks kept: the three first ones and MAKEUP_PASSES passes of three blocks each (each pass asks for the
    # three full-speed blocks still missing), two calls a block
    blocks = 3 + MAKEUP_PASSES * 3
    assert t.iters == blocks * 2 and t.slow_blocks == blocks
    assert t.median_ms > 1000 * (FAST_S + SLOW_S) / 2  # its figures are the slow CPU's, and say so


def test_the_probe_reads_the_cpu():
    p = SpeedProbe()
    rates = [p() for _ in range(3)]
    assert all(r > 0 for r in rates) and p.best == max(rates) and p.readings == 3
    assert p.is_slow(0.5 * p.best) and not p.is_slow(p.best) and not p.is_slow(None)
    assert p.is_slow(p.best * FULL_SPEED * 0.99) and not p.is_slow(p.best * FULL_SPEED * 1.01)
    # the rate is the product's work over its best time: a 512x512 product is 2 x 512^3 operations
    assert p.summary()["best_gflops"] == pytest.approx(p.best, abs=0.06)
    assert np.isfinite(p.best)
