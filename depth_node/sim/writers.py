"""Writing rendered drives: a KITTI-raw-like folder (see `kitti_folder` for the layout) or a rosbag2 MCAP bag.

Bag topics and conventions (frame times start at `DriveConfig.start_stamp`; bag time = header stamp):

    /camera/image_raw, /camera/camera_info              rgb8, frame_id camera_optical_frame
    /camera_right/image_raw, /camera_right/camera_info  with --stereo; P[0,3] = Tx = -fx·baseline
    /ground_truth/depth                                 32FC1 z-depth in metres, NaN where invalid/sky (REP 118)
    /ground_truth/odom                                  nav_msgs/Odometry odom → base_link (REP 103 body axes at
                                                        the camera centre, odom = frame 0's base_link),
                                                        twist in base_link
    /ground_truth/semantic, /ground_truth/instance      mono16 (depth_node.sim.labels), unless labels=False
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.poses import quaternion_from_matrix
from depth_node.io import kitti_folder as kf
from depth_node.sim.drive import Drive, Frame
from depth_node.sim.labels import class_names

CAMERA_FRAME = "camera_optical_frame"
CAMERA_RIGHT_FRAME = "camera_right_optical_frame"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"

TOPIC_IMAGE = "/camera/image_raw"
TOPIC_INFO = "/camera/camera_info"
TOPIC_IMAGE_RIGHT = "/camera_right/image_raw"
TOPIC_INFO_RIGHT = "/camera_right/camera_info"
TOPIC_DEPTH = "/ground_truth/depth"
TOPIC_ODOM = "/ground_truth/odom"
TOPIC_SEMANTIC = "/ground_truth/semantic"
TOPIC_INSTANCE = "/ground_truth/instance"


def _prepare_dir(path: Path, overwrite: bool) -> None:
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise DepthNodeError(f"output {path} exists and is not empty; pass --overwrite or choose another path")
        import shutil

        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


class KittiWriter:
    """Streams frames into DIR/<date>/<date>_drive_<NNNN>_sync; poses and timestamps are written on close."""

    def __init__(self, out: str | Path, intrinsics: Intrinsics, *, stereo: bool, baseline: float, start_stamp_ns: int,
                 drive_number: int = 1, depth_png: bool = False, labels: bool = True, overwrite: bool = False) -> None:
        self.root = Path(out)
        _prepare_dir(self.root, overwrite)
        date = time.strftime("%Y_%m_%d", time.gmtime(start_stamp_ns // 1_000_000_000))
        self.date_dir = self.root / date
        self.drive_dir = self.date_dir / f"{date}_drive_{drive_number % 10000:04d}_sync"
        self.stereo, self.depth_png, self.labels = stereo, depth_png, labels
        cams = ["image_02", "image_03"] if stereo else ["image_02"]
        for cam in cams:
            (self.drive_dir / cam / "data").mkdir(parents=True, exist_ok=True)
            (self.drive_dir / "gt_depth" / cam).mkdir(parents=True, exist_ok=True)
            if depth_png:
                (self.drive_dir / "proj_depth" / "groundtruth" / cam).mkdir(parents=True, exist_ok=True)
        if labels:
            (self.drive_dir / "semantic" / "image_02").mkdir(parents=True, exist_ok=True)
            (self.drive_dir / "instance" / "image_02").mkdir(parents=True, exist_ok=True)
        kf.write_calib_cam_to_cam(self.date_dir / "calib_cam_to_cam.txt", intrinsics, baseline)
        self.poses: list[np.ndarray] = []
        self.stamps: list[int] = []
        self.count = 0

    def write(self, frame: Frame) -> None:
        if frame.index != self.count:
            raise DepthNodeError(f"KITTI writer expects frames 0, 1, 2, ... in order; got {frame.index} next")
        name = kf.frame_name(frame.index)
        d = self.drive_dir
        Image.fromarray(frame.rgb).save(d / "image_02" / "data" / f"{name}.png", compress_level=1)
        np.save(d / "gt_depth" / "image_02" / f"{name}.npy", frame.depth)
        if self.depth_png:
            kf.save_depth_png(d / "proj_depth" / "groundtruth" / "image_02" / f"{name}.png", frame.depth)
        if self.labels:
            kf.save_uint16_png(d / "semantic" / "image_02" / f"{name}.png", frame.semantic)
            kf.save_uint16_png(d / "instance" / "image_02" / f"{name}.png", frame.instance)
        if self.stereo:
            if frame.rgb_right is None:
                raise DepthNodeError("stereo writer got a frame without a right image")
            Image.fromarray(frame.rgb_right).save(d / "image_03" / "data" / f"{name}.png", compress_level=1)
            np.save(d / "gt_depth" / "image_03" / f"{name}.npy", frame.depth_right)
            if self.depth_png:
                kf.save_depth_png(d / "proj_depth" / "groundtruth" / "image_03" / f"{name}.png", frame.depth_right)
        self.poses.append(frame.pose)
        self.stamps.append(frame.stamp_ns)
        self.count += 1

    def close(self, manifest: dict[str, Any]) -> None:
        kf.write_poses(self.drive_dir / "poses.txt", self.poses)
        lines = "\n".join(kf.format_timestamp(s) for s in self.stamps) + "\n"
        for cam in ["image_02", "image_03"] if self.stereo else ["image_02"]:
            (self.drive_dir / cam / "timestamps.txt").write_text(lines)
        rel = self.drive_dir.relative_to(self.root)
        split = "".join(f"{rel.parent.name}/{rel.name} {k} l\n" for k in range(self.count))
        (self.root / "frames.txt").write_text(split)
        manifest = {**manifest, "drive_dir": str(rel)}
        (self.root / "manifest.json").write_text(json.dumps(manifest, indent=2, default=_json_default))


class BagDriveWriter:
    """Streams frames into a rosbag2 MCAP bag (see the module docstring for topics)."""

    def __init__(self, out: str | Path, intrinsics: Intrinsics, *, stereo: bool, baseline: float,
                 labels: bool = True, overwrite: bool = False, storage: str = "mcap", compressed: bool = False,
                 distortion: tuple[float, ...] = ()) -> None:
        from depth_node.io.bags import BagWriter, typestore

        self.path = Path(out)
        self.intr, self.stereo, self.baseline, self.labels = intrinsics, stereo, baseline, labels
        self.bag = BagWriter(self.path, storage=storage, overwrite=overwrite)
        self.types = typestore().types
        # compressed: the camera as image_transport's compressed transport carries it (<image>/compressed, JPEG)
        self.compressed = compressed
        self.D = np.asarray(distortion if any(distortion) else np.zeros(5), np.float64)
        self.distort = Distorter(intrinsics, self.D) if any(distortion) else None
        self.image_topic = TOPIC_IMAGE + "/compressed" if compressed else TOPIC_IMAGE
        image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        topics = [(self.image_topic, image_type), (TOPIC_INFO, "sensor_msgs/msg/CameraInfo"),
                  (TOPIC_DEPTH, "sensor_msgs/msg/Image"), (TOPIC_ODOM, "nav_msgs/msg/Odometry")]
        if stereo:
            topics += [(TOPIC_IMAGE_RIGHT, "sensor_msgs/msg/Image"), (TOPIC_INFO_RIGHT, "sensor_msgs/msg/CameraInfo")]
        if labels:
            topics += [(TOPIC_SEMANTIC, "sensor_msgs/msg/Image"), (TOPIC_INSTANCE, "sensor_msgs/msg/Image")]
        for topic, msgtype in topics:
            self.bag.add_topic(topic, msgtype)

    def write(self, frame: Frame) -> None:
        from depth_node.io.bags import header

        stamp = frame.stamp_ns
        depth = np.where(np.isfinite(frame.depth), frame.depth, np.float32(np.nan)).astype(np.float32)
        camera = self._jpeg if self.compressed else self._image
        rgb = frame.rgb if self.distort is None else self.distort(frame.rgb)
        self.bag.write(self.image_topic, stamp, camera(rgb, "rgb8", header(stamp, CAMERA_FRAME)))
        self.bag.write(TOPIC_INFO, stamp, camera_info(self.intr, header(stamp, CAMERA_FRAME), 0.0, self.D))
        self.bag.write(TOPIC_DEPTH, stamp, self._image(depth, "32FC1", header(stamp, CAMERA_FRAME)))
        self.bag.write(TOPIC_ODOM, stamp, odometry(frame.pose_body, frame.twist, stamp))
        if self.stereo:
            h = header(stamp, CAMERA_RIGHT_FRAME)
            self.bag.write(TOPIC_IMAGE_RIGHT, stamp, self._image(frame.rgb_right, "rgb8", h))
            self.bag.write(TOPIC_INFO_RIGHT, stamp, camera_info(self.intr, h, self.baseline))
        if self.labels:
            self.bag.write(TOPIC_SEMANTIC, stamp, self._image(frame.semantic, "mono16", header(stamp, CAMERA_FRAME)))
            self.bag.write(TOPIC_INSTANCE, stamp, self._image(frame.instance, "mono16", header(stamp, CAMERA_FRAME)))

    def _image(self, arr: np.ndarray, encoding: str, hdr):
        from depth_node.io.image_codec import encode_image

        enc = encode_image(arr, encoding)
        return self.types["sensor_msgs/msg/Image"](
            header=hdr, height=enc.height, width=enc.width, encoding=enc.encoding, is_bigendian=enc.is_bigendian,
            step=enc.step, data=enc.data,
        )

    def _jpeg(self, rgb: np.ndarray, _encoding: str, hdr):
        from depth_node.io.image_codec import encode_compressed

        fmt, data = encode_compressed(rgb, "jpeg", quality=95)
        return self.types["sensor_msgs/msg/CompressedImage"](header=hdr, format=fmt,
                                                             data=np.frombuffer(data, np.uint8))

    def close(self, manifest: dict[str, Any]) -> None:
        self.bag.close()
        (self.path / "manifest.json").write_text(json.dumps({**manifest, "topics": self.bag.counts}, indent=2,
                                                            default=_json_default))

    def abort(self) -> None:
        self.bag.abort()


class Distorter:
    """Renders what a plumb_bob lens (D = k1, k2, p1, p2, k3) makes of the pinhole image: each distorted pixel
    takes the colour of the pinhole pixel it comes from (OpenCV's undistortPoints, P = K), bilinearly."""

    def __init__(self, intr: Intrinsics, D: np.ndarray) -> None:
        import cv2

        K = intr.K.astype(np.float64)
        u, v = np.meshgrid(np.arange(intr.width, dtype=np.float64), np.arange(intr.height, dtype=np.float64))
        pts = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
        src = cv2.undistortPoints(pts, K, D, P=K,
                                  criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-6))
        src = src.reshape(intr.height, intr.width, 2).astype(np.float32)
        self.mx, self.my = np.ascontiguousarray(src[..., 0]), np.ascontiguousarray(src[..., 1])

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.remap(np.ascontiguousarray(rgb), self.mx, self.my, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)


