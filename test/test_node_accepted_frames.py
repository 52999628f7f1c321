"""The live node (real rclpy, real DDS in this process) keeps what it accepted and says what it does:
an unreadable frame is refused on arrival, so it cannot displace a good frame waiting for the inference thread;
/diagnostics is ERROR while every image is refused and WARN on the default intrinsics; odometry keeps
integrating while its subscriber is away (REP 105 continuity); `shutdown` from active unsubscribes and reports
`finalized`; a `diagnostics_period` set before configure takes effect there."""

from __future__ import annotations

import time

import numpy as np
import pytest
import ros_helpers as H

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable"),
              pytest.mark.timeout(300)]
DOMAIN = 67
PARAMS = {"backend": "torch", "device": "cpu", "precision": "fp32", "scale_source": "fixed", "odom.refine": False}


def _stamp(m) -> int:
    return m.header.stamp.sec * 10**9 + m.header.stamp.nanosec


def _status(node) -> tuple[int, str, dict[str, str]]:
    st = node.diagnostics().status[0]
    return st.level[0] if isinstance(st.level, bytes) else int(st.level), st.message, \
        {kv.key: kv.value for kv in st.values}


def _wait(cond, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.02)
    return cond()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("accepted")
    return H.make_model(tmp / "model.pt"), np.load(H.render_frames(tmp / "drive.npz", n=12, width=320, height=96,
                                                                   seed=3))


def test_an_unreadable_frame_never_displaces_a_waiting_good_one(data) -> None:
    from depth_node.ros import messages as M

    model, f = data
    # the node's own /diagnostics timer would take the period's counts that this test reads: not within the test
    ln = H.LiveNode(DOMAIN, {"model": str(model), **PARAMS, "diagnostics_period": 60.0})
    try:
        ln.subscribe("depth")
        _, t = ln.send(f["rgb"][0], int(f["stamps"][0]), f["K"], timeout=60, retry_step=1000)
        a, b, c = t + 100_000_000, t + 200_000_000, t + 300_000_000
        node = ln.node
        with node.proc_lock:  # the worker takes A, then waits for the lock: A is "being processed"
            received = node.stats.received
            ln.info_pub.publish(H._info_msg(f["K"], 320, 96, a))
            ln.img_pub.publish(H._image_msg(f["rgb"][1], a))
            assert _wait(lambda: node.stats.received == received + 1 and node.slot._item is None)
            ln.info_pub.publish(H._info_msg(f["K"], 320, 96, b))
            ln.img_pub.publish(H._image_msg(f["rgb"][2], b))  # B waits in the slot
            assert _wait(lambda: node.stats.received == received + 2)
            ln.img_pub.publish(H._image_msg(f["rgb"][3], c, encoding="yuv422_weird"))  # C: unreadable
            assert _wait(lambda: node.stats.received == received + 3)
        assert _wait(lambda: any(_stamp(m) == b for m in ln.got["depth"])), "the good frame B was lost"
        assert any(_stamp(m) == a for m in ln.got["depth"])
        assert not any(_stamp(m) == c for m in ln.got["depth"])
        assert node.stats.errors.get("image_encoding") == 1 and node.slot.dropped == 0

        # nothing but unreadable frames for a whole period: ERROR, with the reason
        _status(node)  # start a new period
        t = c
        for k in range(5):
            t += 100_000_000
            ln.img_pub.publish(H._image_msg(f["rgb"][4], t, encoding="16UC1" if k % 2 else "yuv422_weird"))
            time.sleep(0.05)
        assert _wait(lambda: node.stats.received == received + 8)
        level, text, values = _status(node)
        assert level == M.ERROR and "none is published" in text and "encoding" in text, (level, text)
        assert float(values["output_rate_hz"]) == 0.0
    finally:
        ln.close()


