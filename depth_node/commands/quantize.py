"""`depth-node quantize ONNX -o OUT`: the int8 Q/DQ ONNX that TensorRT, ONNX Runtime and OpenVINO all run as
int8, calibrated on sample frames (a folder of images, or built-in synthetic drive frames)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from depth_node.errors import DepthNodeError


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". The result is cached by ONNX content and calibration frames; the command copies "
        "it to OUT and reports its accuracy drift against the fp32 ONNX on held-out frames.",
    )
    p.add_argument("onnx", type=Path, help="fp32 ONNX from `depth-node export` (depth.onnx or pose.onnx)")
    p.add_argument("-o", "--output", type=Path, help="output file (default: <onnx>.int8.onnx beside the input)")
    p.add_argument("--images", type=Path, help="folder of calibration images (default: built-in drive frames)")
    p.add_argument("--frames", type=int, default=8, help="calibration frames to use (default 8)")
    p.add_argument("--asymmetric", action="store_true",
                   help="uint8 activations: faster in ONNX Runtime on x86 CPUs, but TensorRT cannot build it")
    p.add_argument("--cache-dir", type=Path, help="cache folder (default: $DEPTH_NODE_CACHE or ~/.cache)")
    p.set_defaults(func=run)


def held_out_drift(fp32: Path, int8: Path) -> dict:
    """Drift on two built-in frames from another drive than the calibration's (what a user should expect)."""
    from depth_node.evaluate.drift import drift
    from depth_node.export.quantize import builtin_frames, network_inputs
    from depth_node.inference.onnxruntime_backend import make_session

    a, b = make_session(fp32), make_session(int8)
    shape = [int(d) for d in a.get_inputs()[0].shape]
    xs = network_inputs(builtin_frames(3, int(shape[2]), int(shape[3]), seed=9), shape)[:2]
    names = [o.name for o in a.get_outputs()]
    key = "depth" if "depth" in names else names[0]
    ref = [a.run([key], {a.get_inputs()[0].name: x})[0] for x in xs]
    got = [b.run([key], {b.get_inputs()[0].name: x})[0] for x in xs]
    return {"output": key, **drift(got, ref).as_dict()}


def run(args: argparse.Namespace) -> int:
    from depth_node.export.quantize import quantized_onnx

    if args.frames < 1:
        raise DepthNodeError("--frames must be at least 1")
    if not args.onnx.is_file():
        raise DepthNodeError(f"ONNX file not found: {args.onnx}")
    out = args.output or args.onnx.with_name(args.onnx.stem + ".int8.onnx")
    cached = quantized_onnx(args.onnx, cache_dir=args.cache_dir, calibration=args.images, frames=args.frames,
                            symmetric=not args.asymmetric)
    if cached.resolve() == args.onnx.resolve():
        raise DepthNodeError(f"{args.onnx} is already a Q/DQ (int8) ONNX")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, out)
    report_file = cached.parent / "quantize.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    d = held_out_drift(args.onnx, out)
    print(
        f"{out}: {report.get('quantize_linear', '?')} QuantizeLinear / {report.get('dequantize_linear', '?')} "
        f"DequantizeLinear nodes, {report.get('calibration_method', '?')} calibration on "
        f"{report.get('calibration_inputs', '?')} inputs, {len(report.get('kept_fp32', []))} head nodes kept fp32"
    )
    print(f"drift vs fp32 on held-out frames ({d['output']}): abs_rel {d['abs_rel']:.3%}, "
          f"max abs {d['max_abs']:.4g}, mean abs {d['mean_abs']:.4g}")
    return 0
