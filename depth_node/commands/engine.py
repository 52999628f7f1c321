"""`depth-node build-engine ONNX`: a TensorRT engine (fp16 by default; int8 from a Q/DQ ONNX, quantizing first
when given an fp32 one) for this GPU and TensorRT version. Engines are not portable: build on the target."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from depth_node.errors import DepthNodeError


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
    from depth_node.export.quantize import is_quantized, quantized_onnx
    from depth_node.export.tensorrt_engine import build_engine, load_engine, write_engine

    if not args.onnx.is_file():
        raise DepthNodeError(f"ONNX file not found: {args.onnx}")
    if args.workspace_mb < 64:
        raise DepthNodeError("--workspace-mb below 64 leaves TensorRT no room for tactics")
    source = args.onnx
    if args.precision == "int8" and not is_quantized(source):
        source = quantized_onnx(source, cache_dir=args.cache_dir, calibration=args.images)
        print(f"quantized {args.onnx} → {source}")
    elif args.images is not None:
        print("note: --images only matters for int8 from an fp32 ONNX; ignored")
    out = args.output or args.onnx.with_name(f"{args.onnx.stem}.{args.precision}.engine")
    started = time.perf_counter()
    write_engine(build_engine(source, args.precision, args.workspace_mb, args.cache_dir), out)
    engine = load_engine(out).engine  # proves the file loads here before anyone deploys it
    io = ", ".join(
        f"{engine.get_tensor_name(i)} {tuple(engine.get_tensor_shape(engine.get_tensor_name(i)))}"
        for i in range(engine.num_io_tensors)
    )
    print(f"{out}: {args.precision} engine, {out.stat().st_size / 1e6:.1f} MB, built in "
          f"{time.perf_counter() - started:.0f} s; tensors: {io}")
    return 0
