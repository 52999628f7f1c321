"""`node_rss_mb` of `depth-node bench --node`: the peak resident memory read from /proc, checked against the
kernel's other account of the same figure (getrusage) and against memory this test really touches."""

from __future__ import annotations

import os
import resource
import sys

import numpy as np
import pytest

from depth_node.bench.node_bench import peak_rss_mb

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/<pid>/status is Linux's")


def test_peak_rss_follows_what_the_process_touches() -> None:
    before = peak_rss_mb(os.getpid())
    assert before is not None
    # getrusage's ru_maxrss (KiB on Linux) is the same high-water mark, read another way
    assert before == pytest.approx(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, abs=2.0)
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, every page written
    after = peak_rss_mb(os.getpid())
    assert after is not None and after - before >= 190.0, (before, after)
    del block
    # a peak, not the current size (which just fell by 200 MiB); the kernel batches its per-thread page counts,
    # so the mark itself can read a few hundred KiB lower from one look to the next
    assert peak_rss_mb(os.getpid()) >= after - 2.0


def test_no_such_process_gives_none() -> None:
    assert peak_rss_mb(2**22 + 12345) is None  # above Linux's largest pid (2**22)
