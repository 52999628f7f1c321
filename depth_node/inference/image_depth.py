"""Depth for image files (`depth-node infer`): each image through `DepthEstimator`, written as .npy (metres for
metric models, else the model's relative units) and a colourised PNG beside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.io.image_files import image_paths, load_rgb


def default_model() -> Path:
    """The package's models/default.pt, or an error that says to pass a model."""
    from depth_node.paths import DEFAULT_MODEL, models_dir

    path = models_dir() / DEFAULT_MODEL
    if not path.is_file():
        raise DepthNodeError(f"no model given and no default model at {path}; pass --model FILE")
    return path


@dataclass
class ImageDepthResult:
    images: int
    metric: bool  # metres (True) or relative units
    output: Path


def depth_for_images(inputs: list[Path], output: Path, model: Path | None = None, backend: str = "auto",
                     precision: str = "auto", device: str = "auto", fx: float | None = None,
                     input_size: bool = False) -> ImageDepthResult:
    """OUTPUT/<stem>.npy and <stem>_depth.png for every image of `inputs` (files or folders). `fx`: the images'
    focal length in pixels (metric models); `input_size`: depth at the image's resolution, else the network's."""
    from PIL import Image
    from tqdm import tqdm

    from depth_node.colormap import colorize
    from depth_node.geometry.camera import Intrinsics
    from depth_node.inference.estimator import DepthEstimator
    from depth_node.inference.factory import create_backend

    if fx is not None and not (np.isfinite(fx) and fx > 0):
        raise DepthNodeError(f"--fx must be a focal length in pixels > 0, got {fx}")
    files = image_paths(inputs)
    names = output_names(files)
    est = DepthEstimator(create_backend(model or default_model(), backend, precision, device))
    output.mkdir(parents=True, exist_ok=True)
    for path, name in tqdm(list(zip(files, names)), desc="depth", unit="img"):
        rgb = load_rgb(path)
        h, w = rgb.shape[:2]
        intr = Intrinsics(fx, fx, w / 2, h / 2, w, h) if fx else None
        res = est.depth(rgb, intr, out_size=(h, w) if input_size else None)
        np.save(output / f"{name}.npy", res.depth)
        Image.fromarray(colorize(res.depth, bgr=False)).save(output / f"{name}_depth.png")
    return ImageDepthResult(len(files), est.metric, output)


def output_names(files: list[Path]) -> list[str]:
    """Each image's output name: its stem, or, where stems repeat (frame 0000000000.png of several drives), its
    path below the inputs' common folder with `__` for `/`, so no result overwrites another."""
    stems = [p.stem for p in files]
    if len(set(stems)) == len(stems):
        return stems
    resolved = [p.resolve() for p in files]
    root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    return ["__".join(p.relative_to(root).with_suffix("").parts) for p in resolved]
