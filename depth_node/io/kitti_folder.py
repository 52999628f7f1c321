"""KITTI-raw folder layout: the one file format our synthetic drives and the real KITTI sample share.

Layout (KITTI raw, plus ground-truth folders of our own next to the images)::

    DIR/manifest.json                                   synthetic drives only (config, seed, fps, intrinsics)
    DIR/frames.txt                                      Monodepth2 split lines: "<date>/<drive> <frame> l"
    DIR/<date>/calib_cam_to_cam.txt                     KITTI format: S_/K_/D_/R_/T_/S_rect_/R_rect_/P_rect_0{0..3}
    DIR/<date>/<date>_drive_<NNNN>_sync/
        image_02/data/0000000000.png                    left colour (image_03: right, when stereo)
        image_02/timestamps.txt                         "YYYY-MM-DD HH:MM:SS.nnnnnnnnn", one line per frame
        gt_depth/image_02/0000000000.npy                float32 z-depth in metres, inf = sky   (synthetic)
        proj_depth/groundtruth/image_02/0000000000.png  uint16 metres·256, 0 = invalid (KITTI annotated depth)
        semantic/image_02/0000000000.png                uint16 class ids (depth_node.sim.labels)  (synthetic)
        instance/image_02/0000000000.png                uint16 instance ids, 0 = stuff            (synthetic)
        poses.txt                                       KITTI odometry: 12 numbers (3×4 camera-to-world of
                                                        image_02, world = its frame-0 pose) per frame
        oxts/data/0000000000.txt                        real KITTI only: GPS/IMU, turned into poses here

We keep KITTI's tree (date folder, calibration beside the drives) even for one synthetic drive so that
Monodepth2-style loaders and our trainer read real and synthetic drives through the same code: `--data DIR`
points at the root, and `KittiDrive(DIR)` finds the only drive inside (or takes a drive folder directly).
Depth returned by the reader is float32 metres with NaN where unknown and inf for sky.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.poses import invert_se3
from depth_node.io.depth_files import KITTI_DEPTH_SCALE, DepthFileError, read_depth_png
from depth_node.io.depth_files import read_calib_file as _read_calib_file
from depth_node.io.trajectories import Trajectory, read_kitti, write_kitti


class KittiFolderError(DepthNodeError):
    """A folder that is not (or not entirely) in the KITTI raw layout."""


def frame_name(frame_id: int) -> str:
    return f"{frame_id:010d}"


def format_timestamp(stamp_ns: int) -> str:
    """KITTI's timestamp line (UTC): '2011-09-26 13:02:25.964389445'."""
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return _dt.datetime.fromtimestamp(sec, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{nsec:09d}"


def parse_timestamp(line: str) -> int:
    day, _, frac = line.strip().partition(".")
    base = _dt.datetime.strptime(day, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_dt.UTC)
    return int(base.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)


def read_calib_file(path: Path) -> dict[str, np.ndarray]:
    """'KEY: numbers' lines → arrays (the parser of `depth_node.io.depth_files`, errors as KittiFolderError)."""
    try:
        return _read_calib_file(path)
    except DepthFileError as exc:
        raise KittiFolderError(str(exc)) from exc


def write_calib_cam_to_cam(path: Path, intr: Intrinsics, baseline: float) -> None:
    """A rectified rig as KITTI describes it: cameras 0/2 (left) at the origin, 1/3 (right) `baseline` to the
    right, identical K, identity rectification; P_rect_0x = K [I | t] with t = (-fx·B, 0, 0) on the right."""
    K = intr.K
    P_left = np.hstack([K, np.zeros((3, 1))])
    P_right = P_left.copy()
    P_right[0, 3] = -intr.fx * baseline

    def fmt(a) -> str:
        return " ".join(f"{v:.9e}" for v in np.asarray(a, dtype=np.float64).reshape(-1))

    lines = ["calib_time: synthetic", "corner_dist: 0.000000e+00"]
    for cam in range(4):
        right = cam in (1, 3)
        lines += [
            f"S_{cam:02d}: {fmt([intr.width, intr.height])}",
            f"K_{cam:02d}: {fmt(K)}",
            f"D_{cam:02d}: {fmt(np.zeros(5))}",
            f"R_{cam:02d}: {fmt(np.eye(3))}",
            f"T_{cam:02d}: {fmt([-baseline if right else 0.0, 0.0, 0.0])}",
            f"S_rect_{cam:02d}: {fmt([intr.width, intr.height])}",
            f"R_rect_{cam:02d}: {fmt(np.eye(3))}",
            f"P_rect_{cam:02d}: {fmt(P_right if right else P_left)}",
        ]
    Path(path).write_text("\n".join(lines) + "\n")


def write_poses(path: Path, poses: list[np.ndarray] | np.ndarray) -> None:
    """KITTI odometry poses.txt (`io.trajectories`, the one KITTI pose format of the package)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    write_kitti(path, Trajectory(poses, None, Path(path).stem))


def read_poses(path: Path) -> np.ndarray:
    """(N, 4, 4) poses of a KITTI odometry poses.txt, each checked to be a rigid transform."""
    try:
        return read_kitti(path).poses
    except DepthNodeError as exc:
        raise KittiFolderError(f"cannot read poses {path}: {exc}") from exc


def save_depth_png(path: Path, depth: np.ndarray) -> None:
    """KITTI annotated-depth convention: uint16 metres·256, 0 = invalid (sky, beyond 255.99 m)."""
    d = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0) * KITTI_DEPTH_SCALE
    Image.fromarray(np.clip(np.round(d), 0, 65535).astype(np.uint16)).save(path, compress_level=1)


def save_uint16_png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint16)).save(path, compress_level=1)


def load_uint16_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(np.uint16)


def _rot_xyz(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def oxts_to_imu_poses(oxts: np.ndarray) -> np.ndarray:
    """KITTI devkit convertOxtsToPose: (N, ≥6) lat, lon, alt, roll, pitch, yaw → (N, 4, 4) world-from-IMU,
    Mercator-projected with the first frame's latitude, normalised so frame 0 is the identity."""
    er = 6378137.0
    scale = np.cos(np.deg2rad(oxts[0, 0]))
    poses = []
    for lat, lon, alt, roll, pitch, yaw in oxts[:, :6]:
        T = np.eye(4)
        T[:3, :3] = _rot_xyz(roll, pitch, yaw)
        T[:3, 3] = [scale * lon * np.pi * er / 180.0, scale * er * np.log(np.tan((90.0 + lat) * np.pi / 360.0)), alt]
        poses.append(T)
    P = np.stack(poses)
    return invert_se3(P[0]) @ P


@dataclass(frozen=True)
class DriveFrame:
    """One frame as read back from disk (the fields a writer stores)."""

    frame_id: int
    stamp_ns: int | None
    rgb: np.ndarray
    depth: np.ndarray | None
    semantic: np.ndarray | None
    instance: np.ndarray | None
    pose: np.ndarray | None
    intrinsics: Intrinsics
    rgb_right: np.ndarray | None = None


class KittiDrive:
    """A drive in the KITTI raw layout, synthetic or real. `path` is the drive folder (`*_sync`), or a root
    holding exactly one drive (`DIR` of `depth-node synth --format kitti`)."""

    def __init__(self, path: str | Path, camera: int = 2) -> None:
        self.drive_dir = _find_drive_dir(Path(path))
        self.date_dir = self.drive_dir.parent
        self.camera = int(camera)
        calib_path = self.date_dir / "calib_cam_to_cam.txt"
        if not calib_path.exists():
            raise KittiFolderError(f"no calib_cam_to_cam.txt in {self.date_dir} (KITTI keeps it beside the drives)")
        self.calib = read_calib_file(calib_path)
        self.intrinsics = self.intrinsics_of(self.camera)
        image_dir = self.drive_dir / f"image_{self.camera:02d}" / "data"
        self.frame_ids = sorted(int(p.stem) for p in image_dir.glob("*.png")) if image_dir.is_dir() else []
        if not self.frame_ids:
            raise KittiFolderError(f"no images in {image_dir}")
        self._stamps = self._read_stamps()
        self._poses: np.ndarray | None = None
        manifest = self.drive_dir.parent.parent / "manifest.json"
        self.manifest = json.loads(manifest.read_text()) if manifest.exists() else None

    # ------------------------------------------------------------------------------------- calibration
    def projection(self, camera: int) -> np.ndarray:
        key = f"P_rect_{camera:02d}"
        if key not in self.calib:
            raise KittiFolderError(f"{key} missing from calib_cam_to_cam.txt in {self.date_dir}")
        return self.calib[key].reshape(3, 4)

    def intrinsics_of(self, camera: int) -> Intrinsics:
        P = self.projection(camera)
        size = self.calib.get(f"S_rect_{camera:02d}")
        if size is None or len(size) != 2:
            raise KittiFolderError(f"S_rect_{camera:02d} missing from calib_cam_to_cam.txt in {self.date_dir}")
        return Intrinsics(float(P[0, 0]), float(P[1, 1]), float(P[0, 2]), float(P[1, 2]), int(size[0]), int(size[1]))

    @property
    def baseline(self) -> float:
        """Distance between the rectified colour cameras 2 and 3 (0.54 m on KITTI), from their P_rect."""
        P2, P3 = self.projection(2), self.projection(3)
        return float((P2[0, 3] - P3[0, 3]) / P2[0, 0])

    # ----------------------------------------------------------------------------------------- frames
    def __len__(self) -> int:
        return len(self.frame_ids)

    def _path(self, kind: str, frame_id: int, camera: int | None = None, ext: str = "png") -> Path:
        cam = f"image_{self.camera if camera is None else camera:02d}"
        if kind == "image":
            return self.drive_dir / cam / "data" / f"{frame_name(frame_id)}.{ext}"
        if kind == "depth_png":
            return self.drive_dir / "proj_depth" / "groundtruth" / cam / f"{frame_name(frame_id)}.png"
        return self.drive_dir / kind / cam / f"{frame_name(frame_id)}.{ext}"

    def image(self, frame_id: int, camera: int | None = None) -> np.ndarray:
        path = self._path("image", frame_id, camera)
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise KittiFolderError(f"cannot read image {path}: {exc}") from exc

    def has_depth(self, frame_id: int, camera: int | None = None) -> bool:
        npy = self._path("gt_depth", frame_id, camera, "npy")
        return npy.exists() or self._path("depth_png", frame_id, camera).exists()

    def depth(self, frame_id: int, camera: int | None = None) -> np.ndarray:
        """float32 metres: the exact .npy if there is one, else the KITTI uint16 PNG (0 → NaN)."""
        npy = self._path("gt_depth", frame_id, camera, "npy")
        if npy.exists():
            return np.load(npy).astype(np.float32, copy=False)
        png = self._path("depth_png", frame_id, camera)
        if png.exists():
            d = read_depth_png(png, KITTI_DEPTH_SCALE)
            d[d == 0] = np.nan
            return d
        raise KittiFolderError(f"no ground-truth depth for frame {frame_id} in {self.drive_dir}")

    def semantic(self, frame_id: int) -> np.ndarray | None:
        path = self._path("semantic", frame_id)
        return load_uint16_png(path) if path.exists() else None

    def instance(self, frame_id: int) -> np.ndarray | None:
        path = self._path("instance", frame_id)
        return load_uint16_png(path) if path.exists() else None

    def _read_stamps(self) -> dict[int, int]:
        path = self.drive_dir / f"image_{self.camera:02d}" / "timestamps.txt"
        if not path.exists():
            return {}
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        try:
            return {i: parse_timestamp(ln) for i, ln in enumerate(lines)}
        except ValueError as exc:
            raise KittiFolderError(f"bad timestamp line in {path}: {exc}") from exc

    def stamp_ns(self, frame_id: int) -> int | None:
        return self._stamps.get(frame_id)

    # ------------------------------------------------------------------------------------------ poses
    def poses(self) -> np.ndarray:
        """(len, 4, 4) camera-to-world of this camera per frame in `frame_ids`, world = the first frame's camera:
        poses.txt where present (synthetic), else from OXTS through the calibration chain (real KITTI)."""
        if self._poses is None:
            self._poses = self._load_poses()
        return self._poses

    def pose(self, frame_id: int) -> np.ndarray:
        return self.poses()[self.frame_ids.index(frame_id)]

    def _load_poses(self) -> np.ndarray:
        path = self.drive_dir / "poses.txt"
        if path.exists():
            P = read_poses(path)
            if len(P) < max(self.frame_ids) + 1:
                raise KittiFolderError(f"{path} has {len(P)} poses, fewer than the frames in {self.drive_dir}")
            P = P[self.frame_ids]
            if self.camera == 3:
                P = P @ _right_offset(self.baseline)
            return invert_se3(P[0]) @ P
        return self._oxts_poses()

    def _oxts_poses(self) -> np.ndarray:
        oxts_dir = self.drive_dir / "oxts" / "data"
        rows = []
        for fid in self.frame_ids:
            path = oxts_dir / f"{frame_name(fid)}.txt"
            try:
                rows.append(np.array([float(v) for v in path.read_text().split()]))
            except (OSError, ValueError) as exc:
                raise KittiFolderError(f"no poses.txt in {self.drive_dir} and cannot read {path}: {exc}") from exc
        imu = oxts_to_imu_poses(np.stack(rows))
        X = self.cam_from_imu()
        return X @ imu @ invert_se3(X)

    def cam_from_imu(self) -> np.ndarray:
        """T_cam←imu for this camera (rectified): P_rect translation · R_rect_00 · T_cam0←velo · T_velo←imu."""
        velo = read_calib_file(self.date_dir / "calib_velo_to_cam.txt")
        imu = read_calib_file(self.date_dir / "calib_imu_to_velo.txt")

        def rt(c: dict[str, np.ndarray]) -> np.ndarray:
            T = np.eye(4)
            T[:3, :3] = c["R"].reshape(3, 3)
            T[:3, 3] = c["T"]
            return T

        R_rect = np.eye(4)
        R_rect[:3, :3] = self.calib["R_rect_00"].reshape(3, 3)
        P = self.projection(self.camera)
        T_cam = np.eye(4)
        T_cam[:3, 3] = np.linalg.solve(P[:, :3], P[:, 3])
        return T_cam @ R_rect @ rt(velo) @ rt(imu)

    # ------------------------------------------------------------------------------------------ frames
    def load(self, frame_id: int) -> DriveFrame:
        right = None
        if (self.drive_dir / "image_03" / "data" / f"{frame_name(frame_id)}.png").exists() and self.camera == 2:
            right = self.image(frame_id, 3)
        return DriveFrame(
            frame_id=frame_id,
            stamp_ns=self.stamp_ns(frame_id),
            rgb=self.image(frame_id),
            depth=self.depth(frame_id) if self.has_depth(frame_id) else None,
            semantic=self.semantic(frame_id),
            instance=self.instance(frame_id),
            pose=self.pose(frame_id) if self._has_poses() else None,
            intrinsics=self.intrinsics,
            rgb_right=right,
        )

    def _has_poses(self) -> bool:
        return (self.drive_dir / "poses.txt").exists() or (self.drive_dir / "oxts" / "data").is_dir()


def _right_offset(baseline: float) -> np.ndarray:
    T = np.eye(4)
    T[0, 3] = baseline
    return T


def _find_drive_dir(path: Path) -> Path:
    if not path.exists():
        raise KittiFolderError(f"{path} does not exist")
    if path.is_dir() and path.name.endswith("_sync"):
        return path
    manifest = path / "manifest.json"
    if manifest.exists():
        try:
            rel = json.loads(manifest.read_text()).get("drive_dir")
        except (OSError, ValueError) as exc:
            raise KittiFolderError(f"unreadable {manifest}: {exc}") from exc
        if rel and (path / rel).is_dir():
            return path / rel
    found = sorted(p for p in path.glob("*/*_sync") if p.is_dir())
    if len(found) == 1:
        return found[0]
    if not found:
        raise KittiFolderError(f"no KITTI drive (<date>/<date>_drive_NNNN_sync) under {path}")
    raise KittiFolderError(f"{len(found)} drives under {path}; pass one drive folder: {', '.join(map(str, found[:4]))}")
