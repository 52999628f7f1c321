"""`depth-node check-fp16 ONNX --images DIR`: is this graph safe in fp16 on these frames? Activation headroom
against fp16's 65504, LayerNorm inputs a decomposed fp16 LayerNorm would overflow on, output ranges (Depth Pro:
canonical inverse depth) and the drift of the fp16-typed graph against fp32, all on the CPU with ONNX Runtime.
Run it before trusting an fp16 TensorRT engine; `verify-engine` then checks the engine itself on the target.
A dynamic-size export is checked at its training size (the first size it lists), as the output says.
(library: `evaluate/fp16_check.py`)"""

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
    from depth_node.evaluate.fp16_check import check_fp16_on_images
    from depth_node.export.tensorrt_engine import training_size_onnx

    # a dynamic-size export (several aspects) is checked at its training size, the first it lists (the check's
    # instrumented graph needs fixed shapes); said in the output and the JSON
    source, pinned = training_size_onnx(args.onnx)
    rep = check_fp16_on_images(source, args.images, args.frames, args.abs_rel_tol)
    print(f"{args.onnx}: " + "\n".join(rep.lines()))
    if pinned:
        print(f"note: a dynamic-size export, checked at its training size {pinned[0]}x{pinned[1]} only "
              "(`verify-engine` checks an fp16 engine at every listed size)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        size = list(pinned) if pinned else None
        args.json.write_text(json.dumps({"onnx": str(args.onnx), "checked_size": size, **rep.as_dict()}, indent=2))
    return 0 if rep.passed else 1
