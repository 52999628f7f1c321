"""OpenVINO backend: the CPU fast path (bf16 on CPUs with AVX512_BF16/AMX, int8 from the Q/DQ ONNX on
VNNI/AMX), and Intel integrated GPUs.

Reads the same ONNX files as ONNX Runtime; precision is a compile-time hint, so fp32 and bf16 share one file.
A Q/DQ ONNX (from `depth-node quantize`) runs as int8: OpenVINO turns its Q/DQ pairs into FakeQuantize and
picks int8 kernels; what the graph keeps in float runs in bf16 where the CPU computes bf16 natively, else f32.
The compile settings are written once in `export.openvino_cpu`, where the int8 search also reads them.

On the CPU a graph is compiled once and cached (OpenVINO's CACHE_DIR, in a folder of the project's cache keyed
by the file's content, the compile settings, OpenVINO's version and the CPU); later loads import the compiled
blob, mapped rather than read. After an import the blob's pages are dropped from resident memory
(`mapped_pages`): the plugin has made its reordered weight copy by then and never reads the blob again, so the
node holds one copy of the weights, not two (default model, depth + pose: peak resident memory of the load
~90 MB lower, same kernels, same outputs). The first load of a graph compiles it into the cache in a child
process, so that compile's peak memory is not the node's either, then imports it as every later load does."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from depth_node.export.openvino_cpu import HINTS, cpu_config, cpu_has_bf16
from depth_node.export.openvino_cpu import core as _shared_core
from depth_node.inference.base import Backend, BackendError, ModelInfo
from depth_node.paths import cache_root, file_sha256

log = logging.getLogger(__name__)

DEVICES = {"cpu": "CPU", "gpu": "GPU", "igpu": "GPU"}
FOLDER = "openvino"


def _ov():
    try:
        import openvino

        return openvino
    except ImportError as exc:
        raise BackendError("OpenVINO is not installed: pip install openvino (or use backend onnxruntime)") from exc


def _core():
    _ov()  # a clear error where OpenVINO is missing
    return _shared_core()


def ov_device(device: str) -> str:
    d = device.lower()
    if d.startswith("gpu.") or d.startswith("igpu."):  # gpu.1 → GPU.1 (second Intel GPU)
        return "GPU." + d.split(".", 1)[1]
    if d not in DEVICES:
        raise BackendError(f"OpenVINO device {device!r} unknown here; use cpu, gpu or igpu")
    return DEVICES[d]


def blob_folder(path: str | Path, config: dict[str, str], cache_dir: str | Path | None) -> Path:
    """The cache folder of one graph's compiled blob: keyed by the file's content (a re-exported model at the
    same path gets a new folder), the compile settings, OpenVINO's version and the CPU (the compiled graph's
    choices depend on them), so an empty folder means a graph not compiled yet."""
    from depth_node.inference.ort_optimized import cpu_signature

    settings = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    key = f"{file_sha256(path)[:16]}-{settings}-ov{_ov().__version__.split('-')[0]}-cpu{cpu_signature()}"
    return cache_root(cache_dir) / FOLDER / key


# compiles a graph into the cache folder in a process of its own, so the compile's peak memory is never the node's
COMPILE_INTO_CACHE = """
import json, sys
import openvino
path, device, config, folder = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
openvino.Core().compile_model(path, device, {**config, "CACHE_DIR": folder})
"""


def _fill_cache(path: str | Path, ov_dev: str, config: dict[str, str], folder: Path) -> None:
    """Compile `path` into `folder` in a child process (first load of a graph). The child writes into a folder of
    its own and its blob is renamed into place, so `folder` only ever holds whole blobs (processes starting at
    once each compile; none reads a blob being written). A failure only logs: the caller compiles in-process."""
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    cmd = [sys.executable, "-c", COMPILE_INTO_CACHE, str(path), ov_dev, json.dumps(config), str(tmp)]
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            log.warning("OpenVINO: compiling %s in a child process failed (%s); compiling here", path,
                        (done.stderr.strip().splitlines() or ["?"])[-1][:200])
        for blob in tmp.iterdir():
            os.replace(blob, folder / blob.name)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("OpenVINO: cannot compile %s in a child process (%s); compiling here", path, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compile(core, path: str | Path, ov_dev: str, config: dict[str, str], cache_dir: str | Path | None):
    """The compiled graph, on the CPU imported from the blob cache with the blob's pages released (module
    docstring); without the cache where it cannot be used (a read-only cache folder): the cache is never why a
    model fails to load."""
    if ov_dev != "CPU":
        return core.compile_model(str(path), ov_dev, config)
    from depth_node.inference.mapped_pages import file_mappings, release_mapped

    try:
        folder = blob_folder(path, config, cache_dir)
        if not folder.is_dir() or not any(folder.iterdir()):
            folder.mkdir(parents=True, exist_ok=True)
            _fill_cache(path, ov_dev, config, folder)
        cached = {**config, "CACHE_DIR": str(folder)}
        compiled = core.compile_model(str(path), ov_dev, cached)
        if not file_mappings(folder):  # compiled here after all (and exported): import it, as later loads will
            del compiled
            compiled = core.compile_model(str(path), ov_dev, cached)
    except Exception as exc:
        log.warning("OpenVINO: no compiled-model cache for %s (%s); compiling in memory (more resident memory)",
                    path, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        return core.compile_model(str(path), ov_dev, config)
    released = release_mapped(folder)
    log.debug("OpenVINO: %s imported from %s, %d kB of mapped blob released", path, folder, released)
    return compiled


def _has_fake_quantize(core, path: str | Path) -> bool:
    """Whether OpenVINO reads the graph as quantized (its Q/DQ pairs become FakeQuantize)."""
    return any(op.get_type_name() == "FakeQuantize" for op in core.read_model(str(path)).get_ordered_ops())


class _Graph:
    """One compiled graph with its one infer request (reused: creating requests per frame costs allocations)."""

    def __init__(self, path: str | Path, ov_dev: str, precision: str, cache_dir: str | Path | None = None):
        _ov()  # clear error when missing
        core = _core()
        if ov_dev.startswith("GPU") and ov_dev.split(".")[0] not in {d.split(".")[0] for d in core.available_devices}:
            raise BackendError(f"OpenVINO sees no GPU here (devices: {', '.join(core.available_devices)}); use cpu")
        # plain strings: the same settings reach a child process compiling into the cache (`_fill_cache`)
        config = cpu_config(precision) if ov_dev == "CPU" else {"PERFORMANCE_HINT": "LATENCY"}
        if ov_dev != "CPU" and precision == "fp32":
            config["INFERENCE_PRECISION_HINT"] = "f32"  # GPUs default to f16
        try:
            # only int8 asks (whether the graph has Q/DQ): reading it costs a transient copy of its weights
            self.quantized = precision == "int8" and _has_fake_quantize(core, path)
            self.compiled = _compile(core, path, ov_dev, config, cache_dir)
        except Exception as exc:
            # OpenVINO's first lines name its own source files; the cause comes later
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("Exception from")]
            why = " | ".join(lines)[:400] or type(exc).__name__
            raise BackendError(f"OpenVINO cannot load {path} on {ov_dev}: {why}") from exc
        self.inputs = [p.get_any_name() for p in self.compiled.inputs]
        self.names = [p.get_any_name() for p in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one request: calls from several executor threads take turns

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:
            self.request.infer({0: x}, share_inputs=True, share_outputs=True)  # one copy of the outputs, below
            return {n: self.request.get_output_tensor(i).data.copy() for i, n in enumerate(self.names)}


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(
        self,
        info: ModelInfo,
        depth_onnx: str | Path,
        pose_onnx: str | Path | None = None,
        precision: str = "fp32",
        device: str = "cpu",
        cache_dir: str | Path | None = None,
    ):
        """`cache_dir`: the project's cache root (`depth_node.paths.cache_root`) for the compiled blobs."""
        if precision not in HINTS:
            raise BackendError(f"openvino backend precisions: {', '.join(HINTS)} (got {precision!r})")
        ov_dev = ov_device(device)
        if precision == "bf16":
            if ov_dev != "CPU":
                raise BackendError("bf16 is a CPU precision in OpenVINO; on an Intel GPU use fp32 or int8")
            if not cpu_has_bf16():
                raise BackendError("this CPU has no native bf16 (AVX512_BF16 or AMX): use fp32 or int8")
        super().__init__(info, precision, device)
        self._depth = _Graph(depth_onnx, ov_dev, precision, cache_dir)
        self._pose = _Graph(pose_onnx, ov_dev, precision, cache_dir) if pose_onnx else None
        if precision == "int8" and not self._depth.quantized:
            raise BackendError(
                f"{depth_onnx} has no Q/DQ nodes, so int8 would silently run fp32: "
                "pass the output of `depth-node quantize` (create_backend does this for you)"
            )


