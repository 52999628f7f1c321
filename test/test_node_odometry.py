"""Odometry over real ROS 2 follows the ground-truth motion of held-out synthetic drives (seeds no training run
used): through a turn with the node's defaults (SE(3) ATE and final heading), and on a straight road with the
ground_plane scale (known camera height) the distance travelled. Needs a trained model (models/default.pt);
untrained weights predict no consistent motion, so the tests are skipped until that model exists."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import ros_helpers as H

MODEL = Path(os.environ["DEPTH_NODE_TEST_MODEL"]) if os.environ.get("DEPTH_NODE_TEST_MODEL") else H.trained_model()
NEEDS_MODEL = pytest.mark.skipif(
    MODEL is None,
    reason="odometry follows the ground-truth motion once a trained model exists (models/default.pt is not there yet)",
)

DOMAIN = 55
N = 40
STRAIGHT_HELD_OUT_SEED = 9002  # a drive no training run used (models/default.md), straight for its first 40 frames


def _drive(tmp_path: Path, n: int, seed: int) -> tuple[Path, dict]:
    """A drive rendered at the shipped model's size (skipped where the model has no pose network)."""
    from depth_node.checkpoints.model_file import load_model

    m = load_model(MODEL)
    if not m.has_pose:
        pytest.skip(f"{MODEL} has no pose network")
    frames_path = H.render_frames(tmp_path / "drive.npz", n=n, width=m.width, height=m.height, seed=seed)
    return frames_path, np.load(frames_path)


def _odom_poses(data: dict) -> dict[int, np.ndarray]:
    """The recorded odometry as 4×4 poses by stamp."""
    from depth_node.geometry.poses import matrix_from_quaternion

    poses = {}
    for o in data["odom"]:
        T = np.eye(4)
        T[:3, :3] = matrix_from_quaternion(o["orientation"])
        T[:3, 3] = o["position"]
        poses[o["stamp"]] = T
    return poses


def _odometry_run(tmp_path: Path, domain: int, params: dict, frames_path: Path, last_stamp: int,
                  seconds: int) -> dict:
    """The shipped model in a node process (torch on the CPU, `params` over the defaults), the rendered frames
    published in lockstep at 10 Hz, and the node's depth, odom and diagnostics as the recorder received them."""
    node = H.start_node(tmp_path, domain, {"model": str(MODEL), "backend": "torch", "device": "cpu", **params})
    rec = pub = None
    try:
        assert node.wait_for("active:", 120), node.log()
        rec = H.start_recorder(tmp_path, domain, tmp_path / "odom.pkl", topics="depth,odom,diagnostics",
                               until_stamp=last_stamp, duration=seconds + 40, keep_arrays=False)
        assert rec.wait_for("recorder: ready", 40), rec.log()
        pub = H.start_publisher(tmp_path, domain, frames_path, rate=10.0, extra=["--lockstep", "15"])
        assert pub.wait(seconds) == 0, pub.log()
        assert rec.wait(30) is not None
        return H.load_record(tmp_path / "odom.pkl")
    finally:
        for p in (pub, rec):
            if p is not None:
                p.stop()
        node.stop()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")
@NEEDS_MODEL
@pytest.mark.timeout(420)
def test_odometry_follows_the_drive(tmp_path) -> None:
    from depth_node.geometry.poses import invert_se3, optical_to_body_transform

    frames_path, frames = _drive(tmp_path, N, STRAIGHT_HELD_OUT_SEED)
    data = _odometry_run(tmp_path, DOMAIN, {"scale_source": "ground_plane", "ground_plane.camera_height": 1.65},
                         frames_path, int(frames["stamps"][-1]), seconds=300)

    odom = _odom_poses(data)
    idx = [k for k, s in enumerate(frames["stamps"]) if int(s) in odom]
    assert len(idx) >= N - 3
    k0, k1 = idx[0], idx[-1]
    est = invert_se3(odom[int(frames["stamps"][k0])]) @ odom[int(frames["stamps"][k1])]
    gt = invert_se3(optical_to_body_transform(frames["poses"][k0])) @ optical_to_body_transform(frames["poses"][k1])
    d_est, d_gt = est[:3, 3], gt[:3, 3]
    assert np.linalg.norm(d_gt) > 5.0, "the drive should move"
    cos = float(d_est @ d_gt / (np.linalg.norm(d_est) * np.linalg.norm(d_gt) + 1e-12))
    ratio = float(np.linalg.norm(d_est) / np.linalg.norm(d_gt))
    print(f"odometry over {k1 - k0} frames: gt {d_gt.round(2)} m, estimate {d_est.round(2)} m, cos {cos:.3f}, "
          f"length ratio {ratio:.3f}")
    assert cos > 0.95, "odometry does not follow the direction of travel"
    assert 0.75 < ratio < 1.25, "ground_plane scale does not give the distance travelled"
    assert d_est[0] > 0, "forward motion must be +x in base_link (REP 103)"
    v = [d for d in data["diagnostics"] if d["name"].endswith(": depth")][-1]["values"]
    assert v["scale.source"] == "ground_plane" and v["scale.state"] == "tracking"


