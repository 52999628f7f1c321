"""Camera mounting from TF (ros/tf_mounting.TfMounting) with the camera_to_base parameter as fallback, and the
frame core taking it (runtime/core.FrameCore.set_camera_to_base). tf2_ros is not installable here: the buffer
is a stand-in with tf2_ros.Buffer's lookup_transform(target, source, time) answering one fixed transform.
Expected matrices are written out by hand (REP 103: optical z forward = body x, optical x right = body −y,
optical y down = body −z)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from depth_node.geometry.odometry import VisualOdometry, transform_from_xyz_quat
from depth_node.geometry.scale import GroundPlaneScale
from depth_node.ros import tf_mounting
from depth_node.ros.tf_mounting import TfMounting
from depth_node.runtime.core import FrameCore

R_OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class LookupException(Exception):
    pass


class StandInBuffer:
    """lookup_transform as tf2_ros.Buffer: the pose of `source` in `target`, or an exception (not yet known)."""

    def __init__(self, frames: dict[tuple[str, str], tuple[list[float], list[float]]]) -> None:
        self.frames = frames
        self.calls: list[tuple[str, str]] = []

    def lookup_transform(self, target: str, source: str, time) -> SimpleNamespace:
        self.calls.append((target, source))
        if (target, source) not in self.frames:
            raise LookupException(f'"{target}" passed to lookupTransform argument target_frame does not exist')
        (x, y, z), (qx, qy, qz, qw) = self.frames[(target, source)]
        v = SimpleNamespace
        return v(transform=v(translation=v(x=x, y=y, z=z), rotation=v(x=qx, y=qy, z=qz, w=qw)))


CONFIGURED = transform_from_xyz_quat([0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5])
TF = {("base_link", "front_cam_optical"): ([0.3, 0.0, 1.2], [-0.5, 0.5, -0.5, 0.5])}


def test_tf_answer_is_the_mounting() -> None:
    logs: list[tuple[str, str]] = []
    m = TfMounting(StandInBuffer(TF), lambda lvl, text: logs.append((lvl, text)))
    T = m.choose("base_link", "front_cam_optical", CONFIGURED)
    assert m.source == "tf"
    assert np.allclose(T[:3, :3], R_OPTICAL_IN_BODY) and np.allclose(T[:3, 3], [0.3, 0.0, 1.2])
    m.choose("base_link", "front_cam_optical", CONFIGURED)
    assert m.buffer.calls == [("base_link", "front_cam_optical")]  # static: looked up once
    assert [lvl for lvl, _ in logs] == ["info"] and "from TF" in logs[0][1]


def test_parameters_until_tf_knows_the_frame(monkeypatch) -> None:
    logs: list[tuple[str, str]] = []
    buf = StandInBuffer({})
    m = TfMounting(buf, lambda lvl, text: logs.append((lvl, text)))
    assert m.choose("base_link", "front_cam_optical", CONFIGURED) is CONFIGURED and m.source == "parameters"
    m.choose("base_link", "front_cam_optical", CONFIGURED)
    assert len(buf.calls) == 1  # retried at most every RETRY_S
    assert len(logs) == 1 and logs[0][0] == "warning" and "camera_to_base" in logs[0][1]
    monkeypatch.setattr(tf_mounting, "RETRY_S", 0.0)
    buf.frames.update(TF)  # the robot_state_publisher comes up
    T = m.choose("base_link", "front_cam_optical", CONFIGURED)
    assert m.source == "tf" and np.allclose(T[:3, 3], [0.3, 0.0, 1.2])


def test_without_tf2_ros_the_parameter_is_used() -> None:
    m = TfMounting(None, lambda *a: pytest.fail("nothing to log"))
    assert m.choose("base_link", "cam", CONFIGURED) is CONFIGURED and m.source == "parameters"


def test_core_uses_the_chosen_mounting_for_odometry_and_ground_up() -> None:
    vo = VisualOdometry(CONFIGURED)
    pipe = SimpleNamespace(vo=vo, scale=GroundPlaneScale(camera_to_base=CONFIGURED))
    core = FrameCore(pipe, SimpleNamespace())
    assert np.allclose(pipe.scale.up, [0.0, -1.0, 0.0])  # body up = optical −y for the level camera
    # camera pitched down 30° about body y: optical forward tilts towards −z
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    pitch = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    T = np.eye(4)
    T[:3, :3] = pitch @ R_OPTICAL_IN_BODY
    T[:3, 3] = [0.3, 0.0, 1.2]
    assert core.set_camera_to_base(T) and not core.set_camera_to_base(T.copy())
    assert np.allclose(vo.camera_to_base, T)
    # body up in the optical frame: (pitch·R)ᵀ·z = Rᵀ·(pitchᵀ·z) = Rᵀ·(−s, 0, c) = (0, −c, −s)
    assert np.allclose(pipe.scale.up, [0.0, -c, -s])
    # a camera moving 1 m along its optical axis moves the body along pitched forward: (c, 0, −s)
    step = np.eye(4)
    step[2, 3] = 1.0
    body = vo.body_motion(step)
    assert np.allclose(body[:3, 3], [c, 0.0, -s]) and np.allclose(body[:3, :3], np.eye(3))
