"""ONNX Runtime CPU sessions from a cached, already optimized graph, its weights memory-mapped.

Optimizing a graph at ORT_ENABLE_ALL makes ~2.5 copies of its weights at once (the file's fp16 weights, their
fp32 constant folding, the NCHWc-reordered copy that the fast AVX2/AVX-512 convolutions need) and keeps one; for
the default model (depth + pose) that peak is ~130 MB above what the sessions hold afterwards, and a node's
peak resident memory is what a small robot computer must provision. So the optimized graph is saved once
(ORT's own `optimized_model_filepath`, weights in an external file) and later sessions load it with
optimization off: the weights are mapped from the cache file, not copied, the kernels are the same NCHWc ones
(identical outputs), and a session starts in ~0.05 s instead of ~1 s.

The NCHWc layout depends on the CPU's vector width and the graph on ONNX Runtime's version: both are in the
cache key with the source file's content hash. A cache entry is written to a temporary folder and renamed into
place, and never rewritten, so a mapped file never changes under a running session."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
from pathlib import Path

from depth_node.cpu_info import cpu_flags, cpu_model
from depth_node.paths import cache_root, file_sha256

log = logging.getLogger(__name__)

FOLDER = "ort_optimized"


@functools.lru_cache(maxsize=1)
def cpu_signature() -> str:
    """The CPU's model name and ISA flags, hashed: what ORT's layout choices depend on."""
    sig = f"{cpu_model()}\n{' '.join(sorted(cpu_flags()))}"
    return hashlib.sha256(sig.encode()).hexdigest()[:12]


def optimized_path(source: str | Path, cache_dir: str | Path | None, ort_version: str) -> Path:
    """Where the optimized form of `source` lives in the cache (it may not exist yet)."""
    key = f"{file_sha256(source)[:16]}-ort{ort_version}-cpu{cpu_signature()}"
    return cache_root(cache_dir) / FOLDER / key / Path(source).name


def save_optimized(source: str | Path, target: Path, new_options) -> None:
    """Optimize `source` at ORT_ENABLE_ALL and write the result (graph + external weights) as `target`."""
    import onnxruntime as ort

    tmp = target.parent.with_name(f"{target.parent.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        opts = new_options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(tmp / target.name)
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                      f"{target.stem}.weights")
        opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
        try:
            os.replace(tmp, target.parent)
        except OSError:
            if not target.is_file():
                raise  # not another process winning the race (whose files stay: they may be mapped)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_session(source: str | Path, cache_dir: str | Path | None, new_options):
    """A CPU session of `source` through the cache (filled on first use); None where the cache cannot be used
    (read-only cache folder, a graph ORT cannot serialize): the caller then optimizes in memory as before."""
    import onnxruntime as ort

    target = None
    try:
        target = optimized_path(source, cache_dir, ort.__version__)
        if not target.is_file():
            save_optimized(source, target, new_options)
        opts = new_options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # done once, in the file
        return ort.InferenceSession(str(target), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # the cache is an optimization: never the reason a model does not load
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        fix = f"; delete {target.parent} to rebuild it" if target is not None and target.is_file() else ""
        log.warning("ONNX Runtime: no cached optimized graph for %s (%s); optimizing in memory (more peak memory)%s",
                    source, why, fix)
        return None
