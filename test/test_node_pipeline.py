"""The node end to end over real ROS 2 transport between processes: publisher → node → recorder.

Checks what consumers rely on: encodings, shapes, headers equal to the input, REP 118 depth, depth_image_proc
cloud layout read the way sensor_msgs_py reads it, depth and cloud agreeing point by point with the published
intrinsics, one scale for depth and cloud, odometry frames and covariance, and /diagnostics content.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import ros_helpers as H

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")]

DOMAIN = 50
FACTOR = 10.0
MAX_RANGE = 2.0
N = 10


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("pipeline")
    model = H.make_model(tmp / "model.pt")
    frames = H.render_frames(tmp / "frames.npz", n=N, width=400, height=120)
    stamps = np.load(frames)["stamps"]
    node = H.start_node(tmp, DOMAIN, {
        "model": str(model), "backend": "torch", "device": "cpu", "precision": "fp32",
        "scale_source": "fixed", "scale_factor": FACTOR, "cloud_max_range": MAX_RANGE,
    })
    rec = pub = None
    try:
        assert node.wait_for("active:", 90), node.log()
        rec = H.start_recorder(tmp, DOMAIN, tmp / "rec.pkl", until_stamp=int(stamps[-1]), duration=90)
        assert rec.wait_for("recorder: ready", 40), rec.log()
        pub = H.start_publisher(tmp, DOMAIN, frames, rate=10.0, extra=["--warmup", "3", "--lockstep", "10"])
        assert pub.wait(90) == 0, pub.log()
        assert rec.wait(30) is not None, "recorder did not finish: " + rec.log()
        assert node.p.poll() is None, "node died: " + node.log()
        yield {"rec": H.load_record(tmp / "rec.pkl"), "frames": np.load(frames), "model": model,
               "node_log": node.log(), "tmp": tmp}
    finally:
        for p in (pub, rec):
            if p is not None:
                p.stop()
        code = node.stop()
        print(node.log()[-3000:])
        assert code in (0, -2, 130), f"node exit code {code}"


def _seq(run: dict, key: str) -> dict[int, dict]:
    stamps = set(int(s) for s in run["frames"]["stamps"])
    return {r["stamp"]: r for r in run["rec"][key] if r["stamp"] in stamps}


def test_all_outputs_arrive_with_the_input_header(run: dict) -> None:
    stamps = [int(s) for s in run["frames"]["stamps"]]
    for key in ("depth", "depth_info", "colored", "points", "odom"):
        got = _seq(run, key)
        assert len(got) >= N - 2, f"{key}: only {len(got)} of {N} frames"
        for r in got.values():
            assert r["stamp"] in stamps
            if key == "odom":
                assert (r["frame_id"], r["child_frame_id"]) == ("odom", "base_link")
            else:
                assert r["frame_id"] == "camera_optical"


def test_depth_is_rep118_at_network_resolution(run: dict) -> None:
    for r in _seq(run, "depth").values():
        assert (r["encoding"], r["height"], r["width"], r["step"], r["is_bigendian"]) == ("32FC1", 96, 320, 1280, 0)
        d = r["array"]
        assert d.dtype == np.float32 and d.shape == (96, 320)
        assert not np.isinf(d).any() and not (d <= 0).any()  # finite metres or NaN (REP 117)


def _net_input(run: dict, stamp: int) -> np.ndarray:
    """The frame the node fed its network, as it published it in the cloud's rgb (checked against an
    independent resize in the cloud test)."""
    from depth_node.geometry.pointcloud import unpack_rgb

    cloud = H.cloud_array(_seq(run, "points")[stamp])
    return unpack_rgb(np.ascontiguousarray(cloud["rgb"]))


def _hand_depth(model_path, rgb_net: np.ndarray) -> np.ndarray:
    """Depth written out by hand: the model file's DepthNet on that frame, then Monodepth2's disparity → depth
    1 / (1/max_depth + (1/min_depth − 1/max_depth)·disp) with the file's min/max depth (0.1, 100)."""
    import torch

    from depth_node.checkpoints.model_file import load_model
    from depth_node.networks.monodepth2 import DepthNet

    net = DepthNet(18)
    net.load_state_dict(load_model(model_path).depth_state)
    net.eval()
    x = torch.from_numpy(rgb_net.astype(np.float32).transpose(2, 0, 1)[None].copy() / 255.0)
    with torch.no_grad():
        disp = net(x, out_scales=(0,))[0][0, 0].numpy().astype(np.float64)
    lo, hi = 1 / 100.0, 1 / 0.1
    return 1.0 / (lo + (hi - lo) * disp)


def test_depth_is_the_network_depth_times_the_scale(run: dict) -> None:
    """The published depth is the network's depth (computed here by hand) × the one fixed scale factor."""
    got = _seq(run, "depth")
    stamps = [s for s in (int(x) for x in run["frames"]["stamps"][:4]) if s in got and s in _seq(run, "points")]
    assert stamps
    for s in stamps:
        ref = _hand_depth(run["model"], _net_input(run, s)) * FACTOR
        np.testing.assert_allclose(got[s]["array"], ref, rtol=2e-4)


