"""Bad input over real ROS 2: one clear error each, counted in /diagnostics, and the node keeps publishing.

The publisher sends each bad case followed by a good probe frame and records whether each came back as depth
(see ros_helpers.bad_inputs); the node must survive all of them without a traceback.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import ros_helpers as H

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")]

DOMAIN = 51

# case → (counter in /diagnostics errors.*, text the node's log line must contain)
EXPECTED = {
    "unsupported_encoding": ("image_encoding", "unsupported camera image encoding 'yuv422_weird'"),
    "zero_size": ("image_zero_size", "zero size"),
    "wrong_step": ("image_step", "step="),
    "truncated_data": ("image_truncated", "truncated"),
    "nan_pixels_float": ("image_depth_encoding", "'32FC1' (that is a depth encoding"),
    "camera_info_zero_k": ("camera_info_invalid", "invalid K"),
    "duplicate_stamp": ("duplicate_stamp", "duplicate stamp"),
    "out_of_order_stamp": ("out_of_order_stamp", "out of order"),
    "resolution_change": ("resolution_change", "image size changed"),
    "time_jump_back": ("time_jump", "time jumped back"),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("bad_input")
    model = H.make_model(tmp / "model.pt", pose=True)
    frames = H.render_frames(tmp / "frames.npz", n=2, width=320, height=96)
    node = H.start_node(tmp, DOMAIN, {"model": str(model), "backend": "torch", "device": "cpu",
                                      "precision": "fp32", "log_throttle": 30.0, "odom.max_gap": 5.0})
    rec = pub = None
    try:
        assert node.wait_for("active:", 90), node.log()
        rec = H.start_recorder(tmp, DOMAIN, tmp / "diag.pkl", topics="diagnostics,odom", duration=150)
        assert rec.wait_for("recorder: ready", 40), rec.log()
        pub = H.start_publisher(tmp, DOMAIN, frames, mode="bad",
                                extra=["--result", str(tmp / "cases.pkl"), "--linger", "2.5"])
        code = pub.wait(150)
        assert code == 0, f"publisher exit {code}: {pub.log()}\nnode: {node.log()}"
        alive = node.p.poll() is None
        rec.stop()
        with open(tmp / "cases.pkl", "rb") as f:
            cases = pickle.load(f)
        yield {"cases": cases, "rec": H.load_record(tmp / "diag.pkl"), "log": node.log(), "alive": alive}
    finally:
        for p in (pub, rec):
            if p is not None:
                p.stop()
        node.stop()


def test_each_case_is_handled_and_a_good_frame_follows(run: dict) -> None:
    cases = run["cases"]
    assert set(cases) >= set(EXPECTED) | {"odd_size", "mono8", "bgra8", "bayer_rggb8", "yuv422", "mono16"}
    for name, r in cases.items():
        assert r["published"] == r["expected"], f"{name}: published={r['published']}, expected {r['expected']}"
        assert r["probe_published"], f"no good frame came out after {name}"
    assert run["alive"], "the node died"


def test_one_clear_error_each_and_counted(run: dict) -> None:
    log = run["log"]
    assert "Traceback" not in log and "frame failed" not in log
    diags = [d for d in run["rec"]["diagnostics"] if d["name"].endswith(": depth")]
    v = diags[-1]["values"]
    for name, (counter, text) in EXPECTED.items():
        assert int(v.get(f"errors.{counter}", 0)) >= 1, f"{name}: errors.{counter} not counted: {v}"
        lines = [ln for ln in log.splitlines() if text in ln]
        assert len(lines) == 1, f"{name}: expected one log line containing {text!r}, got {lines}"
    assert int(v["input_errors"]) >= len(EXPECTED)
    assert v["last_error"] != "none"


def test_odometry_restarts_on_the_time_jump(run: dict) -> None:
    odom = run["rec"]["odom"]
    stamps = np.array([o["stamp"] for o in odom])
    back = np.flatnonzero(np.diff(stamps) < -10 * 10**9)
    assert back.size == 1, "the 100 s jump back must appear once in odom"
    first_after = odom[back[0] + 1]
    # restarted at the origin: the pose is the origin, and its covariance "unknown" (never zero, issue 17)
    assert np.allclose(first_after["position"], 0.0) and np.allclose(np.diag(np.reshape(first_after["pose_cov"],
                                                                                        (6, 6))), 1e4)
    diags = [d for d in run["rec"]["diagnostics"] if d["name"].endswith(": depth")]
    assert int(diags[-1]["values"]["odom.restarts"]) >= 1


def test_encoding_error_lists_exactly_what_the_node_accepts(run: dict) -> None:
    """The list in the error is the list the node takes (Bayer, YUV and mono16 cases above come out as depth)."""
    from depth_node.io.image_codec import CAMERA_ENCODINGS

    line = next(ln for ln in run["log"].splitlines() if "yuv422_weird" in ln)
    listed = line.split("accepted: ", 1)[1].split(", or sensor_msgs/CompressedImage")[0].split(", ")
    assert listed == list(CAMERA_ENCODINGS)
    assert all(run["cases"][e]["published"] for e in ("bayer_rggb8", "yuv422", "mono16"))
