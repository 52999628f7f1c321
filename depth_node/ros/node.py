"""`mono_depth_node`: one camera in; depth, organized cloud, odometry and diagnostics out (a lifecycle node).

The node is an adapter: its callbacks convert messages and hand them to the ROS-free frame core
(`depth_node.runtime.core.FrameCore`), which makes every decision about a frame; the node publishes what comes
back. Design choices, and why:
- Latest frame wins. The image callback only drops the message into a single slot; one inference thread
  takes whatever is newest. A slow model therefore lowers the output rate, never the freshness; frames
  replaced before inference are counted as dropped (and gaps in the publishers' sequence numbers as lost
  before the node), both reported on /diagnostics.
- Lazy outputs. Nothing is computed for an output nobody subscribes to; the pose network runs only when
  someone subscribes to `odom` or TF is broadcast; with no subscriber at all, frames are skipped.
- Lifecycle: configure validates parameters and loads the model (a bad parameter or model is a failed
  transition with the reason in the log), activate subscribes. `autostart` does both at start, and the
  process exits with status 2 if that fails, so launch and systemd see it.
- Callbacks never raise: bad input becomes one throttled, specific log line and a counter.
- The node never touches ROS_DOMAIN_ID or ROS_AUTOMATIC_DISCOVERY_RANGE: robots need normal discovery.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.odometry import transform_from_xyz_quat
from depth_node.io.bags import stamp_to_ns
from depth_node.io.image_cdr import parse_image
from depth_node.ros import messages as M
from depth_node.ros import params as P
from depth_node.ros.callbacks import passes_message_info, subscription_callback
from depth_node.ros.node_stats import Stats, core_values, level_and_text, period_values
from depth_node.ros.qos import qos_profile
from depth_node.ros.tf_mounting import TfMounting
from depth_node.runtime import topics as T
from depth_node.runtime.core import FrameCore, FrameOutputs, Wants, refusal
from depth_node.runtime.params import NodeConfig
from depth_node.runtime.sync import LatestSlot

NODE_NAME = "mono_depth_node"
USAGE = """usage: depth-node node [--ros-args --params-file FILE -p NAME:=VALUE -r image:=TOPIC ...]
       mono_depth_node [--ros-args ...]

