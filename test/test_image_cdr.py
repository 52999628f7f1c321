"""The node's CDR reader of sensor_msgs/Image against rclpy's own serializer: every field, every alignment
case (frame ids and encodings of all lengths mod 4, empty data), and None (→ rclpy's deserializer) for bytes
it does not recognise."""

from __future__ import annotations

import numpy as np
import pytest
import ros_helpers as H

pytestmark = pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")


def _image(frame_id: str, encoding: str, h: int, w: int, step: int, big: int = 0, sec: int = 1_700_000_123,
           nanosec: int = 987_654_321):
    from sensor_msgs.msg import Image

    m = Image()
    m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id = sec, nanosec, frame_id
    m.height, m.width, m.encoding, m.is_bigendian, m.step = h, w, encoding, big, step
    m.data = np.random.default_rng(h * w + len(frame_id)).integers(0, 256, step * h, dtype=np.uint8).tobytes()
    return m


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera", "camera_optical_frame", "kamera_ü"])
@pytest.mark.parametrize("encoding,h,w,step,big", [("rgb8", 3, 5, 16, 0), ("bgra8", 2, 3, 12, 0),
                                                   ("mono8", 1, 1, 1, 0), ("16UC1", 2, 2, 4, 1),
                                                   ("rgb8", 0, 0, 0, 0)])
def test_fields_and_pixels_match_rclpys_deserializer(frame_id, encoding, h, w, step, big) -> None:
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from depth_node.io.image_cdr import parse_image

    m = _image(frame_id, encoding, h, w, step, big, sec=-5 if big else 1_700_000_123)
    raw = serialize_message(m)
    got = parse_image(raw, Header)
    ref = deserialize_message(raw, Image)
    assert got is not None
    assert got.header == ref.header and type(got.header) is type(ref.header)
    assert (got.height, got.width, got.encoding, got.is_bigendian, got.step) == \
        (ref.height, ref.width, ref.encoding, ref.is_bigendian, ref.step)
    assert bytes(got.data) == bytes(ref.data)


def test_what_it_does_not_recognise_is_left_to_rclpy() -> None:
    from functools import partial

    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from depth_node.io import image_cdr

    parse_image = partial(image_cdr.parse_image, header_type=Header)
    raw = serialize_message(_image("cam", "rgb8", 4, 4, 12))
    assert parse_image(raw[:3]) is None  # too short for the encapsulation
    assert parse_image(b"\x00\x07" + raw[2:]) is None  # XCDR2: another layout
    assert parse_image(raw[:40]) is None  # data length beyond the bytes
    broken = bytearray(raw)
    broken[12:16] = (10**6).to_bytes(4, "little")  # frame_id length beyond the bytes
    assert parse_image(bytes(broken)) is None


def test_the_pixels_are_decoded_like_a_regular_message() -> None:
    """The codec reads the parsed frame as it reads rclpy's message (zero-copy view of the received bytes)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from depth_node.io.image_cdr import parse_image
    from depth_node.io.image_codec import decode_image

    raw = serialize_message(_image("cam", "bgr8", 6, 5, 16))
    np.testing.assert_array_equal(decode_image(parse_image(raw, Header)),
                                  decode_image(deserialize_message(raw, Image)))
