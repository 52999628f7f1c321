"""`transport: compressed` over real ROS 2: the node subscribes `<image>/compressed` (image_transport naming,
after remapping) as sensor_msgs/CompressedImage and publishes depth/image_rect with depth/camera_info beside it
(one grid: same width/height, K as the depth grid's). Garbage JPEG data is one clear error; the node goes on."""

from __future__ import annotations

import time

import numpy as np
import pytest
import ros_helpers as H

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")]

DOMAIN = 65


def _compressed(rgb: np.ndarray, stamp_ns: int, data: bytes | None = None):
    from sensor_msgs.msg import CompressedImage

    from depth_node.io.image_codec import encode_compressed

    m = CompressedImage()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    m.header.frame_id = "camera_optical"
    m.format, payload = encode_compressed(rgb, "jpeg", quality=95)
    m.data = payload if data is None else data
    return m


def test_compressed_transport_subscribes_image_compressed_and_publishes_depth(tmp_path) -> None:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage

    model = H.make_model(tmp_path / "model.pt")
    rgb = np.load(H.render_frames(tmp_path / "f.npz", n=2, width=320, height=96))["rgb"][0]
    ln = H.LiveNode(DOMAIN, {"model": str(model), "backend": "torch", "device": "cpu", "precision": "fp32",
                             "transport": "compressed", "log_throttle": 0.0})
    try:
        assert ln.node.subs[0].topic_name == "/image/compressed"
        pub = ln.peer.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
        ln.subscribe("depth")
        ln.subscribe("info")
        stamp, got = 10**9, None
        end = time.monotonic() + 30
        while got is None and time.monotonic() < end:  # re-send while discovery settles
            stamp += H.STEP_NS
            pub.publish(_compressed(rgb, stamp))
            t1 = time.monotonic() + 2.0
            while got is None and time.monotonic() < t1:
                got = next((m for m in ln.got["depth"] if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                            == stamp), None)
                time.sleep(0.02)
        assert got is not None, "no depth/image_rect for a CompressedImage on image/compressed"
        assert got.encoding == "32FC1" and np.isfinite(np.frombuffer(bytes(got.data), np.float32)).any()
        time.sleep(0.3)
        info = next(m for m in ln.got["info"] if m.header.stamp == got.header.stamp)
        assert (info.width, info.height) == (got.width, got.height)
        pub.publish(_compressed(rgb, stamp + H.STEP_NS, data=b"\xff\xd8\xff" + b"\x00" * 64))  # corrupt JPEG
        time.sleep(1.0)
        n = len(ln.got["depth"])
        pub.publish(_compressed(rgb, stamp + 2 * H.STEP_NS))
        end = time.monotonic() + 10
        while len(ln.got["depth"]) == n and time.monotonic() < end:
            time.sleep(0.02)
        assert len(ln.got["depth"]) > n, "the node stopped after a corrupt JPEG"
        assert ln.node.stats.errors.get("image_compressed", 0) == 1, ln.node.stats.errors
    finally:
        ln.close()
