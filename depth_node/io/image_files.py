"""Image files on disk (frame folders for inference, evaluation, calibration and training): one list of the
formats we read and one loader, so every command accepts the same folders and fails the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.io.image_codec import to_uint8

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
    """HxWx3 uint8 RGB of any image file PIL reads. 16-bit greyscale (mono16 cameras) is scaled to 8 bits as the
    node scales a mono16 message (`io.image_codec.to_uint8`): PIL's own conversion clips it, which turns most
    frames white. Floating-point images (depth maps) are refused."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode == "F":
                raise ImageFileError(f"{path} holds floating-point pixels (a depth map?), not a camera image")
            if im.mode.startswith("I"):  # I;16, I;16B, I: integer greyscale
                grey = np.asarray(im)
                if grey.min() < 0 or grey.max() > 65535:
                    raise ImageFileError(f"{path} holds 32-bit integer pixels, not a camera image")
                return np.repeat(to_uint8(grey.astype(np.uint16))[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"))
    except ImageFileError:
        raise
    except Exception as exc:
        raise ImageFileError(f"cannot read image {path}: {exc}") from exc
