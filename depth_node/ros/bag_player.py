"""Publish a rosbag2 bag over ROS 2 with its original timing, forwarding the stored CDR bytes untouched.

Messages are never deserialised: rclpy publishes serialized bytes directly (`Publisher.publish(bytes)`), so
playback costs no more than reading the bag. The message class a publisher needs is imported by its type name
(`sensor_msgs/msg/Image` → `sensor_msgs.msg.Image`); topics whose type has no installed Python package are
skipped with a warning. /clock (rosgraph_msgs/Clock) carries bag time for nodes run with use_sim_time.

Used by `depth-node play` and, as a library, by the demo: `play_bag(path, rate=2.0, stop_event=ev)`.
The caller's ROS environment (ROS_DOMAIN_ID, discovery range) is used as is; this module sets none of it.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_node.errors import DepthNodeError
from depth_node.io.bags import BagMessage, BagReader

log = logging.getLogger(__name__)


def message_class(msgtype: str):
    """The rclpy message class of 'pkg/msg/Name', or None when that package is not installed."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        return None
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError):
        return None


@dataclass
class PlayResult:
    published: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # topic → message type without a Python class
    loops: int = 0
    wall_s: float = 0.0
    interrupted: bool = False


def play_bag(
    path: str | Path,
    *,
    rate: float = 1.0,
    loop: bool = False,
    topics: Iterable[str] | None = None,
    clock: bool = True,
    clock_hz: float = 50.0,
    start_delay: float = 0.0,
    wait_for_subscribers: float = 0.0,
    qos_depth: int = 10,
    reliable: bool = True,
    stop_event: threading.Event | None = None,
    node_name: str = "depth_node_bag_player",
    ack_timeout: float = 3.0,
    on_message: Callable[[BagMessage], None] | None = None,
) -> PlayResult:
    """Publish the bag (or some `topics` of it) at `rate` × real time; blocks until done, `stop_event` is set,
    or (with `loop`) forever. Runs in its own rclpy context, so it can share a process with other nodes.

    Before the first message it waits `start_delay` seconds, then up to `wait_for_subscribers` seconds more
    until every publisher has matched a subscriber: DDS discovery of a freshly started process can take
    seconds, and reliable QoS only protects messages sent after matching."""
    if not rate > 0:
        raise DepthNodeError(f"rate must be > 0, got {rate}")
    if qos_depth < 1:
        raise DepthNodeError(f"QoS depth must be ≥ 1, got {qos_depth}")
    try:
        import rclpy
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    except ImportError as exc:
        raise DepthNodeError(f"play needs rclpy (ROS 2): {exc}") from exc

    result = PlayResult()
    with BagReader(path) as bag:
        classes = _message_classes(bag, topics, result)
        context = rclpy.Context()
        rclpy.init(args=[], context=context)
        node = None
        try:
            node = rclpy.create_node(node_name, context=context, start_parameter_services=False)
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=qos_depth,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=DurabilityPolicy.VOLATILE,
            )
            pubs = {topic: node.create_publisher(cls, topic, qos) for topic, cls in classes.items()}
            result.published = dict.fromkeys(pubs, 0)
            player = _Player(node, pubs, clock, clock_hz, stop_event)
            t_begin = time.monotonic()
            player.wait_for_discovery(bag.start_ns, start_delay, wait_for_subscribers)
            while not player.stopped():
                player.play_once(bag, rate, result, on_message)
                result.loops += 1
                if not loop:
                    break
            result.interrupted = player.stopped()
            for pub in pubs.values():
                # reliable delivery of the tail: do not tear down while subscribers still acknowledge
                if reliable:
                    pub.wait_for_all_acked(rclpy.duration.Duration(seconds=ack_timeout))
            result.wall_s = time.monotonic() - t_begin
        finally:
            if node is not None:
                node.destroy_node()
            context.try_shutdown()
    return result


def _message_classes(bag: BagReader, topics: Iterable[str] | None, result: PlayResult) -> dict[str, Any]:
    """The Python message class of every topic to play; topics asked for by name must have one, others
    without one are skipped (and listed in `result.skipped`)."""
    explicit = topics is not None
    wanted = bag.check_topics(topics) if explicit else list(bag.topics)
    classes = {}
    for topic in wanted:
        msgtype = bag.topics[topic].msgtype
        cls = message_class(msgtype)
        if cls is None:
            if explicit:
                raise DepthNodeError(f"cannot play {topic}: no Python message package for its type {msgtype}")
            log.warning("skipping %s: message type %s has no installed Python class", topic, msgtype)
            result.skipped[topic] = msgtype
            continue
        classes[topic] = cls
    if not classes:
        raise DepthNodeError(f"nothing to play in {bag.path}: no topic has an installed message type")
    return classes


class _Player:
    """The publishing side of one replay: bag messages at their recorded pace, /clock between them."""

    def __init__(self, node: Any, pubs: dict[str, Any], clock: bool, clock_hz: float,
                 stop_event: threading.Event | None) -> None:
        self.pubs, self.stop_event = pubs, stop_event
        self.period = 1.0 / clock_hz if clock_hz > 0 else 0.1
        self.clock_pub = self.Clock = None
        if clock:
            from rclpy.qos import QoSProfile
            from rosgraph_msgs.msg import Clock

            self.Clock = Clock
            self.clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))

    def stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def send_clock(self, ns: int) -> None:
        if self.clock_pub is not None:
            msg = self.Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(ns), 1_000_000_000)
            self.clock_pub.publish(msg)

    def wait_for_discovery(self, first_ns: int, start_delay: float, wait_for_subscribers: float) -> None:
        """Discovery grace: subscribers started before us need a moment to match the new publishers."""
        deadline = time.monotonic() + max(start_delay, 0.0)
        while time.monotonic() < deadline and not self.stopped():
            self.send_clock(first_ns)
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))
        deadline = time.monotonic() + max(wait_for_subscribers, 0.0)
        lonely = [t for t, p in self.pubs.items() if p.get_subscription_count() == 0]
        while lonely and time.monotonic() < deadline and not self.stopped():
            self.send_clock(first_ns)
            time.sleep(0.05)
            lonely = [t for t, p in self.pubs.items() if p.get_subscription_count() == 0]
        if lonely and wait_for_subscribers > 0:
            log.warning("no subscriber after %.1f s on: %s", wait_for_subscribers, ", ".join(lonely))

    def play_once(self, bag: BagReader, rate: float, result: PlayResult,
                  on_message: Callable[[BagMessage], None] | None) -> None:
        wall0 = time.monotonic()
        base_ns = None
        for m in bag.messages(list(self.pubs)):
            if base_ns is None:
                base_ns = m.stamp_ns
            target = wall0 + (m.stamp_ns - base_ns) * 1e-9 / rate
            while not self.stopped():
                now = time.monotonic()
                if now >= target:
                    break
                time.sleep(min(target - now, self.period))
                self.send_clock(base_ns + int((time.monotonic() - wall0) * rate * 1e9))
            if self.stopped():
                return
            self.send_clock(m.stamp_ns)
            self.pubs[m.topic].publish(bytes(m.raw))
            result.published[m.topic] += 1
            if on_message is not None:
                on_message(m)  # just published: its send time
