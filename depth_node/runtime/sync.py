"""Matching camera_info to images by stamp, and telling bad stamps apart from time jumps.

message_filters is not a dependency (it is not on PyPI, and the node must run from a pip install): the
node keeps the last few camera_info messages and, when it picks an image up for inference, takes the one
nearest in stamp within `sync_slop`. Cameras publish both at the same instant, and inference starts after
the image arrived, so the match is almost always already there; a short wait covers the race otherwise.
Pure Python over duck-typed messages, so it is tested without ROS.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from depth_node.io.bags import stamp_to_ns


class CameraInfoCache:
    """The last `maxlen` camera_info messages by stamp; thread-safe (subscription vs inference thread)."""

    def __init__(self, maxlen: int = 30):
        self._items: deque[tuple[int, Any]] = deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self.received = 0
        self._first_wait_pending = True  # the first image may beat the first camera_info: wait for it once

    def add(self, info: Any) -> None:
        with self._cond:
            self._items.append((stamp_to_ns(info.header.stamp), info))
            self.received += 1
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._items.clear()
            self._first_wait_pending = True

    def latest(self) -> Any | None:
        with self._cond:
            return self._items[-1][1] if self._items else None

    def _nearest(self, stamp_ns: int, slop_ns: int) -> tuple[Any | None, int | None]:
        best, best_dt = None, None
        for ts, info in self._items:
            dt = abs(ts - stamp_ns)
            if best_dt is None or dt < best_dt:
                best, best_dt = info, dt
        if best_dt is not None and best_dt <= slop_ns:
            return best, best_dt
        return None, best_dt

    def match(self, stamp_ns: int, slop_s: float, wait_s: float = 0.0) -> tuple[Any | None, float | None]:
        """(camera_info within slop or None, |Δt| in seconds to the nearest one seen, or None if none seen).

        Waits up to `wait_s` for a late camera_info when camera_info is flowing, and once before any has come
        (the first image of a stream often arrives a moment before its camera_info; the offline pipeline pairs
        them, so the node must too). A camera without camera_info costs that one wait, not one per frame.
        """
        slop_ns = round(slop_s * 1e9)
        with self._cond:
            info, dt = self._nearest(stamp_ns, slop_ns)
            flowing = bool(self._items) and self._items[-1][0] < stamp_ns + slop_ns
            if info is None and wait_s > 0 and (flowing or (not self._items and self._first_wait_pending)):
                if not self._items:
                    self._first_wait_pending = False
                self._cond.wait_for(lambda: self._nearest(stamp_ns, slop_ns)[0] is not None, timeout=wait_s)
                info, dt = self._nearest(stamp_ns, slop_ns)
        return info, (None if dt is None else dt / 1e9)


class LatestSlot:
    """Single-slot mailbox between the subscription callback and the inference thread: latest frame wins.

    `put` replaces an unprocessed item (counted as dropped) instead of queueing it, so the node's output is
    never older than one inference, whatever the input rate.
    """

    def __init__(self) -> None:
        self._item: Any = None
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.put_count = 0

    def put(self, item: Any) -> bool:
        """Store `item`; True if it replaced one that was never taken."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any | None:
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout=timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._item = None
