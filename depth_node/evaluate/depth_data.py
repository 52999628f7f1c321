"""Frames with ground-truth depth, for scoring a model: a KITTI-raw folder (synthetic drives and real KITTI share
its reader, `depth_node.io.kitti_folder`), or a folder of images beside a folder of GT depth files with the same
stems. GT depth: .npy in metres, or KITTI's uint16 PNG (metres × 256, 0 = no GT)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics
from depth_node.io.depth_files import read_depth_file
from depth_node.io.image_files import image_files, load_rgb


@dataclass
class EvalFrame:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    gt: np.ndarray  # (H, W) float32 metres; 0 / NaN / inf = no usable GT
    intrinsics: Intrinsics | None  # of the image, when known


def kitti_calibration(root: Path, width: int, height: int) -> Intrinsics | None:
    """Intrinsics from a KITTI calibration file in or up to three levels above `root` (P_rect_02 of
    calib_cam_to_cam.txt, or P2 of odometry's calib.txt), for images of the given size."""
    from depth_node.io.kitti_folder import read_calib_file

    for base in (root, *root.parents[:3]):
        for fname, key in (("calib_cam_to_cam.txt", "P_rect_02"), ("calib.txt", "P2")):
            f = base / fname
            if f.is_file():
                P = read_calib_file(f).get(key)
                if P is not None and P.size == 12:
                    P = P.reshape(3, 4)
                    return Intrinsics(P[0, 0], P[1, 1], P[0, 2], P[1, 2], width, height)
    return None


def list_pairs(images: Path, gt_dir: Path) -> list[tuple[Path, Path]]:
    """(image, GT) pairs matched by file stem; images without GT are left out (KITTI GT is not for every frame)."""
    if not images.is_dir():
        raise DepthNodeError(f"no such image folder: {images}")
    if not gt_dir.is_dir():
        raise DepthNodeError(f"no such GT depth folder: {gt_dir}")
    gts = {p.stem: p for p in sorted(gt_dir.iterdir()) if p.suffix in (".npy", ".png")}
    pairs = [(p, gts[p.stem]) for p in image_files(images) if p.stem in gts]
    if not pairs:
        raise DepthNodeError(f"no image in {images} has a GT depth file with the same name in {gt_dir}")
    return pairs


@dataclass(frozen=True)
class GroundTruthSource:
    """Where the frames come from: `data` (a KITTI-raw folder), or `images` with `gt_depth`. `fx` gives the
    images' focal length [px] when the data carries no calibration; `limit` > 0 keeps the first frames only."""

    data: Path | None = None
    images: Path | None = None
    gt_depth: Path | None = None
    fx: float | None = None
    limit: int = 0

    def open(self) -> tuple[int, Iterator[EvalFrame], str]:
        """(number of frames, frame iterator, description of the source); frames without GT are left out."""
        if self.data is not None and (self.images is not None or self.gt_depth is not None):
            raise DepthNodeError("give either --data or --images with --gt-depth, not both")
        if self.data is None and (self.images is None or self.gt_depth is None):
            raise DepthNodeError("give --data DIR, or both --images DIR and --gt-depth DIR")
        if self.data is not None:
            return self._open_drive(self.data)
        return self._open_folders(self.images, self.gt_depth)

    @property
    def _limit(self) -> int | None:
        return self.limit if self.limit and self.limit > 0 else None

    def _open_drive(self, data: Path) -> tuple[int, Iterator[EvalFrame], str]:
        from depth_node.io.kitti_folder import KittiDrive

        drive = KittiDrive(data)
        ids = [f for f in drive.frame_ids if drive.has_depth(f)][: self._limit]
        if not ids:
            raise DepthNodeError(f"{drive.drive_dir}: no frame has GT depth (gt_depth/ or proj_depth/groundtruth/)")

        def frames() -> Iterator[EvalFrame]:
            for f in ids:
                rgb = drive.image(f)
                h, w = rgb.shape[:2]
                intr = drive.intrinsics
                if (intr.width, intr.height) != (w, h):
                    intr = intr.scaled(w, h)
                yield EvalFrame(f"{f:010d}", np.array(rgb), drive.depth(f), intr)  # writable: torch wants it

        return len(ids), frames(), str(drive.drive_dir)

    def _open_folders(self, images: Path, gt_depth: Path) -> tuple[int, Iterator[EvalFrame], str]:
        pairs = list_pairs(images, gt_depth)[: self._limit]

        def frames() -> Iterator[EvalFrame]:
            for img, gtp in pairs:
                rgb = load_rgb(img)
                h, w = rgb.shape[:2]
                if self.fx:
                    intr = Intrinsics(self.fx, self.fx, w / 2, h / 2, w, h)
                else:
                    intr = kitti_calibration(images, w, h)
                yield EvalFrame(img.stem, np.array(rgb), read_depth_file(gtp), intr)

        return len(pairs), frames(), f"{images} + {gt_depth}"
