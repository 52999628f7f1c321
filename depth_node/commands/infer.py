"""`depth-node infer --model M IMAGES... -o DIR`: depth for image files, as .npy (metres or relative) and PNG
(library: `inference/image_depth.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    p.add_argument("--model", type=Path, default=None, help="model file (default: the package's default model)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output folder: <name>.npy (depth) and <name>_depth.png per image")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--fx", type=float, default=None, help="focal length in pixels of the input images (metric models)")
    p.add_argument("--input-size", action="store_true", help="write depth at the input resolution")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.inference.image_depth import depth_for_images

    res = depth_for_images(args.inputs, args.output, args.model, args.backend, args.precision, args.device, args.fx,
                           args.input_size)
    units = "metres" if res.metric else "relative units"
    print(f"wrote depth ({units}) for {res.images} images to {res.output}")
    return 0
