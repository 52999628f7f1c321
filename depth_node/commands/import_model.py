"""`depth-node import monodepth2 DIR -o model.pt` / `depth-node import depth-pro depth_pro.pt -o metric.pt`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("kind", choices=["monodepth2", "depth-pro"], help="checkpoint family")
    p.add_argument("source", type=Path, help="monodepth2: the model folder; depth-pro: the .pt file")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.pt)")
    p.add_argument(
        "--stereo-baseline",
        type=float,
        default=None,
        help="monodepth2 stereo/mono+stereo models: the rig baseline in metres (default KITTI's 0.54)",
    )
    p.add_argument(
        "--stereo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override encoder.pth's use_stereo flag (trained with stereo pairs → metric depth)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.checkpoints.model_file import save_model

    if args.kind == "monodepth2":
        from depth_node.checkpoints.monodepth2 import import_monodepth2

        model = import_monodepth2(args.source, baseline_m=args.stereo_baseline, stereo=args.stereo)
    else:
        from depth_node.checkpoints.depth_pro import import_depth_pro

        model = import_depth_pro(args.source)
    save_model(args.output, model)
    extras = f", pose net: {'yes' if model.has_pose else 'no'}"
    scale = model.meta.get("scale", {})
    print(
        f"wrote {args.output}: {model.arch} {model.config}, input {model.width}x{model.height}{extras}, "
        f"depth scale {scale.get('kind')} (×{scale.get('factor', 1.0):g})"
    )
    return 0
