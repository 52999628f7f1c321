"""Visual odometry from chained pose-network motions: pose, twist and a covariance that means something.

Frames (REP 103/105): the pose network gives the motion of the camera's *optical* frame between two frames
(pose of the later camera in the earlier one). With the camera's pose in the robot body, T_base_cam, the body
motion is T_base_cam · M · T_base_cam⁻¹, and the body pose in `odom` is the running product of those motions,
starting at identity (odom's origin is where the body was at the first frame).

Covariance model (see the README's node section). Each step's error is modelled in the body frame, zero-mean,
independent between steps, isotropic per block:
    σ_t = translation_noise · |t| + scale_rel_std · |t| + translation_noise_floor   (metres, per axis)
    σ_r = rotation_noise · |θ| + rotation_noise_floor                                 (radians, per axis)
so it grows with distance travelled, with turning, and with the scale estimator's own uncertainty; the
floors keep a stationary robot's covariance positive definite (drift while stopped is real). The pose
covariance (about odom's axes, REP 103 order x, y, z, rotX, rotY, rotZ) is propagated to first order with a
world-frame perturbation: p' = p + R t, R' = R ΔR gives
    Σ' = F Σ Fᵀ + G Q Gᵀ,   F = [[I, −[R t]ₓ], [0, I]],   G = diag(R, R),
so heading uncertainty turns into growing lateral position uncertainty, as it does for any dead reckoning.
The twist covariance is Q / dt² (body frame, as nav_msgs/Odometry's twist is in child_frame_id).

Planar mode (`odom.planar`, off by default): for a ground robot on a flat floor or road, each body motion is
projected onto the body's x–y plane (its heading change about body z and its x, y translation are kept; roll,
pitch and the z translation are dropped), so the published pose stays on odom's ground plane whatever pitch
error the visual motion has. It needs `camera_to_base` to put body z up (REP 103); on ramps and hills it is
wrong by construction (the odometry stays level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from depth_node.geometry.poses import OPTICAL_TO_BODY, invert_se3, matrix_from_quaternion


def skew(v: np.ndarray) -> np.ndarray:
    x, y, z = v
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """Log map SO(3) → axis·angle (radians), stable near 0 and π."""
    c = (np.trace(R) - 1.0) / 2.0
    c = min(1.0, max(-1.0, c))
    angle = math.acos(c)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if angle < 1e-7:
        return 0.5 * w
    if math.pi - angle < 1e-4:  # near π: axis from the symmetric part
        M = (R + np.eye(3)) / 2.0
        axis = np.sqrt(np.clip(np.diag(M), 0.0, None))
        i = int(np.argmax(axis))
        axis[(i + 1) % 3] = M[i, (i + 1) % 3] / axis[i]
        axis[(i + 2) % 3] = M[i, (i + 2) % 3] / axis[i]
        axis /= np.linalg.norm(axis)
        if np.dot(axis, w) < 0:
            axis = -axis
        return axis * angle
    return w * (angle / (2.0 * math.sin(angle)))


def transform_from_xyz_quat(values) -> np.ndarray:
    """[x, y, z, qx, qy, qz, qw] → 4×4 (the camera's pose in the body, as the `camera_to_base` parameter)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size != 7:
        raise ValueError(f"expected [x, y, z, qx, qy, qz, qw], got {v.size} numbers")
    q = v[3:]
    n = float(np.linalg.norm(q))
    if not np.all(np.isfinite(v)) or n < 1e-9:
        raise ValueError("the quaternion must be finite and non-zero")
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion(q / n)
    T[:3, 3] = v[:3]
    return T


def default_camera_to_base() -> np.ndarray:
    """REP 103 optical → body rotation, camera at the body origin."""
    T = np.eye(4)
    T[:3, :3] = OPTICAL_TO_BODY
    return T


def planar_motion(B: np.ndarray) -> np.ndarray:
    """A body motion reduced to the ground plane: yaw about body z (of the rotated x axis) and x, y translation."""
    out = np.eye(4)
    yaw = math.atan2(B[1, 0], B[0, 0])
    c, s = math.cos(yaw), math.sin(yaw)
    out[:2, :2] = [[c, -s], [s, c]]
    out[:2, 3] = B[:2, 3]
    return out


@dataclass
class OdometryNoise:
    translation_noise: float = 0.05  # relative: σ per metre of step
    rotation_noise: float = 0.05  # relative: σ per radian of step
    translation_noise_floor: float = 0.002  # metres per step
    rotation_noise_floor: float = 0.001  # radians per step

    def step_covariance(self, t: np.ndarray, theta: float, scale_rel_std: float = 0.0) -> np.ndarray:
        d = float(np.linalg.norm(t))
        st = (self.translation_noise + max(0.0, scale_rel_std)) * d + self.translation_noise_floor
        sr = self.rotation_noise * abs(theta) + self.rotation_noise_floor
        return np.diag([st * st] * 3 + [sr * sr] * 3)


@dataclass
class TimeCheck:
    """What a new stamp means for the chain (see `VisualOdometry.check_time`)."""

    kind: str  # "first", "ok", "duplicate", "out_of_order", "jump_back", "gap"
    dt: float = 0.0

    @property
    def restart(self) -> bool:
        return self.kind in ("jump_back", "gap")


def classify_stamp(last: float | None, stamp: float, max_gap: float) -> TimeCheck:
    """What `stamp` means after `last`.

    A step back of at most `max_gap` is an out-of-order frame (drop it); a longer one is a time jump (bag
    loop, simulation reset): restart. A forward gap over `max_gap` cannot be bridged by one motion estimate:
    restart the pairing, keep the pose.
    """
    if last is None:
        return TimeCheck("first")
    dt = stamp - last
    if dt == 0.0:
        return TimeCheck("duplicate", 0.0)
    if dt < 0.0:
        return TimeCheck("jump_back" if -dt > max_gap else "out_of_order", dt)
    if dt > max_gap:
        return TimeCheck("gap", dt)
    return TimeCheck("ok", dt)


@dataclass
class VisualOdometry:
    """Chains camera motions into the body pose in odom; knows when the chain must restart."""

    camera_to_base: np.ndarray = field(default_factory=default_camera_to_base)
    noise: OdometryNoise = field(default_factory=OdometryNoise)
    max_gap: float = 1.0  # seconds: a larger jump either way restarts the chain
    planar: bool = False  # ground robots: keep the body on odom's x–y plane (see the module docstring)

    def __post_init__(self) -> None:
        self.camera_to_base = np.asarray(self.camera_to_base, dtype=np.float64)
        self._base_to_camera = invert_se3(self.camera_to_base)
        self.pose = np.eye(4)
        self.covariance = np.zeros((6, 6))
        self.twist = np.zeros(6)
        self.twist_covariance = np.zeros((6, 6))
        self.last_stamp: float | None = None
        self.steps = 0
        self.restarts = 0
        self.distance = 0.0

    def check_time(self, stamp: float) -> TimeCheck:
        """Classify `stamp` against the last chained one (see `classify_stamp`) without changing anything."""
        return classify_stamp(self.last_stamp, stamp, self.max_gap)

    def reset(self, keep_pose: bool = False) -> None:
        """Restart the chain. keep_pose: continue from the current pose (gap) rather than from the origin."""
        if not keep_pose:
            self.pose = np.eye(4)
            self.covariance = np.zeros((6, 6))
            self.distance = 0.0
        self.twist = np.zeros(6)
        self.twist_covariance = np.zeros((6, 6))
        self.last_stamp = None
        self.restarts += 1

    def start(self, stamp: float) -> None:
        """Mark `stamp` as the frame the next motion starts from (first frame, or after a restart)."""
        self.last_stamp = stamp

    def body_motion(self, camera_motion: np.ndarray) -> np.ndarray:
        B = self.camera_to_base @ camera_motion @ self._base_to_camera
        return planar_motion(B) if self.planar else B

    def step(self, camera_motion: np.ndarray, stamp: float, scale: float = 1.0, scale_rel_std: float = 0.0) -> None:
        """Add one motion (pose of the new camera in the previous camera's optical frame, in depth units).

        `scale` turns its translation into metres: the same factor applied to the depth of this frame.
        """
        dt = 0.0 if self.last_stamp is None else stamp - self.last_stamp
        M = np.array(camera_motion, dtype=np.float64)
        M[:3, 3] *= scale
        B = self.body_motion(M)
        t, dR = B[:3, 3], B[:3, :3]
        rv = rotation_vector(dR)
        Q = self.noise.step_covariance(t, float(np.linalg.norm(rv)), scale_rel_std)
        R = self.pose[:3, :3]
        F = np.eye(6)
        F[:3, 3:] = -skew(R @ t)
        G = np.zeros((6, 6))
        G[:3, :3] = R
        G[3:, 3:] = R
        self.covariance = F @ self.covariance @ F.T + G @ Q @ G.T
        self.covariance = 0.5 * (self.covariance + self.covariance.T)
        self.pose = self.pose @ B
        # keep R orthonormal over thousands of products
        U, _, Vt = np.linalg.svd(self.pose[:3, :3])
        self.pose[:3, :3] = U @ Vt
        if dt > 0:
            self.twist = np.concatenate([t / dt, rv / dt])
            self.twist_covariance = Q / (dt * dt)
        self.distance += float(np.linalg.norm(t))
        self.last_stamp = stamp
        self.steps += 1
