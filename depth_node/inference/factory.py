"""Backend selection: one call turns a model (model file, or an exported ONNX) and a wish (backend, precision,
device) into a ready `Backend`, with clear errors when the wish cannot be met here."""

from __future__ import annotations

import functools
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


def onnx_model_path(model) -> Path | None:
    """`model` as a path when it names an exported ONNX file (by its suffix), else None (a model file, a
    `ModelFile`, or nothing)."""
    if isinstance(model, str | Path) and Path(model).suffix == ".onnx":
        return Path(model)
    return None


def _has_qdq_bytes(path: Path, chunk: int = 1 << 20) -> bool:
    """Whether the file holds the bytes of a QuantizeLinear/DequantizeLinear op name, read in chunks: a cheap
    screen (no graph parse, no whole-file copy in memory) before the exact check."""
    needle = b"QuantizeLinear"
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if needle in tail + block[: len(needle)] or needle in block:
                return True
            tail = block[-(len(needle) - 1):]
    return False


def is_int8_onnx(path: str | Path) -> bool:
    """Whether an ONNX file is a Q/DQ (int8) graph: its metadata says so (`depth_node.precision` = int8, written by
    `depth-node quantize`) or it has QuantizeLinear/DequantizeLinear nodes (a Q/DQ graph made by another tool).
    An fp32 graph costs one chunked read of the file, never a parse."""
    st = Path(path).stat()
    return _int8_onnx(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _int8_onnx(path: str, _mtime_ns: int, _size: int) -> bool:
    """`is_int8_onnx`, once per file version: `resolve` and `_onnx_inputs` both ask at start-up."""
    from depth_node.export.onnx_metadata import read_metadata

    path = Path(path)
    if read_metadata(path).get("depth_node.precision") == "int8":
        return True
    if not _has_qdq_bytes(path):
        return False
    from depth_node.export.quantize import is_quantized

    return is_quantized(path)


def _auto_for_onnx(device: str) -> tuple[str, str]:
    """(backend, device) for `backend: auto` with an exported ONNX as the model: TensorRT on an NVIDIA GPU where it
    is installed, else ONNX Runtime's CUDA provider (onnxruntime-gpu), else the CPU rule (OpenVINO, else ONNX
    Runtime). Never torch: it cannot run an ONNX file. The GPU is asked through TensorRT/ONNX Runtime, not torch."""
    avail = available_backends()
    gpu_wanted = device == "auto" or device.startswith("cuda")
    if gpu_wanted and "tensorrt" in avail:
        return "tensorrt", "cuda" if device == "auto" else device
    if gpu_wanted and "onnxruntime" in avail and cuda_available("onnxruntime"):
        return "onnxruntime", "cuda" if device == "auto" else device
    if device.startswith("cuda"):
        raise BackendError(
            "an ONNX model on device cuda needs TensorRT (JetPack's, or pip install tensorrt cuda-python) or "
            "onnxruntime-gpu, and this Python has neither working here; use device cpu (or auto)"
        )
    cpu = "openvino" if "openvino" in avail else "onnxruntime" if "onnxruntime" in avail else None
    if cpu is None:
        raise BackendError("an ONNX model needs onnxruntime or openvino: pip install onnxruntime (or openvino)")
    return cpu, "cpu" if device == "auto" else device


def resolve(
    backend: str = "auto", precision: str = "auto", device: str = "auto", model: str | Path | ModelFile | None = None
) -> tuple[str, str, str]:
    """Fill in 'auto': TensorRT fp16 on an NVIDIA GPU (PyTorch CUDA fp16 for a model file where TensorRT is
    absent), else OpenVINO bf16 on the CPU, else ONNX Runtime fp32.

    `model` (optional; `create_backend` passes it) refines the choice for an exported ONNX file:
    - backend auto never picks torch for it (torch runs model files only): on a GPU without TensorRT it is ONNX
      Runtime's CUDA provider where installed, else the CPU backends (`_auto_for_onnx`);
    - a Q/DQ (int8) ONNX (`is_int8_onnx`: from `depth-node quantize`) runs int8 on every backend, so precision
      auto is int8 (and reported so); an explicit float precision for it is an error rather than a wrong label.
    backend tensorrt where the tensorrt package does not import (device auto or cuda) is one clear error naming the
    fix (TensorRT comes with JetPack on a Jetson, from pip elsewhere), said before any other work: not "NVIDIA GPUs
    only" from a device guessed cpu because nothing answered for the GPU."""
    from depth_node.export.tensorrt_engine import tensorrt_missing_message

    onnx_model = onnx_model_path(model)
    if backend == "torch" and onnx_model is not None:
        raise BackendError("the torch backend needs a model file (.pt), not an ONNX file")
    if backend == "tensorrt" and not device.startswith("cpu") and not importable("tensorrt"):
        raise BackendError(tensorrt_missing_message())
    if backend == "auto" and onnx_model is not None:
        backend, device = _auto_for_onnx(device)
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
    int8_graph = onnx_model is not None and onnx_model.is_file() and is_int8_onnx(onnx_model)
    if int8_graph and precision not in ("auto", "int8"):
        raise BackendError(
            f"{onnx_model} is a Q/DQ (int8) ONNX: it runs int8 on every backend, so it cannot run {precision}; use "
            f"precision int8 (or auto), or give its fp32 source for {precision}"
        )
    if precision == "auto":
        if int8_graph:
            precision = "int8"
        elif backend == "openvino":
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
    """(info, depth ONNX, pose ONNX or None) as the backend runs them.

    int8 (all at the training size: calibration needs fixed shapes, other aspects are fed at that size):
    - from a model file or an fp32 depth.onnx: both graphs quantized here on `calibration` (built-in frames when
      None), cached;
    - from a Q/DQ depth ONNX (the user ran `depth-node quantize`, on their own frames): nothing is quantized here.
      The pose graph beside it (pose.onnx) is used as it is: a Q/DQ one runs int8, an fp32 one runs at the
      backend's float precision (ONNX Runtime fp32; OpenVINO the float hint of its int8 graphs, bf16 where the
      CPU has it natively, else f32; TensorRT fp16), never quantized on built-in patterns behind the user's back.
      For an int8 pose net, quantize it too (`depth-node quantize pose.onnx -o DIR/pose.onnx`, beside the Q/DQ
      depth graph)."""
    from depth_node.export.onnx_metadata import read_metadata

    given_int8 = False
    if not isinstance(model, Path):
        from depth_node.export.cache import onnx_for

        depth, pose = onnx_for(model, cache_dir)
        info = ModelInfo.from_model_file(model)
    else:
        depth = Path(model)
        pose_candidate = depth.with_name("pose.onnx")
        pose = pose_candidate if pose_candidate.is_file() and pose_candidate != depth else None
        info = ModelInfo.from_onnx_metadata(read_metadata(depth), has_pose=pose is not None)
        given_int8 = precision == "int8" and is_int8_onnx(depth)
    if precision == "int8":
        h, w = info.sizes[0]
        if given_int8:
            if pose is not None and not is_int8_onnx(pose):
                log.info("%s is fp32 beside the int8 %s: the pose net runs at the backend's float precision", pose,
                         depth.name)
            if calibration is not None:
                log.info("calibration frames ignored: %s is quantized already", depth)
        else:
            from depth_node.export.quantize import quantized_onnx
            from depth_node.export.static_shape import static_onnx

            depth = quantized_onnx(static_onnx(depth, h, w, cache_dir), cache_dir=cache_dir, calibration=calibration)
            if pose is not None:
                pose = quantized_onnx(static_onnx(pose, h, w, cache_dir), cache_dir=cache_dir,
                                      calibration=calibration)
        info = info.with_sizes([(h, w)])
    return info, depth, pose


def _tensorrt_backend(info: ModelInfo, depth: Path, pose: Path | None, precision: str, device: str, cache_dir):
    """TensorRTBackend, with an fp32 pose graph beside a Q/DQ depth graph (`_onnx_inputs`) built as an fp16 engine
    (TensorRT's float precision; an int8 build needs Q/DQ nodes) while the depth engine is int8."""
    from depth_node.inference.tensorrt_backend import TensorRTBackend

    fp32_pose = precision == "int8" and pose is not None and not is_int8_onnx(pose)
    return TensorRTBackend(info, depth, pose, precision, device, cache_dir=cache_dir,
                           pose_precision="fp16" if fp32_pose else None)


def create_backend(
    model: str | Path | ModelFile,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "auto",
    cache_dir: str | Path | None = None,
    calibration=None,
) -> Backend:
    """`model`: a model file (.pt), or an exported depth.onnx (pose.onnx beside it is picked up; a Q/DQ one runs
    int8, see `resolve` and `_onnx_inputs`)."""
    backend, precision, device = resolve(backend, precision, device, model)
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
    return _tensorrt_backend(info, depth, pose, precision, device, cache_dir)
