"""TensorRT engines from the ONNX exports, TensorRT 10/11 API only (explicit-batch networks, named I/O tensors,
memory-pool limits, serialized builds), cached per (ONNX content, precision, TensorRT version, GPU model).

Precision by TensorRT generation:
  10.x  weakly typed network: fp16 = BuilderFlag.FP16; int8 = the Q/DQ ONNX (explicit quantization) built with
        INT8 + FP16, so layers between Q/DQ pairs run int8 and the rest may use fp16 (the calibrator API is
        deprecated and never used); fp32 clears TF32 so "fp32" means fp32.
  11.x  every network is strongly typed and the FP16/INT8 builder flags are gone: precision comes from the
        ONNX tensor types. int8 = the Q/DQ ONNX as is (float parts in fp32); fp16 = an fp16-typed copy of the ONNX
        (`to_fp16`: fp32 I/O and heads, like the int8 graph; tested on the CPU with ONNX Runtime).

`tensorrt` is imported lazily: this module imports (and the rest of depth_node works) without it."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from depth_node.inference.base import BackendError

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32", "int8")
DEFAULT_WORKSPACE_MB = 2048


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError(
            "TensorRT is not installed: pip install tensorrt (needs an NVIDIA GPU and driver); "
            "on the CPU use backend openvino or onnxruntime"
        ) from exc
    return trt


def require_cuda() -> None:
    try:
        import torch
    except ImportError as exc:  # torch is a hard dependency; keep the message anyway
        raise BackendError("the TensorRT backend needs torch with CUDA for its buffers and streams") from exc
    if not torch.cuda.is_available():
        raise BackendError("TensorRT needs an NVIDIA GPU, and torch sees no CUDA device here")


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def gpu_slug(device_index: int = 0) -> str:
    import torch

    name = torch.cuda.get_device_name(device_index)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def onnx_sha256(path: str | os.PathLike) -> str:
    from depth_node.export.quantize import file_sha256

    return file_sha256(path)


def engine_cache_path(
    onnx_path: str | os.PathLike, precision: str, cache_dir: str | os.PathLike | None = None, device_index: int = 0
) -> Path:
    """<cache>/engines/<onnx sha256[:16]>-<precision>-trt<version>-<gpu>.engine: engines are specific to all four."""
    from depth_node.export.cache import cache_root

    trt = import_tensorrt()
    name = f"{onnx_sha256(onnx_path)[:16]}-{precision}-trt{trt.__version__}-{gpu_slug(device_index)}.engine"
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


# Inputs that the ONNX spec types float32 whatever the data type (Resize's roi and scales).
FLOAT32_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}


def to_fp16(model, keep_fp32: set[str]):
    """fp16-typed copy of a constant-folded fp32 graph, fp32 inputs/outputs kept, `keep_fp32` nodes (the heads:
    disparity conv + sigmoid + depth inversion, pose maths) left in fp32 — what TensorRT 10's FP16 flag did, with
    the heads as precise as in the int8 graph. Heads only feed outputs, so each boundary is one Cast."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    head = [n for n in g.node if n.name in keep_fp32]
    body = [n for n in g.node if n.name not in keep_fp32]

    def float_init(name: str) -> bool:
        return name in inits and inits[name].data_type == TensorProto.FLOAT

    # float initializers: fp16 for body uses (a copy where the head or a float32-only input also uses them)
    fp32_use = {t for n in g.node for i, t in enumerate(n.input)
                if float_init(t) and (n.name in keep_fp32 or i in FLOAT32_INPUTS.get(n.op_type, ()))}
    # tensors that ONNX types as float32 whatever the graph's precision (Resize scales): a Constant node producing
    # one stays fp32 (torch's exporter emits these scales as initializers or as Constant nodes, by version)
    fp32_only = {t for n in g.node for i, t in enumerate(n.input) if i in FLOAT32_INPUTS.get(n.op_type, ())}
    copies: dict[str, str] = {}
    for n in body:
        for i, t in enumerate(n.input):
            if not float_init(t) or i in FLOAT32_INPUTS.get(n.op_type, ()):
                continue
            if t not in copies:
                half = numpy_helper.to_array(inits[t]).astype(np.float16)
                if t in fp32_use:
                    copies[t] = t + "_fp16"
                    g.initializer.append(numpy_helper.from_array(half, copies[t]))
                else:
                    copies[t] = t
                    inits[t].CopyFrom(numpy_helper.from_array(half, t))
            n.input[i] = copies[t]
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
            if (n.op_type == "Constant" and a.name == "value" and a.t.data_type == TensorProto.FLOAT
                    and not fp32_only.intersection(n.output)):
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))

    def rename_uses(nodes, old: str, new: str) -> None:
        for n in nodes:
            for i, t in enumerate(n.input):
                if t == old:
                    n.input[i] = new

    def is_float(vi) -> bool:
        return vi.type.tensor_type.elem_type == TensorProto.FLOAT

    pre, post = [], []
    for vi in g.input:
        if is_float(vi):
            pre.append(helper.make_node("Cast", [vi.name], [vi.name + "_fp16"], to=TensorProto.FLOAT16,
                                        name=vi.name + "_to_fp16"))
            rename_uses(body, vi.name, vi.name + "_fp16")
    producer = {o: n for n in body for o in n.output}
    for vi in g.output:
        n = producer.get(vi.name)
        if n is not None and is_float(vi):  # computed in fp16: cast back under the output's own name
            half = vi.name + "_fp16"
            n.output[list(n.output).index(vi.name)] = half
            rename_uses(body, vi.name, half)
            post.append(helper.make_node("Cast", [half], [vi.name], to=TensorProto.FLOAT, name=vi.name + "_to_fp32"))
    body_out = {o for n in body for o in n.output}
    for n in head:
        for i, t in enumerate(n.input):
            if t in body_out:  # body → head boundary
                if not any(c.output[0] == t + "_fp32" for c in post):
                    post.append(helper.make_node("Cast", [t], [t + "_fp32"], to=TensorProto.FLOAT,
                                                 name=t + "_to_fp32"))
                n.input[i] = t + "_fp32"
    del g.node[:]
    g.node.extend(pre + body + post + head)
    del g.value_info[:]
    try:
        onnx.checker.check_model(m, full_check=True)  # strict type inference: every op sees consistent types
    except Exception as exc:
        raise BackendError(f"fp16 typing produced an invalid graph ({str(exc).splitlines()[0][:200]})") from exc
    return m


def fp16_typed_onnx(onnx_path: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """The fp16-typed version of an fp32 ONNX (for strongly typed TensorRT 11 builds), cached by content."""
    import onnx

    from depth_node.export.cache import cache_root
    from depth_node.export.quantize import folded_model, head_nodes

    out = cache_root(cache_dir) / "fp16" / onnx_sha256(onnx_path)[:16] / f"{Path(onnx_path).stem}.fp16.onnx"
    if out.is_file():
        return out
    folded = folded_model(onnx_path)
    model = to_fp16(folded, set(head_nodes(folded)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    return out


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

    from depth_node.export.onnx_export import read_metadata

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