HELD_OUT_SEED = 9016  # models/default.md: training seeds 1-24, validation 1001-1003; the demo drives 9001
HELD_OUT_FRAMES = 150
MIN_TURN_DEG = 45.0
MAX_ATE_PCT = 3.0  # issue 16: SE(3) ATE ≤ 3 % of the path on a held-out drive with real turns
MAX_YAW_ERR_DEG = 5.0  # the final heading within ~10 % of the turn (a pose net that does not turn is off by ~50°)


def _yaw(T: np.ndarray) -> float:
    """Heading about body z (REP 103: x forward, z up)."""
    return float(np.arctan2(T[1, 0], T[0, 0]))


def _kabsch_ate(est: np.ndarray, gt: np.ndarray) -> float:
    """RMSE of positions after the best rigid (SE(3), no scale) alignment of est onto gt (Kabsch/Umeyama, written
    here so the figure does not come from the evaluation code of the package)."""
    me, mg = est.mean(0), gt.mean(0)
    U, _, Vt = np.linalg.svd((gt - mg).T @ (est - me))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    aligned = (est - me) @ R.T + mg
    return float(np.sqrt(np.mean(np.sum((aligned - gt) ** 2, axis=1))))


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")
@NEEDS_MODEL
@pytest.mark.timeout(600)
def test_odometry_follows_a_held_out_drive_through_a_turn(tmp_path) -> None:
    """The shipped model with the node's defaults (scale source auto → the model's stereo scale, odom.refine on)
    on a drive it never saw that turns by more than 45°: the trajectory within 3 % of the path after SE(3)
    alignment and the final heading within a few degrees. A pose net that only predicts "forward" fails both."""
    from depth_node.geometry.poses import invert_se3, optical_to_body_transform

    frames_path, frames = _drive(tmp_path, HELD_OUT_FRAMES, HELD_OUT_SEED)
    stamps = [int(s) for s in frames["stamps"]]
    body = np.stack([optical_to_body_transform(p) for p in frames["poses"]])
    turn = np.degrees(np.unwrap([_yaw(invert_se3(body[0]) @ b) for b in body]))
    assert abs(turn[-1]) >= MIN_TURN_DEG and len(stamps) >= 150, f"the drive must turn: {turn[-1]:.1f}°"

    data = _odometry_run(tmp_path, 58, {}, frames_path, stamps[-1], seconds=500)

    odom = _odom_poses(data)
    idx = [k for k, s in enumerate(stamps) if s in odom]
    assert len(idx) >= len(stamps) - 3, f"odometry for {len(idx)} of {len(stamps)} frames"
    est = np.stack([invert_se3(odom[stamps[idx[0]]]) @ odom[stamps[k]] for k in idx])
    gt = np.stack([invert_se3(body[idx[0]]) @ body[k] for k in idx])
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    ate_pct = 100.0 * _kabsch_ate(est[:, :3, 3], gt[:, :3, 3]) / path
    yaw_err = abs(np.degrees(np.angle(np.exp(1j * (_yaw(est[-1]) - _yaw(gt[-1]))))))
    print(f"held-out seed {HELD_OUT_SEED}: {len(idx)} frames, path {path:.1f} m, turn {turn[-1]:.1f}°, "
          f"SE(3) ATE {ate_pct:.2f} % of path, final yaw error {yaw_err:.2f}° "
          f"(estimate {np.degrees(_yaw(est[-1])):.1f}°)")
    assert ate_pct <= MAX_ATE_PCT, f"SE(3) ATE {ate_pct:.2f} % of the path > {MAX_ATE_PCT} %"
    assert yaw_err <= MAX_YAW_ERR_DEG, f"final yaw off by {yaw_err:.2f}° (ground truth turns {turn[-1]:.1f}°)"
    v = [d for d in data["diagnostics"] if d["name"].endswith(": depth")][-1]["values"]
    assert v["scale.source"] == "stereo", "the default scale source of the stereo-trained model"


