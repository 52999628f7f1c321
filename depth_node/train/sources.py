"""Where training frames come from: one `FrameSource` per continuous recording (drive, folder, bag, video).

A source gives frames in temporal order at their native size, with intrinsics of that size, and optionally a
rectified stereo partner (plus baseline), GT depth (validation) and segment ids (semantic·65536 + instance,
−1 = unknown; the segmentation-aware loss term). The dataset resizes and caches; sources only decode.
`open_sources(path)` picks the reader from what the path looks like. ROS and PyAV are imported lazily, only
by the sources that need them, so training on folders works without either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.geometry.camera import Intrinsics
from depth_node.io.depth_files import DepthFileError, read_depth_file
from depth_node.io.image_files import ImageFileError, image_files, load_rgb
from depth_node.train.errors import DataError
from depth_node.train.intrinsics_file import read_intrinsics_file

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".h264", ".hevc")
BAG_SUFFIXES = (".mcap", ".db3")
INTRINSICS_NAMES = ("intrinsics.yaml", "intrinsics.yml", "intrinsics.json", "intrinsics.txt", "camera_info.yaml",
                    "camera_info.yml", "K.txt")


@dataclass
class FrameData:
    rgb: np.ndarray  # (H, W, 3) uint8
    rgb_right: np.ndarray | None = None
    depth: np.ndarray | None = None  # (H, W) float32 metres, NaN/0/inf = none
    seg: np.ndarray | None = None  # (H, W) int32 segment ids, −1 unknown
    seg_right: np.ndarray | None = None


class FrameSource:
    """Base class. Random-access sources implement `read`; sequential ones (bags, videos) `iter_frames`."""

    name: str = ""
    intrinsics: Intrinsics
    baseline_m: float | None = None  # stereo baseline, when a partner exists
    random_access: bool = True

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def has_right(self) -> bool:
        return self.baseline_m is not None

    def read(self, i: int, right: bool = False) -> np.ndarray:
        raise NotImplementedError

    def read_depth(self, i: int) -> np.ndarray | None:
        return None

    def read_seg(self, i: int, right: bool = False) -> np.ndarray | None:
        return None

    @property
    def has_depth(self) -> bool:
        return False

    @property
    def has_seg(self) -> bool:
        return False

    def iter_frames(self, with_depth: bool = False) -> Iterator[FrameData]:
        for i in range(len(self)):
            yield FrameData(
                self.read(i),
                self.read(i, right=True) if self.has_right else None,
                self.read_depth(i) if with_depth else None,
                self.read_seg(i),
                self.read_seg(i, right=True) if self.has_right else None,
            )


def segment_ids(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """One id per (class, instance): stuff classes are one segment per class, objects one per instance."""
    return semantic.astype(np.int32) * 65536 + instance.astype(np.int32)


def load_image(path: Path) -> np.ndarray:
    try:
        return load_rgb(path)
    except ImageFileError as exc:
        raise DataError(str(exc)) from exc


def load_depth_file(path: Path) -> np.ndarray:
    """.npy (metres) or 16-bit PNG (metres × 256, KITTI), 0 = no GT (`io.depth_files.read_depth_file`)."""
    try:
        return read_depth_file(path)
    except DepthFileError as exc:
        raise DataError(str(exc)) from exc


def _images(folder: Path) -> list[Path]:
    return image_files(folder)


# ------------------------------------------------------------------------------------------ intrinsics files


def find_intrinsics_file(folder: Path, explicit: str | None) -> Path | None:
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise DataError(f"intrinsics file not found: {p}")
        return p
    for name in INTRINSICS_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


# ------------------------------------------------------------------------------------------------- KITTI


class KittiDriveSource(FrameSource):
    """One drive in the KITTI raw layout — real KITTI or written by `depth-node synth --format kitti` — read
    through depth_node.io.kitti_folder (the project's one reader of that layout). Stereo partner: image_03;
    GT depth: the synthetic .npy or KITTI's annotated PNGs; segment ids: the synthetic semantic/instance maps."""

    def __init__(self, drive: Path) -> None:
        from depth_node.io.kitti_folder import KittiDrive, KittiFolderError

        try:
            self.kd = KittiDrive(drive)
        except KittiFolderError as exc:
            raise DataError(str(exc)) from exc
        self.drive = self.kd.drive_dir
        self.name = self.drive.name
        self.ids = list(self.kd.frame_ids)
        self.intrinsics = self.kd.intrinsics
        w, h = _image_size(self.kd._path("image", self.ids[0]))
        if (w, h) != (self.intrinsics.width, self.intrinsics.height):
            self.intrinsics = self.intrinsics.scaled(w, h)
        right_dir = self.drive / "image_03" / "data"
        if right_dir.is_dir() and "P_rect_03" in self.kd.calib:
            names = {p.name for p in right_dir.iterdir()}
            if all(f"{i:010d}.png" in names for i in self.ids):
                self.baseline_m = self.kd.baseline
        self._seg = (self.drive / "semantic").is_dir() and (self.drive / "instance").is_dir()
        self._depth = self.kd.has_depth(self.ids[0]) or any(self.kd.has_depth(i) for i in self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, i: int, right: bool = False) -> np.ndarray:
        return self.kd.image(self.ids[i], 3 if right else None)

    @property
    def has_depth(self) -> bool:
        return self._depth

    def read_depth(self, i: int) -> np.ndarray | None:
        return self.kd.depth(self.ids[i]) if self.kd.has_depth(self.ids[i]) else None

    @property
    def has_seg(self) -> bool:
        return self._seg

    def read_seg(self, i: int, right: bool = False) -> np.ndarray | None:
        if right or not self._seg:
            return None
        sem, inst = self.kd.semantic(self.ids[i]), self.kd.instance(self.ids[i])
        return None if sem is None or inst is None else segment_ids(sem, inst)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only
            return im.size
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


def _check_one_size(paths: list[Path], size: tuple[int, int], first: Path | None = None) -> None:
    """Every frame of a folder at `size` (that of `first`, default paths[0]): one intrinsics for one camera at
    one size. Reads image headers only."""
    first = first or paths[0]
    for p in paths:
        s = _image_size(p)
        if s != size:
            raise DataError(
                f"{p} is {s[0]}×{s[1]} but {first} is {size[0]}×{size[1]}: one training folder must hold frames "
                "of one camera at one size (its intrinsics apply to all); put each camera or size in its own "
                "folder (with its own intrinsics file) or resize the images"
            )


def kitti_drives(path: Path) -> list[Path]:
    """Drive folders under a KITTI root, a day folder, or the drive folder itself."""
    if (path / "image_02").is_dir():
        return [path]
    drives = sorted(p for p in path.glob("*_sync") if (p / "image_02").is_dir())
    if not drives:
        drives = sorted(p for p in path.glob("*/*_sync") if (p / "image_02").is_dir())
    if not drives:  # a folder of synthetic drive roots (one `depth-node synth` output each)
        drives = sorted(p for p in path.glob("*/*/*_sync") if (p / "image_02").is_dir())
    return drives


# ----------------------------------------------------------------------------------------- synthetic drives


class SimDriveSource(FrameSource):
    """Frames rendered on demand from a `depth_node.sim.DriveConfig` (tests and quick experiments; training
    runs render to a folder cache first, see `depth_node.train.synth_data`)."""

    def __init__(self, config: Any, name: str | None = None) -> None:
        from depth_node.sim.drive import Drive

        self.drive = Drive(config)
        self.name = name or f"sim_seed{config.seed}"
        self.cache_ident = repr(sorted(config.to_dict().items()))  # cached renders of another config never match
        self.intrinsics = self.drive.intrinsics
        self.baseline_m = float(config.camera.baseline) if config.camera.stereo else None
        self._frames: dict[int, Any] = {}

    def frame(self, i: int) -> Any:
        f = self._frames.get(i)
        if f is None:
            f = self.drive.frame(i)
            self._frames = {i: f}
        return f

    def __len__(self) -> int:
        return len(self.drive)

    def read(self, i: int, right: bool = False) -> np.ndarray:
        f = self.frame(i)
        return f.rgb_right if right else f.rgb

    @property
    def has_depth(self) -> bool:
        return True

    def read_depth(self, i: int) -> np.ndarray | None:
        return self.frame(i).depth

    @property
    def has_seg(self) -> bool:
        return True

    def read_seg(self, i: int, right: bool = False) -> np.ndarray | None:
        if right:
            return None  # the renderer gives right-view RGB/depth only
        f = self.frame(i)
        return segment_ids(f.semantic, f.instance)


# --------------------------------------------------------------------------------------------- frame folder


class FolderSource(FrameSource):
    """A folder of frames in name order + an intrinsics file; `left/` + `right/` sub-folders make a stereo
    pair (baseline from the intrinsics file or `data.stereo_baseline_m`); `depth/<stem>.npy|png` is GT."""

    def __init__(self, folder: Path, intrinsics_file: str | None = None, baseline_m: float | None = None) -> None:
        self.folder = folder
        self.name = folder.name
        stereo = (folder / "left").is_dir() and (folder / "right").is_dir()
        img_dir = folder / "left" if stereo else (folder / "images" if (folder / "images").is_dir() else folder)
        self.left = _images(img_dir)
        if len(self.left) < 3:
            raise DataError(f"{img_dir}: need at least 3 frames, found {len(self.left)} images")
        w, h = _image_size(self.left[0])
        _check_one_size(self.left, (w, h))
        f = find_intrinsics_file(folder, intrinsics_file)
        if f is None:
            raise DataError(
                f"{folder}: no intrinsics; put intrinsics.yaml (fx, fy, cx, cy, width, height) in the folder or "
                "set data.intrinsics"
            )
        self.intrinsics, file_baseline = read_intrinsics_file(f, w, h)
        self.right = None
        if stereo:
            right = {p.name: p for p in _images(folder / "right")}
            missing = [p.name for p in self.left if p.name not in right]
            if missing:
                raise DataError(f"{folder}/right lacks {len(missing)} frames of left/ (e.g. {missing[0]})")
            self.right = [right[p.name] for p in self.left]
            _check_one_size(self.right, (w, h), self.left[0])
            self.baseline_m = baseline_m or file_baseline
            if self.baseline_m is None:
                raise DataError(f"{folder}: stereo folder without a baseline; add `baseline: <metres>` to the "
                                "intrinsics file or set data.stereo_baseline_m")
        depth_dir = folder / "depth"
        self.gt = {p.stem: p for p in depth_dir.iterdir() if p.suffix in (".npy", ".png")} if depth_dir.is_dir() else {}

    def __len__(self) -> int:
        return len(self.left)

    def read(self, i: int, right: bool = False) -> np.ndarray:
        return load_image((self.right if right else self.left)[i])  # type: ignore[index]

    @property
    def has_depth(self) -> bool:
        return bool(self.gt)

    def read_depth(self, i: int) -> np.ndarray | None:
        p = self.gt.get(self.left[i].stem)
        return load_depth_file(p) if p is not None else None


# ---------------------------------------------------------------------------------------------------- video


class VideoSource(FrameSource):
    """A video file decoded with PyAV; intrinsics from `data.intrinsics` or `<video>.yaml` beside it."""

    random_access = False

    def __init__(self, path: Path, intrinsics_file: str | None = None, every_nth: int = 1) -> None:
        try:
            import av
        except ImportError as exc:
            raise DataError(f"reading video {path} needs PyAV: pip install av") from exc
        self.path = path
        self.name = path.stem
        self.every_nth = every_nth

        try:
            with av.open(str(path)) as c:
                stream = c.streams.video[0]
                w, h = stream.codec_context.width, stream.codec_context.height
                n = stream.frames
        except Exception as exc:
            raise DataError(f"cannot open video {path}: {exc}") from exc
        side = None
        for cand in (path.with_suffix(".yaml"), path.with_suffix(".json"), path.parent / "intrinsics.yaml"):
            if cand.is_file():
                side = cand
                break
        f = Path(intrinsics_file) if intrinsics_file else side
        if f is None:
            raise DataError(f"{path}: videos need intrinsics: set data.intrinsics or put {path.stem}.yaml beside it")
        self.intrinsics, _ = read_intrinsics_file(f, w, h)
        self._n = n // every_nth if n else None

    def __len__(self) -> int:
        if self._n is None:
            self._n = sum(1 for _ in self.iter_frames())
        return self._n

    def iter_frames(self, with_depth: bool = False) -> Iterator[FrameData]:
        import av

        with av.open(str(self.path)) as c:
            for k, frame in enumerate(c.decode(video=0)):
                if k % self.every_nth == 0:
                    yield FrameData(frame.to_ndarray(format="rgb24"))


# ------------------------------------------------------------------------------------------------------ bag


class BagSource(FrameSource):
    """A rosbag2 bag (MCAP or SQLite): image (+ CameraInfo) topics, optionally a right camera for stereo.
    Intrinsics from the CameraInfo, or from `data.intrinsics` (a file, which wins when given: bags recorded
    without CameraInfo). Messages are decoded with depth_node.io.bags / image_codec (no ROS installation needed)."""

    random_access = False

    def __init__(self, path: Path, bag_cfg: Any, baseline_m: float | None = None, with_right: bool = True,
                 intrinsics_file: str | None = None) -> None:
        from depth_node.train import bag_frames

        self.path = path
        self.name = path.stem if path.is_file() else path.name
        self.cfg = bag_cfg
        f = find_intrinsics_file(path, intrinsics_file) if intrinsics_file else None
        self.plan = bag_frames.plan(path, bag_cfg, with_right, baseline_m, intrinsics_file=f)
        self.intrinsics = self.plan.intrinsics
        self.baseline_m = self.plan.baseline_m if self.plan.right_topic else None

    def __len__(self) -> int:
        return self.plan.count

    def iter_frames(self, with_depth: bool = False) -> Iterator[FrameData]:
        from depth_node.train import bag_frames

        for left, right in bag_frames.iterate(self.path, self.plan, self.cfg):
            yield FrameData(left, right)


# ------------------------------------------------------------------------------------------------- dispatch


def open_sources(
    spec: str, intrinsics_file: str | None = None, baseline_m: float | None = None, bag_cfg: Any = None,
    video_every_nth: int = 1, want_right: bool = True,
) -> list[FrameSource]:
    """Sources for one `--data` entry, chosen from what the path looks like."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"training data not found: {path}")
    if path.is_file():
        suf = path.suffix.lower()
        if suf in BAG_SUFFIXES:
            return [BagSource(path, bag_cfg, baseline_m, want_right, intrinsics_file)]
        if suf in VIDEO_SUFFIXES:
            return [VideoSource(path, intrinsics_file, video_every_nth)]
        raise DataError(f"{path}: unknown data file type {suf!r} (bags: .mcap/.db3; videos: "
                        f"{', '.join(VIDEO_SUFFIXES)}; folders of frames)")
    if (path / "metadata.yaml").is_file():
        return [BagSource(path, bag_cfg, baseline_m, want_right, intrinsics_file)]
    drives = kitti_drives(path)
    if drives:
        return [KittiDriveSource(d) for d in drives]
    subs = sorted(p for p in path.iterdir() if p.is_dir())
    if _images(path) or (path / "left").is_dir() or (path / "images").is_dir():
        return [FolderSource(path, intrinsics_file, baseline_m)]
    folders = [p for p in subs if _images(p) or (p / "left").is_dir()]
    if folders:
        return [FolderSource(p, intrinsics_file, baseline_m) for p in folders]
    raise DataError(
        f"{path}: no training data recognised (expected a KITTI raw drive/day folder, a synthetic drive folder, a "
        "folder of frames with intrinsics.yaml, a rosbag2 bag or a video file)"
    )
