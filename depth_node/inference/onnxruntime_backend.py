"""ONNX Runtime backend: CPU everywhere, CUDA execution provider when onnxruntime-gpu is installed. Also runs the
int8 Q/DQ graphs from `depth-node quantize` (VNNI/AMX int8 kernels on CPUs that have them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_node.inference.base import Backend, BackendError, ModelInfo, usable_cpus


def make_session(path: str | Path, device: str = "cpu", threads: int | None = None):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or usable_cpus()
    opts.log_severity_level = 3
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
    ):
        super().__init__(info, precision, device)
        self._depth = _SessionRunner(make_session(depth_onnx, device))
        self._pose = _SessionRunner(make_session(pose_onnx, device)) if pose_onnx else None
