"""The live node (real rclpy, real DDS in this process) on input a fuzzer found: garbage bytes on the image
topic are counted in /diagnostics and the next frame still comes out; an image without frame_id gets
`camera_frame` with a warning; /diagnostics says WARN "waiting for configure" before configure and ERROR with
the reason after a failed one."""

from __future__ import annotations

import time

import numpy as np
import pytest
import ros_helpers as H

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable"),
              pytest.mark.timeout(300)]
DOMAIN = 59


def _status(node) -> tuple[int, str, dict[str, str]]:
    st = node.diagnostics().status[0]
    return st.level[0] if isinstance(st.level, bytes) else int(st.level), st.message, \
        {kv.key: kv.value for kv in st.values}


def test_diagnostics_while_unconfigured_then_after_a_failed_configure(tmp_path) -> None:
    from depth_node.ros import messages as M

    ln = H.LiveNode(DOMAIN, {"model": str(tmp_path / "missing.pt")}, activate=False)
    try:
        level, text, values = _status(ln.node)
        assert (level, text, values["state"]) == (M.WARN, "waiting for configure", "unconfigured")
        from rclpy.lifecycle import TransitionCallbackReturn

        assert ln.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        level, text, _ = _status(ln.node)
        assert level == M.ERROR and "configure failed" in text and "missing.pt" in text
    finally:
        ln.close()


def test_malformed_images_are_counted_and_an_empty_frame_id_is_filled_in(tmp_path) -> None:
    model = H.make_model(tmp_path / "model.pt")
    frames = np.load(H.render_frames(tmp_path / "f.npz", n=3, width=320, height=96))
    ln = H.LiveNode(DOMAIN, {"model": str(model), "backend": "torch", "device": "cpu", "precision": "fp32",
                             "camera_frame": "front_camera_optical"})
    try:
        ln.subscribe("depth")
        first, _ = ln.send(frames["rgb"][0], int(frames["stamps"][0]), frames["K"], timeout=60, retry_step=1000)
        assert first.header.frame_id == "camera_optical"  # an image with a frame_id keeps it
        # CDR whose frame_id claims 2 GB, or 4 GB: what a wrong message type or a corrupt sender looks like
        for garbage in (b"\x00\x01\x00\x00" + bytes(8) + b"\xff\xff\xff\x7f" + bytes(16),
                        b"\x00\x01\x00\x00" + b"\x05" * 8 + b"\xff" * 28):
            before = ln.node.stats.errors.get("image_malformed", 0)
            ln.img_pub.publish(garbage)  # one at a time: the image QoS keeps only the latest
            end = time.monotonic() + 20
            while ln.node.stats.errors.get("image_malformed", 0) == before and time.monotonic() < end:
                time.sleep(0.05)
        assert ln.node.stats.errors.get("image_malformed", 0) == 2
        _, _, values = _status(ln.node)
        assert int(values["errors.image_malformed"]) == 2 and "malformed image message" in values["last_error"]

        stamp = int(frames["stamps"][1])
        ln.info_pub.publish(H._info_msg(frames["K"], 320, 96, stamp, frame_id=""))
        ln.img_pub.publish(H._image_msg(frames["rgb"][1], stamp, frame_id=""))
        end = time.monotonic() + 30
        while time.monotonic() < end and not _with_stamp(ln.got["depth"], stamp):
            time.sleep(0.02)
        out = _with_stamp(ln.got["depth"], stamp)
        assert out and out[0].header.frame_id == "front_camera_optical"
        assert ln.node.stats.errors.get("empty_frame_id") == 1
    finally:
        ln.close()


def _with_stamp(msgs, stamp: int) -> list:
    return [m for m in msgs if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp]
