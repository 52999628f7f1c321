"""int8 by explicit quantization: an fp32 ONNX export becomes a Q/DQ ONNX, calibrated on sample frames.

One file serves every int8 backend: TensorRT 10/11 build it as an explicitly quantized network (their implicit
calibrators are deprecated/removed), ONNX Runtime fuses it into VNNI int8 kernels, OpenVINO turns it into
FakeQuantize-based int8. That fixes the form: symmetric int8 activations and weights (TensorRT accepts nothing
else), per-channel weight scales, float biases (TensorRT's parser rejects int32 DequantizeLinear inputs), and one
Q/DQ pair per consumer. (`symmetric=False` makes a uint8-activation variant that only ONNX Runtime on x86 wants:
there every Conv then fuses into QLinearConv.)

What stays fp32: each output's head (everything between the last Conv and the graph output, that Conv
included): the disparity conv + sigmoid + disparity-to-depth inversion of the depth net, whose int8 error would
turn straight into depth error, and the pose net's last conv + axis-angle/translation maths.

Calibration method, measured on a recipe-weight ResNet-18 Monodepth2 at 640x192 (abs_rel of depth vs fp32 on
held-out textured frames): MinMax 2.2 %, Entropy 2.2 %, Percentile 99.9 1.9 %, Percentile 99.99 1.8 %; so
Percentile 99.99 (MinMax where a graph's near-constant head tensors defeat histograms: the pose net).
Keeping more than the heads in fp32 does not buy accuracy on that network: its error is spread over all layers
(the 7 most sensitive convs in fp32: 2.2 → 2.0 %), and int8 weights alone (int16 activations) already cost 0.9 %.
The recipe network amplifies input noise (±1/255 of uniform noise moves its depth 0.65-0.8 %), so its int8 drift
(~4 % on synthetic drive frames) is pessimistic; a well-conditioned ResNet-18 stays near 0.2 % (test suite).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from depth_node.errors import DepthNodeError
from depth_node.image_files import IMAGE_SUFFIXES, ImageFileError, image_files, load_rgb

log = logging.getLogger(__name__)

RECIPE_VERSION = 1  # bump when the settings below change: it is part of the cache key
PERCENTILE = 99.99
DEFAULT_FRAMES = 8
Calibration = str | os.PathLike | Sequence[np.ndarray] | None


class QuantizeError(DepthNodeError):
    pass


# ---------------------------------------------------------------------------------------------- frames


def builtin_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """n HxWx3 uint8 frames: synthetic drive frames when `depth_node.sim` is there, textured patterns otherwise.

    Drive frames are spread over a long drive so they cover near cars, open road and building fronts; `seed`
    selects another drive (benchmarks measure drift on a seed the calibration never saw)."""
    try:
        from depth_node.sim.config import CameraConfig, DriveConfig
        from depth_node.sim.drive import Drive

        stride = 15
        camera = CameraConfig(width=width, height=height)
        drive = Drive(DriveConfig(seed=101 + seed, frames=n * stride, camera=camera))
        frames = [np.ascontiguousarray(drive.frame(k * stride).rgb) for k in range(n)]
        if all(f.shape == (height, width, 3) and f.dtype == np.uint8 for f in frames):
            return frames
    except Exception as exc:  # the simulator is optional here: fall back rather than fail a quantization
        log.warning("synthetic drive frames unavailable (%s): using textured patterns", exc)
    from depth_node.export.onnx_export import example_image

    out = []
    for k in range(n):
        img = example_image(height, width, seed=seed * 31 + k)[0].permute(1, 2, 0).numpy()
        if k % 2:
            img = img[:, ::-1] * 0.8 + 0.1  # mirrored, lower contrast: widen the calibrated ranges a little
        out.append(np.ascontiguousarray(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)))
    return out


def folder_frames(folder: str | os.PathLike, n: int) -> list[np.ndarray]:
    """Up to n images of a folder, evenly spaced in name order (consecutive frames of a drive are near copies)."""

    folder = Path(folder)
    if not folder.is_dir():
        raise QuantizeError(f"calibration image folder not found: {folder}")
    files = image_files(folder)
    if not files:
        raise QuantizeError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if len(files) > n:
        files = [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]
    frames = []
    for p in files:
        try:
            frames.append(load_rgb(p))
        except ImageFileError as exc:
            raise QuantizeError(f"calibration: {exc}") from exc
    return frames


def _calibration_identity(calibration: Calibration, n: int) -> str:
    """What the cache key needs to know about the frames, without reading them when they are files."""
    h = hashlib.sha256()
    if calibration is None:
        source = "sim" if importlib.util.find_spec("depth_node.sim.drive") is not None else "pattern"
        h.update(f"builtin:{n}:{source}".encode())
    elif isinstance(calibration, str | os.PathLike):
        folder = Path(calibration)
        if not folder.is_dir():
            raise QuantizeError(f"calibration image folder not found: {folder}")
        h.update(f"folder:{n}".encode())
        for p in image_files(folder):
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        h.update(f"arrays:{len(calibration)}".encode())
        for a in calibration:
            a = np.ascontiguousarray(a)
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:12]


def network_inputs(frames: Sequence[np.ndarray], shape: Sequence[int]) -> list[np.ndarray]:
    """Frames → the graph's input: [1,3,H,W] images, or [1,6,H,W] pairs of consecutive frames for a pose net."""
    from depth_node.inference.preprocess import stack_pair, to_network_input

    channels, height, width = int(shape[1]), int(shape[2]), int(shape[3])
    for f in frames:
        if f.ndim != 3 or f.shape[2] != 3:
            raise QuantizeError(f"calibration frames must be HxWx3 RGB arrays, got shape {f.shape}")
    x = [to_network_input(f, height, width) for f in frames]
    if channels == 3:
        return x
    if channels == 6:
        if len(x) < 2:
            raise QuantizeError("a pose net needs at least 2 calibration frames")
        return [stack_pair(a, b) for a, b in itertools.pairwise(x)]
    raise QuantizeError(f"cannot calibrate a graph whose input has {channels} channels")


