"""How a graph is compiled on OpenVINO's CPU plugin, written once: the openvino backend runs every graph with
these settings, and the int8 search (`export.sensitivity`) judges each trial's drift with the same ones, so the
drift budget holds for what the node runs.

The settings and why:
- `PERFORMANCE_HINT` LATENCY: one frame at a time, all usable cores on it.
- `INFERENCE_NUM_THREADS`: the affinity mask's CPUs (`cpu_info.usable_cpus`), not the machine's.
- `ENABLE_CPU_PINNING` off: a worker pinned to one core waits there while other threads (the node's executor,
  the DDS transport, other processes) hold that core, though another is free (interleaved on a 2-core machine
  under load: depth median 144 vs 150, 150 vs 157, 194 vs 216 ms).
- `INFERENCE_PRECISION_HINT` (`float_hint`): f32 for fp32, bf16 for bf16; in an int8 graph the precision of the
  layers the quantizer left float, bf16 where the CPU computes it natively. Measured on a 2-core AMD EPYC
  (AVX-512 BF16/VNNI, no AMX), trained default model at 640x192: its 7 float convolutions (2 of 8 GMAC) took
  23 ms in f32 and 12 ms in bf16, the whole graph 41 -> 28 ms, with the depth drift against fp32 unchanged
  (0.65 % -> 0.64 % on 8 held-out frames): bf16 moves depth ~0.2 % where it runs everywhere, less on a quarter
  of the work.

OpenVINO is optional: `core()` raises ImportError where it is not installed; its callers say what to do."""

from __future__ import annotations

import functools

from depth_node.cpu_info import has_native_bf16, usable_cpus

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the layers left float, where bf16 is not native


@functools.lru_cache(maxsize=1)
def core():
    """The process's one OpenVINO Core (each Core holds its own plugin instances and their memory)."""
    import openvino

    return openvino.Core()


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True where bf16 is a native compute type (AVX512_BF16 or AMX), so bf16 is faster, not emulated: OpenVINO's
    own answer where it is installed, else the CPU's flags."""
    try:
        caps = core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return "BF16" in [str(c).upper() for c in caps]
    except Exception:
        return has_native_bf16()


def float_hint(precision: str) -> str:
    """OpenVINO's CPU inference precision for a graph run at `precision` (see the module docstring)."""
    if precision == "int8" and cpu_has_bf16():
        return "bf16"
    return HINTS[precision]


def cpu_config(precision: str) -> dict[str, str]:
    """The CPU plugin's compile settings, as plain strings: the same settings also reach a child process that
    compiles into the blob cache."""
    return {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": str(usable_cpus()),
        "INFERENCE_PRECISION_HINT": float_hint(precision),
        "ENABLE_CPU_PINNING": "False",
    }