def camera_info(intr: Intrinsics, hdr, baseline: float = 0.0, D: np.ndarray | None = None):
    """sensor_msgs/CameraInfo of a rectified camera (or, with a non-zero plumb_bob `D`, of a raw one whose
    rectified grid is P = K); baseline > 0 makes it the right camera of the pair."""
    from depth_node.io.bags import typestore

    ts = typestore().types
    P = np.zeros(12)
    P[[0, 2, 5, 6, 10]] = [intr.fx, intr.cx, intr.fy, intr.cy, 1.0]
    P[3] = -intr.fx * baseline
    return ts["sensor_msgs/msg/CameraInfo"](
        header=hdr, height=intr.height, width=intr.width, distortion_model="plumb_bob",
        d=np.zeros(5) if D is None else np.asarray(D, np.float64),
        k=intr.K.reshape(-1).astype(np.float64), r=np.eye(3).reshape(-1), p=P, binning_x=0, binning_y=0,
        roi=ts["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def odometry(T_odom_base: np.ndarray, twist: np.ndarray, stamp_ns: int):
    from depth_node.io.bags import header, typestore

    ts = typestore().types
    q = quaternion_from_matrix(T_odom_base[:3, :3])
    t = T_odom_base[:3, 3]
    Vec, Pt = ts["geometry_msgs/msg/Vector3"], ts["geometry_msgs/msg/Point"]
    pose = ts["geometry_msgs/msg/Pose"](
        position=Pt(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        orientation=ts["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )
    tw = ts["geometry_msgs/msg/Twist"](
        linear=Vec(x=float(twist[0]), y=float(twist[1]), z=float(twist[2])),
        angular=Vec(x=float(twist[3]), y=float(twist[4]), z=float(twist[5])),
    )
    return ts["nav_msgs/msg/Odometry"](
        header=header(stamp_ns, ODOM_FRAME),
        child_frame_id=BASE_FRAME,
        pose=ts["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=ts["geometry_msgs/msg/TwistWithCovariance"](twist=tw, covariance=np.zeros(36)),
    )


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


@dataclass
class WriteResult:
    out: Path
    frames: int
    render_fps: float  # frames per second of rendering alone (stereo pairs count once)
    total_fps: float  # including encoding and writing
    manifest: dict[str, Any] = field(default_factory=dict)


_WORKER_DRIVE: Drive | None = None


def _worker_init(config) -> None:
    global _WORKER_DRIVE
    _WORKER_DRIVE = Drive(config)


def _worker_frame(k: int) -> tuple[Frame, float]:
    assert _WORKER_DRIVE is not None
    t0 = time.perf_counter()
    frame = _WORKER_DRIVE.frame(k)
    return frame, time.perf_counter() - t0


def _frames(drive: Drive, workers: int):
    """(frame, seconds spent rendering it) in order; with workers > 1, rendered by a process pool. Every worker
    rebuilds the drive from its config, which is deterministic, so the frames are the same either way."""
    if workers <= 1:
        for k in range(len(drive)):
            t0 = time.perf_counter()
            frame = drive.frame(k)
            yield frame, time.perf_counter() - t0
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(drive.config,)) as pool:
        yield from pool.map(_worker_frame, range(len(drive)), chunksize=1)


def default_workers() -> int:
    import os

    return max(1, min(2, os.cpu_count() or 1))


def write_drive(drive: Drive, out: str | Path, fmt: str = "kitti", *, depth_png: bool = False, labels: bool = True,
                overwrite: bool = False, drive_number: int | None = None, progress: bool = False,
                workers: int = 1, compressed: bool = False) -> WriteResult:
    """Render every frame of `drive` and write it as `fmt` ('kitti' or 'mcap'); returns timings and the manifest
    (also saved as manifest.json). `workers` > 1 renders frames in that many processes."""
    cfg = drive.config
    cam = cfg.camera
    start_ns = drive.stamp_ns(0)
    if fmt == "kitti":
        number = cfg.seed if drive_number is None else drive_number
        writer: Any = KittiWriter(out, drive.intrinsics, stereo=cam.stereo, baseline=cam.baseline,
                                  start_stamp_ns=start_ns, drive_number=number, depth_png=depth_png, labels=labels,
                                  overwrite=overwrite)
    elif fmt == "mcap":
        writer = BagDriveWriter(out, drive.intrinsics, stereo=cam.stereo, baseline=cam.baseline, labels=labels,
                                overwrite=overwrite, compressed=compressed, distortion=tuple(cam.distortion))
    else:
        raise DepthNodeError(f"unknown output format {fmt!r}; expected kitti or mcap")
    if any(cam.distortion) and (fmt != "mcap" or cam.stereo):
        raise DepthNodeError("camera.distortion is written to mono mcap bags only (D in camera_info): use --format "
                             "mcap without --stereo")
    if compressed and fmt != "mcap":
        raise DepthNodeError("compressed camera images are written to bags only: use --format mcap")
    render_cpu_s = 0.0  # summed per-frame render time: independent of the worker count
    write_s = 0.0
    t_start = time.perf_counter()
    frames = _frames(drive, workers)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=len(drive), desc=f"synth → {fmt}", unit="frame")
    try:
        for frame, seconds in frames:
            render_cpu_s += seconds
            t0 = time.perf_counter()
            writer.write(frame)
            write_s += time.perf_counter() - t0
    except BaseException:
        if fmt == "mcap":
            writer.abort()
        raise
    total_s = time.perf_counter() - t_start
    n = len(drive)
    # rendering throughput: with one worker, the time spent rendering; with several, the wall time not spent
    # writing (rendering overlaps writing then, so this is conservative)
    render_s = render_cpu_s if workers <= 1 else max(total_s - write_s, 1e-9)
    intr = drive.intrinsics
    manifest = {
        "generator": "depth_node.sim",
        "format": fmt,
        "seed": cfg.seed,
        "frames": n,
        "fps": cfg.trajectory.fps,
        "start_stamp_ns": start_ns,
        "render_fps": n / render_s if render_s > 0 else None,
        "render_fps_per_worker": n / render_cpu_s if render_cpu_s > 0 else None,
        "workers": workers,
        "total_fps": n / total_s if total_s > 0 else None,
        "render_seconds": render_s,
        "resolution": [intr.width, intr.height],
        "intrinsics": {"fx": intr.fx, "fy": intr.fy, "cx": intr.cx, "cy": intr.cy, "width": intr.width,
                       "height": intr.height},
        "stereo": cam.stereo,
        "baseline": cam.baseline,
        "depth": "z-depth along the optical axis, metres; inf (npy) / NaN (bag) = sky",
        "semantic_classes": class_names(),
        "moving_instances": list(drive.scene.traffic.moving_instances()) if drive.scene.traffic else [],
        "config": cfg.to_dict(),
    }
    writer.close(manifest)
    return WriteResult(Path(out), n, manifest["render_fps"] or 0.0, manifest["total_fps"] or 0.0, manifest)


def cached_drive(cfg: Any, out: Path, progress: bool = True) -> Path:
    """The drive of `cfg` as an MCAP bag in `out`, rendered unless `out` already holds that exact drive (its
    manifest records the whole configuration: the demo and the camera zoo re-run on the same drives)."""
    out = Path(out)
    manifest = out / "manifest.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text()).get("config")
        if old == json.loads(json.dumps(cfg.to_dict(), default=_json_default)):  # the writer's JSON round trip
            return out
    write_drive(Drive(cfg), out, "mcap", labels=False, overwrite=True, progress=progress,
                workers=min(default_workers(), cfg.frames))
    return out
