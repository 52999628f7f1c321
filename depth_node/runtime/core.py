"""The node's per-frame rules, once: stamps, gaps and out-of-order frames, choice of intrinsics, the outputs'
frame id, cloud colour, odometry pairing; one `FrameOutputs` value per frame.

The ROS node and the offline bag runner both hand every image message (duck-typed sensor_msgs/Image) to
`FrameCore.process` and only convert what comes back, so `eval-bag --offline` scores the node's own code path
(minus transport and the node's latest-frame-wins dropping). Nothing here logs: what a transport should say
comes back as `Event`s (kind = /diagnostics counter and log-throttle key).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.colormap import colorize
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.odometry import classify_stamp
from depth_node.geometry.pointcloud import OrganizedCloudBuilder
from depth_node.geometry.poses import invert_se3
from depth_node.geometry.scale import ScaleError, ground_plane_config
from depth_node.io.bags import stamp_to_ns
from depth_node.io.image_codec import ImageFormatError
from depth_node.runtime.frames import check_camera_frame, decode_rgb, error_kind
from depth_node.runtime.intrinsics import CameraModel, camera_model, configured_intrinsics
from depth_node.runtime.params import ParamError
from depth_node.runtime.pipeline import DepthFrame, FramePipeline, odometry_noise, resolve_model_path
from depth_node.runtime.rectify import Rectifier
from depth_node.runtime.scale_sources import group_values
from depth_node.runtime.sync import CameraInfoCache


@dataclass(frozen=True)
class Wants:
    """Which outputs someone reads (the node: subscribers; offline: what the outputs bag holds). Nothing is
    computed for an output nobody wants; with none at all the frame is skipped."""

    depth: bool = True
    depth_info: bool = True
    points: bool = True
    colored: bool = False
    odom: bool = True

    def any(self) -> bool:
        return self.depth or self.depth_info or self.points or self.colored or self.odom


@dataclass(frozen=True)
class Event:
    """Something a transport should report: `kind` names the /diagnostics counter (errors.<kind>) and the
    log-throttle key; `counted`: an input error (counted), or only worth a log line."""

    kind: str
    text: str
    level: str = "error"  # error | warning | info
    counted: bool = True


def refusal(msg: Any) -> Event | None:
    """Why an image message can never be processed (unreadable fields, a zero or negative stamp), found without
    decoding its pixels; None when it may be. The node asks in its image callback, so that such a frame is refused
    as it arrives and never takes the place of a good one still waiting for the inference thread; `process`
    applies the same rules to what reaches it."""
    try:
        check_camera_frame(msg)
    except ImageFormatError as exc:
        return _format_event(exc)
    stamp_ns = stamp_to_ns(msg.header.stamp)
    return _bad_stamp_event(stamp_ns) if stamp_ns <= 0 else None


def _format_event(exc: ImageFormatError) -> Event:
    return Event(f"image_{error_kind(str(exc))}", f"dropped image: {exc}")


def _bad_stamp_event(stamp_ns: int) -> Event:
    return Event("invalid_stamp", f"dropped image: stamp {stamp_ns / 1e9:.9f} s is zero or negative (is the camera "
                 "driver stamping its images?)")


@dataclass(frozen=True)
class OdometryState:
    """A copy of the odometry after this frame (REP 105 pose of the body in odom, twist in the body)."""

    pose: np.ndarray
    covariance: np.ndarray
    twist: np.ndarray
    twist_covariance: np.ndarray


FAR_FORWARD_S = 10.0  # a forward jump this long is a stamp to doubt (an hour ahead), not just a pause
UNKNOWN_VARIANCE = 1e4  # (100 m)², (100 rad)²: "not measured" for fusion (robot_localization reads 0 as certain)


def odometry_state(vo: Any, chain_steps: int) -> OdometryState:
    """The odometry after this frame, with covariances that are never zero: the pose at a chain's origin
    (start, restart at the origin) and the twist before the chain's first motion estimate are unknown."""
    cov = vo.covariance.copy()
    if not cov.any():
        cov = np.eye(6) * UNKNOWN_VARIANCE
    twist_cov = vo.twist_covariance.copy() if chain_steps else np.eye(6) * UNKNOWN_VARIANCE
    return OdometryState(vo.pose.copy(), cov, vo.twist.copy(), twist_cov)


