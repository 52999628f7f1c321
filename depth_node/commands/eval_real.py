"""`depth-node eval-real --model FILE --json PATH [--html PATH]`: a model on every real set with depth GT."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_node.errors import DepthNodeError

DESCRIPTION = """\
Scores a model on the real frames with depth ground truth in ../shared/realdata (KITTI raw with LiDAR, KITTI
annotated depth, TRI DGP cameras with LiDAR, TUM fr3 and NYU indoor frames), each with its own intrinsics,
metric and median-scaled. The JSON holds per dataset abs_rel, a1, scaling (metric/median) and the frame
count (plus the other Monodepth2 metrics and group rows: driving, indoor). EVALUATION ONLY: never train on
these frames and never choose render or training settings by their scores."""


def register(sub, name: str, help_text: str) -> None:
    from depth_node.evaluate.real_data import LOADERS

    p = sub.add_parser(name, help=help_text, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model file (.pt) or exported depth.onnx")
    p.add_argument("--json", type=Path, required=True, help="write the table here")
    p.add_argument("--html", type=Path, default=None, help="HTML page with sample panels (image | pred | GT)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="the realdata folder (default: $DEPTH_NODE_REALDATA, $DEPTH_NODE_SHARED/realdata, "
                        "../shared/realdata)")
    p.add_argument("--sets", nargs="+", choices=list(LOADERS), default=None, help="only these sets")
    p.add_argument("--limit", type=int, default=0, help="first N frames of each set (0 = all)")
    p.add_argument("--samples", type=int, default=1, help="HTML panels per set")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.evaluate.real_data import EvalRealOptions, eval_real, format_table

    if args.limit < 0:
        raise DepthNodeError(f"--limit must be ≥ 0 (0 = every frame), got {args.limit}")
    result = eval_real(EvalRealOptions(args.model, args.json, args.html, args.data_root, args.sets, args.limit,
                                       args.samples, args.backend, args.precision, args.device))
    print(format_table(result))
    return 0
