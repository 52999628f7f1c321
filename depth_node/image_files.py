"""Image files on disk (frame folders for inference, evaluation, calibration and training): one list of the
formats we read and one loader, so every command accepts the same folders and fails the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


class ImageFileError(DepthNodeError):
    """An image file that cannot be decoded."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path) -> list[Path]:
    """The folder's images, sorted by name (frame order for numbered files)."""
    return sorted(p for p in Path(folder).iterdir() if is_image(p))


def image_paths(inputs: list[Path]) -> list[Path]:
    """Image files and folders of images (a command line's inputs) → the image files, folders expanded in order."""
    files: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += image_files(p)
        elif p.is_file():
            files.append(p)
        else:
            raise DepthNodeError(f"no such image or folder: {p}")
    if not files:
        raise DepthNodeError("no images found (png/jpg/bmp)")
    return files


def load_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB of any image file PIL reads."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise ImageFileError(f"cannot read image {path}: {exc}") from exc
