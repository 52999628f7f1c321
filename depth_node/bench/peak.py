"""The machine's arithmetic peak per precision, so every benchmark row says what fraction of it a backend reached
(a ratio travels between machines; a latency does not).

CPU model, written down once (dense multiply-accumulate, 1 MAC = 2 ops):

    peak = ops per cycle per core (precision, ISA) × cores (the affinity mask) × GHz

    fp32  = lanes × 2 (FMA) × FMA units, lanes = datapath bits / 32
    bf16  = 2 × fp32 with avx512_bf16 (VDPBF16PS: two products per fp32 lane); 1024 with amx_bf16 (AMX TMUL:
            512 bf16 MAC per cycle); else fp32's (bf16 is widened to fp32)
    fp16  = 2 × fp32 with avx512_fp16; else fp32's
    int8  = 4 × fp32 with VNNI (avx512_vnni / avx_vnni: VPDPBUSD does four u8×s8 MACs per 32-bit lane);
            2 × fp32 without (AVX2 needs VPMADDUBSW + VPMADDWD + VPADDD for the same four);
            2048 with amx_int8 (1024 int8 MAC per cycle)

Assumptions: two FMA units per core (Intel server cores since Skylake-SP; AMD Zen 2-4); AMD cores before Zen 5
execute 512-bit instructions on a 256-bit datapath, so their datapath is 256 bits even with avx512f.

The clock: the CPU's maximum frequency from cpufreq, else /proc/cpuinfo's "cpu MHz" — and at least the clock a
measured fp32 GEMM proves (`gemm_proven_ghz`). A VM reports its nominal clock while the host boosts: on the 2-core
EPYC (Zen 4) VM this project is benchmarked on, /proc/cpuinfo says 2.60 GHz, the model then gave 166 fp32 GOP/s,
and NumPy's SGEMM ran at 209, so every "% of peak" was ~1.3x too high (OpenVINO fp32 printed 122 %). No kernel
beats the peak, so the GEMM's rate / (fp32 ops per cycle x cores) is a lower bound of the effective clock (3.0-3.3
GHz there, from 192-209 GFLOP/s). The fractions printed with it are, if anything, still overstated by the GEMM's own
distance from the peak: OpenVINO's fp32 convolutions reach 94-102 % of it.

GPU: published dense peaks (no sparsity) of the cards this project is benchmarked on."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from depth_node import cpu_info

FMA_UNITS = 2
GEMM_N = 2048  # 17 GFLOP per product: ~85 ms on a 2-core Zen 4 (smaller products stay further from the peak)
GEMM_BUDGET_S = 1.5  # stop timing products after this long (slow CPUs), keeping the best one
GPU_PEAK_TOPS = {  # name substring → {precision: dense TFLOP/s or TOP/s}; fp32 = plain CUDA cores
    "H200": {"fp32": 67.0, "fp16": 989.0, "bf16": 989.0, "int8": 1979.0},
    "H100": {"fp32": 67.0, "fp16": 989.0, "bf16": 989.0, "int8": 1979.0},
    "A100": {"fp32": 19.5, "fp16": 312.0, "bf16": 312.0, "int8": 624.0},
    "L4": {"fp32": 30.3, "fp16": 121.0, "bf16": 121.0, "int8": 242.0},
    "Orin": {"fp32": 5.3, "fp16": 85.0, "bf16": 85.0, "int8": 170.0},  # AGX Orin 64 GB GPU (dense)
}


def cpu_ghz() -> tuple[float | None, str]:
    """(GHz, where it came from)."""
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text())
        return round(khz / 1e6, 3), "cpufreq max"
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return round(float(line.split(":", 1)[1]) / 1e3, 3), "/proc/cpuinfo cpu MHz"
    except (OSError, ValueError):
        pass
    return None, "unknown"


def gemm_gflops(a, b, runs: int, budget_s: float = float("inf")) -> float:
    """The best rate (GFLOP/s) of `a @ b` (NumPy arrays or PyTorch tensors) over `runs` products, or fewer once
    `budget_s` has passed."""
    best, start = float("inf"), time.perf_counter()
    for _ in range(runs):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
        if time.perf_counter() - start > budget_s:
            break
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] / best / 1e9


@functools.cache
def gemm_fp32_gflops(n: int = GEMM_N, runs: int = 6) -> float:
    """The best rate (GFLOP/s) of NumPy's fp32 matrix product on this process's CPUs, after two warm-up products.
    Cached: measured once per process. A busy machine only lowers it, which keeps it a lower bound of the peak."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    gemm_gflops(a, b, 2)
    return gemm_gflops(a, b, runs, GEMM_BUDGET_S)


