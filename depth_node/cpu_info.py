"""What this CPU is and which instruction sets it has, read once from /proc/cpuinfo.

Several choices depend on the ISA: whether bf16 is a native compute type (training's autocast, OpenVINO's
inference precision), whether int8 dot products exist (the quantizer's weight range), which layouts a cached
optimized graph was built for, and the benchmark's peak. They all read the same facts from here, so a machine
without /proc/cpuinfo (macOS, some containers) degrades the same way everywhere: no flags, a generic name.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

NATIVE_BF16 = frozenset({"avx512_bf16", "amx_bf16"})
INT8_DOT = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.lru_cache(maxsize=1)
def _first_cpu() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as {field: value} (every core reports the same ISA)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's model name, e.g. "AMD EPYC" or "Intel(R) Xeon(R) Platinum 8480+"."""
    return _first_cpu().get("model name") or platform.processor() or platform.machine()


def cpu_vendor() -> str:
    return _first_cpu().get("vendor_id", "")


def cpu_flags() -> frozenset[str]:
    """The ISA flags the kernel reports (empty where /proc/cpuinfo is absent)."""
    return frozenset(_first_cpu().get("flags", "").split())


def has_native_bf16() -> bool:
    """bf16 is a compute type here (AVX512_BF16 or AMX), not an emulation: without it, oneDNN converts every bf16
    operand through fp32: the default depth network's forward and backward pass under bf16 autocast measured 13×
    slower than in fp32 (AMD EPYC, AVX2 only: 20 s against 1.5 s per batch of 8 at 320×96)."""
    return bool(cpu_flags() & NATIVE_BF16)


def has_int8_dot() -> bool:
    """int8 dot-product instructions (VNNI, AMX): u8×s8 products accumulate in int32 without int16 saturation."""
    return bool(cpu_flags() & INT8_DOT)


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask (taskset, cgroup cpusets on robots and in containers), not
    the machine's count — a runtime told to use 16 threads on 2 allowed cores runs several times slower."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
