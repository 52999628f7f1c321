"""sensor_msgs/Image pixels ⇄ NumPy: every encoding, row padding, byte order, rosbags and rclpy messages, errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from depth_node.errors import DepthNodeError
from depth_node.io.image_codec import ImageFormatError, decode_image, encode_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def msg(encoding, height, width, step, data, big=0):
    return SimpleNamespace(encoding=encoding, height=height, width=width, step=step, data=data, is_bigendian=big)


@pytest.mark.parametrize(
    "encoding, array",
    [
        ("rgb8", RGB),
        ("bgr8", RGB),
        ("rgba8", RGB),
        ("bgra8", RGB),
        ("mono8", RNG.integers(0, 256, (4, 9), dtype=np.uint8)),
        ("mono16", RNG.integers(0, 65536, (4, 9), dtype=np.uint16)),
        ("16UC1", RNG.integers(0, 65536, (4, 9), dtype=np.uint16)),
        ("32FC1", RNG.normal(size=(4, 9)).astype(np.float32)),
    ],
)
def test_round_trip(encoding, array):
    enc = encode_image(array, encoding)
    assert enc.step * enc.height == enc.data.size and enc.data.dtype == np.uint8
    out = decode_image(msg(enc.encoding, enc.height, enc.width, enc.step, enc.data.tobytes()))
    np.testing.assert_array_equal(out, array)
    assert out.dtype == array.dtype


def test_channel_order_on_the_wire():
    px = np.array([[[10, 20, 30]]], dtype=np.uint8)
    assert list(encode_image(px, "bgr8").data) == [30, 20, 10]
    assert list(encode_image(px, "rgba8").data) == [10, 20, 30, 255]
    assert list(encode_image(px, "bgra8").data) == [30, 20, 10, 255]
    out = decode_image(msg("bgra8", 1, 1, 4, bytes([30, 20, 10, 0])))
    assert out.tolist() == [[[10, 20, 30]]]


def test_step_padding_is_honoured_without_copy():
    h, w, pad = 3, 4, 5
    rows = [bytes(RGB[i, :w].reshape(-1)) + b"\xee" * pad for i in range(h)]
    data = b"".join(rows)
    out = decode_image(msg("rgb8", h, w, w * 3 + pad, data))
    np.testing.assert_array_equal(out, RGB[:h, :w])
    assert not out.flags.owndata  # a strided view of the buffer
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = b"".join(depth[i].tobytes() + b"\0" * 8 for i in range(3))
    np.testing.assert_array_equal(decode_image(msg("32FC1", 3, 4, 24, data)), depth)


def test_big_endian_payloads():
    a = np.array([[1, 256, 65535]], dtype=np.uint16)
    out = decode_image(msg("mono16", 1, 3, 6, a.astype(">u2").tobytes(), big=1))
    np.testing.assert_array_equal(out, a)
    assert out.dtype == np.uint16 and out.dtype.isnative
    f = np.array([[1.5, -2.0, np.nan]], dtype=np.float32)
    out = decode_image(msg("32FC1", 1, 3, 12, f.astype(">f4").tobytes(), big=1))
    np.testing.assert_array_equal(out, f)


def test_works_with_rosbags_and_rclpy_messages():
    from depth_node.io.bags import header, typestore

    enc = encode_image(RGB, "rgb8")
    Image = typestore().types["sensor_msgs/msg/Image"]
    m = Image(header=header(0, "cam"), height=enc.height, width=enc.width, encoding="rgb8", is_bigendian=0,
              step=enc.step, data=enc.data)
    np.testing.assert_array_equal(decode_image(m), RGB)
    raw = typestore().serialize_cdr(m, "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(decode_image(typestore().deserialize_cdr(raw, "sensor_msgs/msg/Image")), RGB)
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    r = enc.fill(sensor_msgs.Image(), as_bytes=True)
    assert type(r.data).__name__ == "array"  # rclpy stores uint8[] as array.array
    np.testing.assert_array_equal(decode_image(r), RGB)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (msg("yuv422", 2, 2, 4, bytes(8)), "unsupported image encoding 'yuv422'"),
        (msg(None, 2, 2, 4, bytes(8)), "unsupported image encoding None"),
        (msg("rgb8", 0, 2, 6, b""), "zero size"),
        (msg("mono8", 2, 0, 0, b""), "zero size"),
        (msg("rgb8", 2, 4, 10, bytes(24)), "step=10 is less than width·bytes_per_pixel = 4·3 = 12"),
        (msg("32FC1", 2, 2, 8, bytes(12)), "truncated: 12 bytes, expected step·height = 8·2 = 16"),
        (msg("mono8", 2, 2, 2, None), "no data"),
        (msg("mono8", "x", 2, 2, bytes(4)), "height='x' is not an integer"),
        (msg("mono8", 2, 2, 2, np.zeros(4, dtype=np.float32)), "must be bytes/uint8"),
    ],
)
def test_bad_messages_raise_clear_errors(bad, fragment):
    with pytest.raises(ImageFormatError, match=fragment.replace("(", r"\(")) as info:
        decode_image(bad)
    assert isinstance(info.value, DepthNodeError)


@pytest.mark.parametrize(
    "array, encoding, fragment",
    [
        (RGB.astype(np.float32), "rgb8", "dtype float32 does not match encoding rgb8: expected uint8"),
        (np.zeros((2, 2), np.float64), "32FC1", "dtype float64 does not match encoding 32FC1: expected float32"),
        (np.zeros((2, 2), np.uint8), "rgb8", r"needs an \(H, W, 3\) RGB array"),
        (np.zeros((2, 2, 3), np.uint16), "mono16", r"needs an \(H, W\) array"),
        (np.zeros((0, 2), np.uint8), "mono8", "non-empty"),
        (np.zeros((2, 2), np.uint8), "jpeg", "unsupported image encoding"),
    ],
)
def test_bad_arrays_raise_clear_errors(array, encoding, fragment):
    with pytest.raises(ImageFormatError, match=fragment):
        encode_image(array, encoding)
