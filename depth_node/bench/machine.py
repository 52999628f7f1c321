"""What a benchmark ran on, written beside its numbers: results from different CPUs (AMX or not, core counts)
or library versions are not comparable, and the JSON must say which it was."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
from pathlib import Path
from typing import Any

from depth_node import cpu_info
from depth_node.bench.load import cpu_times, other_share

CPU_FLAGS = ("fma", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
             "avx_vnni")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_flags() -> list[str]:
    """The flags among CPU_FLAGS this CPU has: the ones the benchmark's figures depend on."""
    have = cpu_info.cpu_flags()
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
    """Share of the machine's CPU time used by other processes over `seconds` (a one-off probe; a benchmark run
    uses `LoadMonitor`, which watches the whole run)."""
    import time

    a = cpu_times()
    time.sleep(seconds)
    b = cpu_times()
    return None if a is None or b is None else other_share(a, b)


def machine_info() -> dict:
    from depth_node.cpu_info import usable_cpus

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_info.cpu_model(),
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


def machine_with_load(load: dict[str, Any]) -> dict[str, Any]:
    """A report's `machine`: `machine_info()` with the load a LoadMonitor saw during the run (`load`) and its
    verdict (`loaded`: the figures are inflated, so no goal is judged from them)."""
    return {**machine_info(), "load": load, "loaded": load["loaded"]}


def write_report(report: dict[str, Any], path: str | Path | None) -> None:
    """A benchmark's JSON (numpy scalars as floats) at `path`, its folder made; nothing when `path` is None."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {path}")
