"""Trajectory files: TUM (`t tx ty tz qx qy qz qw`), KITTI (3×4 row-major, 12 numbers) and EuRoC/ORB-SLAM3 CSV.

Poses are camera/body poses in the world (T_world_x) as 4×4 float64. TUM and EuRoC carry timestamps (seconds;
EuRoC's nanoseconds are converted) and are associated by time; KITTI has none, so KITTI trajectories are
compared index by index (a `times.txt` beside the poses can be given to make them timestamped).

Malformed input raises `DepthNodeError` naming the file and line: a trajectory that silently drops a line
evaluates to plausible but wrong numbers, which is worse than stopping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.geometry.poses import matrix_from_quaternion, quaternion_from_matrix

FORMATS = ("tum", "kitti", "euroc")
_SPLIT = re.compile(r"[,\s]+")
# KITTI GT is printed with 7 significant digits, so RᵀR deviates from I by ~1e-6; anything far off is not a pose.
_ORTHO_TOL = 1e-2


@dataclass
class Trajectory:
    """Poses (N, 4, 4) with optional timestamps (N,) in seconds; `stamps is None` means index-based."""

    poses: np.ndarray
    stamps: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.poses = np.asarray(self.poses, dtype=np.float64).reshape(-1, 4, 4)
        if self.stamps is not None:
            self.stamps = np.asarray(self.stamps, dtype=np.float64).reshape(-1)
            if self.stamps.shape[0] != self.poses.shape[0]:
                raise ValueError(f"{self.stamps.shape[0]} stamps for {self.poses.shape[0]} poses")

    def __len__(self) -> int:
        return int(self.poses.shape[0])

    @property
    def positions(self) -> np.ndarray:
        return self.poses[:, :3, 3]

    @property
    def timestamped(self) -> bool:
        return self.stamps is not None

    def path_length(self) -> float:
        """Arc length of the positions (metres, or the trajectory's units)."""
        if len(self) < 2:
            return 0.0
        return float(np.sum(np.linalg.norm(np.diff(self.positions, axis=0), axis=1)))

    def subset(self, idx) -> Trajectory:
        idx = np.asarray(idx, dtype=int)
        return Trajectory(self.poses[idx], None if self.stamps is None else self.stamps[idx], self.name)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, fields) for every non-blank, non-comment line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DepthNodeError(f"trajectory file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DepthNodeError(f"cannot read trajectory file {path}: {exc}") from exc
    out = []
    for no, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith(("#", "%", "//")):
            continue
        out.append((no, [f for f in _SPLIT.split(s) if f]))
    if not out:
        raise DepthNodeError(f"{path}: no poses (empty file or only comments)")
    return out


def _numbers(path: Path, no: int, fields: list[str], expected: int, fmt: str) -> np.ndarray:
    if len(fields) != expected:
        raise DepthNodeError(f"{path}:{no}: expected {expected} numbers per line ({fmt}), found {len(fields)}")
    try:
        vals = np.array([float(f) for f in fields], dtype=np.float64)
    except ValueError:
        bad = next(f for f in fields if not _is_float(f))
        raise DepthNodeError(f"{path}:{no}: not a number: {bad!r}") from None
    if not np.all(np.isfinite(vals)):
        raise DepthNodeError(f"{path}:{no}: non-finite value (nan/inf)")
    return vals


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _pose_from_xyz_quat(path: Path, no: int, xyz: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(q_xyzw))
    if n < 1e-6:
        raise DepthNodeError(f"{path}:{no}: zero quaternion")
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion(q_xyzw / n)
    T[:3, 3] = xyz
    return T


def _check_increasing(path: Path, stamps: np.ndarray, line_nos: list[int]) -> None:
    """Stamps must not go back (association assumes sorted stamps); repeats occur in real GT (TUM fr2/desk has
    one) and are allowed, as evo allows them."""
    bad = np.nonzero(np.diff(stamps) < 0)[0]
    if bad.size:
        i = int(bad[0]) + 1
        raise DepthNodeError(
            f"{path}:{line_nos[i]}: timestamp {float(stamps[i])!r} is before the previous one "
            f"({float(stamps[i - 1])!r}); timestamps must not decrease"
        )


def read_tum(path: str | Path) -> Trajectory:
    path = Path(path)
    rows = _lines(path)
    poses = np.empty((len(rows), 4, 4))
    stamps = np.empty(len(rows))
    for k, (no, fields) in enumerate(rows):
        v = _numbers(path, no, fields, 8, "TUM: t tx ty tz qx qy qz qw")
        stamps[k] = v[0]
        poses[k] = _pose_from_xyz_quat(path, no, v[1:4], v[4:8])
    _check_increasing(path, stamps, [no for no, _ in rows])
    return Trajectory(poses, stamps, path.stem)


def read_euroc(path: str | Path) -> Trajectory:
    """EuRoC ground truth / ORB-SLAM3 `*_GT.txt`: `t_ns, x, y, z, qw, qx, qy, qz[, extra columns]`."""
    path = Path(path)
    rows = _lines(path)
    poses = np.empty((len(rows), 4, 4))
    stamps = np.empty(len(rows))
    for k, (no, fields) in enumerate(rows):
        if len(fields) < 8:
            raise DepthNodeError(f"{path}:{no}: expected at least 8 numbers (EuRoC: t_ns x y z qw qx qy qz)")
        v = _numbers(path, no, fields[:8], 8, "EuRoC")
        stamps[k] = v[0] * 1e-9
        poses[k] = _pose_from_xyz_quat(path, no, v[1:4], np.array([v[5], v[6], v[7], v[4]]))
    _check_increasing(path, stamps, [no for no, _ in rows])
    return Trajectory(poses, stamps, path.stem)


def read_kitti(path: str | Path, times: str | Path | None = None) -> Trajectory:
    """KITTI odometry poses; `times` (one stamp per line, KITTI's times.txt) makes the trajectory timestamped."""
    path = Path(path)
    rows = _lines(path)
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    for k, (no, fields) in enumerate(rows):
        v = _numbers(path, no, fields, 12, "KITTI: 3×4 pose, row-major")
        R = v.reshape(3, 4)[:, :3]
        if np.abs(R.T @ R - np.eye(3)).max() > _ORTHO_TOL or np.linalg.det(R) <= 0:
            raise DepthNodeError(f"{path}:{no}: the 3×3 part is not a rotation matrix")
        poses[k, :3, :] = v.reshape(3, 4)
    stamps = None
    if times is not None:
        trows = _lines(Path(times))
        if len(trows) != len(rows):
            raise DepthNodeError(f"{times}: {len(trows)} timestamps for {len(rows)} poses in {path}")
        stamps = np.array([_numbers(Path(times), no, f, 1, "one timestamp")[0] for no, f in trows])
        _check_increasing(Path(times), stamps, [no for no, _ in trows])
    return Trajectory(poses, stamps, path.stem)


def detect_format(path: str | Path) -> str:
    """Guess from the first data line: 12 numbers → kitti, 8 space-separated → tum, commas / ns stamps → euroc."""
    path = Path(path)
    no, fields = _lines(path)[0]
    raw = Path(path).read_text(encoding="utf-8-sig").splitlines()[no - 1]
    if len(fields) == 12:
        return "kitti"
    if "," in raw and len(fields) >= 8:
        return "euroc"
    if len(fields) == 8:
        return "euroc" if _is_float(fields[0]) and float(fields[0]) > 1e15 else "tum"
    raise DepthNodeError(
        f"{path}:{no}: cannot tell the trajectory format from {len(fields)} fields; pass --format tum|kitti|euroc"
    )


def read_trajectory(path: str | Path, fmt: str = "auto", times: str | Path | None = None) -> Trajectory:
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "tum":
        return read_tum(path)
    if fmt == "kitti":
        return read_kitti(path, times)
    if fmt == "euroc":
        return read_euroc(path)
    raise DepthNodeError(f"unknown trajectory format {fmt!r}; choose one of auto, {', '.join(FORMATS)}")


def write_tum(path: str | Path, traj: Trajectory) -> Path:
    """Stamps with 9 decimals (ns), poses with 9 significant digits: round trips to ~1e-9."""
    if traj.stamps is None:
        raise DepthNodeError("TUM files need timestamps; this trajectory has none (write KITTI instead)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for t, T in zip(traj.stamps, traj.poses):
        q = quaternion_from_matrix(T[:3, :3])
        vals = " ".join(f"{x:.9g}" for x in (*T[:3, 3], *q))
        lines.append(f"{t:.9f} {vals}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_kitti(path: str | Path, traj: Trajectory) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(f"{x:.12e}" for x in T[:3, :].reshape(-1)) for T in traj.poses]  # 12 digits: exact GT
    path.write_text("\n".join(lines) + "\n")
    return path
