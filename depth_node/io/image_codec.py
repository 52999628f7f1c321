"""sensor_msgs/Image pixels ⇄ NumPy, for rosbags and rclpy messages alike (duck-typed on encoding, height, width,
step, data, is_bigendian), with no ROS import.

Decoding is a view onto the message's buffer whenever the layout allows (rgb8, mono8, mono16, 16UC1, 32FC1 in
native byte order): `np.frombuffer` + strides that honour `step` padding, no copy. Channel reordering
(bgr8, rgba8, bgra8) and byte swapping need one copy. Views of immutable buffers (bytes) are read-only: call
`np.array(...)` to own and modify. Every malformed input raises `ImageFormatError` naming the field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_node.errors import DepthNodeError


class ImageFormatError(DepthNodeError):
    """An image message or array that cannot be converted as asked."""


# encoding → (bytes per channel element dtype, channels)
_LAYOUT: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "mono8": ("u1", 1),
    "8UC1": ("u1", 1),
    "mono16": ("u2", 1),
    "16UC1": ("u2", 1),
    "32FC1": ("f4", 1),
}
SUPPORTED_ENCODINGS = tuple(_LAYOUT)


def bytes_per_pixel(encoding: str) -> int:
    dt, ch = _layout(encoding)
    return np.dtype(dt).itemsize * ch


def _layout(encoding: str) -> tuple[str, int]:
    try:
        return _LAYOUT[encoding]
    except (KeyError, TypeError):
        raise ImageFormatError(
            f"unsupported image encoding {encoding!r}; expected one of {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None


def decode_image(msg: Any) -> np.ndarray:
    """Pixels of a sensor_msgs/Image-like object: colour encodings → (H, W, 3) uint8 RGB; mono8 → (H, W) uint8;
    mono16/16UC1 → (H, W) uint16; 32FC1 → (H, W) float32."""
    encoding = getattr(msg, "encoding", None)
    base, channels = _layout(encoding)
    height, width, step = _int_field(msg, "height"), _int_field(msg, "width"), _int_field(msg, "step")
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"image has zero size: height={height}, width={width}; both must be > 0")
    itemsize = np.dtype(base).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageFormatError(
            f"image step={step} is less than width·bytes_per_pixel = {width}·{channels * itemsize} = {row_bytes} "
            f"for encoding {encoding}"
        )
    data = getattr(msg, "data", None)
    if data is None:
        raise ImageFormatError("image has no data field")
    try:
        buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ImageFormatError(f"image data is not a byte buffer ({type(data).__name__}): {exc}") from None
    if buf.dtype != np.uint8:
        raise ImageFormatError(f"image data must be bytes/uint8, got dtype {buf.dtype}")
    if buf.size < step * height:
        raise ImageFormatError(
            f"image data is truncated: {buf.size} bytes, expected step·height = {step}·{height} = {step * height}"
        )
    big = bool(getattr(msg, "is_bigendian", 0))
    dtype = np.dtype(base).newbyteorder(">" if big else "<") if itemsize > 1 else np.dtype(base)
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (step, channels * itemsize, itemsize) if channels > 1 else (step, itemsize)
    arr = np.ndarray(shape, dtype=dtype, buffer=buf, offset=0, strides=strides)
    if itemsize > 1 and not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(arr[..., 2::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    return arr


def _int_field(msg: Any, name: str) -> int:
    value = getattr(msg, name, None)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ImageFormatError(f"image field {name}={value!r} is not an integer") from None


@dataclass(frozen=True)
class EncodedImage:
    """Field values of a sensor_msgs/Image (without header); `data` is a flat uint8 array."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray

    def fill(self, msg: Any, as_bytes: bool = False) -> Any:
        """Set these fields on a message object (rclpy wants bytes for speed: `as_bytes=True`)."""
        msg.height, msg.width, msg.encoding = self.height, self.width, self.encoding
        msg.is_bigendian, msg.step = self.is_bigendian, self.step
        msg.data = self.data.tobytes() if as_bytes else self.data
        return msg


_DTYPES = {"u1": np.uint8, "u2": np.uint16, "f4": np.float32}


def encode_image(array: np.ndarray, encoding: str) -> EncodedImage:
    """An (H, W[, C]) array already in `encoding`'s layout → message fields (little-endian, no row padding).
    Colour input is taken as RGB and reordered for bgr8/bgra8; rgba8/bgra8 get an opaque alpha channel."""
    base, channels = _layout(encoding)
    arr = np.asarray(array)
    want = np.dtype(_DTYPES[base])
    if arr.dtype != want:
        raise ImageFormatError(f"array dtype {arr.dtype} does not match encoding {encoding}: expected {want}")
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageFormatError(f"array shape {arr.shape} is not a non-empty (H, W) or (H, W, C) image")
    if channels == 1:
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim != 2:
            raise ImageFormatError(f"encoding {encoding} needs an (H, W) array, got shape {arr.shape}")
    else:
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ImageFormatError(f"encoding {encoding} needs an (H, W, 3) RGB array, got shape {arr.shape}")
        if encoding == "bgr8":
            arr = arr[..., ::-1]
        elif encoding in ("rgba8", "bgra8"):
            rgb = arr if encoding == "rgba8" else arr[..., ::-1]
            alpha = np.full((*arr.shape[:2], 1), 255, dtype=np.uint8)
            arr = np.concatenate([rgb, alpha], axis=2)
    arr = np.ascontiguousarray(arr, dtype=want.newbyteorder("<"))
    h, w = arr.shape[:2]
    return EncodedImage(h, w, encoding, 0, w * channels * want.itemsize, arr.reshape(-1).view(np.uint8))