def test_camera_info_is_rescaled_to_the_network(run: dict) -> None:
    fx, fy, cx, cy = run["frames"]["K"]
    sx, sy = 320 / 400, 96 / 120
    for r in _seq(run, "depth_info").values():
        assert (r["width"], r["height"]) == (320, 96)
        np.testing.assert_allclose(r["k"], [fx * sx, 0, cx * sx, 0, fy * sy, cy * sy, 0, 0, 1], rtol=1e-9)
        assert r["p"][0] == r["k"][0] and r["p"][3] == 0.0


def test_cloud_layout_and_point_by_point_agreement(run: dict) -> None:
    depth = _seq(run, "depth")
    infos = _seq(run, "depth_info")
    frames = run["frames"]
    checked = 0
    for s, r in _seq(run, "points").items():
        assert r["fields"] == [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 16, 7, 1)]
        assert (r["height"], r["width"], r["point_step"], r["row_step"]) == (96, 320, 32, 320 * 32)
        assert r["is_dense"] is False and r["is_bigendian"] is False
        if s not in depth or s not in infos:
            continue
        cloud = H.cloud_array(r)
        d = depth[s]["array"]
        k = infos[s]["k"]
        fx, cx, fy, cy = k[0], k[2], k[4], k[5]
        expect_z = np.where(d > MAX_RANGE, np.nan, d)
        np.testing.assert_allclose(cloud["z"], expect_z, rtol=1e-6, equal_nan=True)
        assert np.isnan(cloud["z"]).any(), "cloud_max_range should have removed far points"
        u = np.arange(320)[None, :]
        v = np.arange(96)[:, None]
        np.testing.assert_allclose(cloud["x"], (u - cx) * expect_z / fx, rtol=1e-5, atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(cloud["y"], (v - cy) * expect_z / fy, rtol=1e-5, atol=1e-5, equal_nan=True)
        nan = np.isnan(cloud["z"])
        assert np.array_equal(nan, np.isnan(cloud["x"])) and np.array_equal(nan, np.isnan(cloud["y"]))
        # colours: the input frame on the depth grid, packed 0x00RRGGBB; reference: PIL's antialiased bilinear
        # resize (an independent implementation: within 2 grey levels of the node's uint8 kernel)
        from PIL import Image as PILImage

        from depth_node.geometry.pointcloud import unpack_rgb

        i = [int(x) for x in frames["stamps"]].index(s)
        ref = np.asarray(PILImage.fromarray(frames["rgb"][i]).resize((320, 96), PILImage.BILINEAR), np.int16)
        diff = np.abs(unpack_rgb(np.ascontiguousarray(cloud["rgb"])).astype(np.int16) - ref)
        assert diff.max() <= 2 and diff.mean() < 0.1, (diff.max(), diff.mean())
        checked += 1
    assert checked >= 3


def test_colored_depth_is_bgr8(run: dict) -> None:
    for r in _seq(run, "colored").values():
        assert (r["encoding"], r["height"], r["width"], r["step"]) == ("bgr8", 96, 320, 960)
        assert r["array"].reshape(96, 320, 3).std() > 0


def test_odometry_frames_and_covariance(run: dict) -> None:
    odom = [r for r in run["rec"]["odom"]]
    assert len(odom) >= N - 2
    # the chain's first message: nothing measured yet, so unknown (large), never zero (a fusing filter reads
    # zero as certainty); from the first motion estimate on, the propagated covariance, which only grows
    assert np.allclose(np.diag(np.array(odom[0]["pose_cov"]).reshape(6, 6)), 1e4)
    traces = []
    for r in odom[1:]:
        cov = np.array(r["pose_cov"]).reshape(6, 6)
        assert np.allclose(cov, cov.T) and not np.allclose(cov, np.eye(6))
        assert np.all(np.diag(cov) > 0) and np.trace(cov) < 1.0
        traces.append(np.trace(cov))
        assert abs(np.linalg.norm(r["orientation"]) - 1) < 1e-6
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(traces)), "pose covariance must not shrink"


def test_diagnostics_report_rates_latency_backend_and_scale(run: dict) -> None:
    diags = [d for d in run["rec"]["diagnostics"] if d["name"].endswith("mono_depth_node: depth")]
    assert diags, "no /diagnostics from the node"
    v = diags[-1]["values"]
    for key in ("input_rate_hz", "output_rate_hz", "latency_mean_ms", "latency_max_ms", "frames_dropped",
                "frames_lost_before_node", "input_errors", "intrinsics_source", "scale.source", "scale.state"):
        assert key in v, key
    assert v["backend"] == "torch" and v["precision"] == "fp32" and v["device"] == "cpu"
    assert v["model"].endswith("model.pt") and v["scale.source"] == "fixed" and float(v["scale.scale"]) == FACTOR
    assert v["intrinsics_source"] == "camera_info"
    busy = [d for d in diags if float(d["values"]["output_rate_hz"]) > 0]
    assert busy and all(0 < float(d["values"]["latency_mean_ms"]) < 5000 for d in busy)
    assert int(v["frames_published"]) >= N - 2


def test_node_log_is_clean(run: dict) -> None:
    log = run["node_log"]
    assert "Traceback" not in log
    assert "torch/fp32/cpu" in log and "active:" in log
