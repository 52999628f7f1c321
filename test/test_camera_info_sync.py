"""Pairing images with camera_info by stamp (`runtime.sync.CameraInfoCache`): the first image of a stream may
arrive a moment before its camera_info, and must still get it (the offline pipeline pairs them, so the node
must too: CI once saw the node's first depth 0.19 % off the offline one); a camera that never publishes
camera_info costs one wait, not one per frame."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from depth_node.runtime.sync import CameraInfoCache

T0 = 1_700_000_000 * 10**9


def info(stamp_ns: int) -> SimpleNamespace:
    sec, nsec = divmod(stamp_ns, 10**9)
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nsec)), tag=stamp_ns)


def test_first_image_waits_for_its_camera_info() -> None:
    cache = CameraInfoCache()
    timer = threading.Timer(0.05, cache.add, args=(info(T0),))
    timer.start()
    got, dt = cache.match(T0, slop_s=0.02, wait_s=5.0)
    timer.join()
    assert got is not None and got.tag == T0 and dt == 0.0


def test_a_camera_without_camera_info_waits_once() -> None:
    cache = CameraInfoCache()
    t = time.monotonic()
    assert cache.match(T0, 0.02, wait_s=0.3) == (None, None)
    first = time.monotonic() - t
    t = time.monotonic()
    assert cache.match(T0 + 10**8, 0.02, wait_s=30.0) == (None, None)  # would hang 30 s if it waited again
    assert first >= 0.25 and time.monotonic() - t < 10.0
    cache.add(info(T0 + 2 * 10**8))
    cache.clear()  # a restart (bag loop, reset): the next first image may again beat its camera_info
    timer = threading.Timer(0.05, cache.add, args=(info(T0 + 3 * 10**8),))
    timer.start()
    got, _ = cache.match(T0 + 3 * 10**8, 0.02, wait_s=5.0)
    timer.join()
    assert got is not None and got.tag == T0 + 3 * 10**8


def test_flowing_camera_info_is_waited_for_and_stale_is_not() -> None:
    cache = CameraInfoCache()
    cache.add(info(T0))
    timer = threading.Timer(0.05, cache.add, args=(info(T0 + 10**8),))
    timer.start()
    got, _ = cache.match(T0 + 10**8, 0.02, wait_s=5.0)
    timer.join()
    assert got.tag == T0 + 10**8
    got, dt = cache.match(T0 + 5 * 10**7, 0.02, wait_s=5.0)  # between two infos, 50 ms from each: no match
    assert got is None and abs(dt - 0.05) < 1e-9
