"""TensorRT engines from the ONNX exports, TensorRT 10/11 API only (explicit-batch networks, named I/O tensors,
memory-pool limits, serialized builds), cached per (ONNX content, precision, TensorRT version, GPU model).

Precision by TensorRT generation:
  10.x  weakly typed network: fp16 = BuilderFlag.FP16; int8 = the Q/DQ ONNX (explicit quantization) built with
        INT8 + FP16, so layers between Q/DQ pairs run int8 and the rest may use fp16 (the calibrator API is
        deprecated and never used); fp32 clears TF32 so "fp32" means fp32.
  11.x  every network is strongly typed and the FP16/INT8 builder flags are gone: precision comes from the
        ONNX tensor types. int8 = the Q/DQ ONNX as is (float parts in fp32); fp16 = an fp16-typed copy of the ONNX
        (`export/fp16_graph.py`: fp32 I/O and heads, like the int8 graph; tested on the CPU with ONNX Runtime).

`tensorrt` is imported lazily: this module imports (and the rest of depth_node works) without it."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from depth_node.errors import BackendError, DepthNodeError

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32", "int8")
DEFAULT_WORKSPACE_MB = 2048


def tensorrt_missing_message() -> str:
    """What to do where the tensorrt package does not import (said before any other work, by the factory and
    `build-engine`): a Jetson has TensorRT from JetPack, which a venv sees only when made with
    --system-site-packages; elsewhere it comes from pip."""
    import sys

    return (
        f"TensorRT is not installed for this Python ({sys.executable}): on a Jetson use JetPack's TensorRT "
        "(its python3-libnvinfer; a venv sees it only when created with --system-site-packages), elsewhere "
        "pip install tensorrt cuda-python (needs an NVIDIA GPU and driver). Engines are built and verified on "
        "the target (`depth-node build-engine`, then `verify-engine` there); on the CPU use backend openvino "
        "or onnxruntime"
    )


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError(tensorrt_missing_message()) from exc
    return trt


def require_cuda() -> None:
    """A CUDA device reachable through cuda-python (the TensorRT path's buffers and streams), or one clear error."""
    from depth_node.export.cuda_runtime import call, runtime

    if int(call(runtime().cudaGetDeviceCount)) < 1:
        raise BackendError("TensorRT needs an NVIDIA GPU, and CUDA sees no device here")


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def gpu_slug(device_index: int = 0) -> str:
    from depth_node.export.cuda_runtime import device_name

    name = device_name(device_index)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def engine_cache_path(
    onnx_path: str | os.PathLike, precision: str, cache_dir: str | os.PathLike | None = None, device_index: int = 0
) -> Path:
    """<cache>/engines/<onnx sha256[:16]>-<precision>-trt<version>-<gpu>.engine: engines are specific to all four."""
    from depth_node.paths import cache_root, file_sha256

    trt = import_tensorrt()
    name = f"{file_sha256(onnx_path)[:16]}-{precision}-trt{trt.__version__}-{gpu_slug(device_index)}.engine"
    return cache_root(cache_dir) / "engines" / name


class _Logger:
    """A TensorRT logger that also keeps the errors, so a failed build or load can say why.

    One per process: TensorRT wants a logger to outlive every builder/runtime/engine made with it, and older
    releases treat it as a singleton anyway."""

    _instance: _Logger | None = None

    def __init__(self, trt):
        self.errors: list[str] = []
        outer = self

        class L(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)

            def log(self, severity, msg):
                if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                    outer.errors.append(str(msg))
                    log.error("TensorRT: %s", msg)
                elif severity == trt.ILogger.Severity.WARNING:
                    log.warning("TensorRT: %s", msg)
                else:
                    log.debug("TensorRT: %s", msg)

        self.trt_logger = L()

    @classmethod
    def get(cls, trt) -> _Logger:
        if cls._instance is None:
            cls._instance = cls(trt)
        cls._instance.errors.clear()
        return cls._instance

    def last(self) -> str:
        return self.errors[-1][:300] if self.errors else "no error message"


def build_engine(
    onnx_path: str | os.PathLike,
    precision: str = "fp16",
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    cache_dir: str | os.PathLike | None = None,
) -> bytes:
    """Serialized engine for `onnx_path` (static shapes, or dynamic height/width with a profile over the model's
    sizes). int8 needs a Q/DQ ONNX (see export.quantize)."""
    from depth_node.export.quantize import is_quantized

    if precision not in PRECISIONS:
        raise BackendError(f"TensorRT precisions: {', '.join(PRECISIONS)} (got {precision!r})")
    trt = import_tensorrt()
    require_cuda()
    onnx_path = Path(onnx_path)
    quantized = is_quantized(onnx_path)
    if precision == "int8" and not quantized:
        raise BackendError(f"{onnx_path} has no Q/DQ nodes: int8 engines are built from `depth-node quantize` output")
    if precision != "int8" and quantized:
        raise BackendError(f"{onnx_path} is a Q/DQ (int8) ONNX: build it with precision int8")
    major = trt_major(trt)
    source = onnx_path
    if major >= 11 and precision == "fp16":
        from depth_node.export.fp16_graph import fp16_typed_onnx

        source = fp16_typed_onnx(onnx_path, cache_dir)

    logger = _Logger.get(trt)
    builder = trt.Builder(logger.trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode since 10.0; strong typing is default in 11
    parser = trt.OnnxParser(network, logger.trt_logger)
    # parse_from_file resolves external weights (exports over 2 GB) relative to the file
    if not parser.parse_from_file(str(source)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or logger.last()
        raise BackendError(f"TensorRT cannot parse {source}: {errs[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    _add_size_profile(builder, network, config, onnx_path)
    if major < 11:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # Q/DQ layers run int8; no calibrator: scales come from the graph
        if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {source}: {logger.last()}")
    return bytes(serialized)


def _add_size_profile(builder, network, config, onnx_path: Path) -> None:
    """Dynamic height/width (a model with one input size per aspect ratio): one optimization profile spanning the
    sizes listed in the ONNX metadata (`depth_node.sizes`), tuned for the first (the training size)."""
    import json

    from depth_node.export.onnx_metadata import read_metadata

    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [t for t in inputs if any(d < 0 for d in t.shape)]
    if not dynamic:
        return
    sizes = json.loads(read_metadata(onnx_path).get("depth_node.sizes", "[]"))
    if not sizes:
        raise BackendError(f"{onnx_path} has dynamic input shapes but lists no sizes: re-export it (depth-node export)")
    hs, ws = [int(s[0]) for s in sizes], [int(s[1]) for s in sizes]
    profile = builder.create_optimization_profile()
    for t in dynamic:
        n, c = (d if d > 0 else 1 for d in tuple(t.shape)[:2])
        profile.set_shape(t.name, (n, c, min(hs), min(ws)), (n, c, hs[0], ws[0]), (n, c, max(hs), max(ws)))
    config.add_optimization_profile(profile)


def training_size_onnx(
    path: str | Path, cache_dir: str | Path | None = None
) -> tuple[Path, tuple[int, int] | None]:
    """(static ONNX, pinned size): `path` itself and None where its input shape is static, else its copy with
    height/width pinned to the model's training size, the first size its metadata lists (`depth_node.sizes`),
    cached (`export.static_shape.static_onnx`). What needs fixed shapes takes this: int8 calibration (`quantize`,
    `build-engine --precision int8`; the factory's int8 pins to the same size) and the fp16 check; int8 therefore
    runs at the training size only (README, "Your camera"). (Written here, in export below the commands, beside
    the engine builder that needs it first; its natural home is `export/static_shape.py`.)"""
    import json

    from depth_node.export.onnx_metadata import read_metadata
    from depth_node.export.quantize import load_graph
    from depth_node.export.static_shape import static_onnx

    path = Path(path)
    if not path.is_file():
        raise DepthNodeError(f"ONNX file not found: {path}")
    graph = load_graph(path, load_external_data=False).graph  # a clear error for a file that is not ONNX
    if not any(d.dim_param or d.dim_value <= 0 for i in graph.input for d in i.type.tensor_type.shape.dim):
        return path, None
    sizes = json.loads(read_metadata(path).get("depth_node.sizes", "[]") or "[]")
    if not sizes:
        raise DepthNodeError(f"{path} has dynamic height/width but its metadata lists no input sizes "
                             "(depth_node.sizes): re-export it with `depth-node export`")
    h, w = (int(v) for v in sizes[0])
    return static_onnx(path, h, w, cache_dir), (h, w)


class LoadedEngine:
    """A deserialized engine with the runtime that made it (the runtime must outlive the engine)."""

    def __init__(self, path: Path, runtime, engine):
        self.path, self.runtime, self.engine = path, runtime, engine


def load_engine(path: str | os.PathLike) -> LoadedEngine:
    """A serialized engine file, loaded; a clear BackendError for files this TensorRT cannot use."""
    trt = import_tensorrt()
    require_cuda()
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"engine file not found: {path}")
    data = path.read_bytes()
    logger = _Logger.get(trt)
    runtime = trt.Runtime(logger.trt_logger)
    engine = None
    try:
        engine = runtime.deserialize_cuda_engine(data) if data else None
    except Exception as exc:  # some versions raise instead of returning None
        logger.errors.append(str(exc))
    if engine is None:
        raise BackendError(
            f"{path} is not an engine this TensorRT {trt.__version__} can load on this GPU "
            f"({logger.last()}): it is corrupt, truncated, or built by another TensorRT version or GPU model. "
            "Rebuild it with `depth-node build-engine`"
        )
    return LoadedEngine(path, runtime, engine)


def write_engine(data: bytes, out: str | os.PathLike) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, out)  # atomic: a crashed build never leaves a truncated engine under the final name
    return out


@dataclass
class EngineFile:
    path: Path
    precision: str
    source: Path  # the ONNX it was built from (a Q/DQ one quantized on the way for int8 from fp32)
    quantized: bool  # the source was quantized here
    build_s: float
    tensors: list[tuple[str, tuple[int, ...]]]  # I/O tensor names and shapes, as the loaded engine reports them
    pinned: tuple[int, int] | None = None  # int8 from a dynamic-size export: quantized and built at this size only


def build_engine_file(
    onnx_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    precision: str = "fp16",
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    calibration: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> EngineFile:
    """`depth-node build-engine`: an engine file for this GPU and TensorRT (default: <onnx>.<precision>.engine
    beside it), int8 from an fp32 ONNX quantized first (on `calibration` images, else built-in frames), loaded
    once to prove it loads here before anyone deploys it.

    TensorRT and a CUDA device are checked first, before the minute an int8 quantization takes. int8 from a
    dynamic-size export (a model trained on several aspects) is quantized and built at its training size (the
    first listed; calibration needs fixed shapes): `EngineFile.pinned`. fp16/fp32 engines keep the dynamic
    shapes, with a profile over the listed sizes."""
    from depth_node.export.quantize import is_quantized, quantized_onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise DepthNodeError(f"ONNX file not found: {onnx_path}")
    if workspace_mb < 64:
        raise DepthNodeError("--workspace-mb below 64 leaves TensorRT no room for tactics")
    if precision not in PRECISIONS:
        raise BackendError(f"TensorRT precisions: {', '.join(PRECISIONS)} (got {precision!r})")
    import_tensorrt()
    require_cuda()
    source, quantized, pinned = onnx_path, False, None
    if precision == "int8" and not is_quantized(onnx_path):
        static, pinned = training_size_onnx(onnx_path, cache_dir)
        source, quantized = quantized_onnx(static, cache_dir=cache_dir, calibration=calibration), True
    out = Path(out) if out else onnx_path.with_name(f"{onnx_path.stem}.{precision}.engine")
    started = time.perf_counter()
    write_engine(build_engine(source, precision, workspace_mb, cache_dir), out)
    seconds = time.perf_counter() - started
    engine = load_engine(out).engine
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return EngineFile(out, precision, Path(source), quantized, seconds,
                      [(n, tuple(engine.get_tensor_shape(n))) for n in names], pinned)


def engine_for(
    onnx_path: str | os.PathLike,
    precision: str = "fp16",
    cache_dir: str | os.PathLike | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    device_index: int = 0,
) -> LoadedEngine:
    """The cached engine for this ONNX/precision/TensorRT/GPU, built on a miss; an unloadable cached file (corrupt,
    truncated by a crash, from another TensorRT) is rebuilt once."""
    path = engine_cache_path(onnx_path, precision, cache_dir, device_index)
    if path.is_file():
        try:
            return load_engine(path)
        except BackendError as exc:
            log.warning("cached engine unusable, rebuilding: %s", exc)
            path.unlink(missing_ok=True)
    log.info("building TensorRT %s engine for %s (minutes on first use)", precision, onnx_path)
    write_engine(build_engine(onnx_path, precision, workspace_mb, cache_dir), path)
    return load_engine(path)
