"""`mono_depth_node`: one camera in; depth, organized cloud, odometry and diagnostics out (a lifecycle node).

Design choices, and why:
- Latest frame wins. The image callback only drops the message into a single slot; one inference thread
  takes whatever is newest. A slow model therefore lowers the output rate, never the freshness; frames
  replaced before inference are counted as dropped (and gaps in the publishers' sequence numbers as lost
  before the node), both reported on /diagnostics.
- Lazy outputs. Nothing is computed for an output nobody subscribes to; the pose network runs only when
  someone subscribes to `odom` or TF is broadcast; with no subscriber at all, frames are skipped.
- One scale for everything (depth, cloud, odometry translation), from `depth_node.geometry.scale`.
- Lifecycle: configure validates parameters and loads the model (a bad parameter or model is a failed
  transition with the reason in the log), activate subscribes. `autostart` does both at start, and the
  process exits with status 2 if that fails, so launch and systemd see it.
- Callbacks never raise: bad input becomes one throttled, specific log line and a counter.
- The node never touches ROS_DOMAIN_ID or ROS_AUTOMATIC_DISCOVERY_RANGE: robots need normal discovery.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.colormap import colorize
from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.odometry import VisualOdometry, classify_stamp
from depth_node.geometry.pointcloud import OrganizedCloudBuilder
from depth_node.geometry.scale import ScaleError, ScaleEstimator
from depth_node.pipeline import camera_info_intrinsics, configured_intrinsics, odometry_noise
from depth_node.ros import messages as M
from depth_node.ros import params as P
from depth_node.io.image_cdr import parse_image
from depth_node.ros.sync import CameraInfoCache, LatestSlot, stamp_to_ns

NODE_NAME = "mono_depth_node"
USAGE = """usage: depth-node node [--ros-args --params-file FILE -p NAME:=VALUE -r image:=TOPIC ...]
       mono_depth_node [--ros-args ...]

Monocular depth, organized point cloud and visual odometry from one camera (ROS 2 lifecycle node).
Subscribes image, camera_info; publishes depth, depth/camera_info, depth/colored, points, odom, /diagnostics.
Parameters: see config/mono_depth.yaml (installed under share/depth_node/config)."""


def resolve_model_path(value: str) -> Path:
    """'' → the package's models/default.pt; otherwise the given path (~ expanded)."""
    from depth_node.paths import models_dir

    if value:
        p = Path(value).expanduser()
        if not p.is_file():
            raise DepthNodeError(f"model file not found: {p} (parameter 'model')")
        return p
    p = models_dir() / "default.pt"
    if not p.is_file():
        raise DepthNodeError(
            f"no model given and the default model {p} is not installed; set the 'model' parameter to a model "
            "file (.pt) or an exported depth.onnx (`depth-node import` / `depth-node train` make one)"
        )
    return p


INPUT_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1")


