"""int8 by explicit quantization: an fp32 ONNX export becomes a Q/DQ ONNX, calibrated on sample frames.

One file serves every int8 backend: TensorRT 10/11 build it as an explicitly quantized network (their implicit
calibrators are deprecated/removed), ONNX Runtime fuses it into VNNI int8 kernels, OpenVINO turns it into
FakeQuantize-based int8. That fixes the form: symmetric int8 activations and weights (TensorRT accepts nothing
else), per-channel weight scales, float biases (TensorRT's parser rejects int32 DequantizeLinear inputs), and one
Q/DQ pair per consumer. (`symmetric=False` makes a uint8-activation variant that only ONNX Runtime on x86 wants:
there every Conv then fuses into QLinearConv.)

What stays float: each output's head (everything between the last Conv and the graph output, that Conv
included: the disparity conv + sigmoid + disparity-to-depth inversion of the depth net, the pose net's last conv
+ axis-angle/translation maths) and the first conv (it sees raw pixels; little compute). For a depth graph whose
drift with everything else int8 misses `TARGET_DRIFT` on validation frames (a quarter of the frames, held back
from calibration), a per-layer sensitivity analysis and a drift-budgeted greedy search (`export.sensitivity`)
choose which convolutions run int8, with 8- or 7-bit weights each, so that the validation drift ends within
the budget. Before that, each convolution's input channels are evened out by an exact per-channel rescaling
(`export.smoothing`), which made the decoder's convolutions 3-7x less sensitive. On the trained default model
most of the drift came from the int8 tensors between convolutions
(residual adds, upsampling, concatenations): with every conv float they alone moved depth 1.6 %; the search
then keeps them float and puts Q/DQ pairs on the chosen convolutions' inputs only. Float layers run at the
backend's float precision; the rest is symmetric int8 Q/DQ (opset >= 13, per-axis weight scales on axis 0),
the form all three runtimes accept. On a CPU without VNNI a weight tensor may use the 7-bit range
(`seven_bit_weights`: full-range weights can overflow the AVX2 int8 kernels of ONNX Runtime and OpenVINO); the
search measures per layer which width drifts less.

Calibration: MinMax (see `_calibrated_builder` for the measured comparison with Percentile), on frames
passed in from above: `depth_node.sim.calibration.scene_frames` (rendered drives of several
scene types) from the `quantize` command and the benchmark, a folder of the user's images, or, when nothing is
passed, textured patterns (`builtin_frames`): a graph-only fallback, well below real frames in fidelity.
The export layer sits below sim and inference, so it renders nothing and takes preprocessing from
`export.graph_input`.
"""

from __future__ import annotations

import contextlib
import hashlib
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

from depth_node.cpu_info import has_int8_dot
from depth_node.errors import DepthNodeError
from depth_node.export.graph_input import stack_pair, to_network_input
from depth_node.export.sensitivity import budgeted_int8, graph_drift, layer_sensitivity, run_graph
from depth_node.export.smoothing import ALPHA as SMOOTH_ALPHA
from depth_node.export.smoothing import smooth_convs
from depth_node.io.image_files import IMAGE_SUFFIXES, ImageFileError, image_files, load_rgb
from depth_node.paths import cache_root, file_sha256, publish_folder

log = logging.getLogger(__name__)

RECIPE_VERSION = 8  # bump when the settings below change: it is part of the cache key
PERCENTILE = 99.99
DEFAULT_FRAMES = 8
TARGET_DRIFT = 0.007  # depth abs_rel on validation frames: a margin under the 1 % goal for unseen frames
CALIBRATION_CHUNK = 2  # inputs per calibration pass (bounds onnxruntime's memory)
VALIDATION_SHARE = 4  # the last quarter of the inputs checks drift during the search (`split_validation`)
Calibration = str | os.PathLike | Sequence[np.ndarray] | None


class QuantizeError(DepthNodeError):
    pass


# ---------------------------------------------------------------------------------------------- frames


def builtin_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """n HxWx3 uint8 textured patterns: the fallback when no frames are passed in. Representative frames (rendered
    drives of several scene types) come from `depth_node.sim.calibration.scene_frames`, made by the callers
    above this layer."""
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
        h.update(f"builtin:{n}:pattern".encode())
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


