"""`depth-node build-engine ONNX`: a TensorRT engine (fp16 by default; int8 from a Q/DQ ONNX, quantizing first
when given an fp32 one) for this GPU and TensorRT version. Engines are not portable: build on the target.
TensorRT is checked for first (a missing package is said at once, not after quantizing); int8 from a dynamic-size
export is built at the model's training size. (library: `export/tensorrt_engine.build_engine_file`)"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text + ". Needs the tensorrt package and an NVIDIA GPU.")
    p.add_argument("onnx", type=Path, help="ONNX from `depth-node export` (or a Q/DQ one from `depth-node quantize`)")
    p.add_argument("-o", "--output", type=Path, help="engine file (default: <onnx>.<precision>.engine beside it)")
    p.add_argument("--precision", choices=("fp16", "fp32", "int8"), default="fp16")
    p.add_argument("--workspace-mb", type=int, default=2048, help="builder workspace limit in MiB (default 2048)")
    p.add_argument("--images", type=Path, help="int8 from an fp32 ONNX: calibration images (default: built-in)")
    p.add_argument("--cache-dir", type=Path, help="cache for the int8/fp16 ONNX made on the way")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.export.tensorrt_engine import build_engine_file

    res = build_engine_file(args.onnx, args.output, args.precision, args.workspace_mb, args.images, args.cache_dir)
    if res.quantized:
        print(f"quantized {args.onnx} → {res.source}")
    if res.pinned:
        h, w = res.pinned
        print(f"note: {args.onnx} takes several input sizes; int8 is quantized and built at its training size "
              f"{h}x{w} only (the node feeds other aspects at that size); fp16/fp32 engines keep every listed size")
    elif args.images is not None:
        print("note: --images only matters for int8 from an fp32 ONNX; ignored")
    tensors = ", ".join(f"{name} {shape}" for name, shape in res.tensors)
    print(f"{res.path}: {res.precision} engine, {res.path.stat().st_size / 1e6:.1f} MB, built in {res.build_s:.0f} s; "
          f"tensors: {tensors}")
    return 0