class OracleEstimator:
    """Stands in for DepthEstimator with the drive's ground truth in a mono model's units (metres / factor):
    what a perfect model would output. Frames are recognised by their network input."""

    def __init__(self, real, frames, factor: float):
        self.real, self.factor = real, factor
        self.height, self.width, self.has_pose = real.height, real.width, True
        self.depths = np.where(np.isfinite(frames["depth"]), frames["depth"], np.nan).astype(np.float32)
        self.poses = frames["poses"]
        self.index = {self._key(real.prepare(rgb)): k for k, rgb in enumerate(frames["rgb"])}

    @staticmethod
    def _key(x: np.ndarray) -> bytes:
        import hashlib

        return hashlib.sha1(np.ascontiguousarray(x).tobytes()).digest()

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        return self.real.prepare(rgb)

    def depth(self, x, intrinsics=None, out_size=None):
        from depth_node.inference.estimator import DepthResult
        from depth_node.inference.preprocess import output_intrinsics

        d = self.depths[self.index[self._key(x)]] / self.factor
        h, w = d.shape
        return DepthResult(d, None if intrinsics is None else output_intrinsics(intrinsics, h, w), False)

    def motion(self, earlier, later) -> np.ndarray:
        from depth_node.geometry.poses import invert_se3

        a, b = self.index[self._key(earlier)], self.index[self._key(later)]
        M = invert_se3(self.poses[a]) @ self.poses[b]
        M[:3, 3] /= self.factor
        return M


@pytest.mark.ros
@pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")
@pytest.mark.timeout(240)
def test_node_chains_a_perfect_estimator_into_the_ground_truth(tmp_path) -> None:
    """With ground-truth depth and motion in unknown units, the node's ground_plane scale, frame conventions
    (optical → REP 103 body, REP 105 odom), twist and covariance give back the drive: conventions, not a model,
    are what this checks."""
    from depth_node.geometry.poses import invert_se3, matrix_from_quaternion, optical_to_body_transform

    factor = 4.2
    n = 12
    model = H.make_model(tmp_path / "model.pt")
    frames = np.load(H.render_frames(tmp_path / "drive.npz", n=n, width=320, height=96, seed=3))
    ln = H.LiveNode(56, {"model": str(model), "backend": "torch", "device": "cpu", "precision": "fp32",
                         "scale_source": "ground_plane", "ground_plane.camera_height": 1.65})
    try:
        with ln.node.proc_lock:
            # the node's frames go through its FramePipeline: the oracle replaces the pipeline's estimator
            ln.node.pipe.estimator = ln.node.estimator = OracleEstimator(ln.node.estimator, frames, factor)
        ln.subscribe("odom")
        ln.subscribe("depth")
        odom = []
        for k in range(n):
            msg, _ = ln.send(frames["rgb"][k], int(frames["stamps"][k]), frames["K"], wait_for="odom", timeout=20)
            odom.append(msg)
        scale = ln.node.scale.scale
        depth_last = ln.got["depth"][-1]
    finally:
        ln.close()

    assert scale == pytest.approx(factor, rel=0.01), "ground_plane scale did not recover the unknown factor"
    d = np.frombuffer(bytes(depth_last.data), np.float32).reshape(96, 320)
    gt = frames["depth"][-1]
    ok = np.isfinite(gt)
    np.testing.assert_allclose(d[ok], gt[ok], rtol=0.02)  # published depth is metric

    def pose(m) -> np.ndarray:
        T = np.eye(4)
        q = m.pose.pose.orientation
        p = m.pose.pose.position
        T[:3, :3] = matrix_from_quaternion([q.x, q.y, q.z, q.w])
        T[:3, 3] = [p.x, p.y, p.z]
        return T

    body0 = optical_to_body_transform(frames["poses"][0])
    for k in (1, n // 2, n - 1):
        gt_k = invert_se3(body0) @ optical_to_body_transform(frames["poses"][k])
        est = pose(odom[k])
        np.testing.assert_allclose(est[:3, 3], gt_k[:3, 3], atol=0.02 * np.linalg.norm(gt_k[:3, 3]) + 0.02)
        np.testing.assert_allclose(est[:3, :3], gt_k[:3, :3], atol=2e-3)
    assert odom[-1].pose.pose.position.x > 5.0  # forward is +x (REP 103)
    step = invert_se3(optical_to_body_transform(frames["poses"][n - 2])) @ optical_to_body_transform(
        frames["poses"][n - 1])
    dt = (int(frames["stamps"][n - 1]) - int(frames["stamps"][n - 2])) / 1e9
    assert odom[-1].twist.twist.linear.x == pytest.approx(step[0, 3] / dt, rel=0.03)
    covs = [np.array(m.pose.covariance).reshape(6, 6) for m in odom]
    # the chain's first message has no motion estimate yet: "unknown" (large diagonal), never zero (fusion reads 0
    # as certain); from the first measured step on the covariance grows with the distance travelled
    assert np.all(np.diag(covs[0]) >= 1e3), np.diag(covs[0])
    assert all(np.trace(b) > np.trace(a) for a, b in itertools.pairwise(covs[1:]))
    assert odom[-1].header.frame_id == "odom" and odom[-1].child_frame_id == "base_link"
