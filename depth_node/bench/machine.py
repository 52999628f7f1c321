"""What a benchmark ran on, written beside its numbers: results from different CPUs (AMX or not, core counts)
or library versions are not comparable, and the JSON must say which it was."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
from pathlib import Path

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in CPU_FLAGS if f in have]


def gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        return None


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def cpu_busy_fraction(seconds: float = 1.0) -> float | None:
    """Share of all cores busy over `seconds` (from /proc/stat) while this process waits: other work right now.
    The load average lags by minutes, so it misses a machine that just became busy or idle."""
    import time

    def sample() -> tuple[int, int] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    a = sample()
    time.sleep(seconds)
    b = sample()
    if a is None or b is None or b[0] == a[0]:
        return None
    return round(1.0 - (b[1] - a[1]) / (b[0] - a[0]), 3)


def machine_info() -> dict:
    from depth_node.inference.base import usable_cpus

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cpus(),
        "cpu_flags": cpu_flags(),
        "gpu": gpu_name(),
        "load_avg_1min": load_average(),  # other work on the machine skews latencies (PyTorch's most)
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            name: _version(dist)
            for name, dist in (
                ("depth_node", "depth_node"),
                ("torch", "torch"),
                ("onnxruntime", "onnxruntime"),
                ("openvino", "openvino"),
                ("tensorrt", "tensorrt"),
                ("numpy", "numpy"),
            )
        },
    }
