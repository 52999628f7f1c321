"""What the node accepts as a camera frame: image messages (duck-typed sensor_msgs/Image) → RGB arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_node.io.image_codec import ImageFormatError, decode_image

INPUT_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1")


def decode_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image → (H, W, 3) uint8 RGB via the project's codec; anything else is an ImageFormatError
    whose message says what was wrong (a depth or float image on the camera topic is the common mistake)."""
    img = decode_image(msg)
    if msg.encoding not in INPUT_ENCODINGS:
        extra = ""
        if img.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(img)))
            if bad:
                extra = f", and it holds {bad} NaN/Inf pixels"
        raise ImageFormatError(
            f"image encoding {msg.encoding} is not a camera image{extra}; the node needs one of "
            f"{', '.join(INPUT_ENCODINGS)} (is a depth topic remapped to image?)"
        )
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def error_kind(text: str) -> str:
    """A short counter name for a codec error, for /diagnostics (errors.image_<kind>)."""
    for key, kind in (("NaN", "non_finite"), ("zero size", "zero_size"), ("truncated", "truncated"),
                      ("step=", "step"), ("encoding", "encoding")):
        if key in text:
            return kind
    return "invalid"
