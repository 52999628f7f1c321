"""Training frames from a rosbag2 bag: camera images (+ CameraInfo for intrinsics; a right camera for stereo).

Topics left unset in `data.bag` are found from the bag: the one image topic (or the one not named "right"),
its CameraInfo next to it (`…/image_raw` → `…/camera_info`), and for stereo an image topic named "right".
Left and right images are paired by header stamp (within `max_sync_dt`); the baseline comes from the right
CameraInfo's P (P[0,3] = −fx·baseline, rectified rigs). An intrinsics file (`data.intrinsics`) replaces the
CameraInfo when given (how bags recorded without one train). Only this module (via depth_node.io.bags, which
uses `rosbags`) touches ROS data; nothing here needs a ROS installation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.geometry.camera import Intrinsics
from depth_node.io.bags import stamp_to_ns
from depth_node.io.image_codec import ImageFormatError, decode_rgb
from depth_node.runtime.topics import CAMERA_INFO_TYPE, camera_info_topic
from depth_node.train.errors import DataError
from depth_node.train.intrinsics_file import read_intrinsics_file

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = CAMERA_INFO_TYPE

log = logging.getLogger(__name__)


@dataclass
class BagPlan:
    image_topic: str
    info_topic: str | None
    right_topic: str | None
    right_info_topic: str | None
    intrinsics: Intrinsics
    baseline_m: float | None
    count: int


def _first(reader: Any, topic: str) -> Any:
    for m in reader.messages([topic]):
        return m.msg
    raise DataError(f"{reader.path}: topic {topic} has no messages")


def _image_size(reader: Any, topic: str) -> tuple[int, int]:
    """(width, height) of the topic's first frame, decoded as training decodes it (compressed ones too)."""
    for m in reader.messages([topic]):
        h, w = _frame(m).shape[:2]
        return w, h
    raise DataError(f"{reader.path}: topic {topic} has no messages")


def plan(path: Path, cfg: Any, with_right: bool = True, baseline_override: float | None = None,
         intrinsics_file: Path | None = None) -> BagPlan:
    """Topics, intrinsics, baseline and frame count. `intrinsics_file` (pixels; `intrinsics_file.read_intrinsics_file`
    formats), when given, is used instead of the CameraInfo, scaled to the bag's image size if it gives another."""
    from depth_node.io.bags import open_bag

    with open_bag(path) as reader:
        topics = reader.topics
        images = [t for t, s in topics.items() if s.msgtype in IMAGE_TYPES]
        infos = [t for t, s in topics.items() if s.msgtype == INFO_TYPE]
        left = getattr(cfg, "image_topic", None)
        if left is None:
            cands = [t for t in images if "right" not in t and "depth" not in t and "ground_truth" not in t]
            if len(cands) != 1:
                raise DataError(f"{path}: cannot tell which image topic to train on ({', '.join(images) or 'none'}); "
                                "set data.bag.image_topic")
            left = cands[0]
        elif left not in topics:
            raise DataError(f"{path}: no topic {left}; image topics: {', '.join(images) or 'none'}")
        info = getattr(cfg, "camera_info_topic", None)
        if info is not None and info not in topics:
            raise DataError(f"{path}: no topic {info}; CameraInfo topics: {', '.join(infos) or 'none'}")
        info = info or camera_info_topic(left, infos)
        if info is None and intrinsics_file is None:
            others = f" (CameraInfo topics: {', '.join(infos)})" if infos else ""
            raise DataError(f"{path} has no sensor_msgs/CameraInfo topic for {left}{others}; pass "
                            "data.intrinsics=FILE (fx, fy, cx, cy in pixels) or --camera-info-topic")
        right = getattr(cfg, "right_image_topic", None)
        if right is None and with_right:
            rc = [t for t in images if "right" in t and t != left]
            right = rc[0] if len(rc) == 1 else None
        right_info = None
        if right is not None:
            right_info = getattr(cfg, "right_camera_info_topic", None) or camera_info_topic(
                right, [t for t in infos if t != info])
        file_baseline = None
        if intrinsics_file is not None:
            intr, file_baseline = read_intrinsics_file(intrinsics_file, *_image_size(reader, left))
            if info is not None:
                log.warning("%s: intrinsics from %s (data.intrinsics) replace the bag's CameraInfo %s", path,
                            intrinsics_file, info)
            info = None  # the file replaces the CameraInfo
        else:
            ci = _first(reader, info)
            K = np.asarray(ci.k, dtype=np.float64).reshape(3, 3)
            intr = Intrinsics.from_K(K, int(ci.width), int(ci.height))
            if not intr.is_valid():
                raise DataError(f"{path}: CameraInfo on {info} has invalid intrinsics (K = {K.ravel().tolist()}); "
                                "pass data.intrinsics=FILE (fx, fy, cx, cy in pixels)")
        baseline = baseline_override
        if right_info is not None and baseline is None:
            P = np.asarray(_first(reader, right_info).p, dtype=np.float64)
            if abs(P[3]) > 1e-9 and P[0] > 0:
                baseline = abs(P[3] / P[0])
        if right is not None and baseline is None:
            baseline = file_baseline
        if right is not None and baseline is None:
            raise DataError(f"{path}: stereo topic {right} but no baseline (right CameraInfo P[3] = −fx·baseline); "
                            "set data.stereo_baseline_m")
        return BagPlan(left, info, right, right_info, intr, baseline, topics[left].count)


def _frame(m: Any) -> np.ndarray:
    """The node's own decoding (`io.image_codec.decode_rgb`): training sees the pixels the node will see, for every
    encoding the node accepts (mono16 scaled as cv_bridge does, Bayer demosaiced, YUV converted, 16-bit PNGs)."""
    try:
        return decode_rgb(m.msg)
    except ImageFormatError as exc:
        raise DataError(f"{m.topic} at bag time {m.stamp_ns / 1e9:.3f} s: {exc}") from exc


def iterate(path: Path, p: BagPlan, cfg: Any) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(left RGB, right RGB or None) in time order; with a right topic, left frames without a partner within
    `max_sync_dt` are skipped (so every yielded frame is a stereo pair)."""
    from depth_node.io.bags import open_bag

    tol = int(float(getattr(cfg, "max_sync_dt", 0.005)) * 1e9)
    topics = [p.image_topic] + ([p.right_topic] if p.right_topic else [])
    pending_l: dict[int, np.ndarray] = {}
    pending_r: dict[int, np.ndarray] = {}
    with open_bag(path) as reader:
        for m in reader.messages(topics):
            img = _frame(m)
            t = stamp_to_ns(m.msg.header.stamp)
            if p.right_topic is None:
                yield img, None
                continue
            mine, other = (pending_l, pending_r) if m.topic == p.image_topic else (pending_r, pending_l)
            match = min(other, key=lambda s: abs(s - t), default=None)
            if match is not None and abs(match - t) <= tol:
                o = other.pop(match)
                yield (img, o) if m.topic == p.image_topic else (o, img)
                # anything older than this pair can no longer be matched
                for d in (pending_l, pending_r):
                    for s in [s for s in d if s < t - tol]:
                        d.pop(s)
            else:
                mine[t] = img
