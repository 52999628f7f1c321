"""Helper process for test_bag_play: subscribes (reliable) to the given topics and prints message counts as JSON.

Usage: python bag_subscriber.py EXPECTED_JSON TIMEOUT_S
EXPECTED_JSON maps topic → [message type, expected count]; exits once every count is reached or on timeout.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time


def watchdog(seconds: float, counts: dict[str, int]) -> None:
    """Print the counts and exit after `seconds` whatever rclpy is doing: a rare DDS hiccup has hung spin or
    shutdown past the deadline (once in a loaded suite run), and the test must get its counts either way."""
    def fire() -> None:
        print(json.dumps(counts), flush=True)
        os._exit(0)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def main() -> int:
    expected = json.loads(sys.argv[1])
    timeout = float(sys.argv[2])
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    rclpy.init(args=[])
    node = rclpy.create_node("bag_play_test_subscriber")
    counts = dict.fromkeys(expected, 0)
    qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    subs = []
    for topic, (msgtype, _) in expected.items():
        pkg, sub, name = msgtype.split("/")
        cls = getattr(importlib.import_module(f"{pkg}.{sub}"), name)

        def cb(_msg, topic=topic):
            counts[topic] += 1

        subs.append(node.create_subscription(cls, topic, cb, qos, raw=True))
    print("READY", flush=True)
    watchdog(timeout + 5.0, counts)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(counts[t] < n for t, (_, n) in expected.items()):
        rclpy.spin_once(node, timeout_sec=0.1)
    seen = {t: node.count_publishers(t) for t in expected}
    print(f"publishers seen at the end: {seen}", file=sys.stderr, flush=True)
    print(json.dumps(counts), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