def decode_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image → (H, W, 3) uint8 RGB via the project's codec; anything else is an ImageFormatError
    whose message says what was wrong (a depth or float image on the camera topic is the common mistake)."""
    from depth_node.io.image_codec import ImageFormatError, decode_image

    img = decode_image(msg)
    if msg.encoding not in INPUT_ENCODINGS:
        extra = ""
        if img.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(img)))
            if bad:
                extra = f", and it holds {bad} NaN/Inf pixels"
        raise ImageFormatError(
            f"image encoding {msg.encoding} is not a camera image{extra}; the node needs one of "
            f"{', '.join(INPUT_ENCODINGS)} (is a depth topic remapped to image?)"
        )
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def _error_kind(text: str) -> str:
    """A short counter name for a codec error, for /diagnostics (errors.image_<kind>)."""
    for key, kind in (("NaN", "non_finite"), ("zero size", "zero_size"), ("truncated", "truncated"),
                      ("step=", "step"), ("encoding", "encoding")):
        if key in text:
            return kind
    return "invalid"


def image_error_type() -> type[Exception]:
    from depth_node.io.image_codec import ImageFormatError

    return ImageFormatError


def _qos(name: str, depth: int):
    from rclpy.qos import (
        DurabilityPolicy,
        HistoryPolicy,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_sensor_data,
        qos_profile_system_default,
    )

    if name == "sensor_data":
        base = qos_profile_sensor_data
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=base.reliability,
                          durability=base.durability)
    if name == "system_default":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                          reliability=qos_profile_system_default.reliability)
    rel = ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel,
                      durability=DurabilityPolicy.VOLATILE)


class Stats:
    """Counters and per-period timings for /diagnostics; thread-safe, bounded memory."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0
        self.published = 0
        self.skipped_idle = 0
        self.lost = 0  # gaps in publishers' sequence numbers: overwritten in the QoS queue before reaching us
        self.errors: dict[str, int] = {}
        self.last_error = ""
        self.intrinsics_source = "none yet"
        self.camera_info_fallbacks = 0
        self.period: list[tuple[float, float, float, float]] = []
        self.period_received = 0
        self.period_published = 0
        self.latency_window: deque[float] = deque(maxlen=1000)

    def error(self, kind: str, text: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.last_error = f"{kind}: {text}"

    def done(self, latency: float, wait: float, infer: float, publish: float) -> None:
        """One published frame: receive → outputs (latency), receive → worker start (wait), pre-processing +
        inference + post-processing + scale (infer), depth/cloud message building and publishing (publish)."""
        with self.lock:
            self.published += 1
            self.period_published += 1
            self.period.append((latency, wait, infer, publish))
            self.latency_window.append(latency)
            if len(self.period) > 10000:  # diagnostics stopped being read: keep memory flat
                del self.period[:5000]

    def take_period(self) -> tuple[int, int, np.ndarray]:
        """(images received, frames published, (n, 4) timings in seconds) since the last call."""
        with self.lock:
            out = (self.period_received, self.period_published, np.asarray(self.period, dtype=np.float64))
            self.period_received = self.period_published = 0
            self.period = []
            return out


def create_node(**node_kwargs: Any):
    """Build the node (rclpy must be initialised). Kept as a function so rclpy is imported lazily."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.clock import Clock, ClockType
    from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image

    class _Node(LifecycleNode):
        def __init__(self) -> None:
            super().__init__(NODE_NAME, **node_kwargs)
            P.declare(self)
            raw = P.read(self)
            try:
                self.cfg = P.validate(raw)
                self.param_error = ""
            except P.ParamError as exc:  # reported by configure; keep defaults so the node can still answer
                self.cfg = P.validate({})
                self.param_error = str(exc)
                self.cfg.values.update({k: raw[k] for k in ("autostart",) if isinstance(raw.get(k), bool)})
            self.configured = False
            self.active = False
            self.stats = Stats()
            self.slot = LatestSlot()
            self.infos = CameraInfoCache()
            self.cloud_builder = OrganizedCloudBuilder()
            self.estimator = None
            self.backend = None
            self.scale: ScaleEstimator | None = None
            self.vo: VisualOdometry | None = None
            self.tf = None
            self.tf_tried = False
            self.info_msg: tuple[Intrinsics, Any] | None = None
            self.pubs: dict[str, Any] = {}
            self.subs: list[Any] = []
            self.worker: threading.Thread | None = None
            self.running = False
            self.proc_lock = threading.Lock()
            self.last_log: dict[str, float] = {}
            self.last_stamp: float | None = None
            self.last_received_stamp: float | None = None
            self.last_size: tuple[int, int] | None = None
            self.pipe = None
            self.seq: dict[str, int] = {}
            self.model_path = ""
            self.add_on_set_parameters_callback(self._on_set_parameters)
            self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            # steady clock: diagnostics keep coming under use_sim_time even when /clock stops (bag paused)
            self.diag_timer = self.create_timer(
                float(self.cfg["diagnostics_period"]), self._publish_diagnostics,
                clock=Clock(clock_type=ClockType.STEADY_TIME),
            )
            self.t_period = time.monotonic()

        # ------------------------------------------------------------------------------------ logging
        def throttled(self, kind: str, text: str, level: str = "error", count: bool = True) -> None:
            """One log line per kind per `log_throttle` seconds; every occurrence counted."""
            if count:
                self.stats.error(kind, text)
            now = time.monotonic()
            if now - self.last_log.get(kind, -1e9) >= float(self.cfg["log_throttle"]):
                self.last_log[kind] = now
                log = self.get_logger()
                # one call site per severity: rclpy refuses a severity change at the same call site
                if level == "error":
                    log.error(text)
                elif level == "warning":
                    log.warning(text)
                else:
                    log.info(text)

        # ------------------------------------------------------------------------------ parameters
        def _on_set_parameters(self, changes) -> SetParametersResult:
            values = {p.name: p.value for p in changes}
            new_cfg, reason = P.check_change(self.cfg, values, self.configured)
            if new_cfg is None:
                return SetParametersResult(successful=False, reason=reason)
            try:
                self._apply_runtime(new_cfg)
            except Exception as exc:  # never let a parameter change kill the node
                return SetParametersResult(successful=False, reason=f"{type(exc).__name__}: {exc}")
            return SetParametersResult(successful=True)

        def _apply_runtime(self, cfg: P.NodeConfig) -> None:
            old = self.cfg
            self.cfg = cfg
            self.param_error = ""
            if self.scale is not None:
                if cfg["scale_factor"] != old["scale_factor"]:
                    self.scale.configure(factor=cfg["scale_factor"])
                if self.scale.source in ("ground_plane", "metric_model"):  # each reads its own group only
                    self.scale.configure(**cfg.group(self.scale.source))
            if self.pipe is not None:
                self.pipe.refine = bool(cfg["odom.refine"])
            if self.vo is not None:
                self.vo.max_gap = cfg["odom.max_gap"]
                self.vo.noise = odometry_noise(cfg)

        # ------------------------------------------------------------------------------- lifecycle
        def on_configure(self, state: State) -> TransitionCallbackReturn:
            try:
                if self.param_error:
                    raise P.ParamError(self.param_error)
                cfg = self.cfg = P.validate(P.read(self))
                self._load_model(cfg)
                self._make_outputs(cfg)
            except DepthNodeError as exc:
                self.get_logger().error(f"configure failed: {exc}")
                self._release()
                return TransitionCallbackReturn.FAILURE
            except Exception as exc:
                self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
                self._release()
                return TransitionCallbackReturn.FAILURE
            self.configured = True
            return TransitionCallbackReturn.SUCCESS

        def _load_model(self, cfg: P.NodeConfig) -> None:
            from depth_node.pipeline import FramePipeline

            path = resolve_model_path(cfg["model"])
            self.model_path = str(path)
            try:
                self.pipe = FramePipeline(path, cfg)
            except ScaleError as exc:
                raise P.ParamError(str(exc)) from exc
            self.backend, self.estimator = self.pipe.backend, self.pipe.estimator
            self.scale, self.vo = self.pipe.scale, self.pipe.vo
            info = self.backend.info
            self.get_logger().info(
                f"model {path} ({info.arch}, {info.width}x{info.height}, scale {info.scale_kind}, "
                f"pose net: {'yes' if info.has_pose else 'no'}) on {self.backend.describe()}, "
                f"scale source {self.pipe.scale_source}, loaded in {self.pipe.load_seconds:.1f} s"
            )
            if not info.has_pose:
                self.get_logger().warning("the model has no pose network: odom and TF will not be published")

        def _make_outputs(self, cfg: P.NodeConfig) -> None:
            from nav_msgs.msg import Odometry
            from sensor_msgs.msg import PointCloud2

            q = _qos(cfg["output_qos"], cfg["output_qos_depth"])
            qo = _qos(cfg["output_qos"], max(10, cfg["output_qos_depth"]))
            self.pubs = {
                "depth": self.create_lifecycle_publisher(Image, "depth", q),
                "depth_info": self.create_lifecycle_publisher(CameraInfo, "depth/camera_info", q),
                "colored": self.create_lifecycle_publisher(Image, "depth/colored", q),
                "points": self.create_lifecycle_publisher(PointCloud2, "points", q),
                "odom": self.create_lifecycle_publisher(Odometry, "odom", qo),
            }
            self.tf = None  # created on the first frame that needs it (publish_tf may be switched on at run time)
            self.tf_tried = False

        def on_activate(self, state: State) -> TransitionCallbackReturn:
            cfg = self.cfg
            qi = _qos(cfg["image_qos"], cfg["image_qos_depth"])
            qc = _qos(cfg["image_qos"], max(10, cfg["image_qos_depth"]))
            self.subs = [
                # raw: the frame is read from its CDR bytes (io/image_cdr.py), not built as a Python message
                self.create_subscription(Image, "image", self._on_image, qi, raw=True),
                self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qc),
            ]
            self.slot.reopen()
            self.running = True
            self.worker = threading.Thread(target=self._work, name="depth_inference", daemon=True)
            self.worker.start()
            self.active = True
            self.get_logger().info(
                f"active: image {self.subs[0].topic_name} → {self.pubs['depth'].topic_name}, "
                f"{self.pubs['points'].topic_name}, {self.pubs['odom'].topic_name}"
            )
            return super().on_activate(state)

        def on_deactivate(self, state: State) -> TransitionCallbackReturn:
            self._stop_worker()
            for s in self.subs:
                self.destroy_subscription(s)
            self.subs = []
            self.active = False
            return super().on_deactivate(state)

        def on_cleanup(self, state: State) -> TransitionCallbackReturn:
            self._release()
            return TransitionCallbackReturn.SUCCESS

        def on_shutdown(self, state: State) -> TransitionCallbackReturn:
            self._stop_worker()
            self._release()
            return TransitionCallbackReturn.SUCCESS

        def _stop_worker(self) -> None:
            self.running = False
            self.slot.close()
            if self.worker is not None:
                self.worker.join(timeout=10.0)
                self.worker = None

        def _release(self) -> None:
            with self.proc_lock:
                for p in self.pubs.values():
                    self.destroy_lifecycle_publisher(p)
                self.pubs = {}
                if self.pipe is not None:
                    self.pipe.close()
                self.pipe = self.backend = self.estimator = self.scale = self.vo = None
                self.last_stamp = None
                self.last_size = None
                self.infos.clear()
                self.configured = False

        # -------------------------------------------------------------------------------- callbacks
        def _on_image(self, raw: bytes, info: Any) -> None:
            # two parameters: rclpy then passes MessageInfo, whose sequence numbers reveal transport losses
            try:
                msg = parse_image(raw)
                if msg is None:  # not plain CDR: rclpy's deserializer reads what ours does not
                    msg = deserialize_message(raw, Image)
                self.stats.received += 1
                self.stats.period_received += 1
                if info:
                    self._count_lost("image", info)
                stamp = stamp_to_ns(msg.header.stamp) / 1e9
                # the previous *received* stamp travels with the frame: a gap in the data (no images) restarts
                # odometry, a gap made by our own dropping of stale frames (slow inference) does not
                self.slot.put((msg, time.monotonic(), self.last_received_stamp))  # replaced items: slot.dropped
                self.last_received_stamp = stamp
            except Exception as exc:  # pragma: no cover - defensive: callbacks never raise
                self.throttled("internal", f"image callback: {type(exc).__name__}: {exc}")

        def _count_lost(self, topic: str, info: Any) -> None:
            seq = info.get("publication_sequence_number") if isinstance(info, dict) else None
            gid = info.get("publisher_gid") if isinstance(info, dict) else None
            if not seq:
                return
            key = f"{topic}:{gid.get('data') if isinstance(gid, dict) else gid}"
            last = self.seq.get(key)
            if last is not None and seq > last + 1:
                self.stats.lost += seq - last - 1
            if len(self.seq) > 64:
                self.seq.clear()
            self.seq[key] = seq

        def _on_camera_info(self, msg: Any) -> None:
            try:
                self.infos.add(msg)
            except Exception as exc:  # pragma: no cover
                self.throttled("internal", f"camera_info callback: {type(exc).__name__}: {exc}")

        # ------------------------------------------------------------------------------- inference
        def _work(self) -> None:
            while self.running:
                item = self.slot.take(timeout=0.25)
                if item is None:
                    continue
                try:
                    with self.proc_lock:
                        if self.estimator is not None:
                            self._process(*item)
                except Exception as exc:  # a bug or a backend failure must not kill the thread
                    self.throttled("internal", f"frame failed: {type(exc).__name__}: {exc}")

        def _wants(self) -> dict[str, bool]:
            subs = {k: p.get_subscription_count() > 0 for k, p in self.pubs.items()}
            has_pose = self.estimator is not None and self.estimator.has_pose
            if self.cfg["publish_tf"] and self.tf is None and not self.tf_tried:
                self.tf_tried = True
                try:
                    from tf2_ros import TransformBroadcaster  # type: ignore[import-not-found]

                    self.tf = TransformBroadcaster(self)
                except ImportError:
                    self.get_logger().warning(
                        "publish_tf is set but tf2_ros is not importable here: odom → base TF is not broadcast "
                        "(install the tf2_ros package of your ROS distribution); odom is still published")
            tf = bool(self.cfg["publish_tf"]) and self.tf is not None
            subs["odom"] = has_pose and (subs["odom"] or tf)
            subs["tf"] = has_pose and tf
            return subs

        def _intrinsics(self, msg: Any, w: int, h: int) -> Intrinsics:
            cfg = self.cfg
            stamp_ns = stamp_to_ns(msg.header.stamp)
            wait = min(float(cfg["sync_slop"]), 0.05)
            info, dt = self.infos.match(stamp_ns, float(cfg["sync_slop"]), wait_s=wait)
            if info is not None:
                intr, problem = camera_info_intrinsics(info, w, h)
                if problem == "invalid":
                    self.throttled("camera_info_invalid",
                                   "camera_info has an invalid K (zero or non-finite focal length): using the "
                                   "configured intrinsics; fix the camera calibration")
                else:
                    if problem == "size":
                        self.throttled("camera_info_size",
                                       f"camera_info is for {info.width}x{info.height} but the image is {w}x{h}: "
                                       "intrinsics rescaled to the image", level="warning", count=False)
                    self.stats.intrinsics_source = "camera_info"
                    return intr
            else:
                self.stats.camera_info_fallbacks += 1
                why = ("no camera_info received on " + self.subs[1].topic_name if self.infos.received == 0
                       else f"no camera_info within sync_slop={cfg['sync_slop']} s of the image stamp"
                       + (f" (nearest {dt:.3f} s away)" if dt is not None else ""))
                self.throttled("camera_info_missing", f"{why}: using the configured intrinsics",
                               level="warning", count=False)
            self.stats.intrinsics_source = "configured"
            return configured_intrinsics(cfg, w, h)

        def _process(self, msg: Any, t_recv: float, prev_received: float | None = None) -> None:
            t_start = time.monotonic()
            cfg = self.cfg
            try:
                rgb = decode_rgb(msg)
            except image_error_type() as exc:
                self.throttled(f"image_{_error_kind(str(exc))}", f"dropped image: {exc}")
                return
            h, w = rgb.shape[:2]
            stamp = stamp_to_ns(msg.header.stamp) / 1e9
            check = classify_stamp(self.last_stamp, stamp, float(cfg["odom.max_gap"]))
            if check.kind == "duplicate":
                self.throttled("duplicate_stamp", f"dropped image: duplicate stamp {stamp:.9f} (same as the last "
                               "frame; is the camera driver re-publishing?)")
                return
            if check.kind == "out_of_order":
                self.throttled("out_of_order_stamp", f"dropped image: stamp {stamp:.6f} is {-check.dt:.3f} s "
                               "older than the previous frame (out of order)")
                return
            if check.kind == "jump_back":
                self.throttled("time_jump", f"time jumped back {-check.dt:.2f} s (bag loop or simulation reset): "
                               "odometry restarts at the origin", level="warning")
                self.pipe.restart_odometry(keep_pose=False)
            elif check.kind == "gap" and (prev_received is None or stamp - prev_received > cfg["odom.max_gap"]
                                          or prev_received < (self.last_stamp or 0.0)):
                self.throttled("time_gap", f"{check.dt:.2f} s without frames (> odom.max_gap): odometry "
                               "restarts from its last pose", level="warning")
                self.pipe.restart_odometry(keep_pose=True)
            if self.last_size is not None and self.last_size != (w, h):
                self.throttled("resolution_change", f"image size changed from {self.last_size[0]}x"
                               f"{self.last_size[1]} to {w}x{h}: odometry pairing restarts", level="warning")
                self.pipe.restart_odometry(keep_pose=True)
            self.last_stamp, self.last_size = stamp, (w, h)
            wants = self._wants()
            if not any(wants.values()):
                self.stats.skipped_idle += 1
                self.pipe.break_pairing()
                return
            t0 = time.monotonic()
            intr_in = self._intrinsics(msg, w, h)
            out_size = (h, w) if cfg["output_resolution"] == "input" else None
            frame = self.pipe.depth(rgb, intr_in, stamp, out_size)
            depth, intr = frame.depth, frame.intrinsics
            t_inf = time.monotonic() - t0
            # the input's header as is (a fresh message, ours now) unless the frame id has to be filled in
            header = msg.header if msg.header.frame_id else M.copy_header(msg.header, cfg["camera_frame"] or None)
            if wants["depth"]:
                self.pubs["depth"].publish(M.depth_msg(depth, header))
            if wants["depth_info"]:
                self.pubs["depth_info"].publish(self._depth_info(intr, header))
            if wants["points"]:
                colour = None
                if cfg["cloud_rgb"]:
                    colour = rgb if out_size is not None else frame.rgb_net
                cloud = self.cloud_builder.build(depth, intr, int(cfg["stride"]), colour,
                                                 float(cfg["cloud_max_range"]))
                self.pubs["points"].publish(M.pointcloud_msg(cloud, header, self.cloud_builder.payload))
            t_out = time.monotonic()
            latency = t_out - t_recv
            if wants["colored"]:
                colour_map = colorize(depth, cfg["colormap"], cfg["colored_min_depth"], cfg["colored_max_depth"],
                                      bgr=False)
                self.pubs["colored"].publish(M.colored_msg(colour_map, header))
            if wants["odom"]:
                self._odometry(frame, stamp, header, wants["tf"])
            else:
                self.pipe.break_pairing()
            self.stats.done(latency, t_start - t_recv, t_inf, t_out - t0 - t_inf)

        def _depth_info(self, intr: Intrinsics, header: Any) -> Any:
            """depth/camera_info: one message per set of intrinsics, re-stamped (building one costs 0.2 ms)."""
            if self.info_msg is None or self.info_msg[0] != intr:
                self.info_msg = (intr, M.camera_info_msg(intr, header))
            msg = self.info_msg[1]
            msg.header = header
            return msg

        def _odometry(self, frame: Any, stamp: float, header: Any, tf: bool) -> None:
            vo = self.pipe.odometry(frame, stamp)
            cfg = self.cfg
            self.pubs["odom"].publish(M.odometry_msg(vo, header.stamp, cfg["odom_frame"], cfg["base_frame"]))
            if tf and self.tf is not None:
                self.tf.sendTransform(M.transform_msg(vo.pose, header.stamp, cfg["odom_frame"], cfg["base_frame"]))

        # ------------------------------------------------------------------------------ diagnostics
        def _publish_diagnostics(self) -> None:
            try:
                self.diag_pub.publish(self.diagnostics())
            except Exception as exc:  # pragma: no cover
                self.throttled("internal", f"diagnostics: {type(exc).__name__}: {exc}")

        def diagnostics(self):
            now = time.monotonic()
            period = max(1e-3, now - self.t_period)
            self.t_period = now
            n_in, n_out, per = self.stats.take_period()
            st = self.stats
            state = "active" if self.active else "inactive" if self.configured else "unconfigured"

            def ms(col: int, fn) -> float:
                return 1e3 * float(fn(per[:, col])) if per.size else 0.0

            lat = per.size > 0
            values: dict[str, Any] = {
                "state": state,
                "input_rate_hz": n_in / period,
                "output_rate_hz": n_out / period,
                "latency_mean_ms": ms(0, np.mean),
                "latency_max_ms": ms(0, np.max),
                "latency_p50_ms_last_1000": 1e3 * float(np.median(st.latency_window)) if st.latency_window else 0.0,
                "wait_mean_ms": ms(1, np.mean),
                "inference_mean_ms": ms(2, np.mean),
                "publish_mean_ms": ms(3, np.mean),
                "frames_received": st.received,
                "frames_published": st.published,
                "frames_dropped": self.slot.dropped,
                "frames_lost_before_node": st.lost,
                "frames_skipped_no_subscribers": st.skipped_idle,
                "input_errors": sum(st.errors.values()),
                "last_error": st.last_error or "none",
                "intrinsics_source": st.intrinsics_source,
                "camera_info_fallbacks": st.camera_info_fallbacks,
                "model": self.model_path or "(not loaded)",
            }
            values.update({f"errors.{k}": v for k, v in sorted(st.errors.items())})
            if self.backend is not None:
                values.update(backend=self.backend.name, precision=self.backend.precision, device=self.backend.device,
                              model_digest=self.backend.info.digest)
            if self.scale is not None:
                values.update({f"scale.{k}": v for k, v in self.scale.state().items()})
            if self.vo is not None:
                values.update({"odom.steps": self.vo.steps, "odom.restarts": self.vo.restarts,
                               "odom.distance_m": self.vo.distance})
            if self.pipe is not None:
                values.update({f"odom.refine_{k}": v for k, v in self.pipe.refine_stats.items()})
            level, text = M.OK, "ok"
            if not self.configured:
                level, text = M.ERROR, self.param_error or "not configured"
            elif not self.active:
                level, text = M.WARN, "inactive"
            elif n_in == 0:
                level, text = M.WARN, "no images"
            elif lat and n_out < 0.5 * n_in and self.slot.dropped:
                text = "dropping stale frames (input faster than inference)"
            if self.configured and self.scale is not None and not self.scale.ready:
                level, text = max(level, M.WARN), f"{text}; scale: {self.scale.state().get('state')}"
            status = M.diagnostic_status(f"{self.get_fully_qualified_name()}: depth", "depth_node", level, text,
                                         values)
            return M.diagnostics_msg(self.get_clock().now().to_msg(), [status])

    return _Node()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `mono_depth_node` and `depth-node node` (argv: everything after the command)."""
    args = list(sys.argv[1:] if argv is None else argv)
    user = args[: args.index("--ros-args")] if "--ros-args" in args else args
    if any(a in ("-h", "--help") for a in user):
        print(USAGE)
        return 0
    if user:
        print(f"{USAGE}\n\nerror: unexpected arguments {' '.join(user)} (ROS arguments go after --ros-args)",
              file=sys.stderr)
        return 2
    from depth_node.ros import dds_profile

    try:
        transports = dds_profile.apply()  # before rclpy.init: the participant is created there
    except FileNotFoundError as exc:
        print(f"{NODE_NAME}: error: {exc}", file=sys.stderr)
        return 2
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=[NODE_NAME, *args])
    node = None
    code = 0
    try:
        node = create_node()
        loaded, transports = dds_profile.confirm(transports)  # claims only what it checked
        (node.get_logger().info if loaded else node.get_logger().warning)(f"DDS transports: {transports}")
        if node.cfg["autostart"]:
            from rclpy.lifecycle import TransitionCallbackReturn

            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                print(f"{NODE_NAME}: error: configure failed (see the log above)", file=sys.stderr)
                return 2
            node.trigger_activate()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            try:
                node._stop_worker()
                node._release()
                node.destroy_node()
            except Exception:  # pragma: no cover - best-effort teardown
                pass
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
