"""Parameters, lifecycle and laziness: validation without ROS, the CLI's start-up errors, and the live node
in-process (real rclpy, real DDS between two nodes in this process) for runtime changes and transitions."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import ros_helpers as H
import yaml

from depth_node.ros import params as P

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = 52
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:lark.*")


# ------------------------------------------------------------------------------------------- no ROS needed
def test_yaml_lists_exactly_the_declared_parameters_with_their_defaults() -> None:
    data = P.params_from_yaml(yaml.safe_load((ROOT / "config" / "mono_depth.yaml").read_text()))
    assert set(data) == {s.name for s in P.SPECS}
    assert data == P.defaults()
    text = (ROOT / "config" / "mono_depth.yaml").read_text()
    for s in P.SPECS:  # every parameter documented right above its line
        leaf = s.name.split(".")[-1]
        assert re.search(rf"# .+\n\s+{re.escape(leaf)}: ", text), f"{s.name} has no comment"


def test_validation_reports_every_problem_at_once() -> None:
    P.validate({})  # defaults are valid
    with pytest.raises(P.ParamError) as e:
        P.validate({"stride": 0, "backend": "cuda", "camera_to_base": [0, 0, 0], "odom_frame": "base_link",
                    "ground_plane.camera_height": -1.0, "sync_slop": "fast"})
    msg = str(e.value)
    for part in ("stride must be in 1..64", "backend must be one of", "camera_to_base must be",
                 "odom_frame and base_frame", "camera_height must be > 0", "sync_slop must be a finite number"):
        assert part in msg
    P.validate({"scale_source": "metric_model"})  # empty model: the bundled models/metric_small.pt
    with pytest.raises(P.ParamError, match=r"metric_model\.smoothing must be in"):
        P.validate({"scale_source": "metric_model", "metric_model.model": "m.pt", "metric_model.smoothing": 0})


def test_metric_model_needs_a_file_where_none_is_bundled(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("depth_node.paths.share_dir", lambda: tmp_path)
    with pytest.raises(P.ParamError, match=r"scale_source metric_model needs metric_model\.model.*no bundled"):
        P.validate({"scale_source": "metric_model"})
    P.validate({"scale_source": "metric_model", "metric_model.model": "m.pt"})


def test_numbers_are_coerced() -> None:
    cfg = P.validate({"stride": 2.0, "camera_to_base": [0, 0, 1, 0, 0, 0, 1], "sync_slop": 0})
    assert cfg["stride"] == 2 and isinstance(cfg["stride"], int)
    assert cfg["camera_to_base"] == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0] and cfg["sync_slop"] == 0.0
    with pytest.raises(P.ParamError, match="whole number"):
        P.validate({"stride": 2.5})


def test_runtime_changes_and_reload_refusals() -> None:
    cfg = P.validate({})
    new, why = P.check_change(cfg, {"stride": 4, "ground_plane.camera_height": 1.2}, configured=True)
    assert new is not None and new["stride"] == 4 and why == ""
    new, why = P.check_change(cfg, {"model": "other.pt"}, configured=True)
    assert new is None and "needs a reload" in why and "model" in why
    new, why = P.check_change(cfg, {"model": "other.pt"}, configured=False)
    assert new is not None
    new, why = P.check_change(cfg, {"stride": -1}, configured=True)
    assert new is None and "stride" in why


def test_node_never_sets_discovery_or_domain() -> None:
    for f in (ROOT / "depth_node" / "ros").glob("*.py"):
        src = f.read_text()
        assert not re.search(r"environ\[?.{0,5}(ROS_DOMAIN_ID|ROS_AUTOMATIC_DISCOVERY_RANGE)", src), f


# ------------------------------------------------------------------------------------ the CLI, as a process
def _cli(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([H.PY, "-m", "depth_node.cli", "node", *args], env=H.ros_env(DOMAIN), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.ros
@pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")
def test_cli_start_up_errors_are_clear(tmp_path: Path) -> None:
    r = _cli(["--help"])
    assert r.returncode == 0 and "--ros-args" in r.stdout
    r = _cli(["--bogus"])
    assert r.returncode == 2 and "unexpected arguments" in r.stderr
    r = _cli(["--ros-args", "-p", "stride:=0", "-p", "colormap:=rainbow"])
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "stride must be in 1..64" in out and "colormap must be one of" in out and "Traceback" not in out
    r = _cli(["--ros-args", "-p", f"model:={tmp_path / 'missing.pt'}"])
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "model file not found" in out and "Traceback" not in out
    r = subprocess.run([H.PY, "-m", "depth_node.cli", "-v", "node", "--ros-args", "-p", "stride:=0"],
                       env=H.ros_env(DOMAIN), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "stride must be in 1..64" in r.stdout + r.stderr  # -v before the passthrough


# ---------------------------------------------------------------------------------- the live node in-process
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if not H.rclpy_available():
        pytest.skip("rclpy not importable")
    tmp = tmp_path_factory.mktemp("live")
    model = H.make_model(tmp / "model.pt")
    frames = np.load(H.render_frames(tmp / "frames.npz", n=3, width=400, height=120))
    ln = H.LiveNode(DOMAIN, {"model": str(model), "backend": "torch", "device": "cpu", "precision": "fp32",
                             "scale_source": "fixed"})
    stamp = [int(frames["stamps"][0])]

    def send(with_info: bool = True, wait_for: str | None = "depth"):
        stamp[0] += 100_000_000
        msg, stamp[0] = ln.send(frames["rgb"][0], stamp[0], frames["K"] if with_info else None, wait_for,
                                retry_step=100_000_000)
        return msg

    ln.model, ln.frames, ln.send_next = model, frames, send
    try:
        yield ln
    finally:
        ln.close()


@pytest.mark.ros
@pytest.mark.timeout(180)
def test_lifecycle_configure_activate_and_reload(live) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn as R

    node, P_ = live.node, live.Parameter
    live.subscribe("depth")
    live.send_next()
    # reload parameters are refused while configured, with the reason
    res = node.set_parameters([P_("model", value="/nonexistent.pt")])[0]
    assert not res.successful and "needs a reload" in res.reason
    # deactivate → cleanup → a bad model fails configure cleanly → a good one works again
    assert node.trigger_deactivate() == R.SUCCESS
    assert node.trigger_cleanup() == R.SUCCESS
    assert node.set_parameters([P_("model", value="/nonexistent.pt")])[0].successful
    assert node.trigger_configure() == R.FAILURE
    assert node.set_parameters([P_("model", value=str(live.model))])[0].successful
    assert node.trigger_configure() == R.SUCCESS
    assert node.trigger_activate() == R.SUCCESS
    live.send_next()


@pytest.mark.ros
@pytest.mark.timeout(180)
def test_runtime_parameters_change_the_outputs(live) -> None:
    node, P_ = live.node, live.Parameter
    live.subscribe("points")
    live.subscribe("info")
    cloud = live.send_next(wait_for="points")
    assert (cloud.height, cloud.width, cloud.point_step) == (96, 320, 32)
    res = node.set_parameters([P_("stride", value=4), P_("cloud_rgb", value=False),
                               P_("output_resolution", value="input")])
    assert all(r.successful for r in res), [r.reason for r in res]
    cloud = live.send_next(wait_for="points")
    assert (cloud.height, cloud.width, cloud.point_step) == (30, 100, 16)
    assert [f.name for f in cloud.fields] == ["x", "y", "z"]
    depth = next(m for m in live.got["depth"] if m.header.stamp == cloud.header.stamp)
    assert (depth.height, depth.width) == (120, 400)
    info = next(m for m in live.got["info"] if m.header.stamp == cloud.header.stamp)
    np.testing.assert_allclose([info.k[0], info.k[2], info.k[4], info.k[5]],
                               np.asarray(live.frames["K"])[[0, 2, 1, 3]])
    bad = node.set_parameters([P_("stride", value=0)])[0]
    assert not bad.successful and "stride" in bad.reason
    res = node.set_parameters([P_("stride", value=1), P_("cloud_rgb", value=True),
                               P_("output_resolution", value="network")])
    assert all(r.successful for r in res)
    live.unsubscribe("points")
    live.unsubscribe("info")


@pytest.mark.ros
@pytest.mark.timeout(180)
def test_lazy_outputs_and_fallback_intrinsics(live) -> None:
    node = live.node
    calls = {"cloud": 0, "pose": 0}
    build, motion = node.cloud_builder.build, node.estimator.motion

    def counting_build(*a, **k):
        calls["cloud"] += 1
        return build(*a, **k)

    def counting_motion(*a, **k):
        calls["pose"] += 1
        return motion(*a, **k)

    node.cloud_builder.build = counting_build
    node.estimator.motion = counting_motion
    end = time.monotonic() + 10
    while time.monotonic() < end and (node.pubs["points"].get_subscription_count()
                                      or node.pubs["depth_info"].get_subscription_count()):
        time.sleep(0.1)
    try:
        for _ in range(3):
            live.send_next()
        assert calls == {"cloud": 0, "pose": 0}, "cloud or pose net computed without subscribers"
        live.unsubscribe("depth")
        end = time.monotonic() + 10
        while time.monotonic() < end and node.pubs["depth"].get_subscription_count():
            time.sleep(0.1)
        skipped = node.stats.skipped_idle
        live.send_next(wait_for=None)
        assert node.stats.skipped_idle > skipped, "inference ran with no subscriber at all"
        live.subscribe("depth")
        m = live.send_next(with_info=False)
        assert node.stats.intrinsics_source == "configured" and node.stats.camera_info_fallbacks >= 1
        assert m.encoding == "32FC1"
    finally:
        node.cloud_builder.build, node.estimator.motion = build, motion


@pytest.mark.ros
@pytest.mark.timeout(180)
def test_tf_is_broadcast_when_tf2_ros_imports(live, monkeypatch) -> None:
    """tf2_ros is not installable here: a recording stand-in proves the node broadcasts odom → base_frame with
    the image stamps when publish_tf is set, and runs the pose net for it without any odom subscriber."""
    import sys
    import types

    from rclpy.lifecycle import TransitionCallbackReturn as R

    sent: list = []

    class TransformBroadcaster:
        def __init__(self, node) -> None:
            self.node = node

        def sendTransform(self, t) -> None:
            sent.append(t)

    fake = types.ModuleType("tf2_ros")
    fake.TransformBroadcaster = TransformBroadcaster
    monkeypatch.setitem(sys.modules, "tf2_ros", fake)
    node, P_ = live.node, live.Parameter
    assert node.trigger_deactivate() == R.SUCCESS and node.trigger_cleanup() == R.SUCCESS
    assert node.set_parameters([P_("publish_tf", value=True), P_("base_frame", value="base_footprint")])[0].successful
    assert node.trigger_configure() == R.SUCCESS and node.trigger_activate() == R.SUCCESS
    try:
        stamps = [live.send_next().header.stamp for _ in range(3)]
        assert isinstance(node.tf, TransformBroadcaster)
        end = time.monotonic() + 5.0  # odometry and TF follow the depth message
        while len(sent) < 3 and time.monotonic() < end:
            time.sleep(0.05)
        assert len(sent) >= 3
        assert all(t.header.frame_id == "odom" and t.child_frame_id == "base_footprint" for t in sent)
        assert [t.header.stamp for t in sent[-3:]] == stamps
    finally:
        node.set_parameters([P_("publish_tf", value=False), P_("base_frame", value="base_link")])


@pytest.mark.ros
@pytest.mark.timeout(180)
def test_slow_inference_is_not_a_time_gap(live) -> None:
    """Frames dropped because inference is slow leave processed stamps far apart; odometry must still chain
    them (a restart is for gaps in the data, not for our own dropping)."""
    node, P_ = live.node, live.Parameter
    live.subscribe("odom")
    assert node.set_parameters([P_("odom.max_gap", value=0.5)])[0].successful
    depth = node.estimator.depth

    def slow_depth(*a, **k):
        time.sleep(0.8)
        return depth(*a, **k)

    node.estimator.depth = slow_depth
    try:
        live.send_next(wait_for="odom")
        restarts, steps = node.vo.restarts, node.vo.steps
        rgb, K = live.frames["rgb"][0], live.frames["K"]
        t = int(time.time_ns())  # fresh stamps well after the helper's, 0.1 s apart, published in real time
        for _ in range(30):
            t += 100_000_000
            live.info_pub.publish(H._info_msg(K, 400, 120, t))
            live.img_pub.publish(H._image_msg(rgb, t))
            time.sleep(0.1)
        time.sleep(2.0)
        assert node.vo.steps >= steps + 2, "odometry did not chain the processed frames"
        # the first fresh frame is a real gap (the helper's stamps are older), the rest must not restart
        assert node.vo.restarts <= restarts + 1
        assert node.slot.dropped > 0
    finally:
        node.estimator.depth = depth
        node.set_parameters([P_("odom.max_gap", value=1.0)])
        live.unsubscribe("odom")
