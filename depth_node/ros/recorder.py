"""Recording topics into an MCAP bag from inside a Python process (rosbag2's `ros2 bag record` is not on PyPI).

Messages are stored as received (raw CDR, no deserialisation), with the receive time as the bag time, as
`ros2 bag record` does. For every message that starts with a std_msgs/Header the recorder also keeps
(header stamp, receive time), which is what latency and rate statistics need: an output's receive time minus
the receive time of the input image with the same stamp is the end-to-end latency through the node.
"""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from depth_node.errors import DepthNodeError
from depth_node.io.bags import BagWriter
from depth_node.ros.bag_player import message_class


def header_stamp_ns(raw: bytes | memoryview) -> int | None:
    """The header stamp of a serialised message whose first field is a std_msgs/Header (Image, CameraInfo,
    PointCloud2, Odometry, DiagnosticArray ...): CDR encapsulation (4 bytes), then int32 sec, uint32 nanosec."""
    if len(raw) < 12:
        return None
    little = bytes(raw[1:2]) in (b"\x01", b"\x03")
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", raw, 4)
    return sec * 1_000_000_000 + nsec


@dataclass
class Arrivals:
    """Per topic: header stamps and receive times (ns, time.time_ns), in arrival order."""

    stamps: dict[str, list[int]] = field(default_factory=dict)
    received: dict[str, list[int]] = field(default_factory=dict)

    def add(self, topic: str, stamp: int | None, recv: int) -> None:
        self.stamps.setdefault(topic, []).append(-1 if stamp is None else stamp)
        self.received.setdefault(topic, []).append(recv)

    def count(self, topic: str) -> int:
        return len(self.received.get(topic, ()))

    def by_stamp(self, topic: str) -> dict[int, int]:
        """header stamp → first receive time."""
        out: dict[int, int] = {}
        for s, r in zip(self.stamps.get(topic, ()), self.received.get(topic, ()), strict=True):
            out.setdefault(s, r)
        return out


class TopicRecorder:
    """Subscribes (reliable, keep-all) to `topics` {name: 'pkg/msg/Type'} in its own rclpy context and spin
    thread. Topics in `store` go into the bag; all topics get arrival records. Use as a context manager."""

    def __init__(self, out: str | Path | None, topics: dict[str, str], store: set[str] | None = None,
                 node_name: str = "depth_node_recorder", overwrite: bool = False) -> None:
        self.out = Path(out) if out is not None else None
        self.topics = dict(topics)
        self.store = set(topics) if store is None else set(store) & set(topics)
        self.node_name = node_name
        self.overwrite = overwrite
        self.arrivals = Arrivals()
        self.bag: BagWriter | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context = None
        self._node = None

    def start(self) -> TopicRecorder:
        try:
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
            from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        except ImportError as exc:
            raise DepthNodeError(f"recording needs rclpy (ROS 2): {exc}") from exc
        classes = {}
        for topic, msgtype in self.topics.items():
            cls = message_class(msgtype)
            if cls is None:
                raise DepthNodeError(f"cannot record {topic}: no Python message package for {msgtype}")
            classes[topic] = cls
        if self.out is not None and self.store:
            self.bag = BagWriter(self.out, storage="mcap", overwrite=self.overwrite)
            for topic in sorted(self.store):
                self.bag.add_topic(topic, self.topics[topic])
        self._context = rclpy.Context()
        rclpy.init(args=[], context=self._context)
        self._node = rclpy.create_node(self.node_name, context=self._context, start_parameter_services=False)
        qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        for topic, cls in classes.items():
            self._node.create_subscription(cls, topic, lambda raw, t=topic: self._on_message(t, raw), qos, raw=True)
        executor = SingleThreadedExecutor(context=self._context)
        executor.add_node(self._node)

        def spin() -> None:
            while not self._stop.is_set() and self._context.ok():
                executor.spin_once(timeout_sec=0.1)
            executor.shutdown()

        self._thread = threading.Thread(target=spin, name="recorder", daemon=True)
        self._thread.start()
        return self

    def _on_message(self, topic: str, raw: bytes) -> None:
        recv = time.time_ns()
        with self._lock:
            self.arrivals.add(topic, header_stamp_ns(raw), recv)
            if self.bag is not None and topic in self.store:
                self.bag.write_raw(topic, recv, raw)

    def mark(self, topic: str, stamp_ns: int | None) -> None:
        """Add an arrival record made outside the subscriptions (the player's send time of an input)."""
        now = time.time_ns()
        with self._lock:
            self.arrivals.add(topic, stamp_ns, now)

    def count(self, topic: str) -> int:
        with self._lock:
            return self.arrivals.count(topic)

    def publishers(self, topic: str) -> int:
        return self._node.count_publishers(topic) if self._node is not None else 0

    def wait_quiet(self, topic: str, quiet_s: float, timeout_s: float) -> int:
        """Wait until `topic` has had no new message for `quiet_s` (or `timeout_s` passed); returns its count."""
        end = time.monotonic() + timeout_s
        last, since = self.count(topic), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.05)
            n = self.count(topic)
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
        return last

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._node is not None:
            self._node.destroy_node()
            self._node = None
        if self._context is not None:
            self._context.try_shutdown()
            self._context = None
        with self._lock:
            if self.bag is not None:
                self.bag.close()

    def __enter__(self) -> TopicRecorder:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