@dataclass
class FrameOutputs:
    """Everything one frame produced. `status`: "ok", "dropped" (bad image or stamp: no outputs), "idle"
    (nobody wants anything) or "waiting_for_scale" (`wait_for_scale` and no scale estimate yet: no outputs).
    `cloud` is the cloud builder's buffer: valid until the next frame."""

    stamp_ns: int
    frame_id: str = ""
    status: str = "ok"
    events: list[Event] = field(default_factory=list)
    depth: np.ndarray | None = None  # (H, W) float32 metres, NaN invalid
    intrinsics: Intrinsics | None = None  # of depth's grid: the published camera_info
    intrinsics_source: str = ""  # camera_info | configured
    camera_info_fallback: bool = False  # no camera_info matched this frame
    stamp_suspect: bool = False  # a jumped stamp the next frame confirms or not: no odometry for this one
    cloud: np.ndarray | None = None  # organized structured (H, W) cloud
    cloud_payload: Any = None  # the builder's array.array behind `cloud`
    colored: np.ndarray | None = None  # (H, W, 3) uint8 RGB colour map of depth
    odometry: OdometryState | None = None
    scale: float = 0.0
    infer_s: float = 0.0  # pre-processing + inference + scale
    odom_s: float = 0.0  # pose network + refinement + integration


