"""sensor_msgs/Image pixels ⇄ NumPy: every encoding, row padding, byte order, rosbags and rclpy messages, errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from depth_node.errors import DepthNodeError
from depth_node.io.image_codec import (
    CAMERA_ENCODINGS,
    ImageFormatError,
    decode_compressed,
    decode_image,
    decode_rgb,
    encode_compressed,
    encode_image,
)

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
        (msg("nv21", 2, 2, 4, bytes(8)), "unsupported image encoding 'nv21'"),
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


# ---------------------------------------------------------------------------------- camera encodings → RGB
def _ramps(h: int = 16, w: int = 20) -> np.ndarray:
    """Linear ramps, different per channel (a swapped channel or a shifted Bayer pattern shows as error);
    within 0..255 up to 16 × 20."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([40 + 6 * x, 60 + 3 * x + 3 * y, 200 - 8 * y], -1).astype(np.uint8)


def _as_msg(arr: np.ndarray, encoding: str):
    enc = encode_image(arr, encoding)
    return msg(enc.encoding, enc.height, enc.width, enc.step, enc.data.tobytes())


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_demosaic_against_the_mosaic_of_a_known_image(pattern: str) -> None:
    """The mosaic is built here from the pattern's name (row-major 2×2 cell). Bilinear demosaicing reproduces
    linear ramps exactly away from the border, so the 2-pixel-inset interior must match within 1 level
    (rounding); a wrong pattern mapping misplaces R and B by 100+ levels."""
    rgb = _ramps()
    mosaic = np.zeros(rgb.shape[:2], np.uint8)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    out = decode_rgb(_as_msg(mosaic, f"bayer_{pattern}8"))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    err = np.abs(out.astype(int) - rgb)[2:-2, 2:-2]
    assert err.max() <= 1, err.max()


