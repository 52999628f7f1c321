"""Humble's calling convention: subscription callbacks get the message only (rclpy 3.3 has no MessageInfo
for callbacks). The node picks the callback form by feature detection; here detection sees a stand-in of
Humble's Subscription class, and the real rclpy then calls the node's image callback with one argument, the
way Humble's executor does, over real DDS."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import ros_helpers as H

from depth_node.ros import callbacks

pytestmark = pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")
DOMAIN = 58


class HumbleSubscription:
    """Stand-in for rclpy 3.3's Subscription: no callback types, `callback(msg)` only."""

    def __init__(self, callback) -> None:
        self.callback = callback

    def deliver(self, msg) -> None:  # what Humble's executor does with a taken message
        self.callback(msg)


def test_detection_and_arity() -> None:
    from rclpy.subscription import Subscription

    assert callbacks.passes_message_info() is True  # this rclpy (Iron on) passes MessageInfo
    assert callbacks.passes_message_info(HumbleSubscription) is False
    got = []
    humble = callbacks.subscription_callback(lambda m, i: got.append((m, i)), False)
    inspect.signature(humble).bind(object())
    with pytest.raises(TypeError):
        inspect.signature(humble).bind(object(), object())
    HumbleSubscription(humble).deliver("msg")
    assert got == [("msg", None)]
    newer = callbacks.subscription_callback(lambda m, i: got.append((m, i)), True)
    with pytest.raises(TypeError):
        inspect.signature(newer).bind(object())
    assert hasattr(Subscription, "CallbackType")


@pytest.mark.ros
@pytest.mark.timeout(240)
def test_node_runs_with_one_argument_image_callbacks(tmp_path, monkeypatch) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.subscription import Subscription

    import depth_node.ros.node as node_module

    monkeypatch.setattr(node_module, "passes_message_info", lambda: callbacks.passes_message_info(HumbleSubscription))
    model = H.make_model(tmp_path / "model.pt")
    frames = np.load(H.render_frames(tmp_path / "f.npz", n=3, width=320, height=96))
    ln = H.LiveNode(DOMAIN, {"model": str(model), "backend": "torch", "device": "cpu", "precision": "fp32"},
                    activate=False)
    try:
        assert ln.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert ln.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        image_sub = ln.node.subs[0]
        # rclpy classified the node's callback as message-only: it will call callback(msg), as Humble does
        assert image_sub._callback_type == Subscription.CallbackType.MessageOnly
        ln.subscribe("depth")
        for k in range(3):
            msg, _ = ln.send(frames["rgb"][k], int(frames["stamps"][k]), frames["K"], timeout=60,
                             retry_step=1000 if k == 0 else 0)
            assert msg.encoding == "32FC1" and (msg.height, msg.width) == (96, 320)
        assert ln.node.stats.received >= 3 and not ln.node.stats.errors
    finally:
        ln.close()
