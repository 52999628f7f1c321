"""The ROS 2 side of `depth-node bench --node`: a peer node that publishes frames to the node under test and
times its outputs. Lives under ros/ (the only package that imports rclpy); `depth_node.bench.node_bench` drives
it and does the statistics."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from depth_node.runtime.topics import OUTPUT_TOPICS


class BenchProbe:
    """The benchmark's side of the graph: publishes frames with camera_info, receives the node's outputs
    (raw, stamp read from the CDR bytes) and its /diagnostics."""

    def __init__(self, frames: list[np.ndarray], K: np.ndarray, period_s: float):
        import rclpy
        from nav_msgs.msg import Odometry
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.rclpy = rclpy
        rclpy.init()
        self.node = rclpy.create_node("depth_node_bench")
        # the receiving side's own cost is not the node's: one executor for the whole run (rclpy.spin_once(node)
        # adds and removes the node on the global executor every call), rclpy's C++ events executor where this
        # rclpy has it (Kilted on): it hands a 1 MB cloud to its callback ~0.4 ms sooner, nearer what a C++
        # subscriber such as RViz pays
        try:
            from rclpy.experimental import EventsExecutor as Executor
        except ImportError:
            from rclpy.executors import SingleThreadedExecutor as Executor
        self.executor = Executor()
        self.executor_name = type(self.executor).__name__
        self.executor.add_node(self.node)
        self.frames, self.K = frames, K
        # the camera's clock: frame n is stamped start + n·period, whenever it is sent (see `send`)
        self.period_ns, self.start_ns, self.sent = round(period_s * 1e9), time.time_ns(), 0
        self.first = 0  # `sent` when the drive last started again from its first frame (`restart_drive`)
        self.arrival_ms: dict[str, float] = {}
        self.img = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.info = self.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.recv: dict[str, dict[int, int]] = {"depth": {}, "points": {}, "odom": {}}
        self.types = {"depth": Image, "points": PointCloud2, "odom": Odometry}
        self.qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.subs: dict[str, Any] = {}
        from diagnostic_msgs.msg import DiagnosticArray

        self.diags: list[dict[str, str]] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            if st.name.endswith(": depth"):
                self.diags.append({kv.key: kv.value for kv in st.values})

    def wait_for_diagnostics(self, timeout: float) -> None:
        seen = len(self.diags)
        self.spin_until(lambda: len(self.diags) > seen, timeout)

    @staticmethod
    def node_breakdown(diags: list[dict[str, str]]) -> dict[str, float]:
        """The node's own per-frame timings (its /diagnostics), medians over the periods `diags` (of self.diags)
        in which it output frames."""
        rows = [d for d in diags if float(d.get("output_rate_hz", 0) or 0) > 0]
        out = {}
        for key in ("wait_mean_ms", "inference_mean_ms", "publish_mean_ms", "odometry_mean_ms", "latency_mean_ms"):
            vals = [float(d[key]) for d in rows if key in d]
            if vals:
                out[key.replace("_mean", "")] = round(float(np.median(vals)), 3)
        return out

    def _on(self, kind: str):
        """Raw (serialized) subscription: the stamp is read from the CDR bytes, so the time to turn a 4 MB
        cloud into a Python message on this side (a C++ consumer would not pay it) is not charged to the node."""
        import struct

        def cb(raw: bytes) -> None:
            t = time.perf_counter_ns()
            little = raw[1] & 1  # CDR encapsulation: 0x0001 little-endian, 0x0000 big-endian
            sec, nsec = struct.unpack_from("<iI" if little else ">iI", raw, 4)  # std_msgs/Header.stamp first
            self.recv[kind][sec * 10**9 + nsec] = t
        return cb

    def want(self, kinds: set[str]) -> None:
        for k in list(self.subs):
            if k not in kinds:
                self.node.destroy_subscription(self.subs.pop(k))
        for k in kinds:
            if k not in self.subs:
                self.subs[k] = self.node.create_subscription(self.types[k], OUTPUT_TOPICS[k], self._on(k), self.qos,
                                                             raw=True)

    def restart_drive(self) -> None:
        """The next frame sent is the drive's first again (its stamp still one period after the last). At the start
        of a block, where the node's odometry chain starts anew: the block's frames are then consecutive drive
        frames, not a jump from the drive's last frame back to its first (a teleport no camera gives, which sends
        the odometry to its slow pose-network path for two frames)."""
        self.first = self.sent

    def spin_until(self, cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            # spin_once returns as soon as something arrives: a long timeout costs no latency, and a short one
            # would busy-poll a core away from the node being measured
            self.executor.spin_once(timeout_sec=0.05)
        return cond()

    def send(self, kinds: set[str], timeout: float = 20.0) -> float | None:
        """Publish the next drive frame; ms until every output in `kinds` arrived, or None.

        Frames go out seconds apart (the benchmark times raw inference in between) but carry the camera's
        stamps: consecutive frames one period apart, as the drive was rendered. Wall-clock stamps would tell the
        odometry that 0.1 s of motion took a varying ~0.5 s, and its constant-velocity prior, scaled by the
        stamps' intervals, would start each alignment from a wrong guess that a camera stream never gives."""
        from sensor_msgs.msg import CameraInfo, Image

        from depth_node.ros.messages import as_data

        rgb = self.frames[(self.sent - self.first) % len(self.frames)]
        h, w = rgb.shape[:2]
        stamp = self.start_ns + self.sent * self.period_ns
        self.sent += 1
        sec, nsec = divmod(stamp, 10**9)
        info = CameraInfo()
        info.header.stamp.sec, info.header.stamp.nanosec = sec, nsec
        info.header.frame_id = "camera_optical"
        info.width, info.height = w, h
        fx, fy, cx, cy = (float(v) for v in self.K)
        info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
        img = Image()
        img.header = info.header
        img.height, img.width, img.encoding, img.step = h, w, "rgb8", w * 3
        img.data = as_data(rgb)
        self.info.publish(info)
        t0 = time.perf_counter_ns()
        self.img.publish(img)
        ok = self.spin_until(lambda: all(stamp in self.recv[kd] for kd in kinds), timeout)
        if not ok:
            return None
        self.arrival_ms = {kd: (self.recv[kd][stamp] - t0) / 1e6 for kd in kinds}  # per output, this frame
        return max(self.arrival_ms.values())

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown()
