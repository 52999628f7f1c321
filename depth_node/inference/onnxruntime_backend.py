"""ONNX Runtime backend: CPU everywhere, CUDA execution provider when onnxruntime-gpu is installed. Also runs the
int8 Q/DQ graphs from `depth-node quantize` (VNNI/AMX int8 kernels on CPUs that have them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_node.cpu_info import usable_cpus
from depth_node.inference.base import Backend, BackendError, ModelInfo


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
    return ort


def session_options(threads: int | None = None):
    """The options every session here starts from (optimization level ORT_ENABLE_ALL)."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or usable_cpus()
    opts.log_severity_level = 3
    return opts


def make_session(path: str | Path, device: str = "cpu", threads: int | None = None):
    ort = _ort()
    opts = session_options(threads)
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendError("ONNX Runtime has no CUDA provider here: install onnxruntime-gpu or use device: cpu")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:
        raise BackendError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0][:300]}") from exc


def backend_session(path: str | Path, device: str, precision: str, cache_dir: str | Path | None):
    """The node's sessions: on the CPU in fp32, from the cached optimized graph (`ort_optimized`: the same
    kernels without the optimizer's peak memory); otherwise, or where the cache cannot be used, `make_session`."""
    if device == "cpu" and precision == "fp32":
        from depth_node.inference.ort_optimized import cached_session

        _ort()
        session = cached_session(path, cache_dir, session_options)
        if session is not None:
            return session
    return make_session(path, device)


class _SessionRunner:
    """One ONNX Runtime session as a graph runner: input array → named outputs."""

    def __init__(self, session):
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(None, {self.input_name: x})))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        info: ModelInfo,
        depth_onnx: str | Path,
        pose_onnx: str | Path | None = None,
        precision: str = "fp32",
        device: str = "cpu",
        cache_dir: str | Path | None = None,
    ):
        super().__init__(info, precision, device)
        self._depth = _SessionRunner(backend_session(depth_onnx, device, precision, cache_dir))
        self._pose = _SessionRunner(backend_session(pose_onnx, device, precision, cache_dir)) if pose_onnx else None