def load_graph(path: str | os.PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """onnx.load with an error that says what the file should be."""
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # DecodeError and friends: a text file, a truncated download, a .pt
        raise QuantizeError(f"{path} is not an ONNX model ({type(exc).__name__}: {exc}); give the fp32 depth.onnx "
                            "or pose.onnx that `depth-node export` writes") from exc


def is_quantized(path_or_model: str | os.PathLike | onnx.ModelProto) -> bool:
    m = path_or_model
    if not isinstance(m, onnx.ModelProto):
        m = load_graph(m, load_external_data=False)
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


def first_conv_nodes(model: onnx.ModelProto) -> list[str]:
    """The convolutions that see the graph input (through non-Conv nodes only): raw pixels, kept float."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    found, seen, stack = set(), set(), [i.name for i in model.graph.input]
    while stack:
        for n in consumers.get(stack.pop(), []):
            if n.name in seen:
                continue
            seen.add(n.name)
            if n.op_type == "Conv":
                found.add(n.name)
            else:
                stack.extend(n.output)
    return sorted(found)


def seven_bit_weights() -> bool:
    """True unless this CPU has int8 dot products (VNNI, AMX): then weights may need the range [-64, 63]. Without
    them, ONNX Runtime's and OpenVINO's int8 convolutions multiply u8 activations by s8 weights with VPMADDUBSW,
    whose pairwise int16 sums can saturate at full-range weights (2 x 255 x 127 > 32767): on the trained default
    model one saturating convolution moved depth 26 % where the exact Q/DQ arithmetic moved it 0.5 %. Halving the
    weight range is onnxruntime's `reduce_range` remedy; it costs one bit of weight precision (7-bit weights
    everywhere: 2.84 % drift against 1.53 % in exact arithmetic), so the search picks the width per layer, and
    the file still is symmetric int8 that TensorRT and VNNI CPUs run unchanged."""
    return not has_int8_dot()


def _quantize(pre: Path, out: Path, input_name: str, inputs: list[np.ndarray], keep_float: list[str],
              only: list[str] | None, percentile: bool, symmetric: bool, ranges: Path, seven_bit: list[str]) -> None:
    """One Q/DQ rewrite. The activation ranges are computed on the first call and read back from `ranges` by
    the next ones (onnxruntime's calibration cache), so a sensitivity search calibrates once. `seven_bit`: weight
    tensors (names) quantized to [-64, 63] (see `seven_bit_weights`), the others to the full symmetric range."""
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
    extra["TensorQuantOverrides"] = {w: [{"axis": 0, "reduce_range": True}] for w in seven_bit}
    if percentile:
        extra["CalibPercentile"] = PERCENTILE
    with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print progress lines
        quantize_static(
            str(pre),
            str(out),
            None if ranges.is_file() else _Reader(input_name, inputs),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=only,
            nodes_to_exclude=keep_float,
            calibrate_method=CalibrationMethod.Percentile if percentile else CalibrationMethod.MinMax,
            extra_options=extra,
            calibration_cache_path=str(ranges),
        )


def _calibrate(pre: Path, tmp: Path, input_name: str, inputs: list[np.ndarray], percentile: bool,
               ranges: Path) -> None:
    """Activation ranges into `ranges` (onnxruntime's calibration-cache JSON), collected CALIBRATION_CHUNK inputs
    at a time: onnxruntime keeps every intermediate tensor of the inputs it is given (gigabytes for 24 frames at
    640x192); its histograms and min/max merge across chunks."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    extra = {"percentile": PERCENTILE} if percentile else {}
    method = CalibrationMethod.Percentile if percentile else CalibrationMethod.MinMax
    with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print progress lines
        cal = create_calibrator(pre, None, augmented_model_path=str(tmp / "augmented.onnx"), calibrate_method=method,
                                extra_options=extra)
        for i in range(0, len(inputs), CALIBRATION_CHUNK):
            cal.collect_data(_Reader(input_name, inputs[i:i + CALIBRATION_CHUNK]))
        save_tensors_data(cal.compute_data(), ranges)


def _calibrated_builder(pre: Path, tmp: Path, model: onnx.ModelProto, inputs: list[np.ndarray], symmetric: bool):
    """(build(out, keep_float, only, seven_bit_convs), method): calibrates now. MinMax: on the trained default
    model at 640x192 (head and first conv float, exact Q/DQ arithmetic, held-out scenes) it moved depth 1.20 %
    against Percentile 99.99's 1.40 % (8-bit weights), 1.63 % against 2.59 % (7-bit): clipping the rare large
    activations costs this network more than the coarser step (`_calibrate` keeps the percentile path)."""
    input_name = model.graph.input[0].name
    weight = {n.name: n.input[1] for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 1}
    ranges = tmp / "ranges-minmax.json"
    _calibrate(pre, tmp, input_name, inputs, False, ranges)

    def build(out: Path, keep: list[str], only: list[str] | None, seven: list[str]) -> None:
        _quantize(pre, out, input_name, inputs, keep, only, False, symmetric, ranges,
                  [weight[n] for n in seven if n in weight])

    return build, "minmax"


def conv_macs(model: onnx.ModelProto) -> dict[str, int]:
    """Multiply-adds of each Conv (output elements x weight elements per output channel), from ONNX shape
    inference: the search prefers int8 where it saves the most compute."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type == "Conv" and n.input[1] in weights and n.output[0] in shapes:
            w = weights[n.input[1]]
            out[n.name] = int(np.prod(shapes[n.output[0]])) * int(np.prod(w[1:]))
    return out


def split_validation(inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration, validation): the last quarter (at least 2) held back for the drift checks, so the search
    judges frames the ranges were not fitted to; round-robin scene frames put every scene type in it. With
    fewer than 8 inputs all of them serve both (too few to split)."""
    if len(inputs) < 8:
        return inputs, inputs
    n = max(2, len(inputs) // VALIDATION_SHARE)
    return inputs[:-n], inputs[-n:]


def candidate_convs(model: onnx.ModelProto, always: list[str]) -> list[str]:
    """The convolutions that may run int8: all but those always kept float (first conv, heads)."""
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in always]


def mixed_precision(build, pre: Path, model: onnx.ModelProto, always: list[str], convs: list[str],
                    val: list[np.ndarray], target: float | None, analyze: bool | None, progress) -> dict:
    """The float layers and weight widths of a depth graph (per-layer sensitivity of `convs`, then
    `budgeted_int8`), or for another graph (pose) int8 everywhere but `always`; with the drift of every trial on
    the validation inputs."""
    names = [o.name for o in model.graph.output]
    seven_all = convs if seven_bit_weights() else []
    out = {"keep": always, "seven": seven_all, "sensitivity": {}, "trials": [], "validation_abs_rel": None}
    if "depth" not in names or not target:
        return out
    input_name = model.graph.input[0].name
    ref = run_graph(pre, input_name, "depth", val)
    with tempfile.TemporaryDirectory(prefix="dn-q0-") as tmp:
        q0 = Path(tmp) / "q0.onnx"
        build(q0, always, None, seven_all)
        out["validation_abs_rel"] = d0 = graph_drift(q0, input_name, "depth", val, ref)
    out["trials"] = [{"layer": "all", "int8": True, "abs_rel": round(d0, 5)}]
    if not (analyze or (analyze is None and d0 > target)):
        return out
    few = max(2, len(val) // 2)  # a ranking needs fewer frames than the budget check: half the trial time
    out["sensitivity"], seven = layer_sensitivity(build, ref[:few], convs, input_name, "depth", val[:few],
                                                  bool(seven_all), progress)
    if d0 > target:
        out["keep"], trials, out["validation_abs_rel"] = budgeted_int8(
            build, ref, out["sensitivity"], conv_macs(model), always, [n.name for n in model.graph.node
            if n.op_type != "Conv"], seven, target, input_name, "depth", val, progress)
        out["seven"] = [n for n in seven if n not in out["keep"]]  # the int8 convs with 7-bit weights
        out["trials"] += trials
    return out


def quantize_file(fp32_onnx: Path, out: Path, inputs: list[np.ndarray], symmetric: bool = True,
                  target_drift: float | None = TARGET_DRIFT, analyze: bool | None = None, progress=None) -> dict:
    """The Q/DQ rewrite itself (uncached); returns what was done, for the report beside the file.
    `analyze`: None = per-layer sensitivity only when needed, True = always (the `quantize` command)."""
    src = load_graph(fp32_onnx)
    if is_quantized(src):
        raise QuantizeError(f"{fp32_onnx} is already quantized (it has QuantizeLinear/DequantizeLinear nodes)")
    if len(src.graph.input) != 1:
        raise QuantizeError(f"{fp32_onnx}: expected one graph input, found {len(src.graph.input)}")
    meta = {p.key: p.value for p in src.metadata_props}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dn-quant-") as tmp:
        tmp = Path(tmp)
        pre = tmp / "pre.onnx"
        model = folded_model(fp32_onnx)
        always = sorted(set(head_nodes(model)) | set(first_conv_nodes(model)))
        searched = bool(target_drift) and "depth" in [o.name for o in model.graph.output]
        cal, val = split_validation(inputs) if searched else (inputs, [])
        convs = candidate_convs(model, always)
        smoothed = smooth_convs(model, convs, cal) if searched else []
        onnx.save(model, str(pre))
        build, method = _calibrated_builder(pre, tmp, model, cal, symmetric)
        mixed = mixed_precision(build, pre, model, always, convs, val, target_drift, analyze, progress)
        final = tmp / "q.onnx"
        build(final, mixed["keep"], None, mixed["seven"])
        q = onnx.load(str(final))
    all_convs = {n.name for n in model.graph.node if n.op_type == "Conv"}
    report = {
        "recipe_version": RECIPE_VERSION,
        "calibration_method": method,
        "activations": "int8 symmetric per-tensor" if symmetric else "uint8 asymmetric per-tensor",
        "weights": "int8 symmetric per-channel" + (f", 7-bit range on {len(mixed['seven'])} convs (no VNNI)"
                                                    if mixed["seven"] else ""),
        "seven_bit_weights": mixed["seven"],
        "smoothing": {"alpha": SMOOTH_ALPHA, "convs": len(smoothed)} if smoothed else None,
        "calibration_inputs": len(cal),
        "validation_inputs": len(val),
        "target_drift": target_drift,
        "validation_abs_rel": mixed["validation_abs_rel"],
        "float_layers": [n for n in mixed["keep"] if n in convs],  # the convs the search kept float
        "float_ops_between": any(n not in all_convs and n not in always for n in mixed["keep"]),
        "kept_fp32": mixed["keep"],
        "sensitivity": {k: round(v, 5) for k, v in mixed["sensitivity"].items()},
        "trials": mixed["trials"],
        "quantize_linear": sum(n.op_type == "QuantizeLinear" for n in q.graph.node),
        "dequantize_linear": sum(n.op_type == "DequantizeLinear" for n in q.graph.node),
        "seconds": round(time.perf_counter() - started, 2),
    }
    del q.metadata_props[:]
    for k, v in meta.items():
        q.metadata_props.add(key=k, value=v)
    q.metadata_props.add(key="depth_node.precision", value="int8")
    summary = {k: v for k, v in report.items() if k not in ("kept_fp32", "sensitivity", "trials", "seven_bit_weights")}
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
    analyze: bool | None = None,
    progress=None,
) -> Path:
    """The Q/DQ int8 version of `fp32_onnx`, built on first use and cached by (ONNX content, calibration frames).

    `calibration`: a folder of images, a list of HxWx3 uint8 RGB arrays (e.g. `sim.calibration.scene_frames`,
    rendered above this layer), or None for textured patterns.
    `symmetric=False`: uint8 activations, for ONNX Runtime on x86 only (every Conv fuses into QLinearConv there;
    with symmetric activations a third stay float); TensorRT cannot build that form."""
    fp32_onnx = Path(fp32_onnx)
    if not fp32_onnx.is_file():
        raise QuantizeError(f"ONNX file not found: {fp32_onnx}")
    form = ("" if symmetric else "-u8") + ("-a" if analyze else "") + ("-w7" if seven_bit_weights() else "")
    key = f"{file_sha256(fp32_onnx)[:16]}-{_calibration_identity(calibration, frames)}-r{RECIPE_VERSION}{form}"
    folder = cache_root(cache_dir) / "int8" / key
    out = folder / f"{fp32_onnx.stem}.int8.onnx"
    if out.is_file():
        return out
    src = load_graph(fp32_onnx, load_external_data=False)
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
    report = quantize_file(fp32_onnx, tmp / out.name, inputs, symmetric, analyze=analyze, progress=progress)
    (tmp / "quantize.json").write_text(json.dumps({"source": str(fp32_onnx), **report}, indent=2))
    publish_folder(tmp, folder)  # another process may have finished first: theirs is kept
    return out
