"""A synthetic drive as an iterator of frames with exact ground truth: the API the trainer, the tests and the
demo use.

    from depth_node.sim import DriveConfig, render_drive
    for frame in render_drive(DriveConfig(seed=3, frames=200)):
        frame.rgb, frame.depth, frame.semantic, frame.instance, frame.pose, frame.intrinsics, frame.stamp

Pose conventions (as KITTI odometry): `Frame.pose` is camera-to-world of the left camera in the optical
convention, the world being the left camera of frame 0 (so frame 0's pose is the identity). `Frame.pose_body`
is the same motion in REP 103 body axes (odom = frame 0's base_link, base_link at the camera centre, x forward,
y left, z up), and `Frame.twist` the body-frame velocity, both as nav_msgs/Odometry wants them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.poses import invert_se3, optical_to_body_transform
from depth_node.sim import photometric
from depth_node.sim.config import SCENE_KINDS, DriveConfig
from depth_node.sim.indoor import IndoorLayout, generate_indoor
from depth_node.sim.render import RayCaster, RenderOutput
from depth_node.sim.road import Road
from depth_node.sim.scene import Scene, Street, generate_street, generate_traffic
from depth_node.sim.trajectory import EgoPath, SpeedProfile

_S_START = 30.0  # m of road behind the first frame


@dataclass
class Frame:
    index: int
    stamp_ns: int
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 z-depth in metres; inf = sky
    semantic: np.ndarray  # (H, W) uint16, see depth_node.sim.labels
    instance: np.ndarray  # (H, W) uint16, 0 = stuff
    pose: np.ndarray  # (4, 4) float64 camera-to-world, world = frame 0's left camera (optical axes)
    intrinsics: Intrinsics
    twist: np.ndarray  # (6,) base_link velocity in base_link axes: vx, vy, vz (m/s), wx, wy, wz (rad/s)
    moving_instances: tuple[int, ...] = ()
    rgb_right: np.ndarray | None = None
    depth_right: np.ndarray | None = None
    baseline: float = 0.54

    @property
    def stamp(self) -> float:
        return self.stamp_ns * 1e-9

    @property
    def pose_right(self) -> np.ndarray:
        return self.pose @ right_from_left(self.baseline)

    @property
    def pose_body(self) -> np.ndarray:
        """base_link in odom (REP 103 axes), the odometry ground truth."""
        return optical_to_body_transform(self.pose)

    def moving_mask(self) -> np.ndarray:
        return np.isin(self.instance, np.asarray(self.moving_instances, dtype=np.uint16))


def right_from_left(baseline: float) -> np.ndarray:
    """Pose of the right camera in the left camera's frame: rectified, a pure +x offset."""
    T = np.eye(4)
    T[0, 3] = baseline
    return T


