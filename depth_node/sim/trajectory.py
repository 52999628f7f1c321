"""The ego camera's path: a speed profile (cruise phases, smooth speed changes, full stops) driven along the
ego lane of the road, with a slight body sway so that poses are not exactly planar.

Poses are a continuous function of time, so ground-truth velocities (the odometry twist) come from the same
function as the frames' poses and agree with them to numerical precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_node.geometry.poses import OPTICAL_TO_BODY
from depth_node.sim.config import TrajectoryConfig
from depth_node.sim.road import Road

_DT = 0.005  # s, integration step of the speed profile


@dataclass(frozen=True)
class SpeedProfile:
    """Tabulated speed v(t) and distance s(t), starting at t = 0 already moving (no dead frames at the start)."""

    t: np.ndarray
    v: np.ndarray
    s: np.ndarray

    @classmethod
    def generate(cls, rng: np.random.Generator, cfg: TrajectoryConfig, duration: float) -> SpeedProfile:
        knots_t: list[float] = [0.0]
        knots_v: list[float] = [cfg.cruise_speed]
        kinds: list[str] = []  # per interval: "hold" or "ramp"
        t = 0.0
        v = cfg.cruise_speed
        accel = max(cfg.max_accel, 1e-3)
        while t < duration + 5.0:
            hold = rng.uniform(4.0, 14.0)
            t += hold
            knots_t.append(t)
            knots_v.append(v)
            kinds.append("hold")
            p_stop = cfg.stops_per_km * v * hold / 1000.0
            if rng.random() < p_stop:
                # brake to a standstill, wait, pull away
                t += _ramp_time(v, 0.0, accel)
                knots_t.append(t)
                knots_v.append(0.0)
                kinds.append("ramp")
                t += rng.uniform(*cfg.stop_duration)
                knots_t.append(t)
                knots_v.append(0.0)
                kinds.append("hold")
                v_new = cfg.cruise_speed * (1.0 + cfg.speed_variation * rng.uniform(-1.0, 1.0))
                t += _ramp_time(0.0, v_new, accel)
                knots_t.append(t)
                knots_v.append(v_new)
                kinds.append("ramp")
                v = v_new
            else:
                v_new = max(1.0, cfg.cruise_speed * (1.0 + cfg.speed_variation * rng.uniform(-1.0, 1.0)))
                t += _ramp_time(v, v_new, accel)
                knots_t.append(t)
                knots_v.append(v_new)
                kinds.append("ramp")
                v = v_new
        tt = np.arange(0.0, knots_t[-1], _DT)
        vv = np.empty_like(tt)
        kt = np.asarray(knots_t)
        idx = np.clip(np.searchsorted(kt, tt, side="right") - 1, 0, len(kinds) - 1)
        t0, t1 = kt[idx], kt[idx + 1]
        v0, v1 = np.asarray(knots_v)[idx], np.asarray(knots_v)[idx + 1]
        frac = np.clip((tt - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
        smooth = 0.5 - 0.5 * np.cos(np.pi * frac)  # cosine ramp: continuous speed and acceleration onset
        vv[:] = v0 + (v1 - v0) * smooth
        ss = np.concatenate([[0.0], np.cumsum(0.5 * (vv[1:] + vv[:-1]) * _DT)])
        return cls(tt, vv, ss)

    @classmethod
    def constant(cls, speed: float, duration: float) -> SpeedProfile:
        tt = np.arange(0.0, duration + 1.0, _DT)
        return cls(tt, np.full_like(tt, speed), speed * tt)

    def distance(self, t) -> np.ndarray:
        return np.interp(t, self.t, self.s)

    def speed(self, t) -> np.ndarray:
        return np.interp(t, self.t, self.v)


def _ramp_time(v0: float, v1: float, accel: float) -> float:
    # peak acceleration of a cosine ramp is (π/2)·Δv/T
    return max(0.5, np.pi / 2 * abs(v1 - v0) / accel)


@dataclass(frozen=True)
class EgoPath:
    road: Road
    profile: SpeedProfile
    s_start: float
    lane_offset: float
    camera_height: float
    wobble: np.ndarray  # (2, 3): pitch/roll amplitude (rad), cycles per 10 m driven, phase
    mount_pitch: float = 0.0  # rad, > 0 looks down (REP 103: about the body's y axis)
    mount_roll: float = 0.0  # rad, about the forward axis (REP 103 sign: > 0 lowers the right side)

    def arc_length(self, t) -> np.ndarray:
        return self.s_start + self.profile.distance(t)

    def body_pose(self, t: float) -> np.ndarray:
        """4×4 world-from-body (REP 103 axes) of the camera's body at time t (world: z up, ground z = 0)."""
        s = self.arc_length(t)
        x, y, th = self.road.point(s, self.lane_offset)
        # sway is a function of distance (road undulation), so a stopped car is truly static
        pitch = self.wobble[0, 0] * np.sin(2 * np.pi * self.wobble[0, 1] * s / 10.0 + self.wobble[0, 2])
        roll = self.wobble[1, 0] * np.sin(2 * np.pi * self.wobble[1, 1] * s / 10.0 + self.wobble[1, 2])
        T = np.eye(4)
        T[:3, :3] = _rot_z(float(th)) @ _rot_y(float(pitch) + self.mount_pitch) @ _rot_x(float(roll) + self.mount_roll)
        T[:3, 3] = [float(x), float(y), self.camera_height]
        return T

    def camera_pose(self, t: float) -> np.ndarray:
        """4×4 world-from-camera in the optical convention (x right, y down, z forward)."""
        T = self.body_pose(t)
        T[:3, :3] = T[:3, :3] @ OPTICAL_TO_BODY
        return T


def camera_pose_from(position, heading: float, pitch: float = 0.0) -> np.ndarray:
    """World-from-camera (optical) for a camera at `position` looking along `heading` (rad, from +x), level;
    `pitch` > 0 tilts it down. A convenience for tests and hand-built scenes."""
    T = np.eye(4)
    T[:3, :3] = _rot_z(heading) @ _rot_y(pitch) @ OPTICAL_TO_BODY
    T[:3, 3] = np.asarray(position, dtype=np.float64)
    return T


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
