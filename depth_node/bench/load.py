"""How much of the machine other processes used WHILE a benchmark ran, so that figures taken on a shared machine
say so instead of passing for idle ones.

Other work = all CPUs' busy time (/proc/stat: user, nice, system, irq, softirq and steal, i.e. time a hypervisor
gave to other guests) minus the CPU time of this process tree (/proc/self/stat plus its live descendants), as a
share of the machine's total CPU time over the same interval. Both counters are in clock ticks, so the
difference needs no conversion. A load average lags by minutes and a probe at the start misses load that
begins a second later; `LoadMonitor` samples through the whole run and `window` measures any stretch of it
(one benchmark row)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOADED_MEAN = 0.10  # other processes used more than 10 % of the machine on average: the run is loaded
LOADED_P90 = 0.25  # or more than a quarter of it in one sampling interval out of ten


@dataclass(frozen=True)
class CpuTimes:
    total: int  # all CPUs, clock ticks since boot
    busy: int  # all CPUs, not idle/iowait
    own: int  # this process and its descendants
    wall: float  # time.monotonic()


def _own_ticks() -> int:
    """utime + stime (+ reaped children's) of this process and of its live descendants."""

    def ticks(stat: str) -> tuple[int, int]:
        rest = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
        return int(rest[1]), sum(int(v) for v in rest[11:15])  # (ppid, utime+stime+cutime+cstime)

    me = os.getpid()
    total = ticks(Path("/proc/self/stat").read_text())[1]
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            ppid, t = ticks(Path(entry.path, "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
        children.setdefault(ppid, []).append((int(entry.name), t))
    stack = [me]
    while stack:
        for pid, t in children.get(stack.pop(), []):
            total += t
            stack.append(pid)
    return total


def cpu_times() -> CpuTimes | None:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        own = _own_ticks()
    except (OSError, ValueError, IndexError):
        return None  # not Linux: no load figures, and the report says so
    fields += [0] * (8 - len(fields))
    idle = fields[3] + fields[4]
    return CpuTimes(sum(fields), sum(fields) - idle, own, time.monotonic())


def other_share(a: CpuTimes, b: CpuTimes) -> float | None:
    """Share of the machine's CPU time between a and b that went to other processes (0 = only us or idle)."""
    total = b.total - a.total
    if total <= 0:
        return None
    return round(min(1.0, max(0.0, (b.busy - a.busy - (b.own - a.own)) / total)), 3)


def is_loaded(mean: float | None, p90: float | None) -> bool:
    return bool((mean or 0.0) > LOADED_MEAN or (p90 or 0.0) > LOADED_P90)


class LoadMonitor:
    """Samples other processes' CPU share every `interval` seconds on a daemon thread until `stop()`."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.samples: list[float] = []
        self.first = cpu_times()
        self.last = self.first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load-monitor", daemon=True)

    def start(self) -> LoadMonitor:
        self._thread.start()
        return self

    def __enter__(self) -> LoadMonitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _loop(self) -> None:
        prev = self.first
        while not self._stop.wait(self.interval):
            now = cpu_times()
            if prev is not None and now is not None:
                share = other_share(prev, now)
                if share is not None:
                    self.samples.append(share)
            prev = now
        self.last = cpu_times()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    def summary(self) -> dict:
        """What `machine.loaded` is decided from; `other_cpu_*` are shares of the whole machine (all CPUs)."""
        whole = other_share(self.first, self.last) if self.first and self.last else None
        a = np.asarray(self.samples) if self.samples else None
        p90 = round(float(np.percentile(a, 90)), 3) if a is not None else None
        return {
            "loaded": is_loaded(whole, p90),
            "other_cpu_mean": whole,
            "other_cpu_p90": p90,
            "other_cpu_max": round(float(a.max()), 3) if a is not None else None,
            "samples": len(self.samples),
            "interval_s": self.interval,
            "seconds": round(self.last.wall - self.first.wall, 1) if self.first and self.last else None,
            "rule": f"loaded when other processes used > {LOADED_MEAN:.0%} of all CPUs on average or > "
                    f"{LOADED_P90:.0%} in the 90th-percentile {self.interval:g} s interval",
            "source": "/proc/stat busy ticks minus this process tree's ticks",
        }
