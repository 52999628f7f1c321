"""`depth-node check-fp16 ONNX --images DIR`: is this graph safe in fp16 on these frames? Activation headroom
against fp16's 65504, LayerNorm inputs a decomposed fp16 LayerNorm would overflow on, output ranges (Depth Pro:
canonical inverse depth) and the drift of the fp16-typed graph against fp32, all on the CPU with ONNX Runtime.
Run it before trusting an fp16 TensorRT engine; `verify-engine` then checks the engine itself on the target."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text + ". Exit status: 0 safe, 1 not, 2 on errors.")
    p.add_argument("onnx", type=Path, help="an fp32 ONNX (depth.onnx of `depth-node export`)")
    p.add_argument("--images", type=Path, required=True, help="folder of frames, resized to the network input")
    p.add_argument("--frames", type=int, default=4, help="at most this many frames (evenly spaced, default 4)")
    p.add_argument("--abs-rel-tol", type=float, default=0.01, help="fail above this fp16 drift (default 0.01)")
    p.add_argument("--json", type=Path, help="also write the report here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.commands.verify_engine import load_frames, reference_runner
    from depth_node.export.fp16_check import FP16_MAX, check_fp16

    _, shape = reference_runner(args.onnx)
    inputs = load_frames(args.images, shape, args.frames)
    rep = check_fp16(args.onnx, inputs, args.abs_rel_tol)
    print(f"{args.onnx}: {rep.tensors_checked} float tensors on {rep.frames} frame(s); fp16 max {FP16_MAX:g}")
    print("largest activations (fp32):")
    for p in rep.peaks:
        print(f"  {p.max_abs:12.4g}  {p.op_type:20s} {p.name}")
    if rep.layernorm_risk:
        print(f"{len(rep.layernorm_risk)} LayerNorm/Pow input(s) above 256 (safe in the fused op; overflow if a builder"
              " decomposes LayerNorm in fp16 — keep those layers fp32):")
        for p in rep.layernorm_risk[:8]:
            print(f"  {p.max_abs:12.4g}  {p.name}")
    for k, r in rep.output_range_fp32.items():
        h = rep.output_range_fp16[k]
        print(f"output {k}: fp32 [{r['min']:.4g}, {r['max']:.4g}] (p1 {r['p1']:.4g}, p99 {r['p99']:.4g}); "
              f"fp16 [{h['min']:.4g}, {h['max']:.4g}], non-finite {rep.nonfinite_fp16[k]}")
    for k, d in rep.drift.items():
        print(f"fp16 vs fp32 {k:24s} max abs {d['max_abs']:.4g}  mean abs {d['mean_abs']:.4g}  "
              f"abs_rel {d['abs_rel']:.4%}")
    print("PASS" if rep.passed else "FAIL: " + "; ".join(rep.failures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"onnx": str(args.onnx), **rep.as_dict()}, indent=2))
    return 0 if rep.passed else 1
