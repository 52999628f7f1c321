"""Backend selection: one call turns a model (model file, or an exported ONNX) and a wish (backend, precision,
device) into a ready `Backend`, with clear errors when the wish cannot be met here."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from depth_node.inference.base import Backend, BackendError, ModelInfo
from depth_node.inference.names import BACKEND_PRECISIONS as PRECISIONS
from depth_node.inference.names import BACKENDS

if TYPE_CHECKING:
    from depth_node.checkpoints.model_file import ModelFile

log = logging.getLogger(__name__)

# Device files of an NVIDIA driver (desktop/datacenter GPUs, Jetson's nvgpu) and the driver's proc entry.
NVIDIA_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/nvhost-ctrl-gpu", "/proc/driver/nvidia/version")


def importable(name: str) -> bool:
    """Whether `name` is installed, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def cuda_available(backend: str = "auto") -> bool:
    """Whether an NVIDIA GPU is usable by `backend`, asked without torch wherever torch is not the backend: ONNX
    Runtime through its providers, TensorRT through the CUDA runtime (cuda-python), torch (or `auto` without
    TensorRT) through torch. Nothing is asked where no NVIDIA driver is present: the node on ONNX Runtime,
    OpenVINO or TensorRT never imports torch (a robot may not have it; it costs ~300 MB of memory)."""
    if backend == "openvino" or not any(Path(p).exists() for p in NVIDIA_DEVICE_FILES):
        return False
    if backend == "onnxruntime":
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    if backend in ("tensorrt", "auto") and importable("tensorrt"):
        from depth_node.export.cuda_runtime import device_count

        found = device_count() > 0
        if found or backend == "tensorrt":
            return found
    if not importable("torch"):
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def available_backends() -> list[str]:
    found = ["torch"] if importable("torch") else []
    if importable("onnxruntime"):
        found.append("onnxruntime")
    if importable("openvino"):
        found.append("openvino")
    if importable("tensorrt") and cuda_available("tensorrt"):
        found.append("tensorrt")
    return found


def resolve(backend: str = "auto", precision: str = "auto", device: str = "auto") -> tuple[str, str, str]:
    """Fill in 'auto': TensorRT fp16 on an NVIDIA GPU, else OpenVINO bf16 on the CPU, else ONNX Runtime fp32."""
    if device == "auto":
        device = "cuda" if cuda_available(backend) else "cpu"
    if backend == "auto":
        avail = available_backends()
        if device.startswith("cuda"):
            backend = "tensorrt" if "tensorrt" in avail else "torch"
        else:
            backend = "openvino" if "openvino" in avail else "onnxruntime" if "onnxruntime" in avail else "torch"
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    if precision == "auto":
        if backend == "openvino":
            from depth_node.export.openvino_cpu import cpu_has_bf16

            precision = "bf16" if cpu_has_bf16() else "fp32"
        elif backend == "torch" and device.startswith("cuda"):
            precision = "fp16"
        else:
            precision = PRECISIONS[backend][0]
    if precision not in PRECISIONS[backend]:
        raise BackendError(f"backend {backend} supports precisions {', '.join(PRECISIONS[backend])}, not {precision!r}")
    return backend, precision, device


def _onnx_inputs(
    model: ModelFile | Path, precision: str, cache_dir, calibration
) -> tuple[ModelInfo, Path, Path | None]:
    from depth_node.export.onnx_metadata import read_metadata

    if not isinstance(model, Path):
        from depth_node.export.cache import onnx_for

        depth, pose = onnx_for(model, cache_dir)
        info = ModelInfo.from_model_file(model)
    else:
        depth = Path(model)
        pose_candidate = depth.with_name("pose.onnx")
        pose = pose_candidate if pose_candidate.is_file() and pose_candidate != depth else None
        info = ModelInfo.from_onnx_metadata(read_metadata(depth), has_pose=pose is not None)
    if precision == "int8":
        from depth_node.export.quantize import quantized_onnx
        from depth_node.export.static_shape import static_onnx

        # int8 calibration needs fixed shapes: the training size only (other aspects are fed at that size)
        h, w = info.sizes[0]
        depth = quantized_onnx(static_onnx(depth, h, w, cache_dir), cache_dir=cache_dir, calibration=calibration)
        if pose is not None:
            pose = quantized_onnx(static_onnx(pose, h, w, cache_dir), cache_dir=cache_dir, calibration=calibration)
        info = info.with_sizes([(h, w)])
    return info, depth, pose


def create_backend(
    model: str | Path | ModelFile,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "auto",
    cache_dir: str | Path | None = None,
    calibration=None,
) -> Backend:
    """`model`: a model file (.pt), or an exported depth.onnx (pose.onnx beside it is picked up)."""
    backend, precision, device = resolve(backend, precision, device)
    source: ModelFile | Path
    if not isinstance(model, str | Path):
        source = model
    else:
        p = Path(model)
        if p.suffix == ".onnx":
            if backend == "torch":
                raise BackendError("the torch backend needs a model file (.pt), not an ONNX file")
            source = p
            if not p.is_file():
                raise BackendError(f"ONNX file not found: {p}")
        else:
            from depth_node.checkpoints.model_file import load_model

            source = load_model(p)
    log.info("backend %s, precision %s, device %s", backend, precision, device)
    if backend == "torch":
        from depth_node.inference.torch_backend import TorchBackend

        return TorchBackend(source, precision, device)
    info, depth, pose = _onnx_inputs(source, precision, cache_dir, calibration)
    if backend == "onnxruntime":
        from depth_node.inference.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(info, depth, pose, precision, device, cache_dir=cache_dir)
    if backend == "openvino":
        from depth_node.inference.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(info, depth, pose, precision, device, cache_dir=cache_dir)
    from depth_node.inference.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(info, depth, pose, precision, device, cache_dir=cache_dir)
