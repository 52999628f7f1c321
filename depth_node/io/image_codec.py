"""sensor_msgs/Image and CompressedImage pixels ⇄ NumPy, for rosbags and rclpy messages alike (duck-typed on
encoding, height, width, step, data, is_bigendian; CompressedImage on format, data), with no ROS import.

Camera input (`decode_rgb`): every encoding in CAMERA_ENCODINGS becomes (H, W, 3) uint8 RGB: 8-bit colour
reordered, mono replicated, 16-bit scaled by 255/65535 (as cv_bridge does), Bayer mosaics demosaiced and
YUV 4:2:2 converted with OpenCV (BT.601, video range, as cv_bridge). Anything else is one ImageFormatError that
lists CAMERA_ENCODINGS. CompressedImage (JPEG, PNG) is decoded with OpenCV (`decode_compressed`).

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
    "rgb16": ("u2", 3),
    "bgr16": ("u2", 3),
    "bayer_rggb8": ("u1", 1),
    "bayer_bggr8": ("u1", 1),
    "bayer_gbrg8": ("u1", 1),
    "bayer_grbg8": ("u1", 1),
    "yuv422": ("u1", 2),  # sensor_msgs image_encodings: UYVY (U Y0 V Y1)
    "yuv422_yuy2": ("u1", 2),  # YUYV (Y0 U Y1 V)
}
SUPPORTED_ENCODINGS = tuple(_LAYOUT)
# What a camera topic may carry: the one list the node, its errors and the README use.
CAMERA_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16", "rgb16", "bgr16", "bayer_rggb8",
                    "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "yuv422", "yuv422_yuy2")
COMPRESSED_FORMATS = ("jpeg", "png")


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
    height, width, step, buf = _image_buffer(msg, channels * np.dtype(base).itemsize)
    itemsize = np.dtype(base).itemsize
    big = bool(getattr(msg, "is_bigendian", 0))
    dtype = np.dtype(base).newbyteorder(">" if big else "<") if itemsize > 1 else np.dtype(base)
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (step, channels * itemsize, itemsize) if channels > 1 else (step, itemsize)
    arr = np.ndarray(shape, dtype=dtype, buffer=buf, offset=0, strides=strides)
    if itemsize > 1 and not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    if encoding in ("bgr8", "bgra8", "bgr16"):
        return np.ascontiguousarray(arr[..., 2::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    return arr


def _image_buffer(msg: Any, pixel_bytes: int) -> tuple[int, int, int, np.ndarray]:
    """(height, width, step, bytes) of a sensor_msgs/Image-like object, its size fields checked against each
    other and against the data before any pixel is read."""
    height, width, step = _int_field(msg, "height"), _int_field(msg, "width"), _int_field(msg, "step")
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"image has zero size: height={height}, width={width}; both must be > 0")
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ImageFormatError(
            f"image step={step} is less than width·bytes_per_pixel = {width}·{pixel_bytes} = {row_bytes} "
            f"for encoding {getattr(msg, 'encoding', None)}"
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
    return height, width, step, buf


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
    Colour input is taken as RGB and reordered for bgr8/bgra8/bgr16; rgba8/bgra8 get an opaque alpha channel;
    Bayer takes the (H, W) mosaic, yuv422/yuv422_yuy2 the (H, W, 2) packed bytes."""
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
        if arr.ndim != 3 or arr.shape[2] != min(channels, 3):
            want_shape = "(H, W, 2) packed YUV 4:2:2" if channels == 2 else "(H, W, 3) RGB"
            raise ImageFormatError(f"encoding {encoding} needs an {want_shape} array, got shape {arr.shape}")
        if encoding in ("bgr8", "bgr16"):
            arr = arr[..., ::-1]
        elif encoding in ("rgba8", "bgra8"):
            rgb = arr if encoding == "rgba8" else arr[..., ::-1]
            alpha = np.full((*arr.shape[:2], 1), 255, dtype=np.uint8)
            arr = np.concatenate([rgb, alpha], axis=2)
    arr = np.ascontiguousarray(arr, dtype=want.newbyteorder("<"))
    h, w = arr.shape[:2]
    return EncodedImage(h, w, encoding, 0, w * channels * want.itemsize, arr.reshape(-1).view(np.uint8))


