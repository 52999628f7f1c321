"""`depth-node quantize ONNX -o OUT`: the int8 Q/DQ ONNX that TensorRT, ONNX Runtime and OpenVINO all run as
int8 (mixed precision: the layers its per-layer sensitivity analysis finds stay float), calibrated on sample
frames: a folder of images, or rendered drives of several scene types (`depth_node.sim.calibration`).
A dynamic-size export (a model trained on several aspects) is quantized at its training size (the first listed):
int8 runs at that size. A pose net's drift is reported as max abs error in its outputs' units (`held_out_drift`)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from depth_node.errors import DepthNodeError

SHOWN_LAYERS = 8  # most sensitive layers printed (all of them are in quantize.json beside the cached file)


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". The result is cached by ONNX content and calibration frames; the command copies "
        "it to OUT, prints the per-layer sensitivity it found and the layers it kept float, and reports its "
        "accuracy drift against the fp32 ONNX on held-out frames (scenes the calibration never saw).",
    )
    p.add_argument("onnx", type=Path, help="fp32 ONNX from `depth-node export` (depth.onnx or pose.onnx)")
    p.add_argument("-o", "--output", type=Path, help="output file (default: <onnx>.int8.onnx beside the input)")
    p.add_argument("--images", type=Path, help="folder of calibration images (default: rendered scene frames)")
    p.add_argument("--frames", type=int, default=24, help="calibration frames to use (default 24)")
    p.add_argument("--asymmetric", action="store_true",
                   help="uint8 activations: faster in ONNX Runtime on x86 CPUs, but TensorRT cannot build it")
    p.add_argument("--cache-dir", type=Path, help="cache folder (default: $DEPTH_NODE_CACHE or ~/.cache)")
    p.set_defaults(func=run)


def held_out_drift(fp32: Path, int8: Path) -> dict:
    """Drift on held-out rendered frames (other drives than the calibration's): what a user should expect.

    Depth: `drift` of the depth output (abs_rel reads against the model's abs_rel). A pose net: the max abs error
    of each of its outputs in their own units (radians, model units) under "pose", judged as `verify-engine` judges
    it (`evaluate.parity`): frame-to-frame motion is near zero, so a relative error would mislead."""
    from depth_node.evaluate.parity import POSE_OUTPUTS
    from depth_node.export.drift import drift
    from depth_node.export.quantize import network_inputs
    from depth_node.inference.onnxruntime_backend import make_session
    from depth_node.sim.calibration import scene_frames

    a, b = make_session(fp32), make_session(int8)
    shape = [int(d) for d in a.get_inputs()[0].shape]
    xs = network_inputs(scene_frames(4, int(shape[2]), int(shape[3]), held_out=True), shape)
    names = [o.name for o in a.get_outputs()]
    pose = [k for k in POSE_OUTPUTS if k in names] if "depth" not in names else []
    keys = pose or ["depth" if "depth" in names else names[0]]
    feed_a, feed_b = a.get_inputs()[0].name, b.get_inputs()[0].name
    ref = [dict(zip(keys, a.run(keys, {feed_a: x}))) for x in xs]
    got = [dict(zip(keys, b.run(keys, {feed_b: x}))) for x in xs]
    per = {k: drift([g[k] for g in got], [r[k] for r in ref]).as_dict() for k in keys}
    if pose:
        return {"output": "pose", "frames": len(xs), "pose": per,
                "max_abs": max(d["max_abs"] for d in per.values())}
    return {"output": keys[0], "frames": len(xs), **per[keys[0]]}


def calibration_frames(onnx_path: Path, images: Path | None, frames: int):
    """A folder as it is (quantize reads it), else rendered scene frames at the graph's size (one more for a pose
    net's pairs)."""
    if images is not None:
        return images
    from depth_node.export.quantize import load_graph
    from depth_node.sim.calibration import scene_frames

    dims = [d.dim_value for d in load_graph(onnx_path, load_external_data=False).graph.input[0].type.tensor_type
            .shape.dim]
    if len(dims) != 4 or min(dims) <= 0:
        return None  # quantize explains what is wrong with the graph
    return scene_frames(frames + 1 if dims[1] == 6 else frames, dims[2], dims[3])


def print_search(report: dict) -> None:
    """The drift-budgeted search as it went: the all-int8 start, then each layer tried in int8."""
    trials = report.get("trials") or []
    target = report.get("target_drift")
    if not trials:
        return
    print(f"int8 everywhere but the head and first conv: validation abs_rel {trials[0]['abs_rel']:.3%}"
          + (f" (budget {target:.2%})" if target else ""))
    for t in trials[1:]:
        if t["layer"] is None:
            extra = ", the ops between them too (Q/DQ on conv inputs only)" if t.get("ops_between") else ""
            print(f"  start: every candidate conv float{extra}: {t['abs_rel']:.3%}")
        elif t["abs_rel"] is None:
            print(f"  {t['layer']:40s} stays float ({t.get('skipped', '')})")
        else:
            print(f"  {t['layer']:40s} int8 -> {t['abs_rel']:.3%} {'kept' if t['int8'] else 'back to float'}")
    seven = report.get("seven_bit_weights") or []
    print(f"validation abs_rel {report.get('validation_abs_rel', float('nan')):.3%} on "
          f"{report.get('validation_inputs', '?')} inputs; {len(report.get('float_layers', []))} convs float "
          f"besides the head and first conv; 7-bit weights on {len(seven)} convs")


def print_report(out: Path, report: dict, d: dict) -> None:
    print(
        f"{out}: {report.get('quantize_linear', '?')} QuantizeLinear / {report.get('dequantize_linear', '?')} "
        f"DequantizeLinear nodes, {report.get('calibration_method', '?')} calibration on "
        f"{report.get('calibration_inputs', '?')} inputs, {report.get('weights', '')}"
    )
    smooth = report.get("smoothing")
    if smooth:
        print(f"inputs of {smooth['convs']} convs evened out per channel first (alpha {smooth['alpha']}): "
              "an exact fp32 rewrite that lets one int8 scale fit every channel")
    sens = report.get("sensitivity") or {}
    if sens:
        print(f"per-layer sensitivity (depth abs_rel with only that conv int8, ONNX Runtime), "
              f"{SHOWN_LAYERS} of {len(sens)}:")
        for name, v in list(sens.items())[:SHOWN_LAYERS]:
            print(f"  {name:40s} {v:.3%}")
    print_search(report)
    print(f"kept float: {', '.join(report.get('kept_fp32', []))}")
    if "pose" in d:
        from depth_node.evaluate.parity import POSE_MAX_ABS_TOL, POSE_UNITS

        errors = ", ".join(f"{k} {v['max_abs']:.3g} {POSE_UNITS[k]}" for k, v in d["pose"].items())
        print(f"drift vs fp32 on {d['frames']} held-out frame pairs (pose, max abs error in the outputs' own units): "
              f"{errors}; verify-engine's pose tolerance is {POSE_MAX_ABS_TOL:g} "
              f"({'within' if d['max_abs'] <= POSE_MAX_ABS_TOL else 'OVER'})")
        return
    print(f"drift vs fp32 on {d['frames']} held-out frames ({d['output']}): abs_rel {d['abs_rel']:.3%}, "
          f"max abs {d['max_abs']:.4g}, mean abs {d['mean_abs']:.4g}")


def run(args: argparse.Namespace) -> int:
    from depth_node.export.quantize import is_quantized, quantized_onnx
    from depth_node.export.tensorrt_engine import training_size_onnx

    if args.frames < 1:
        raise DepthNodeError("--frames must be at least 1")
    if not args.onnx.is_file():
        raise DepthNodeError(f"ONNX file not found: {args.onnx}")
    if is_quantized(args.onnx):
        raise DepthNodeError(f"{args.onnx} is already a Q/DQ (int8) ONNX: quantize its fp32 source instead")
    out = args.output or args.onnx.with_name(args.onnx.stem + ".int8.onnx")
    # a dynamic-size export (several aspects): calibration needs fixed shapes, so int8 is made (and runs) at the
    # model's training size, the first listed (README, "Your camera"); the node feeds other aspects at that size
    source, pinned = training_size_onnx(args.onnx, args.cache_dir)
    if pinned:
        print(f"note: {args.onnx} takes several input sizes; int8 is quantized at its training size "
              f"{pinned[0]}x{pinned[1]} and runs at that size only", file=sys.stderr, flush=True)
    cached = quantized_onnx(source, cache_dir=args.cache_dir,
                            calibration=calibration_frames(source, args.images, args.frames),
                            frames=args.frames, symmetric=not args.asymmetric, analyze=True,
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, out)
    report_file = cached.parent / "quantize.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    print_report(out, report, held_out_drift(source, out))
    if pinned:
        print(f"input size: {pinned[0]}x{pinned[1]} (the training size of a dynamic-size export)")
    return 0
