"""`depth-node infer --model M IMAGES... -o DIR`: depth for image files, as .npy (metres or relative) and PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.image_files import image_files, load_rgb


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    p.add_argument("--model", type=Path, default=None, help="model file (default: the package's default model)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--fx", type=float, default=None, help="focal length in pixels of the input images (metric models)")
    p.add_argument("--input-size", action="store_true", help="write depth at the input resolution")
    p.set_defaults(func=run)


def list_images(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files += image_files(p)
        elif p.is_file():
            files.append(p)
        else:
            raise DepthNodeError(f"no such image or folder: {p}")
    if not files:
        raise DepthNodeError("no images found (png/jpg/bmp)")
    return files


def default_model() -> Path:
    from depth_node.paths import models_dir

    path = models_dir() / "default.pt"
    if not path.is_file():
        raise DepthNodeError(f"no model given and no default model at {path}; pass --model FILE")
    return path


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from depth_node.colormap import colorize
    from depth_node.geometry.camera import Intrinsics
    from depth_node.inference.estimator import DepthEstimator
    from depth_node.inference.factory import create_backend

    est = DepthEstimator(create_backend(args.model or default_model(), args.backend, args.precision, args.device))
    args.output.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    files = list_images(args.inputs)
    for path in tqdm(files, desc="depth", unit="img"):
        rgb = load_rgb(path)
        h, w = rgb.shape[:2]
        intr = Intrinsics(args.fx, args.fx, w / 2, h / 2, w, h) if args.fx else None
        res = est.depth(rgb, intr, out_size=(h, w) if args.input_size else None)
        np.save(args.output / f"{path.stem}.npy", res.depth)
        Image.fromarray(colorize(res.depth, bgr=False)).save(args.output / f"{path.stem}_depth.png")
    units = "metres" if est.metric else "relative units"
    print(f"wrote depth ({units}) for {len(files)} images to {args.output}")
    return 0
