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
            player = _Player(node, classes, qos_depth, reliable, clock, clock_hz, rate, stop_event, on_message)
            result.published = dict.fromkeys(player.pubs, 0)
            t_begin = time.monotonic()
            player.wait_for_matching(bag.start_ns, start_delay, wait_for_subscribers)
            while not player.stopped():
                player.play_once(bag, result.published)
                result.loops += 1
                if not loop:
                    break
            result.interrupted = player.stopped()
            if reliable:
                player.wait_for_acks(ack_timeout)
            result.wall_s = time.monotonic() - t_begin
        finally:
            if node is not None:
                node.destroy_node()
            context.try_shutdown()
    return result


def _message_classes(bag: BagReader, topics: Iterable[str] | None, result: PlayResult) -> dict[str, type]:
    """topic → message class of the topics to play; without explicit `topics`, those whose type has no installed
    Python class are skipped (noted in `result.skipped`), with them it is an error."""
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
    """One playback's publishers, /clock and pacing on a node the caller owns."""

    def __init__(self, node, classes: dict[str, type], qos_depth: int, reliable: bool, clock: bool, clock_hz: float,
                 rate: float, stop_event: threading.Event | None,
                 on_message: Callable[[BagMessage], None] | None) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=qos_depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
        self.pubs = {topic: node.create_publisher(cls, topic, qos) for topic, cls in classes.items()}
        self.clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self._clock_cls = Clock
            self.clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self.period = 1.0 / clock_hz if clock_hz > 0 else 0.1
        self.rate = rate
        self.stop_event = stop_event
        self.on_message = on_message

    def stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def send_clock(self, ns: int) -> None:
        if self.clock_pub is not None:
            msg = self._clock_cls()
            msg.clock.sec, msg.clock.nanosec = divmod(int(ns), 1_000_000_000)
            self.clock_pub.publish(msg)

    def wait_for_matching(self, first_ns: int, start_delay: float, wait_for_subscribers: float) -> None:
        """Discovery grace: subscribers started before us need a moment to match the new publishers."""
        deadline = time.monotonic() + max(start_delay, 0.0)
        while time.monotonic() < deadline and not self.stopped():
            self.send_clock(first_ns)
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))
        deadline = time.monotonic() + max(wait_for_subscribers, 0.0)
        lonely = self._lonely()
        while lonely and time.monotonic() < deadline and not self.stopped():
            self.send_clock(first_ns)
            time.sleep(0.05)
            lonely = self._lonely()
        if lonely and wait_for_subscribers > 0:
            log.warning("no subscriber after %.1f s on: %s", wait_for_subscribers, ", ".join(lonely))

    def _lonely(self) -> list[str]:
        return [t for t, p in self.pubs.items() if p.get_subscription_count() == 0]

    def play_once(self, bag: BagReader, published: dict[str, int]) -> None:
        """One pass over the bag at `rate` × its own timing, /clock ticking between messages."""
        wall0 = time.monotonic()
        base_ns = None
        for m in bag.messages(list(self.pubs)):
            if base_ns is None:
                base_ns = m.stamp_ns
            target = wall0 + (m.stamp_ns - base_ns) * 1e-9 / self.rate
            while not self.stopped():
                now = time.monotonic()
                if now >= target:
                    break
                time.sleep(min(target - now, self.period))
                self.send_clock(base_ns + int((time.monotonic() - wall0) * self.rate * 1e9))
            if self.stopped():
                return
            self.send_clock(m.stamp_ns)
            self.pubs[m.topic].publish(bytes(m.raw))
            published[m.topic] += 1
            if self.on_message is not None:
                self.on_message(m)  # just published: its send time

    def wait_for_acks(self, timeout: float) -> None:
        """Reliable delivery of the tail: do not tear down while subscribers still acknowledge."""
        import rclpy.duration

        for pub in self.pubs.values():
            pub.wait_for_all_acked(rclpy.duration.Duration(seconds=timeout))