# ---------------------------------------------------------------------------------------------- graph


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    data = Path(str(path) + ".data")
    if data.is_file():  # external weights of large exports
        with open(data, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def is_quantized(path_or_model: str | os.PathLike | onnx.ModelProto) -> bool:
    m = path_or_model
    if not isinstance(m, onnx.ModelProto):
        m = onnx.load(str(m), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in m.graph.node)


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes between each graph output and the nearest Conv above it (that Conv included): kept fp32."""
    producer = {o: n for n in model.graph.node for o in n.output}
    seen: set[str] = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type != "Conv":
            stack.extend(node.input)
    return sorted(seen)


def folded_model(path: str | os.PathLike) -> onnx.ModelProto:
    """The graph with the exporter's shape arithmetic (reflection-pad amounts etc.) folded into initializers and
    every node named: what graph rewrites (Q/DQ insertion, fp16 typing) should see. Quantizing or fp16-typing
    those index computations would break the graph's numerics."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise QuantizeError("ONNX graph rewrites need onnxruntime: pip install onnxruntime") from exc
    with tempfile.TemporaryDirectory(prefix="dn-fold-") as tmp:
        out = Path(tmp) / "folded.onnx"
        quant_pre_process(str(path), str(out), skip_symbolic_shape=True)
        model = onnx.load(str(out))
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"  # the quantizer selects nodes by name
    return model


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of inputs."""

    def __init__(self, name: str, inputs: list[np.ndarray]):
        self._items = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self._items, None)

    def __len__(self) -> int:  # some versions size progress bars with it
        return 0


def _quantize(pre: Path, out: Path, input_name: str, inputs: list[np.ndarray], keep_fp32: list[str],
              percentile: bool, symmetric: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if symmetric:  # the portable form
        extra = {
            "ActivationSymmetric": True,  # TensorRT: symmetric int8 only
            "WeightSymmetric": True,
            "QuantizeBias": False,  # TensorRT rejects int32 DequantizeLinear; OpenVINO does not mind
            "DedicatedQDQPair": True,  # TensorRT fuses a Q/DQ pair into one consumer only
        }
    else:  # ONNX Runtime on x86: uint8 activations let ReLUs fold into the zero point, so every Conv fuses
        extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if percentile:
        extra["CalibPercentile"] = PERCENTILE
    with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print progress lines
        quantize_static(
            str(pre),
            str(out),
            _Reader(input_name, inputs),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_fp32,
            calibrate_method=CalibrationMethod.Percentile if percentile else CalibrationMethod.MinMax,
            extra_options=extra,
        )


def quantize_file(fp32_onnx: Path, out: Path, inputs: list[np.ndarray], symmetric: bool = True) -> dict:
    """The Q/DQ rewrite itself (uncached); returns what was done, for the report beside the file."""
    src = onnx.load(str(fp32_onnx))
    if is_quantized(src):
        raise QuantizeError(f"{fp32_onnx} is already quantized (it has QuantizeLinear/DequantizeLinear nodes)")
    if len(src.graph.input) != 1:
        raise QuantizeError(f"{fp32_onnx}: expected one graph input, found {len(src.graph.input)}")
    meta = {p.key: p.value for p in src.metadata_props}
    with tempfile.TemporaryDirectory(prefix="dn-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        model = folded_model(fp32_onnx)
        onnx.save(model, str(pre))
        keep_fp32 = head_nodes(model)
        started = time.perf_counter()
        method = f"percentile {PERCENTILE}"
        try:
            _quantize(pre, Path(tmp) / "q.onnx", model.graph.input[0].name, inputs, keep_fp32, True, symmetric)
        except ValueError as exc:
            # onnxruntime calibrates every float tensor, the fp32 head's too; near-constant ones there (the pose
            # head's cos/sin of tiny angles) break percentile histograms. MinMax has no histograms.
            log.info("percentile calibration failed (%s): using MinMax", exc)
            method = "minmax"
            _quantize(pre, Path(tmp) / "q.onnx", model.graph.input[0].name, inputs, keep_fp32, False, symmetric)
        q = onnx.load(str(Path(tmp) / "q.onnx"))
    report = {
        "recipe_version": RECIPE_VERSION,
        "calibration_method": method,
        "activations": "int8 symmetric per-tensor" if symmetric else "uint8 asymmetric per-tensor",
        "weights": "int8 symmetric per-channel",
        "calibration_inputs": len(inputs),
        "kept_fp32": keep_fp32,
        "quantize_linear": sum(n.op_type == "QuantizeLinear" for n in q.graph.node),
        "dequantize_linear": sum(n.op_type == "DequantizeLinear" for n in q.graph.node),
        "seconds": round(time.perf_counter() - started, 2),
    }
    del q.metadata_props[:]
    for k, v in meta.items():
        q.metadata_props.add(key=k, value=v)
    q.metadata_props.add(key="depth_node.precision", value="int8")
    summary = {k: v for k, v in report.items() if k != "kept_fp32"}
    q.metadata_props.add(key="depth_node.quantization", value=json.dumps(summary))
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(q, str(out))
    return report


def quantized_onnx(
    fp32_onnx: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    calibration: Calibration = None,
    frames: int = DEFAULT_FRAMES,
    symmetric: bool = True,
) -> Path:
    """The Q/DQ int8 version of `fp32_onnx`, built on first use and cached by (ONNX content, calibration frames).

    `calibration`: a folder of images, a list of HxWx3 uint8 RGB arrays, or None for built-in sample frames.
    `symmetric=False`: uint8 activations, for ONNX Runtime on x86 only (every Conv fuses into QLinearConv there;
    with symmetric activations a third stay float); TensorRT cannot build that form."""
    from depth_node.export.cache import cache_root

    fp32_onnx = Path(fp32_onnx)
    if not fp32_onnx.is_file():
        raise QuantizeError(f"ONNX file not found: {fp32_onnx}")
    form = "" if symmetric else "-u8"
    key = f"{file_sha256(fp32_onnx)[:16]}-{_calibration_identity(calibration, frames)}-r{RECIPE_VERSION}{form}"
    folder = cache_root(cache_dir) / "int8" / key
    out = folder / f"{fp32_onnx.stem}.int8.onnx"
    if out.is_file():
        return out
    src = onnx.load(str(fp32_onnx), load_external_data=False)
    if is_quantized(src):
        return fp32_onnx  # already a Q/DQ graph (e.g. from `depth-node quantize`): use it as it is
    dims = [d.dim_value for d in src.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or min(dims) <= 0:
        raise QuantizeError(f"{fp32_onnx}: input shape {dims} is not a static [1,C,H,W]")
    if calibration is None:
        n = frames + 1 if dims[1] == 6 else frames
        rgb = builtin_frames(n, dims[2], dims[3])
    elif isinstance(calibration, str | os.PathLike):
        rgb = folder_frames(calibration, frames + 1 if dims[1] == 6 else frames)
    else:
        rgb = [np.asarray(a) for a in calibration]
        if not rgb:
            raise QuantizeError("no calibration frames given")
    inputs = network_inputs(rgb, dims)
    log.info("quantizing %s to int8 on %d calibration inputs", fp32_onnx.name, len(inputs))
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    report = quantize_file(fp32_onnx, tmp / out.name, inputs, symmetric)
    (tmp / "quantize.json").write_text(json.dumps({"source": str(fp32_onnx), **report}, indent=2))
    if folder.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return out
