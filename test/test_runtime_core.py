"""The frame core's input hygiene without ROS, on a real (small, deterministic) model: bad stamps are dropped
or, for a single jump, ignored without touching odometry; a real bag loop still restarts it cleanly.

Expectations come from runs of the same frames without the bad input (odometry must be exactly as if the bad
frames had never come) and from a fresh core started where the loop restarts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import ros_helpers as H
from conftest import make_model_file

from depth_node.checkpoints.model_file import save_model
from depth_node.runtime.core import FrameCore, Wants
from depth_node.runtime.params import validate

T0 = 1_700_000_000 * 10**9
S = 10**8  # 0.1 s


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("core")
    model = save_model(tmp / "m.pt", make_model_file(96, 320))
    frames = np.load(H.render_frames(tmp / "f.npz", n=12, width=320, height=96, seed=5))
    cfg = validate({"model": str(model), "backend": "torch", "device": "cpu", "precision": "fp32",
                    "scale_source": "fixed", "odom.refine": False, "odom.max_gap": 0.5})
    return cfg, frames


def image(rgb: np.ndarray, stamp_ns: int, frame_id: str = "cam") -> SimpleNamespace:
    """A sensor_msgs/Image as any transport hands it over (duck-typed)."""
    sec, nsec = divmod(stamp_ns, 10**9)
    h, w = rgb.shape[:2]
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nsec), frame_id=frame_id),
                           height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w, data=rgb.tobytes())


def run(cfg, items) -> tuple[list, FrameCore]:
    core = FrameCore.open(cfg)
    outs, prev = [], None
    try:
        for rgb, stamp in items:
            outs.append(core.process(image(rgb, stamp), Wants(), prev))
            prev = stamp
    finally:
        core.close()
    return outs, core


def poses(outs) -> dict[int, np.ndarray]:
    return {o.stamp_ns: o.odometry.pose for o in outs if o.odometry is not None}


def test_single_bad_stamps_do_not_touch_odometry(setup) -> None:
    cfg, f = setup
    good = [(f["rgb"][k], T0 + k * S) for k in range(9)]
    bad = {5: (f["rgb"][9], 0),  # zero stamp
           6: (f["rgb"][10], T0 + 3600 * 10**9),  # an hour ahead
           7: (f["rgb"][11], -5 * 10**9),  # negative
           8: (f["rgb"][9], T0 - 100 * 10**9)}  # one frame 100 s back
    stream = []
    for k, item in enumerate(good):
        if k in bad:
            stream.append(bad[k])
        stream.append(item)
    ref, _ = run(cfg, good)
    got, core = run(cfg, stream)

    expect = poses(ref)
    assert len(expect) == 9 and not np.allclose(expect[T0 + 8 * S][:3, 3], 0.0)
    have = poses(got)
    assert sorted(have) == sorted(expect), "odometry must come for exactly the good frames"
    for s, T in expect.items():
        np.testing.assert_array_equal(have[s], T)
    assert core.pipe.vo.restarts == 0
    kinds = [e.kind for o in got for e in o.events]
    assert kinds.count("invalid_stamp") == 2 and kinds.count("stamp_outlier") == 2
    by_stamp = {o.stamp_ns: o for o in got}
    assert by_stamp[0].status == "dropped" and by_stamp[-5 * 10**9].status == "dropped"
    future = by_stamp[T0 + 3600 * 10**9]  # a jumped frame still gets depth and cloud, no odometry
    assert future.status == "ok" and future.depth is not None and future.cloud is not None
    assert future.odometry is None and future.stamp_suspect


def test_a_real_bag_loop_restarts_cleanly(setup) -> None:
    cfg, f = setup
    first = [(f["rgb"][k], T0 + k * S) for k in range(8)]  # 0.0 .. 0.7 s
    loop = [(f["rgb"][k], T0 + k * S) for k in range(3)]  # the bag again from 0.0 s: 0.7 s back > max_gap
    got, core = run(cfg, first + loop)
    fresh, _ = run(cfg, loop[1:])  # the restarted chain: from the frame that confirmed the jump

    after = got[len(first):]
    assert after[0].stamp_suspect and after[0].odometry is None and after[0].depth is not None
    assert "time_jump" in [e.kind for e in after[1].events] and core.pipe.vo.restarts == 1
    np.testing.assert_array_equal(after[1].odometry.pose, np.eye(4))
    from depth_node.runtime.core import UNKNOWN_VARIANCE  # restarted at the origin: nothing measured yet

    np.testing.assert_array_equal(after[1].odometry.covariance, np.eye(6) * UNKNOWN_VARIANCE)
    for o, ref in zip(after[1:], fresh, strict=True):
        np.testing.assert_array_equal(o.odometry.pose, ref.odometry.pose)
    assert not any(e.kind == "stamp_outlier" for o in got for e in o.events)


def test_a_loop_shorter_than_max_gap_restarts_instead_of_stalling(setup) -> None:
    """A bag loop (or simulation reset) going back less than odom.max_gap (0.5 s here): its first frame is out of
    order and dropped; the next one, also older than the last frame but continuing from the first, confirms the
    jump and restarts odometry at the origin (else every frame of the loop would be dropped, for good). One late
    frame alone stays an out-of-order drop that leaves odometry exactly as without it."""
    cfg, f = setup
    first = [(f["rgb"][k], T0 + k * S) for k in range(5)]  # 0.0 .. 0.4 s
    loop = [(f["rgb"][k], T0 + k * S) for k in range(1, 4)]  # 0.1, 0.2, 0.3 s: 0.3 s back < max_gap
    got, core = run(cfg, first + loop)
    fresh, _ = run(cfg, loop[1:])
    after = got[len(first):]
    assert after[0].status == "dropped" and "out_of_order_stamp" in [e.kind for e in after[0].events]
    assert "time_jump" in [e.kind for e in after[1].events] and core.pipe.vo.restarts == 1
    np.testing.assert_array_equal(after[1].odometry.pose, np.eye(4))
    for o, ref in zip(after[1:], fresh, strict=True):
        np.testing.assert_array_equal(o.odometry.pose, ref.odometry.pose)

    late = (f["rgb"][9], T0 + 25 * S // 10)  # 0.25 s, after 0.4 s: one late frame
    tail = [(f["rgb"][k], T0 + k * S) for k in range(5, 8)]
    got, core = run(cfg, [*first, late, *tail])
    ref, _ = run(cfg, first + tail)
    assert core.pipe.vo.restarts == 0
    have, expect = poses(got), poses(ref)
    assert sorted(have) == sorted(expect)
    for stamp, T in expect.items():
        np.testing.assert_array_equal(have[stamp], T)


def camera_info(K: list[float], w: int, h: int, stamp_ns: int) -> SimpleNamespace:
    sec, nsec = divmod(stamp_ns, 10**9)
    fx, fy, cx, cy = K
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nsec), frame_id="cam"),
                           width=w, height=h, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])


def test_intrinsics_are_validated_with_one_clear_error(setup) -> None:
    from depth_node.runtime.intrinsics import intrinsics_problem

    def problem(fx, fy, cx, cy, w=320, h=96):
        return intrinsics_problem(np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], float), w, h)

    assert problem(250.0, 250.0, 160.0, 48.0) == ""
    assert problem(1242 * 0.58, 375 * 1.92, 621.0, 187.5, 1242, 375) == ""  # KITTI
    assert "not focal lengths" in problem(1e-300, 1e-300, 160.0, 48.0)  # the fuzzer's degenerate K
    assert "not near the 320x96 image" in problem(250.0, 250.0, -5000.0, 48.0)
    assert "finite" in problem(float("nan"), 250.0, 160.0, 48.0)
    assert "not focal lengths" in problem(-250.0, 250.0, 160.0, 48.0)

    cfg, f = setup
    core = FrameCore.open(cfg)
    try:
        rgb = f["rgb"][0]
        core.add_camera_info(camera_info([1e-300, 1e-300, -5000.0, 48.0], 320, 96, T0))
        out = core.process(image(rgb, T0), Wants())
        bad = [e for e in out.events if e.kind == "camera_info_invalid"]
        assert len(bad) == 1 and "invalid K" in bad[0].text and "fix the camera calibration" in bad[0].text
        assert out.intrinsics_source == "configured"  # the fallback: the `intrinsics` parameter
        fx, fy, cx, cy = cfg.intrinsics  # normalised: times the image size
        got = out.intrinsics
        assert (got.fx, got.fy, got.cx, got.cy) == pytest.approx((fx * 320, fy * 96, cx * 320, cy * 96))
        xyz = np.stack([out.cloud[c] for c in ("x", "y", "z")])
        assert not np.isinf(xyz).any()
        core.add_camera_info(camera_info([250.0, 250.0, 160.0, 48.0], 320, 96, T0 + S))
        out = core.process(image(rgb, T0 + S), Wants())
        assert out.intrinsics_source == "camera_info" and out.intrinsics.fx == 250.0
    finally:
        core.close()


def test_odometry_covariance_is_never_zero(setup, monkeypatch) -> None:
    """Unknown (large) at a chain's origin and for the twist before the first motion estimate; a step whose
    refinement was rejected counts with 3× the noise (= a run configured with 3× the noise, refinement off)."""
    from depth_node.runtime.core import UNKNOWN_VARIANCE

    cfg, f = setup
    items = [(f["rgb"][k], T0 + k * S) for k in range(4)]
    outs, _ = run(cfg, items)
    first, later = outs[0].odometry, [o.odometry for o in outs[1:]]
    np.testing.assert_array_equal(first.covariance, np.eye(6) * UNKNOWN_VARIANCE)
    np.testing.assert_array_equal(first.twist_covariance, np.eye(6) * UNKNOWN_VARIANCE)
    for o in later:
        assert np.all(np.diag(o.covariance) > 0) and np.all(np.diag(o.covariance) < 1.0)
        assert np.all(np.linalg.eigvalsh(o.twist_covariance) > 0)

    def rejected(prev_gray, gray, depth, K, motion, *a, **k):  # stand-in input: alignment that never converges
        return SimpleNamespace(motion=motion, used=False, road=None)

    monkeypatch.setattr("depth_node.geometry.pose_refine.refine_motion", rejected)
    noisy = {f"odom.{n}": 3 * getattr(cfg.odom, n) for n in ("translation_noise", "rotation_noise",
                                                             "translation_noise_floor", "rotation_noise_floor")}
    plain = validate({**cfg.values(), "odom.refine": False})
    with_rejections, _ = run(validate({**cfg.values(), "odom.refine": True}), items)
    three_times, _ = run(validate({**plain.values(), **noisy}), items)
    unrefined, _ = run(plain, items)
    for a, b, c in zip(with_rejections[1:], three_times[1:], unrefined[1:], strict=True):
        np.testing.assert_array_equal(a.odometry.pose, c.odometry.pose)
        np.testing.assert_allclose(a.odometry.covariance, b.odometry.covariance, rtol=1e-12, atol=0)
        assert np.trace(a.odometry.covariance) > np.trace(c.odometry.covariance)


def test_deferred_odometry_is_the_same_odometry(setup) -> None:
    """The node publishes depth and cloud before the odometry step (`defer_odometry`, then `complete_odometry`):
    the poses are bitwise those of the one-call path; a deferred step never completed (the caller failed in
    between) loses only that pair: the next frame starts a new pair from the pose so far."""
    cfg, f = setup
    items = [(f["rgb"][k], T0 + k * S) for k in range(8)]
    ref, _ = run(cfg, items)

    core = FrameCore.open(cfg)
    deferred, prev = [], None
    try:
        for k, (rgb, stamp) in enumerate(items):
            out = core.process(image(rgb, stamp), Wants(), prev, defer_odometry=True)
            assert out.odometry is None and out.depth is not None  # depth (and cloud) first
            if k != 5:  # frame 5's step is never completed
                core.complete_odometry(out)
                assert out.odometry is not None
            deferred.append(out)
            prev = stamp
        chain = core.pipe.chain_steps
    finally:
        core.close()
    expect, have = poses(ref), poses(deferred)
    for k in range(5):
        np.testing.assert_array_equal(have[T0 + k * S], expect[T0 + k * S])
    assert T0 + 5 * S not in have
    # frame 6 started a new pair (no motion from 5, whose step was lost): 6 → 7 is the only step since
    np.testing.assert_array_equal(have[T0 + 6 * S], expect[T0 + 4 * S])
    assert chain == 1


def test_a_setting_for_another_scale_source_is_said_to_have_no_effect(setup, caplog) -> None:
    """scale_factor is read by `fixed` only, stereo_baseline by `stereo` only: set under another source, they
    would silently do nothing."""
    cfg, _ = setup
    values = {**cfg.values(), "scale_source": "ground_plane", "scale_factor": 2.0}
    with caplog.at_level("WARNING", logger="depth_node.runtime.pipeline"):
        FrameCore.open(validate(values)).close()
    assert "scale_factor is set but the scale source is ground_plane" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="depth_node.runtime.pipeline"):
        FrameCore.open(cfg).close()  # fixed, factor 1: nothing to say
    assert "has no effect" not in caplog.text


def test_wait_for_scale_publishes_nothing_until_the_scale_is_known(setup) -> None:
    """A ground-plane source that can find no road (its inlier band far thinner than any network depth is flat): with
    wait_for_scale nothing is published (no depth at a guessed scale), without it frames come out at
    initial_scale."""
    cfg, f = setup
    values = {**cfg.values(), "scale_source": "ground_plane", "ground_plane.inlier_threshold": 1e-6,
              "ground_plane.initial_scale": 3.0}
    items = [(f["rgb"][k], T0 + k * S) for k in range(3)]
    waiting, _ = run(validate({**values, "wait_for_scale": True}), items)
    assert [o.status for o in waiting] == ["waiting_for_scale"] * 3
    assert all(o.depth is None and o.odometry is None for o in waiting)
    published, core = run(validate(values), items)
    assert [o.status for o in published] == ["ok"] * 3 and not core.pipe.scale.ready
    assert all(o.scale == 3.0 for o in published)
