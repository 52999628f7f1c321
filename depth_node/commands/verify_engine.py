"""`depth-node verify-engine CANDIDATE ONNX --images DIR`: run a candidate and its fp32 ONNX (ONNX Runtime, CPU)
on the same frames and fail (exit 1) when they drift apart beyond the tolerances.

The candidate is whatever will be deployed: a TensorRT engine (.engine/.plan), another ONNX run by ONNX Runtime
(e.g. the int8 Q/DQ one), or `openvino:PATH` (an ONNX run by OpenVINO). One check for every fast path, so the
logic is exercised on CPU-only CI even though engines need a GPU."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Exit status: 0 within tolerance, 1 beyond it, 2 on errors.",
    )
    p.add_argument("candidate", help="ENGINE (.engine/.plan), another .onnx, or openvino:PATH.onnx")
    p.add_argument("onnx", type=Path, help="the fp32 ONNX it was made from (the reference)")
    p.add_argument("--images", type=Path, required=True, help="folder of frames, resized to the network input")
    p.add_argument("--frames", type=int, default=8, help="at most this many frames (evenly spaced, default 8)")
    p.add_argument("--max-abs-tol", type=float, default=None, help="fail above this max abs error (off by default)")
    p.add_argument("--abs-rel-tol", type=float, default=0.01, help="fail above this abs_rel of depth (default 0.01)")
    p.add_argument("--openvino-precision", choices=("fp32", "bf16"), default="fp32",
                   help="inference precision of an openvino: candidate (a Q/DQ ONNX runs int8 either way)")
    p.add_argument("--json", type=Path, help="also write the comparison here")
    p.set_defaults(func=run)


def reference_runner(path: Path) -> tuple[Runner, list[int]]:
    from depth_node.inference.onnxruntime_backend import make_session

    sess = make_session(path, "cpu")
    inp = sess.get_inputs()[0]
    names = [o.name for o in sess.get_outputs()]
    shape = [int(d) if isinstance(d, int) else -1 for d in inp.shape]
    if len(shape) != 4 or min(shape) <= 0:
        raise DepthNodeError(f"{path}: input shape {inp.shape} is not a static [1,C,H,W]")
    return (lambda x: dict(zip(names, sess.run(None, {inp.name: x})))), shape


def candidate_runner(spec: str, openvino_precision: str) -> tuple[Runner, str]:
    """(runner, description) for the candidate named on the command line."""
    from depth_node.inference.base import ModelInfo

    if spec.startswith("openvino:"):
        from depth_node.export.quantize import is_quantized
        from depth_node.inference.openvino_backend import OpenVinoBackend

        path = Path(spec.split(":", 1)[1])
        if not path.is_file():
            raise DepthNodeError(f"candidate ONNX not found: {path}")
        precision = "int8" if is_quantized(path) else openvino_precision
        b = OpenVinoBackend(ModelInfo("?", 0, 0), path, None, precision, "cpu")
        return b.run_depth, f"OpenVINO {precision} on {path}"
    path = Path(spec)
    if not path.is_file():
        raise DepthNodeError(f"candidate not found: {path}")
    if path.suffix in (".engine", ".plan"):
        from depth_node.export.tensorrt_engine import load_engine
        from depth_node.inference.tensorrt_backend import EngineRunner

        return EngineRunner(load_engine(path)), f"TensorRT engine {path}"
    if path.suffix == ".onnx":
        run, _ = reference_runner(path)
        return run, f"ONNX Runtime (CPU) on {path}"
    raise DepthNodeError(f"candidate {spec}: expected .engine/.plan, .onnx, or openvino:PATH")


def load_frames(folder: Path, shape: list[int], n: int) -> list[np.ndarray]:
    from depth_node.export.quantize import folder_frames, network_inputs

    if n < 1:
        raise DepthNodeError("--frames must be at least 1")
    frames = folder_frames(folder, n + 1 if shape[1] == 6 else n)
    if shape[1] == 6 and len(frames) < 2:
        raise DepthNodeError("a pose net needs at least 2 images to make a frame pair")
    return network_inputs(frames, shape)


def compare(candidate: Runner, reference: Runner, inputs: list[np.ndarray]) -> dict:
    from depth_node.evaluate.drift import DriftMeter

    meters: dict[str, DriftMeter] = {}
    for x in inputs:
        ref, got = reference(x), candidate(x)
        missing = [k for k in ref if k not in got]
        if missing:
            raise DepthNodeError(f"the candidate lacks outputs {missing} (it has {sorted(got)})")
        for k, r in ref.items():
            meters.setdefault(k, DriftMeter()).add(got[k], r)
    return {k: m.result().as_dict() for k, m in meters.items()}


def run(args: argparse.Namespace) -> int:
    reference, shape = reference_runner(args.onnx)
    candidate, what = candidate_runner(args.candidate, args.openvino_precision)
    inputs = load_frames(args.images, shape, args.frames)
    outputs = compare(candidate, reference, inputs)
    key = "depth" if "depth" in outputs else next(iter(outputs))  # depth_pro: canonical inverse depth
    main = outputs[key]
    failures = []
    if args.abs_rel_tol is not None and main["abs_rel"] > args.abs_rel_tol:
        failures.append(f"abs_rel {main['abs_rel']:.4%} > {args.abs_rel_tol:.4%}")
    if args.max_abs_tol is not None and main["max_abs"] > args.max_abs_tol:
        failures.append(f"max abs {main['max_abs']:.4g} > {args.max_abs_tol:.4g}")
    print(f"candidate: {what}\nreference: ONNX Runtime (CPU, fp32) on {args.onnx}")
    print(f"frames: {len(inputs)} from {args.images}")
    for k, d in outputs.items():
        print(f"  {k:12s} max abs {d['max_abs']:.4g}  mean abs {d['mean_abs']:.4g}  abs_rel {d['abs_rel']:.4%}")
    verdict = "FAIL: " + "; ".join(failures) if failures else "PASS"
    print(f"{key}: {verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "candidate": args.candidate, "reference": os.fspath(args.onnx), "frames": len(inputs),
            "checked_output": key, "tolerances": {"abs_rel": args.abs_rel_tol, "max_abs": args.max_abs_tol},
            "outputs": outputs, "passed": not failures, "failures": failures,
        }, indent=2))
    return 1 if failures else 0