def _bt601(rgb: np.ndarray) -> np.ndarray:
    """BT.601 video-range Y, Cb, Cr of 8-bit RGB (Rec. 601 with 219/224 levels), rounded to bytes."""
    r, g, b = (rgb[..., i].astype(np.float64) / 255.0 for i in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return np.clip(np.rint(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_against_the_bt601_formula(encoding: str) -> None:
    """Pixel pairs share a colour (so 4:2:2 loses nothing) and differ in brightness. Packed from BT.601 here:
    yuv422 is UYVY (U Y0 V Y1), yuv422_yuy2 is YUYV (Y0 U Y1 V). Rounding Y/Cb/Cr to bytes moves RGB by up to
    ~1.6 levels and the pair's shared chroma is the mean of two colours 12 levels apart in brightness (up to
    ~1 level more), so decoded RGB must be within 3 of the original, 1 on average."""
    rng = np.random.default_rng(3)
    pairs = rng.integers(30, 226, (6, 5, 3))
    rgb = np.repeat(pairs, 2, axis=1).astype(np.uint8)
    rgb[:, 1::2] = np.clip(rgb[:, 1::2].astype(int) + 12, 0, 255)  # second of each pair brighter (own Y)
    ycc = _bt601(rgb)
    cb = np.rint((ycc[:, 0::2, 1].astype(float) + ycc[:, 1::2, 1]) / 2).astype(np.uint8)
    cr = np.rint((ycc[:, 0::2, 2].astype(float) + ycc[:, 1::2, 2]) / 2).astype(np.uint8)
    packed = np.zeros((*rgb.shape[:2], 2), np.uint8)
    y_at, c_at = (1, 0) if encoding == "yuv422" else (0, 1)
    packed[..., y_at] = ycc[..., 0]
    packed[:, 0::2, c_at], packed[:, 1::2, c_at] = cb, cr
    m = msg(encoding, rgb.shape[0], rgb.shape[1], rgb.shape[1] * 2, packed.tobytes())
    out = decode_rgb(m)
    err = np.abs(out.astype(int) - rgb.astype(int))
    assert err.max() <= 3, err.max()
    assert np.mean(err) <= 1.0


@pytest.mark.parametrize("encoding", ["mono16", "rgb16", "bgr16"])
def test_16_bit_is_scaled_to_8_bit(encoding: str) -> None:
    shape = (3, 4) if encoding == "mono16" else (3, 4, 3)
    a = np.random.default_rng(4).integers(0, 65536, shape, dtype=np.uint16)
    a.flat[:2] = [0, 65535]
    expected = np.rint(a / 257.0).astype(np.uint8)  # 255/65535 = 1/257
    if a.ndim == 2:
        expected = np.repeat(expected[..., None], 3, axis=2)
    out = decode_rgb(_as_msg(a, encoding))
    np.testing.assert_array_equal(out, expected)
    if encoding == "bgr16":
        raw = msg("bgr16", 1, 1, 6, np.array([[[65535, 0, 257]]], "<u2").tobytes())
        assert decode_rgb(raw).tolist() == [[[1, 0, 255]]]  # B G R on the wire


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1"])
def test_8_bit_encodings_give_rgb(encoding: str) -> None:
    src = RGB if encoding[0] in "rb" else RGB[..., 0]
    out = decode_rgb(_as_msg(src, encoding))
    want = src if src.ndim == 3 else np.repeat(src[..., None], 3, axis=2)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1", "nv21", "bayer_rggb16", "rgba16", "", None])
def test_one_error_lists_exactly_what_is_accepted(encoding) -> None:
    m = msg(encoding, 2, 2, 8, bytes(16))
    with pytest.raises(ImageFormatError) as info:
        decode_rgb(m)
    text = str(info.value)
    listed = text.split("accepted: ", 1)[1].split(", or sensor_msgs/CompressedImage")[0].split(", ")
    assert tuple(listed) == CAMERA_ENCODINGS
    assert "CompressedImage (jpeg, png)" in text
    if encoding in ("32FC1", "16UC1"):
        assert "depth topic" in text
    assert set(CAMERA_ENCODINGS) >= {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "rgb16", "bgr16",
                                     "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "yuv422",
                                     "yuv422_yuy2"}


def test_every_accepted_encoding_decodes() -> None:
    for encoding in CAMERA_ENCODINGS:
        bpp = {"mono16": 2, "rgb16": 6, "bgr16": 6, "yuv422": 2, "yuv422_yuy2": 2, "rgba8": 4, "bgra8": 4,
               "rgb8": 3, "bgr8": 3}.get(encoding, 1)
        out = decode_rgb(msg(encoding, 4, 6, 6 * bpp, bytes(range(4 * 6 * bpp))))
        assert out.shape == (4, 6, 3) and out.dtype == np.uint8, encoding


def test_odd_sizes_for_packed_encodings_are_one_clear_error() -> None:
    with pytest.raises(ImageFormatError, match="needs an even width"):
        decode_rgb(msg("yuv422", 2, 3, 6, bytes(12)))
    with pytest.raises(ImageFormatError, match="even width and height"):
        decode_rgb(msg("bayer_rggb8", 3, 4, 4, bytes(12)))


# ---------------------------------------------------------------------------------- CompressedImage
def test_png_round_trip_is_exact_and_reads_an_independent_encoder() -> None:
    import io as _io

    from PIL import Image

    rgb = _ramps()
    fmt, data = encode_compressed(rgb, "png")
    assert fmt == "png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(decode_compressed(fmt, data), rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(_io.BytesIO(data)).convert("RGB")), rgb)
    buf = _io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")  # written by PIL, read by OpenCV
    np.testing.assert_array_equal(decode_compressed("png", buf.getvalue()), rgb)
    grey16 = np.random.default_rng(5).integers(0, 65536, (5, 6), dtype=np.uint16)
    buf = _io.BytesIO()
    Image.fromarray(grey16).save(buf, format="PNG")  # 16-bit grey PNG (mono16 image_transport)
    out = decode_compressed("mono16; png compressed mono16", buf.getvalue())
    np.testing.assert_array_equal(out, np.repeat(np.rint(grey16 / 257.0).astype(np.uint8)[..., None], 3, axis=2))


def test_jpeg_decodes_like_an_independent_decoder() -> None:
    """JPEG is lossy: our bytes decoded by PIL (libjpeg) and by us must agree to within 1 level (IDCT rounding),
    and reproduce the smooth source within 3 levels at quality 95."""
    import io as _io

    from PIL import Image

    y, x = np.mgrid[0:32, 0:40]
    rgb = np.stack([40 + 4 * x, 60 + 2 * x + 2 * y, 200 - 4 * y], -1).astype(np.uint8)  # smooth, no wrap
    fmt, data = encode_compressed(rgb, "jpeg", quality=95)
    assert fmt == "jpeg" and data[:3] == b"\xff\xd8\xff"
    ours = decode_compressed(fmt, data)
    theirs = np.asarray(Image.open(_io.BytesIO(data)).convert("RGB"))
    assert np.abs(ours.astype(int) - theirs).max() <= 1
    assert np.abs(ours.astype(int) - rgb).mean() <= 3
    # image_transport's format string, and an empty format (some drivers), decode the same way
    np.testing.assert_array_equal(decode_compressed("rgb8; jpeg compressed bgr8", data), ours)
    np.testing.assert_array_equal(decode_compressed("", data), ours)


@pytest.mark.parametrize("fmt, data, fragment", [
    ("jpeg", b"not an image at all", "neither JPEG nor PNG"),
    ("png", b"\xff\xd8\xff\xe0" + bytes(20), "format says png but the data is jpeg"),
    ("16UC1; compressedDepth png", b"\x89PNG\r\n\x1a\n" + bytes(10), "compressed depth image"),
    ("jpeg", b"\xff\xd8\xff\xe0" + bytes(30), "could not be decoded"),
    ("jpeg", b"", "non-empty"),
])
def test_bad_compressed_images_are_clear_errors(fmt: str, data: bytes, fragment: str) -> None:
    with pytest.raises(ImageFormatError, match=fragment):
        decode_compressed(fmt, data)


def test_decode_rgb_takes_compressed_messages_of_rosbags_and_rclpy() -> None:
    from depth_node.io.bags import header, typestore

    rgb = _ramps()
    fmt, data = encode_compressed(rgb, "png")
    Compressed = typestore().types["sensor_msgs/msg/CompressedImage"]
    m = Compressed(header=header(0, "cam"), format=fmt, data=np.frombuffer(data, np.uint8))
    raw = typestore().serialize_cdr(m, "sensor_msgs/msg/CompressedImage")
    np.testing.assert_array_equal(decode_rgb(typestore().deserialize_cdr(raw, "sensor_msgs/msg/CompressedImage")), rgb)
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    r = sensor_msgs.CompressedImage(format=fmt, data=data)
    np.testing.assert_array_equal(decode_rgb(r), rgb)