def gemm_proven_ghz(rate_gflops: float, fp32_ops_per_cycle: int, cores: int) -> float:
    """The lowest clock at which `cores` cores doing `fp32_ops_per_cycle` could reach a measured fp32 rate."""
    return rate_gflops / (fp32_ops_per_cycle * cores)


def datapath_bits(flags: set[str], vendor: str) -> int:
    if "avx512f" in flags:
        return 256 if "AMD" in vendor.upper() and "avx512_vp2intersect" not in flags else 512  # Zen 5 has vp2intersect
    return 256 if "avx2" in flags or "avx" in flags else 128


def cpu_ops_per_cycle(flags: set[str], vendor: str) -> dict[str, int]:
    """Per core, per precision (the model in the module docstring)."""
    fp32 = datapath_bits(flags, vendor) // 32 * 2 * FMA_UNITS
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    return {
        "fp32": fp32,
        "bf16": 1024 if "amx_bf16" in flags else 2 * fp32 if "avx512_bf16" in flags else fp32,
        "fp16": 2 * fp32 if "avx512_fp16" in flags else fp32,
        "int8": 2048 if "amx_int8" in flags else 4 * fp32 if vnni else 2 * fp32,
    }


def cpu_peak(gemm_gflops: float | None = None) -> dict:
    """The CPU's peak GOP/s per precision, with every input of the model so a reader can redo the arithmetic.
    `gemm_gflops`: a measured fp32 GEMM rate to prove the clock with (default: `gemm_fp32_gflops()`)."""
    vendor, flags = cpu_info.cpu_vendor(), set(cpu_info.cpu_flags())
    nominal, nominal_source = cpu_ghz()
    cores = cpu_info.usable_cpus()
    per_cycle = cpu_ops_per_cycle(flags, vendor)
    gemm = gemm_fp32_gflops() if gemm_gflops is None else gemm_gflops
    proven = gemm_proven_ghz(gemm, per_cycle["fp32"], cores)
    ghz, clock_source = (round(proven, 3), "fp32 GEMM (above the reported clock)") if not nominal or proven > nominal \
        else (nominal, nominal_source)
    return {
        "vendor": vendor,
        "cores": cores,
        "ghz": ghz,
        "clock_source": clock_source,
        "reported_ghz": nominal,
        "reported_clock_source": nominal_source,
        "gemm_fp32_gflops": round(gemm, 1),
        "datapath_bits": datapath_bits(flags, vendor),
        "fma_units": FMA_UNITS,
        "ops_per_cycle_per_core": per_cycle,
        "gops": {p: round(v * cores * ghz, 1) if ghz else None for p, v in per_cycle.items()},
        "model": "ops/cycle/core x cores (affinity mask) x GHz (the reported clock, or the higher one a measured "
                 "fp32 GEMM proves); fp32 ops/cycle = lanes x 2 (FMA) x FMA units; "
                 "bf16/fp16 2x fp32 with native dot products; int8 4x fp32 with VNNI, 2x without; AMX tiles "
                 "1024 (bf16) / 2048 (int8); see depth_node/bench/peak.py",
    }


def gpu_peak(name: str | None) -> dict[str, float] | None:
    """Published dense peak of a known card in GOP/s per precision, or None."""
    if not name:
        return None
    for key, tops in GPU_PEAK_TOPS.items():
        if key.lower() in name.lower():
            return {p: v * 1e3 for p, v in tops.items()}
    return None


def peak_fraction(gops: float | None, device: str, precision: str, cpu: dict, gpu_name: str | None) -> float | None:
    """Achieved / peak for the row's precision on its device (None where the peak is unknown)."""
    if not gops:
        return None
    peak = (cpu.get("gops") or {}).get(precision) if device == "cpu" else (gpu_peak(gpu_name) or {}).get(precision)
    return round(gops / peak, 4) if peak else None