def test_odometry_keeps_integrating_while_no_one_reads_it(data) -> None:
    from test_node_odometry import OracleEstimator

    from depth_node.geometry.poses import invert_se3, optical_to_body_transform

    model, f = data
    ln = H.LiveNode(DOMAIN, {"model": str(model), **PARAMS})
    try:
        with ln.node.proc_lock:  # ground-truth depth and motion in metres: the odometry must be the drive's
            ln.node.pipe.estimator = ln.node.estimator = OracleEstimator(ln.node.estimator, f, 1.0)
        ln.subscribe("depth")
        ln.subscribe("odom")
        odom = {}
        for k in range(len(f["rgb"])):
            if k == 4:  # the consumer goes away (a recorder stopped, a filter restarting) ...
                ln.unsubscribe("odom")
                assert _wait(lambda: ln.node.pubs["odom"].get_subscription_count() == 0)
            if k == 8:  # ... and comes back
                ln.subscribe("odom")
                assert _wait(lambda: ln.node.pubs["odom"].get_subscription_count() == 1)
            want = "depth" if 4 <= k < 8 else "odom"
            msg, _ = ln.send(f["rgb"][k], int(f["stamps"][k]), f["K"], wait_for=want, timeout=30,
                             retry_step=1000 if k == 0 else 0)
            if want == "odom":
                odom[k] = msg
        restarts = ln.node.vo.restarts
    finally:
        ln.close()
    body0 = optical_to_body_transform(f["poses"][0])
    for k in (3, 8, 11):
        truth = (invert_se3(body0) @ optical_to_body_transform(f["poses"][k]))[:3, 3]
        p = odom[k].pose.pose.position
        np.testing.assert_allclose([p.x, p.y, p.z], truth, atol=0.02 * np.linalg.norm(truth) + 0.02)
    assert restarts == 0


def test_odometry_only_while_read_restarts_from_the_last_pose(data) -> None:
    """odom.continuous false (less CPU): the pose net runs only while someone reads odom; a reader coming back gets
    a chain restarted from the last pose, its first twist "unknown", not one that silently skipped motion."""
    model, f = data
    ln = H.LiveNode(DOMAIN, {"model": str(model), **PARAMS, "odom.continuous": False})
    try:
        ln.subscribe("depth")
        ln.subscribe("odom")
        for k in range(3):
            ln.send(f["rgb"][k], int(f["stamps"][k]), f["K"], wait_for="odom", timeout=30,
                    retry_step=1000 if k == 0 else 0)
        steps = ln.node.vo.steps
        ln.unsubscribe("odom")
        assert _wait(lambda: ln.node.pubs["odom"].get_subscription_count() == 0)
        for k in range(3, 5):
            ln.send(f["rgb"][k], int(f["stamps"][k]), f["K"], timeout=30)
        assert ln.node.vo.steps == steps, "odometry ran with no one reading it"
        ln.subscribe("odom")
        assert _wait(lambda: ln.node.pubs["odom"].get_subscription_count() == 1)
        restarts = ln.node.vo.restarts
        first, _ = ln.send(f["rgb"][5], int(f["stamps"][5]), f["K"], wait_for="odom", timeout=30)
        assert ln.node.vo.restarts == restarts + 1
        assert np.all(np.diag(np.array(first.twist.covariance).reshape(6, 6)) >= 1e3)  # "unknown": a new chain
    finally:
        ln.close()


def test_default_intrinsics_warn_and_shutdown_from_active_finalizes(data) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn as R

    from depth_node.ros import messages as M

    model, f = data
    ln = H.LiveNode(DOMAIN, {"model": str(model), **PARAMS}, activate=False)
    try:
        node = ln.node
        assert node.set_parameters([ln.Parameter("diagnostics_period", value=4.0)])[0].successful
        assert node.trigger_configure() == R.SUCCESS
        assert node.diag_timer.timer_period_ns == 4_000_000_000  # a reload parameter: applied at configure
        assert node.trigger_activate() == R.SUCCESS
        ln.subscribe("depth")
        ln.send(f["rgb"][0], int(f["stamps"][0]), None, timeout=60, retry_step=1000)  # no camera_info
        level, text, values = _status(node)
        assert values["intrinsics_source"] == "configured"
        assert level == M.WARN and "default intrinsics" in text, (level, text)

        assert node.trigger_shutdown() == R.SUCCESS
        assert node.subs == []
        received = node.stats.received
        ln.img_pub.publish(H._image_msg(f["rgb"][1], int(f["stamps"][1])))
        time.sleep(0.5)
        assert node.stats.received == received, "a finalized node still takes images"
        level, text, values = _status(node)
        assert (level, text, values["state"]) == (M.WARN, "finalized", "finalized")
    finally:
        ln.close()
