"""Online = offline: the node over real rclpy and the offline bag runner (`eval-bag --offline`) give identical
outputs for the same frames, including the frames the rules drop or restart on.

One stream with an out-of-order stamp, a forward gap over `odom.max_gap`, a resolution change, a duplicate
stamp and a jump back (bag loop): sent to the live node one frame at a time (so its latest-frame-wins dropping
never applies) and written to a bag for the offline runner. Depth, depth/camera_info, points and odom must be
equal bit for bit, stamp by stamp, and both must have dropped exactly the frames the rules say.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import ros_helpers as H

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable"),
              pytest.mark.timeout(600)]

DOMAIN = 57
T0 = 1_700_000_000 * 10**9
S = 10**8  # 0.1 s
IMAGE, INFO = "/cam/image", "/cam/camera_info"


def _stream(tmp) -> tuple[list[tuple[np.ndarray, int, np.ndarray]], dict[int, str], set[int]]:
    """(rgb, stamp, K) in sending order, the stamps the rules drop → the counter they count under, and the
    jumped stamps that get depth but no odometry until the next frame confirms the jump."""
    a = np.load(H.render_frames(tmp / "a.npz", n=10, width=320, height=96, seed=3))
    b = np.load(H.render_frames(tmp / "b.npz", n=3, width=400, height=120, seed=4))
    A = [(a["rgb"][k], a["K"]) for k in range(10)]
    B = [(b["rgb"][k], b["K"]) for k in range(3)]
    plan = [(A[0], 0), (A[1], 1), (A[2], 2), (A[3], 3),
            (A[4], 2.5),  # out of order (0.05 s back): dropped
            (A[4], 4), (A[5], 20),  # 1.6 s without frames: odometry restarts from its last pose
            (A[6], 21), (B[0], 22), (B[1], 23), (B[2], 24),  # 320x96 → 400x120
            (B[2], 24),  # duplicate stamp: dropped
            (A[7], 5),  # 1.9 s back: bag loop, suspect until 6 confirms it: odometry restarts at the origin
            (A[8], 6), (A[9], 7)]
    frames = [(rgb, T0 + int(t * S), K) for (rgb, K), t in plan]
    return frames, {T0 + int(2.5 * S): "out_of_order_stamp"}, {T0 + 5 * S}


def _params(model) -> dict:
    return {"model": str(model), "backend": "torch", "device": "cpu", "precision": "fp32", "odom.max_gap": 1.0}


def _online(frames, dropped, suspect, params) -> dict[str, dict[int, object]]:
    ln = H.LiveNode(DOMAIN, params)
    try:
        for kind in ("depth", "info", "points", "odom"):
            ln.subscribe(kind)
        _wait_for_readers(ln)
        seen: set[int] = set()
        for rgb, stamp, K in frames:
            errors_before = sum(ln.node.stats.errors.values())
            h, w = rgb.shape[:2]
            ln.info_pub.publish(H._info_msg(K, w, h, stamp))
            ln.img_pub.publish(H._image_msg(rgb, stamp))
            if stamp in dropped or stamp in seen:  # dropped by a rule: wait until the node counted it
                _until(lambda eb=errors_before: sum(ln.node.stats.errors.values()) > eb, 30)
            else:
                kinds = ("depth", "info", "points") + (() if stamp in suspect else ("odom",))
                _until(lambda s=stamp, kinds=kinds: all(s in _stamps(ln.got[k]) for k in kinds), 60)
            seen.add(stamp)
        return {k: {_ns(m.header.stamp): m for m in ln.got[k]} for k in ("depth", "info", "points", "odom")}
    finally:
        ln.close()


def _wait_for_readers(ln) -> None:
    """Discovery both ways before the first frame: the node sees our readers, we see its image reader."""
    _until(lambda: all(p.get_subscription_count() > 0 for k, p in ln.node.pubs.items() if k != "colored")
           and ln.img_pub.get_subscription_count() > 0 and ln.info_pub.get_subscription_count() > 0, 30)


def _until(cond, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out waiting for the node"
        time.sleep(0.01)


def _ns(stamp) -> int:
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def _stamps(msgs) -> set[int]:
    return {_ns(m.header.stamp) for m in msgs}


def _offline(frames, params, tmp) -> dict[str, dict[int, object]]:
    from rclpy.serialization import serialize_message

    from depth_node.io.bags import BagReader, BagWriter
    from depth_node.ros.bag_runner import output_topic, run_offline

    bag = tmp / "stream.mcap"
    with BagWriter(bag, overwrite=True) as w:
        w.add_topic(IMAGE, "sensor_msgs/msg/Image")
        w.add_topic(INFO, "sensor_msgs/msg/CameraInfo")
        for i, (rgb, stamp, K) in enumerate(frames):  # log time: sending order, as a replay delivers them
            h, wd = rgb.shape[:2]
            w.write_raw(INFO, T0 + 2 * i * 1000, serialize_message(H._info_msg(K, wd, h, stamp)))
            w.write_raw(IMAGE, T0 + (2 * i + 1) * 1000, serialize_message(H._image_msg(rgb, stamp)))
    res = run_offline(bag, tmp / "outputs", image=IMAGE, camera_info=INFO, params=params, progress=False)
    names = {"depth": "depth/image_rect", "info": "depth/camera_info", "points": "points", "odom": "odom"}
    out: dict[str, dict[int, object]] = {k: {} for k in names}
    with BagReader(res.outputs_bag) as r:
        for k, name in names.items():
            for m in r.messages([output_topic(name)]):
                out[k][_ns(m.msg.header.stamp)] = m.msg
    return out


def _arr(data) -> np.ndarray:
    return np.frombuffer(bytes(data) if not isinstance(data, np.ndarray) else data.tobytes(), np.uint8)


def test_online_and_offline_outputs_are_identical(tmp_path) -> None:
    model = H.make_model(tmp_path / "model.pt")
    frames, dropped, suspect = _stream(tmp_path)
    online = _online(frames, dropped, suspect, _params(model))
    offline = _offline(frames, _params(model), tmp_path)

    expected = [s for s in dict.fromkeys(st for _, st, _ in frames) if s not in dropped]
    for k in ("depth", "info", "points"):
        assert sorted(online[k]) == sorted(offline[k]) == sorted(expected), k
    assert sorted(online["odom"]) == sorted(offline["odom"]) == sorted(set(expected) - suspect)
    for s in expected:
        on_d, off_d = online["depth"][s], offline["depth"][s]
        assert (on_d.width, on_d.height, on_d.encoding, on_d.header.frame_id) == \
            (off_d.width, off_d.height, off_d.encoding, off_d.header.frame_id)
        assert np.array_equal(_arr(on_d.data), _arr(off_d.data))
        on_i, off_i = online["info"][s], offline["info"][s]
        assert (on_i.width, on_i.height) == (off_i.width, off_i.height)
        assert list(on_i.k) == list(off_i.k) and list(on_i.p) == list(off_i.p)
        on_p, off_p = online["points"][s], offline["points"][s]
        assert [(f.name, f.offset) for f in on_p.fields] == [(f.name, f.offset) for f in off_p.fields]
        assert on_p.point_step == off_p.point_step and np.array_equal(_arr(on_p.data), _arr(off_p.data))
        if s in suspect:
            continue
        on_o, off_o = online["odom"][s], offline["odom"][s]
        assert _pose(on_o) == _pose(off_o), f"odometry differs at {(s - T0) / S:.1f}"
        assert list(on_o.pose.covariance) == list(off_o.pose.covariance)

    # the rules fired (expectations from how the stream was built, not from the code)
    fx, fy, cx, cy = frames[8][2]  # the 400x120 camera's K, rescaled to the network's 320x96 grid
    k = list(online["info"][T0 + 22 * S].k)
    np.testing.assert_allclose([k[0], k[4], k[2], k[5]], [fx * 0.8, fy * 0.8, cx * 0.8, cy * 0.8], rtol=1e-12)
    pose = {t: _pose(online["odom"][T0 + t * S]) for t in (4, 20, 21, 22, 6)}
    assert pose[4][:3] != (0.0, 0.0, 0.0), "odometry never moved: the checks below would be empty"
    assert pose[20] == pose[4], "the gap restart must keep the pose and integrate nothing across the gap"
    assert pose[22] == pose[21], "the resolution change must restart the pairing, keeping the pose"
    assert pose[6] == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0), "the bag loop must restart odometry at the origin"


def _pose(m) -> tuple[float, ...]:
    p, q = m.pose.pose.position, m.pose.pose.orientation
    return (p.x, p.y, p.z, q.x, q.y, q.z, q.w)