# ------------------------------------------------------------------------------------------ camera input → RGB
# OpenCV names a Bayer pattern by its second row's 2nd/3rd pixels, hence the apparent swap (as in cv_bridge).
_BAYER_TO_RGB = {"bayer_rggb8": "COLOR_BayerBG2RGB", "bayer_bggr8": "COLOR_BayerRG2RGB",
                 "bayer_gbrg8": "COLOR_BayerGR2RGB", "bayer_grbg8": "COLOR_BayerGB2RGB"}
_YUV_TO_RGB = {"yuv422": "COLOR_YUV2RGB_UYVY", "yuv422_yuy2": "COLOR_YUV2RGB_YUYV"}


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ImageFormatError(f"OpenCV is needed for this image ({exc}); pip install opencv-python-headless "
                               "(or apt install python3-opencv)") from None
    return cv2


opencv = _cv2  # for the other modules that need OpenCV with the same actionable ImportError


def unsupported_encoding(encoding: Any) -> ImageFormatError:
    """The one error for a camera image in an encoding the node does not take."""
    hint = ""
    if encoding in ("32FC1", "16UC1"):
        hint = " (that is a depth encoding: is a depth topic remapped to image?)"
    return ImageFormatError(f"unsupported camera image encoding {encoding!r}{hint}; accepted: "
                            f"{', '.join(CAMERA_ENCODINGS)}, or sensor_msgs/CompressedImage "
                            f"({', '.join(COMPRESSED_FORMATS)})")


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit → 8-bit by 255/65535 (full-range, rounded), as cv_bridge converts mono16 to mono8."""
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def decode_rgb(msg: Any) -> np.ndarray:
    """A camera frame as (H, W, 3) uint8 RGB: a sensor_msgs/Image in any CAMERA_ENCODINGS, or a
    sensor_msgs/CompressedImage (told apart by its `format` field)."""
    if _is_compressed(msg):
        return decode_compressed(msg.format, msg.data)
    encoding = _camera_encoding(msg)
    arr = decode_image(msg)
    if arr.dtype == np.uint16:
        arr = to_uint8(arr)
    _check_chroma_size(encoding, arr.shape[0], arr.shape[1])
    if encoding in _BAYER_TO_RGB:
        return _cv2().cvtColor(np.ascontiguousarray(arr), getattr(_cv2(), _BAYER_TO_RGB[encoding]))
    if encoding in _YUV_TO_RGB:
        return _cv2().cvtColor(np.ascontiguousarray(arr), getattr(_cv2(), _YUV_TO_RGB[encoding]))
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    return arr


def check_camera_frame(msg: Any) -> None:
    """Raise the ImageFormatError `decode_rgb` would raise for a frame whose fields make it unreadable
    (encoding, size, step, data length; a compressed frame's format and magic bytes), without reading a pixel:
    microseconds, so a receiver can refuse such a frame as it arrives. (A compressed frame whose data is corrupt
    past its first bytes is found only when decoded.)"""
    if _is_compressed(msg):
        _compressed_kind(msg.format, _compressed_bytes(msg.data)[:8].tobytes())
        return
    encoding = _camera_encoding(msg)
    base, channels = _layout(encoding)
    height, width, _, _ = _image_buffer(msg, channels * np.dtype(base).itemsize)
    _check_chroma_size(encoding, height, width)


def _is_compressed(msg: Any) -> bool:
    return not hasattr(msg, "encoding") and hasattr(msg, "format")


def _camera_encoding(msg: Any) -> str:
    encoding = getattr(msg, "encoding", None)
    if encoding not in CAMERA_ENCODINGS:
        raise unsupported_encoding(encoding)
    return encoding


def _check_chroma_size(encoding: str, height: int, width: int) -> None:
    """Bayer mosaics need an even width and height, YUV 4:2:2 an even width (2-pixel macro-pixels)."""
    if encoding in _BAYER_TO_RGB or encoding in _YUV_TO_RGB:
        if height < 2 or width < 2 or width % 2 or (encoding in _BAYER_TO_RGB and height % 2):
            raise ImageFormatError(f"{encoding} image of {width}×{height}: {encoding} needs an even width"
                                   f"{' and height' if encoding in _BAYER_TO_RGB else ''} of at least 2")


# ------------------------------------------------------------------------------------------ CompressedImage
def _compressed_kind(fmt: str, data: bytes) -> str:
    """'jpeg' or 'png' from the format field ('jpeg', 'png', or image_transport's 'bgr8; jpeg compressed bgr8'),
    checked against the data's magic bytes (some drivers leave `format` empty)."""
    text = (fmt or "").lower()
    if "compresseddepth" in text:
        raise ImageFormatError(f"CompressedImage format {fmt!r} is a compressed depth image, not a camera frame; "
                               f"accepted formats: {', '.join(COMPRESSED_FORMATS)}")
    magic = "jpeg" if data[:3] == b"\xff\xd8\xff" else "png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ""
    named = next((k for k, words in (("jpeg", ("jpeg", "jpg")), ("png", ("png",))) if any(w in text for w in words)),
                 "")
    if not magic:
        raise ImageFormatError(f"CompressedImage format {fmt!r} with data that is neither JPEG nor PNG; accepted "
                               f"formats: {', '.join(COMPRESSED_FORMATS)}")
    if named and named != magic:
        raise ImageFormatError(f"CompressedImage format says {named} but the data is {magic}")
    return magic


def _compressed_bytes(data: Any) -> np.ndarray:
    try:
        buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ImageFormatError(f"CompressedImage data is not a byte buffer ({type(data).__name__}): {exc}") from None
    if buf.dtype != np.uint8 or buf.size == 0:
        raise ImageFormatError(f"CompressedImage data must be non-empty bytes, got {buf.size} of dtype {buf.dtype}")
    return buf


def decode_compressed(fmt: str, data: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (format, data) → (H, W, 3) uint8 RGB. 16-bit PNGs are scaled to 8 bits,
    grey images replicated, alpha dropped."""
    buf = _compressed_bytes(data)
    kind = _compressed_kind(fmt, buf[:8].tobytes())
    cv2 = _cv2()
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageFormatError(f"CompressedImage ({kind}, {buf.size} bytes) could not be decoded: corrupt or "
                               "truncated data")
    if img.dtype == np.uint16:
        img = to_uint8(img)
    elif img.dtype != np.uint8:
        raise ImageFormatError(f"CompressedImage ({kind}) decodes to {img.dtype} pixels; need 8- or 16-bit")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    code = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(img.shape[2])
    if code is None:
        raise ImageFormatError(f"CompressedImage ({kind}) has {img.shape[2]} channels; need 1, 3 or 4")
    return cv2.cvtColor(img, code)


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """(H, W, 3) uint8 RGB → (format field, data) of a sensor_msgs/CompressedImage ('jpeg' or 'png')."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageFormatError(f"encode_compressed needs a non-empty (H, W, 3) uint8 RGB array, got {arr.dtype} "
                               f"{arr.shape}")
    if fmt not in COMPRESSED_FORMATS:
        raise ImageFormatError(f"compressed format {fmt!r}; use one of {', '.join(COMPRESSED_FORMATS)}")
    cv2 = _cv2()
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageFormatError(f"OpenCV could not encode a {arr.shape} image as {fmt}")
    return fmt, buf.tobytes()
