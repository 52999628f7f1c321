"""What the node accepts as a camera frame: the codec's one list (`CAMERA_ENCODINGS`, or a CompressedImage), its
`decode_rgb` and `check_camera_frame` (the same checks without the pixels); here only the short /diagnostics
names of its errors."""

from __future__ import annotations

from depth_node.io.image_codec import CAMERA_ENCODINGS, check_camera_frame, decode_rgb

__all__ = ["CAMERA_ENCODINGS", "check_camera_frame", "decode_rgb", "error_kind"]


def error_kind(text: str) -> str:
    """A short counter name for a codec error, for /diagnostics (errors.image_<kind>)."""
    for key, kind in (("depth encoding", "depth_encoding"), ("could not be decoded", "compressed"),
                      ("CompressedImage format", "compressed"), ("CompressedImage data", "compressed"),
                      ("NaN", "non_finite"), ("zero size", "zero_size"), ("truncated", "truncated"),
                      ("step=", "step"), ("encoding", "encoding")):
        if key in text:
            return kind
    return "invalid"