class Drive:
    """Road, traffic, ego path and renderer of one (seed, config); frames are rendered on demand."""

    def __init__(self, config: DriveConfig) -> None:
        self.config = config
        cam = config.camera
        self.intrinsics = cam.intrinsics()
        seqs = np.random.SeedSequence(int(config.seed)).spawn(6)
        rng_road, rng_speed, rng_scene, rng_traffic, rng_wobble, rng_photo = (np.random.default_rng(s) for s in seqs)
        self.photo = photometric.drive_params(config.photo, rng_photo) if photometric.enabled(config.photo) else None
        traj = config.trajectory
        self.duration = max(config.frames - 1, 0) / traj.fps
        self.profile = SpeedProfile.generate(rng_speed, traj, self.duration)
        ego_distance = float(self.profile.distance(self.duration))
        road_length = _S_START + ego_distance + config.view_distance + 80.0
        sc = config.scene
        if sc.kind not in SCENE_KINDS:
            raise DepthNodeError(f"scene.kind {sc.kind!r} is not one of {', '.join(SCENE_KINDS)}")
        indoor = sc.kind == "indoor"
        self.road = Road.straight(road_length) if indoor else Road.generate(rng_road, road_length, traj.curviness,
                                                                            traj.min_radius)
        amp = np.deg2rad(traj.pitch_wobble_deg)
        wobble = np.array(
            [
                [amp, rng_wobble.uniform(0.6, 1.4), rng_wobble.uniform(0, 2 * np.pi)],
                [amp * 0.7, rng_wobble.uniform(0.4, 1.1), rng_wobble.uniform(0, 2 * np.pi)],
            ]
        )
        # where the camera moves across the road, and its height above z = 0
        ego_d, cam_z = traj.lane_offset, cam.height_m
        if sc.kind == "sidewalk":
            ego_d, cam_z = -(sc.road_half_width + sc.sidewalk_path), cam.height_m + sc.kerb_height
        elif indoor:
            ego_d = 0.0
        self.path = EgoPath(self.road, self.profile, _S_START, ego_d, cam_z, wobble, np.deg2rad(cam.pitch_deg),
                            np.deg2rad(cam.roll_deg))
        self.layout: IndoorLayout | None = None
        if indoor:
            static, classes, self.layout = generate_indoor(config, rng_scene, _S_START, _S_START + ego_distance)
            floor = (self.layout.floor_variant, self.layout.floor_color)
            self.scene = Scene(static, config.lighting, None, True, None, config.view_distance, 0.0, classes, floor)
        else:
            static, crosswalks, classes, next_id = generate_street(config, self.road, rng_scene, (0.0, road_length))
            traffic, traffic_classes = generate_traffic(
                config, self.road, rng_traffic, _S_START, ego_distance, self.duration, next_id
            )
            classes.update(traffic_classes)
            street = Street(self.road, sc.road_half_width, abs(traj.lane_offset) * 2, sc.sidewalk_width,
                            sc.kerb_height, crosswalks)
            self.scene = Scene(static, config.lighting, street, True, traffic, config.view_distance, 0.0, classes)
        self.caster = RayCaster(self.intrinsics)
        self._world_from_first = invert_se3(self.path.camera_pose(0.0))

    def __len__(self) -> int:
        return self.config.frames

    def time(self, k: int) -> float:
        return k / self.config.trajectory.fps

    def stamp_ns(self, k: int) -> int:
        return round(self.config.start_stamp * 1e9) + round(k * 1e9 / self.config.trajectory.fps)

    def world_pose(self, k: int) -> np.ndarray:
        """Camera-to-scene-world (z up) of the left camera at frame k; what the renderer uses."""
        return self.path.camera_pose(self.time(k))

    def pose(self, k: int) -> np.ndarray:
        return self._world_from_first @ self.world_pose(k)

    def poses(self) -> np.ndarray:
        """(N, 4, 4) ground-truth poses of all frames, without rendering anything."""
        return np.stack([self.pose(k) for k in range(len(self))])

    def twist(self, k: int) -> np.ndarray:
        t = self.time(k)
        h = 1e-3
        t0 = t - h if t - h >= 0 else t
        a, b = self.path.body_pose(t0), self.path.body_pose(t + h)
        dt = (t + h) - t0
        Ra = a[:3, :3]
        v = Ra.T @ (b[:3, 3] - a[:3, 3]) / dt
        dR = Ra.T @ b[:3, :3]
        w = np.array([dR[2, 1] - dR[1, 2], dR[0, 2] - dR[2, 0], dR[1, 0] - dR[0, 1]]) / (2 * dt)
        return np.concatenate([v, w])

    def render_view(self, k: int, right: bool = False) -> RenderOutput:
        T = self.world_pose(k)
        if right:
            T = T @ right_from_left(self.config.camera.baseline)
        t = self.time(k)
        out = self.caster.render(self.scene, T, t, float(self.path.arc_length(t)))
        times = photometric.blur_times(self.config.photo, t)
        if times.size > 1:  # motion blur: the picture averages the exposure, the ground truth is its middle
            acc = np.zeros(out.rgb.shape, np.float32)
            for ti in times:
                Ti = self.path.camera_pose(float(ti))
                if right:
                    Ti = Ti @ right_from_left(self.config.camera.baseline)
                acc += self.caster.render(self.scene, Ti, float(ti), float(self.path.arc_length(ti))).rgb
            out.rgb = np.clip(acc / times.size + 0.5, 0, 255).astype(np.uint8)
        if self.photo is not None:  # per frame and view, from the seed: reproducible, and the two views differ
            rng = np.random.default_rng([int(self.config.seed) & 0xFFFFFFFF, k, int(right)])
            out.rgb = photometric.apply(out.rgb, self.config.photo, self.photo, t, rng)
        return out

    def frame(self, k: int) -> Frame:
        if not 0 <= k < len(self):
            raise IndexError(f"frame {k} outside 0..{len(self) - 1}")
        left = self.render_view(k)
        right = self.render_view(k, right=True) if self.config.camera.stereo else None
        movers = self.scene.traffic.moving_instances() if self.scene.traffic is not None else ()
        return Frame(
            index=k,
            stamp_ns=self.stamp_ns(k),
            rgb=left.rgb,
            depth=left.depth,
            semantic=left.semantic,
            instance=left.instance,
            pose=self.pose(k),
            intrinsics=self.intrinsics,
            twist=self.twist(k),
            moving_instances=movers,
            rgb_right=None if right is None else right.rgb,
            depth_right=None if right is None else right.depth,
            baseline=self.config.camera.baseline,
        )

    def __iter__(self) -> Iterator[Frame]:
        for k in range(len(self)):
            yield self.frame(k)


def render_drive(config: DriveConfig, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
    """Frames start..stop-1 of the drive named by `config` (all by default), rendered lazily."""
    drive = Drive(config)
    stop = len(drive) if stop is None else min(stop, len(drive))
    for k in range(start, stop):
        yield drive.frame(k)