class FrameCore:
    """One loaded model and the per-frame state around it; not thread-safe (adapters serialise frames)."""

    def __init__(self, pipe: FramePipeline, cfg: Any) -> None:
        self.pipe = pipe
        self.cfg = cfg
        self.infos = CameraInfoCache()
        self.clouds = OrganizedCloudBuilder()
        self.rectifier = Rectifier()
        self.last_stamp: float | None = None
        self.last_size: tuple[int, int] | None = None
        self.suspect_ns: int | None = None  # a jumped stamp waiting for the next frame to confirm it
        self.back_ns: int | None = None  # a dropped out-of-order stamp: a short jump back if the next continues it
        self._pending: tuple[DepthFrame, FrameOutputs] | None = None  # a frame whose odometry step was deferred
        # the images come from a rectified topic (`topics.is_rectified_topic`): `rectify: auto` takes camera_info's
        # P and does not undistort them again; set by the adapter that knows the topic
        self.rectified_input = False

    @classmethod
    def open(cls, cfg: Any) -> FrameCore:
        """Load `cfg.model` ("" = the bundled default). DepthNodeError (ParamError for scale settings that do
        not fit the model) with a message saying what to change."""
        path = resolve_model_path(cfg.model, cfg.backend)
        try:
            pipe = FramePipeline(path, cfg)
        except ScaleError as exc:
            raise ParamError(str(exc)) from exc
        return cls(pipe, cfg)

    @property
    def model_path(self) -> Path:
        return Path(self.pipe.model_path)

    def configure(self, cfg: Any) -> None:
        """Apply a validated runtime change (parameters marked runtime in the table)."""
        old, self.cfg = self.cfg, cfg
        scale = self.pipe.scale
        if cfg.scale_factor != old.scale_factor:
            scale.configure(factor=cfg.scale_factor)
        if scale.source in ("ground_plane", "metric_model"):  # each reads its own group only
            scale.configure(**group_values(getattr(cfg, scale.source)))
        self.pipe.road_config = ground_plane_config(group_values(cfg.ground_plane))
        self.pipe.refine = cfg.odom.refine
        self.pipe.motion_prior = cfg.odom.motion_prior
        self.pipe.vo.max_gap = cfg.odom.max_gap
        self.pipe.vo.noise = odometry_noise(cfg)

    def set_camera_to_base(self, T: np.ndarray) -> bool:
        """Use this camera mounting (4×4 pose of the optical frame in the body; from TF or the parameter) for
        odometry and the ground-plane scale's up direction. True when it changed."""
        T = np.asarray(T, dtype=np.float64)
        vo = self.pipe.vo
        if np.array_equal(T, vo.camera_to_base):
            return False
        vo.camera_to_base = T
        vo._base_to_camera = invert_se3(T)  # VisualOdometry caches the inverse at construction
        if hasattr(self.pipe.scale, "up"):  # GroundPlaneScale: body +z in the optical frame
            self.pipe.scale.up = T[:3, :3].T @ np.array([0.0, 0.0, 1.0])
        return True

    def add_camera_info(self, info: Any) -> None:
        self.infos.add(info)

    def forget_stream(self) -> None:
        """A new input stream (lifecycle cleanup): no previous stamp, size or camera_info."""
        self.last_stamp = self.last_size = self.suspect_ns = self.back_ns = None
        self.infos.clear()

    def close(self) -> None:
        self.pipe.close()

    # ------------------------------------------------------------------------------------- the frame
    def process(self, msg: Any, wants: Wants, prev_received_ns: int | None = None,
                info_wait_s: float = 0.0, defer_odometry: bool = False) -> FrameOutputs:
        """One image message through the rules and the model. `prev_received_ns`: the stamp of the image the
        transport received before this one (a gap in the data restarts odometry, a gap made by the node's own
        dropping of stale frames does not); `info_wait_s`: how long to wait for a late camera_info.
        `defer_odometry`: the odometry step waits for `complete_odometry(out)`, so that the node publishes depth
        and cloud first (odometry, ~10–15 ms on a CPU, is not on their path)."""
        self._lose_pending()  # a deferred step never completed (the caller failed in between)
        stamp_ns = stamp_to_ns(msg.header.stamp)
        out = FrameOutputs(stamp_ns, msg.header.frame_id or self.cfg.camera_frame)
        if not msg.header.frame_id:
            out.events.append(Event("empty_frame_id", f"image without a frame_id: outputs use camera_frame "
                                    f"'{self.cfg.camera_frame}' (set the camera driver's frame_id)", "warning"))
        try:
            rgb = decode_rgb(msg)
        except ImageFormatError as exc:
            out.events.append(_format_event(exc))
            out.status = "dropped"
            return out
        verdict = self._stamp_rules(stamp_ns, prev_received_ns, out)
        if verdict == "drop":
            out.status = "dropped"
            return out
        out.stamp_suspect = verdict == "suspect"
        if not out.stamp_suspect:
            self._size_rule(rgb.shape[1], rgb.shape[0], out)
        if not wants.any():
            out.status = "idle"
            if not out.stamp_suspect:
                self.pipe.break_pairing()
            return out
        frame, rgb = self._depth(rgb, stamp_ns, info_wait_s, out)
        if self.cfg.wait_for_scale and not self.pipe.scale.ready:
            out.status = "waiting_for_scale"  # nothing published at a guessed scale; odometry starts once it is known
            out.depth = out.cloud = None
            self.pipe.break_pairing()
            return out
        self._derived(frame, rgb, wants, out)
        if out.stamp_suspect:
            return out  # no odometry on a stamp not yet believed; the pairing waits for the next frame
        if not (wants.odom and self.pipe.has_pose):
            self.pipe.break_pairing()
        elif defer_odometry:
            self._pending = (frame, out)
        else:
            self._odometry(frame, out)
        return out

    def complete_odometry(self, out: FrameOutputs) -> None:
        """The odometry step of the frame `out` came from, deferred by `process(..., defer_odometry=True)`;
        nothing when none is pending for it."""
        if self._pending is not None and self._pending[1] is out:
            frame, self._pending = self._pending[0], None
            self._odometry(frame, out)
        else:
            self._lose_pending()  # another frame's step: lost, as when `process` finds one left over

    def _lose_pending(self) -> None:
        """Drop a deferred odometry step: that pair is lost, and the next frame starts a new one."""
        if self._pending is not None:
            self._pending = None
            self.pipe.break_pairing()

    def _odometry(self, frame: DepthFrame, out: FrameOutputs) -> None:
        t0 = time.monotonic()
        vo = self.pipe.odometry(frame, out.stamp_ns / 1e9)
        out.odometry = odometry_state(vo, self.pipe.chain_steps)
        out.odom_s = time.monotonic() - t0

    def _stamp_rules(self, stamp_ns: int, prev_received_ns: int | None, out: FrameOutputs) -> str:
        """"ok", "drop" or "suspect". Zero/negative, duplicate and out-of-order stamps are dropped. A forward gap
        over odom.max_gap in the received data restarts the pairing from the last pose. A jump back, or forward
        by more than FAR_FORWARD_S, is only believed when the next frame continues from it: the jumped frame is
        "suspect" (depth and cloud, no odometry); the next one then restarts odometry (at the origin after a
        jump back: bag loop, simulation reset; from the last pose after a forward jump), or, back on the old
        timeline, shows the jump was one bad stamp (counted, odometry untouched). Two frames in a row that are
        both older than the last one, the second continuing from the first, are a short jump back (a bag loop or
        simulation reset shorter than odom.max_gap): the second restarts odometry at the origin; without this
        rule every frame of such a loop would be dropped as out of order, for good."""
        stamp, max_gap = stamp_ns / 1e9, self.cfg.odom.max_gap
        if stamp_ns <= 0:
            out.events.append(_bad_stamp_event(stamp_ns))
            return "drop"
        check = classify_stamp(self.last_stamp, stamp, max_gap)
        if check.kind == "duplicate":
            out.events.append(Event("duplicate_stamp", f"dropped image: duplicate stamp {stamp:.9f} (same as the "
                                    "last frame; is the camera driver re-publishing?)"))
            return "drop"
        if check.kind == "out_of_order":
            back, self.back_ns = self.back_ns, stamp_ns
            if back is not None and 0 < stamp_ns - back <= max_gap * 1e9:
                self.back_ns = self.suspect_ns = None
                self._restart_after_jump(check, out)
                self.last_stamp = stamp
                return "ok"
            out.events.append(Event("out_of_order_stamp", f"dropped image: stamp {stamp:.6f} is {-check.dt:.3f} s "
                                    "older than the previous frame (out of order)"))
            return "drop"
        self.back_ns = None
        suspect, self.suspect_ns = self.suspect_ns, None
        if suspect is not None and check.kind in ("jump_back", "gap") and 0 < stamp_ns - suspect <= max_gap * 1e9:
            self._restart_after_jump(check, out)
        else:
            if suspect is not None:
                out.events.append(Event("stamp_outlier", f"ignored a single stamp jump to {suspect / 1e9:.6f} s "
                                        f"(the stream went on at {stamp:.6f} s): odometry continues", "warning"))
            prev = None if prev_received_ns is None else prev_received_ns / 1e9
            own_drop = prev is not None and stamp - prev <= max_gap and prev >= (self.last_stamp or 0.0)
            real_gap = check.kind == "gap" and not own_drop
            if check.kind == "jump_back" or (real_gap and check.dt > max(FAR_FORWARD_S, max_gap)):
                self.suspect_ns = stamp_ns
                return "suspect"
            if real_gap:  # the camera paused, a slow trigger, a bag skipped: no need to wait for a second frame
                self._restart_after_jump(check, out)
        self.last_stamp = stamp
        return "ok"

    def _restart_after_jump(self, check: Any, out: FrameOutputs) -> None:
        if check.kind in ("jump_back", "out_of_order"):
            out.events.append(Event("time_jump", f"time jumped back {-check.dt:.2f} s (bag loop or simulation "
                                    "reset): odometry restarts at the origin", "warning"))
            self.pipe.restart_odometry(keep_pose=False)
        else:
            out.events.append(Event("time_gap", f"{check.dt:.2f} s without frames (> odom.max_gap): odometry "
                                    "restarts from its last pose", "warning"))
            self.pipe.restart_odometry(keep_pose=True)

    def _size_rule(self, w: int, h: int, out: FrameOutputs) -> None:
        """A new image size restarts the pairing (the pose network cannot compare the two frames)."""
        if self.last_size is not None and self.last_size != (w, h):
            out.events.append(Event("resolution_change", f"image size changed from {self.last_size[0]}x"
                                    f"{self.last_size[1]} to {w}x{h}: odometry pairing restarts", "warning"))
            self.pipe.restart_odometry(keep_pose=True)
        self.last_size = (w, h)

    def _intrinsics(self, stamp_ns: int, w: int, h: int, wait_s: float,
                    out: FrameOutputs) -> tuple[Intrinsics, CameraModel | None]:
        """The camera_info nearest in stamp within sync_slop (its camera model for this image), else the
        parameter."""
        slop = self.cfg.sync_slop
        info, dt = self.infos.match(stamp_ns, slop, wait_s=wait_s)
        if info is not None:
            rectify = "rectified" if self.rectified_input and self.cfg.rectify == "auto" else self.cfg.rectify
            cam, problem = camera_model(info, w, h, rectify)
            if cam is None:
                what = problem if problem.startswith("camera_info") else f"camera_info has an invalid K ({problem})"
                out.events.append(Event("camera_info_invalid", f"{what}: using the configured intrinsics; fix the "
                                        "camera calibration"))
            else:
                if cam.note == "size":
                    out.events.append(Event("camera_info_size", f"camera_info is for {info.width}x{info.height} "
                                            f"but the image is {w}x{h}: intrinsics rescaled to the image",
                                            "warning", counted=False))
                if cam.ignored_distortion:
                    out.events.append(Event("distortion_ignored", f"camera_info has a non-zero D but the image is "
                                            f"not undistorted ({cam.ignored_distortion}): depth and points assume "
                                            "a pinhole camera; set rectify auto or feed image_rect", "warning",
                                            counted=False))
                out.intrinsics_source = "camera_info"
                return cam.intrinsics, cam
        else:
            out.camera_info_fallback = True
            why = ("no camera_info received (is the camera_info topic remapped?)" if self.infos.received == 0
                   else f"no camera_info within sync_slop={slop} s of the image stamp"
                   + (f" (nearest {dt:.3f} s away)" if dt is not None else ""))
            out.events.append(Event("camera_info_missing", f"{why}: using the configured intrinsics", "warning",
                                    counted=False))
        out.intrinsics_source = "configured"
        return configured_intrinsics(self.cfg, w, h), None

    def _depth(self, rgb: np.ndarray, stamp_ns: int, info_wait_s: float,
               out: FrameOutputs) -> tuple[DepthFrame, np.ndarray]:
        """Depth of the (rectified, when camera_info asks for it) frame; returns the frame the model saw."""
        h, w = rgb.shape[:2]
        intr_in, cam = self._intrinsics(stamp_ns, w, h, info_wait_s, out)
        if cam is not None and cam.undistort:
            if self.rectifier.is_new(cam, w, h):
                out.events.append(Event("rectify", f"undistorting {w}x{h} images ({cam.distortion_model}, D="
                                        f"{[round(d, 5) for d in cam.D]}) onto the P/K grid fx={intr_in.fx:.2f} "
                                        f"fy={intr_in.fy:.2f} cx={intr_in.cx:.2f} cy={intr_in.cy:.2f}",
                                        "info", counted=False))
            rgb = self.rectifier(rgb, cam)
        out_size = (h, w) if self.cfg.output_resolution == "input" else None
        frame = self.pipe.depth(rgb, intr_in, stamp_ns / 1e9, out_size)
        out.depth, out.intrinsics, out.scale, out.infer_s = frame.depth, frame.intrinsics, frame.scale, frame.seconds
        return frame, rgb

    def _derived(self, frame: DepthFrame, rgb: np.ndarray, wants: Wants, out: FrameOutputs) -> None:
        """Cloud (coloured by the frame on the depth grid) and colour map, each only when wanted."""
        cfg = self.cfg
        if wants.points:
            colour = None
            if cfg.cloud_rgb:
                colour = rgb if cfg.output_resolution == "input" else frame.rgb_net
            out.cloud = self.clouds.build(frame.depth, frame.intrinsics, cfg.stride, colour, cfg.cloud_max_range)
            out.cloud_payload = self.clouds.payload
        if wants.colored:
            out.colored = colorize(frame.depth, cfg.colormap, cfg.colored_min_depth, cfg.colored_max_depth,
                                   bgr=False)