Monocular depth, organized point cloud and visual odometry from one camera (ROS 2 lifecycle node).
Subscribes image (or image/compressed with -p transport:=compressed), camera_info; publishes depth/image_rect,
depth/camera_info, depth/colored, points, odom, /diagnostics.
Parameters: see config/mono_depth.yaml (installed under share/depth_node/config)."""
INFO_WAIT_S = 0.05  # longest wait (wall time) for a late camera_info; only while camera_info flows, or once at start


def _initial_config(raw: dict[str, Any]) -> tuple[NodeConfig, str]:
    """The declared values validated, or the defaults (keeping `autostart`) and the reason, which configure
    then reports: the node still starts and answers on /diagnostics."""
    try:
        return P.validate(raw), ""
    except P.ParamError as exc:
        cfg = P.validate({})
        if isinstance(raw.get("autostart"), bool):
            cfg = dataclasses.replace(cfg, autostart=raw["autostart"])
        return cfg, str(exc)


class DepthNode(LifecycleNode):
    """The lifecycle node: parameters, transitions, subscriptions, the inference thread, publishing."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        P.declare(self)
        self.cfg, self.param_error = _initial_config(P.read(self))
        self.configure_error = ""
        self.configured = self.active = self.finalized = False
        self.odom_started = False  # odometry was wanted in this activation: it keeps running (REP 105 continuity)
        self.stats = Stats()
        self.slot = LatestSlot()
        self.core: FrameCore | None = None
        self.pipe = self.backend = self.estimator = self.scale = self.vo = None  # the core's, for tests
        self.model_path = ""
        self.tf: Any = None
        self.tf_tried = False
        self.tf_buffer: Any = None  # tf2_ros.Buffer (or a stand-in set before configure) for the mounting
        self.tf_listener: Any = None
        self.mounting: TfMounting | None = None
        self.info_msg: tuple[Intrinsics, Any] | None = None
        self.pubs: dict[str, Any] = {}
        self.subs: list[Any] = []
        self.worker: threading.Thread | None = None
        self.running = False
        self.proc_lock = threading.Lock()
        self.last_log: dict[str, float] = {}
        self.last_received_ns: int | None = None
        self.seq: dict[str, int] = {}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.diag_timer: Any = None
        self._diagnostics_timer(self.cfg.diagnostics_period)
        self.t_period = time.monotonic()

    def _diagnostics_timer(self, period: float) -> None:
        """(Re)start the /diagnostics timer at `period` s, on the steady clock: diagnostics keep coming under
        use_sim_time even when /clock stops (bag paused). Configure calls it again: the period is a reload
        parameter."""
        if self.diag_timer is not None:
            if abs(self.diag_timer.timer_period_ns - period * 1e9) < 1e3:
                return
            self.destroy_timer(self.diag_timer)
        self.diag_timer = self.create_timer(period, self._publish_diagnostics,
                                            clock=Clock(clock_type=ClockType.STEADY_TIME))

    @property
    def cloud_builder(self) -> Any:
        return None if self.core is None else self.core.clouds

    # ------------------------------------------------------------------------------------------ logging
    def throttled(self, kind: str, text: str, level: str = "error", count: bool = True) -> None:
        """One log line per kind per `log_throttle` seconds; every occurrence counted."""
        if count:
            self.stats.error(kind, text)
        now = time.monotonic()
        if now - self.last_log.get(kind, -1e9) < self.cfg.log_throttle:
            return
        self.last_log[kind] = now
        log = self.get_logger()
        # one call site per severity: rclpy refuses a severity change at the same call site
        if level == "error":
            log.error(text)
        elif level == "warning":
            log.warning(text)
        else:
            log.info(text)

    # --------------------------------------------------------------------------------------- parameters
    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        new_cfg, reason = P.check_change(self.cfg, {p.name: p.value for p in changes}, self.configured)
        if new_cfg is None:
            return SetParametersResult(successful=False, reason=reason)
        with self.proc_lock:  # between frames: a frame reads one configuration from start to end
            try:
                if self.core is not None:
                    self.core.configure(new_cfg)
            except Exception as exc:  # never let a parameter change kill the node
                return SetParametersResult(successful=False, reason=f"{type(exc).__name__}: {exc}")
            self.cfg, self.param_error = new_cfg, ""
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            if self.param_error:
                raise P.ParamError(self.param_error)
            self.cfg = P.validate(P.read(self))
            self._diagnostics_timer(self.cfg.diagnostics_period)
            self._load_model()
            self._make_outputs()
        except Exception as exc:
            why = str(exc) if isinstance(exc, DepthNodeError) else f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {why}")
            self.configure_error = f"configure failed: {why}"
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.configured, self.configure_error = True, ""
        return TransitionCallbackReturn.SUCCESS

    def _load_model(self) -> None:
        core = self.core = FrameCore.open(self.cfg)
        self.pipe = pipe = core.pipe
        self.backend, self.estimator, self.scale, self.vo = pipe.backend, pipe.estimator, pipe.scale, pipe.vo
        self.model_path = str(core.model_path)
        info = pipe.info
        self.get_logger().info(
            f"model {core.model_path} ({info.arch}, {info.width}x{info.height}, scale {info.scale_kind}, "
            f"pose net: {'yes' if info.has_pose else 'no'}) on {pipe.backend.describe()}, "
            f"scale source {pipe.scale_source}, loaded in {pipe.load_seconds:.1f} s")
        if not info.has_pose:
            self.get_logger().warning("the model has no pose network: odom and TF will not be published")

    def _make_outputs(self) -> None:
        cfg = self.cfg
        q = qos_profile(cfg.output_qos, cfg.output_qos_depth)
        qo = qos_profile(cfg.output_qos, max(10, cfg.output_qos_depth))
        types = {"depth": Image, "depth_info": CameraInfo, "colored": Image, "points": PointCloud2, "odom": Odometry}
        self.pubs = {k: self.create_lifecycle_publisher(types[k], topic, qo if k == "odom" else q)
                     for k, topic in T.OUTPUT_TOPICS.items()}
        self.tf = None  # created on the first frame that needs it (publish_tf may be switched on at run time)
        self.tf_tried = False
        self.mounting = TfMounting(self._tf_buffer(), self._log)

    def _tf_buffer(self) -> Any:
        """A TF buffer to read the camera mounting from: an injected one, else tf2_ros's with a listener, else
        None (tf2_ros not installed: the camera_to_base parameter is the mounting)."""
        if self.tf_buffer is not None:
            return self.tf_buffer
        try:
            from tf2_ros import Buffer, TransformListener  # type: ignore[import-not-found]
        except ImportError:
            self.get_logger().info("tf2_ros is not importable: the camera mounting is the camera_to_base parameter")
            return None
        self.tf_buffer = Buffer()
        self.tf_listener = TransformListener(self.tf_buffer, self)
        return self.tf_buffer

    def _log(self, level: str, text: str) -> None:
        self.throttled(f"mounting_{level}", text, level, count=False)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        cfg = self.cfg
        qi = qos_profile(cfg.image_qos, cfg.image_qos_depth)
        qc = qos_profile(cfg.image_qos, max(10, cfg.image_qos_depth))
        msg_type, topic = self._image_topic()
        self.subs = [
            # raw: the frame is read from its CDR bytes (io/image_cdr.py), not built as a Python message
            self.create_subscription(msg_type, topic, subscription_callback(self._on_image, passes_message_info()),
                                     qi, raw=True),
            self.create_subscription(CameraInfo, T.CAMERA_INFO, self._on_camera_info, qc),
        ]
        self.core.rectified_input = T.is_rectified_topic(self.subs[0].topic_name)
        if self.core.rectified_input and cfg.rectify == "auto":
            self.get_logger().info(f"{self.subs[0].topic_name} is a rectified image topic: camera_info's P is used "
                                   "and its D ignored (set rectify true to undistort anyway)")
        self.slot.reopen()
        self.running = True
        self.worker = threading.Thread(target=self._work, name="depth_inference", daemon=True)
        self.worker.start()
        self.active = True
        self.get_logger().info(f"active: image {self.subs[0].topic_name} → {self.pubs['depth'].topic_name}, "
                               f"{self.pubs['points'].topic_name}, {self.pubs['odom'].topic_name}")
        return super().on_activate(state)

    def _image_topic(self) -> tuple[type, str]:
        """image_transport naming: `transport: compressed` reads sensor_msgs/CompressedImage on
        `<image>/compressed`, where `<image>` is the image topic after remapping (`-r image:=/cam/image_raw`
        → `/cam/image_raw/compressed`), as a CameraSubscriber with the compressed plugin does."""
        if self.cfg.transport != "compressed":
            return Image, T.IMAGE
        resolve = getattr(self, "resolve_topic_name", None)  # rclpy ≥ Iron; Humble: relative name
        base = resolve(T.IMAGE) if resolve is not None else T.IMAGE
        return CompressedImage, base.rstrip("/") + "/compressed"

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_worker()
        self._drop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """From any state (a lifecycle manager's shutdown, Ctrl-C): no more input, outputs and model released;
        the node stays in the graph, finalized, and /diagnostics says so."""
        self._stop_worker()
        self._drop_inputs()
        self._release()
        self.finalized = True
        return TransitionCallbackReturn.SUCCESS

    def _drop_inputs(self) -> None:
        for s in self.subs:
            self.destroy_subscription(s)
        self.subs = []
        self.active = self.odom_started = False

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
            if self.core is not None:
                self.core.close()
            self.core = self.pipe = self.backend = self.estimator = self.scale = self.vo = None
            self.last_received_ns = None
            self.configured = False

    # ---------------------------------------------------------------------------------------- callbacks
    def _on_image(self, raw: bytes, info: Any) -> None:
        """Parse and hand over: the frame waits in the slot with when it came and the stamp before it.
        `info`: MessageInfo where this rclpy passes it (not on Humble: None)."""
        self.stats.got_image()
        compressed = self.cfg.transport == "compressed"
        try:
            msg = deserialize_message(raw, CompressedImage) if compressed else parse_image(raw, Header)
            if msg is None:  # not plain CDR: rclpy's deserializer reads what ours does not
                msg = deserialize_message(raw, Image)
        except Exception as exc:  # garbage bytes on the image topic: count them, keep going
            kind = "sensor_msgs/CompressedImage" if compressed else "sensor_msgs/Image"
            self.throttled("image_malformed", f"dropped a malformed image message ({len(raw)} bytes are not a "
                           f"{kind}: {type(exc).__name__}: {exc}); check what publishes on "
                           f"{self.subs[0].topic_name if self.subs else 'image'}")
            return
        refused = refusal(msg)  # refused here, not in the worker: it must not displace a frame waiting there
        if refused is not None:
            self.throttled(refused.kind, refused.text, refused.level, refused.counted)
            return
        try:
            if info:
                self._count_lost("image", info)
            self.slot.put((msg, time.monotonic(), self.last_received_ns))  # replaced items: slot.dropped
            self.last_received_ns = stamp_to_ns(msg.header.stamp)
        except Exception as exc:  # pragma: no cover - defensive: callbacks never raise
            self.throttled("internal", f"image callback: {type(exc).__name__}: {exc}")

    def _count_lost(self, topic: str, info: Any) -> None:
        """Gaps in a publisher's sequence numbers (MessageInfo, rclpy ≥ Iron): frames lost before the node."""
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

    def _on_camera_info(self, msg: CameraInfo) -> None:
        core = self.core
        if core is not None:
            core.add_camera_info(msg)

    # ---------------------------------------------------------------------------------------- inference
    def _work(self) -> None:
        while self.running:
            item = self.slot.take(timeout=0.25)
            if item is None:
                continue
            try:
                with self.proc_lock:
                    if self.core is not None:
                        self._frame(*item)
            except Exception as exc:  # a bug or a backend failure must not kill the thread
                self.throttled("internal", f"frame failed: {type(exc).__name__}: {exc}")

    def _wants(self) -> tuple[Wants, bool]:
        """What subscribers read (and whether TF is broadcast): the core computes nothing more."""
        subs = {k: p.get_subscription_count() > 0 for k, p in self.pubs.items()}
        has_pose = self.pipe is not None and self.pipe.has_pose
        if self.cfg.publish_tf and self.tf is None and not self.tf_tried:
            self.tf_tried = True
            try:
                from tf2_ros import TransformBroadcaster  # type: ignore[import-not-found]

                self.tf = TransformBroadcaster(self)
            except ImportError:
                self.get_logger().warning(
                    "publish_tf is set but tf2_ros is not importable here: odom → base TF is not broadcast "
                    "(install the tf2_ros package of your ROS distribution); odom is still published")
        tf = has_pose and self.cfg.publish_tf and self.tf is not None
        wants = Wants(subs["depth"], subs["depth_info"], subs["points"], subs["colored"],
                      self._wants_odometry(has_pose and (subs["odom"] or tf)))
        return wants, tf

    def _wants_odometry(self, read: bool) -> bool:
        """odom.continuous: once started, odometry runs on every frame until deactivation, read or not, so an odom
        subscriber that leaves and comes back (a bag recorder, a filter restarting) finds the whole gap's motion in
        it. Otherwise it runs while read, and a reader coming back gets a chain restarted from the last pose (its
        first twist "unknown", odom.restarts counted), never one that silently skips the motion it missed."""
        if self.cfg.odom.continuous:
            self.odom_started = self.odom_started or read
            return self.odom_started
        if read and self.odom_started is False and self.pipe.vo.steps:
            self.pipe.restart_odometry(keep_pose=True)
            self.get_logger().info("odom has a reader again: odometry restarted from the last pose (the motion while "
                                   "no one read it is not in it; odom.continuous true keeps it)")
        self.odom_started = read
        return read

    def _frame(self, msg: Any, t_recv: float, prev_received_ns: int | None) -> None:
        t_start = time.monotonic()
        wants, tf = self._wants()
        if self.mounting is not None:  # TF's camera mounting when it has one, else camera_to_base
            T = self.mounting.choose(self.cfg.base_frame, msg.header.frame_id or self.cfg.camera_frame,
                                     transform_from_xyz_quat(list(self.cfg.camera_to_base)))
            self.core.set_camera_to_base(T)
        out = self.core.process(msg, wants, prev_received_ns, INFO_WAIT_S, defer_odometry=True)
        for e in out.events:
            self.throttled(e.kind, e.text, e.level, e.counted)
        if out.status == "idle":
            self.stats.skipped_idle += 1
        elif out.status == "waiting_for_scale":
            self.stats.waiting_for_scale += 1
        if out.status != "ok":
            return
        self.stats.intrinsics_source = out.intrinsics_source
        self.stats.camera_info_fallbacks += out.camera_info_fallback
        t_out = self._publish(out, msg.header, wants)
        self.core.complete_odometry(out)  # after depth and cloud are out: odometry is not on their path
        if out.odometry is not None:
            self._publish_odometry(out, msg.header.stamp, tf)
        t_inf = out.infer_s
        self.stats.done(t_out - t_recv, t_start - t_recv, t_inf, t_out - t_start - t_inf, out.odom_s)

    def _publish(self, out: FrameOutputs, in_header: Any, wants: Wants) -> float:
        """Publish the depth, camera_info, cloud and colour map that were wanted; returns when the latency-relevant
        outputs were out (before the colour map, which is not on the depth/cloud path)."""
        # the input's header as is (a fresh message, ours now) unless the frame id has to be filled in
        header = in_header if in_header.frame_id == out.frame_id else M.copy_header(in_header, out.frame_id)
        if wants.depth:
            self.pubs["depth"].publish(M.depth_msg(out.depth, header))
        if wants.depth_info:
            self.pubs["depth_info"].publish(self._depth_info(out.intrinsics, header))
        if out.cloud is not None:
            self.pubs["points"].publish(M.pointcloud_msg(out.cloud, header, out.cloud_payload))
        t_out = time.monotonic()
        if out.colored is not None:
            self.pubs["colored"].publish(M.colored_msg(out.colored, header))
        return t_out

    def _publish_odometry(self, out: FrameOutputs, stamp: Any, tf: bool) -> None:
        cfg = self.cfg
        self.pubs["odom"].publish(M.odometry_msg(out.odometry, stamp, cfg.odom_frame, cfg.base_frame))
        if tf:
            self.tf.sendTransform(M.transform_msg(out.odometry.pose, stamp, cfg.odom_frame, cfg.base_frame))

    def _depth_info(self, intr: Intrinsics, header: Any) -> Any:
        """depth/camera_info: one message per set of intrinsics, re-stamped (building one costs 0.2 ms)."""
        if self.info_msg is None or self.info_msg[0] != intr:
            self.info_msg = (intr, M.camera_info_msg(intr, header))
        msg = self.info_msg[1]
        msg.header = header
        return msg

    # -------------------------------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        try:
            self.diag_pub.publish(self.diagnostics())
        except Exception as exc:  # pragma: no cover
            self.throttled("internal", f"diagnostics: {type(exc).__name__}: {exc}")

    def diagnostics(self) -> DiagnosticArray:
        now = time.monotonic()
        period, self.t_period = max(1e-3, now - self.t_period), now
        state = ("finalized" if self.finalized else "active" if self.active else "inactive" if self.configured
                 else "unconfigured")
        values, counts = period_values(self.stats, period, self.slot.dropped)
        values = {"state": state, **values, "model": self.model_path or "(not loaded)", **core_values(self.core),
                  "camera_mounting": self.mounting.source if self.mounting is not None else "parameters"}
        guessed = (self.stats.intrinsics_source == "configured"
                   and list(self.cfg.intrinsics) == P.defaults()["intrinsics"] and self.cfg.intrinsics_normalized)
        level, text = level_and_text(state, self.param_error or self.configure_error, counts, self.slot.dropped,
                                     self.scale, self.stats.last_error, guessed)
        status = M.diagnostic_status(f"{self.get_fully_qualified_name()}: depth", "depth_node", level, text, values)
        return M.diagnostics_msg(self.get_clock().now().to_msg(), [status])


def create_node(**node_kwargs: Any) -> DepthNode:
    """The node (rclpy must be initialised); kwargs go to rclpy's Node (context, parameter_overrides...)."""
    return DepthNode(**node_kwargs)


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
    return _spin(args, transports)


def _spin(args: list[str], transports: str) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from depth_node.ros import dds_profile

    rclpy.init(args=[NODE_NAME, *args])
    node = None
    try:
        node = DepthNode()
        loaded, transports = dds_profile.confirm(transports)  # claims only what it checked
        (node.get_logger().info if loaded else node.get_logger().warning)(f"DDS transports: {transports}")
        if node.cfg.autostart:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
