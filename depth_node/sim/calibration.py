"""Representative frames for int8 calibration and drift checks: rendered drives of several scene types (dense
city, open suburb, busy street with traffic, low sun, winding road, a higher or lower camera), so the calibrated
activation ranges cover what a car camera sees rather than one street.

Calibration and held-out sets never share a drive: `held_out=True` renders other seeds (and the same scene
types), so drift measured on them is what unseen frames get. The export layer sits below sim: callers above
both (commands, bench) render the frames here and pass them down."""

from __future__ import annotations

import dataclasses

import numpy as np

from depth_node.sim.config import DriveConfig

DEFAULT_FRAMES = 24  # 4 per scene type: a per-tensor range settles by ~16-24 frames on this network
STRIDE = 12  # frames between samples of one drive (consecutive frames are near copies)

SCENES: dict[str, dict[str, dict]] = {  # scene type → config section → overrides
    "city": {"scene": {"building_density": 0.95, "building_height": (10.0, 30.0)}},
    "suburb": {"scene": {"building_density": 0.3, "building_height": (4.0, 9.0), "trees_per_100m": 10.0}},
    "busy": {"scene": {"parked_cars_per_100m": 12.0, "boxes_per_100m": 6.0}, "traffic": {"oncoming_cars": 20,
                                                                                         "lead_cars": 2}},
    "low_sun": {"lighting": {"sun_elevation_deg": 8.0, "sun_intensity": 0.55, "ambient": 0.3, "sky_clouds": 0.8}},
    "winding": {"trajectory": {"curviness": 1.0, "min_radius": 30.0}, "lighting": {"sun_azimuth_deg": 160.0}},
    "high_camera": {"camera": {"height_m": 2.2}, "scene": {"texture_variety": 0.4}},
}


def scene_config(kind: str, seed: int, frames: int, width: int, height: int) -> DriveConfig:
    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera = dataclasses.replace(cfg.camera, width=width, height=height)
    for section, values in SCENES[kind].items():
        setattr(cfg, section, dataclasses.replace(getattr(cfg, section), **values))
    return cfg


def scene_frames(n: int = DEFAULT_FRAMES, height: int = 375, width: int = 1242, held_out: bool = False,
                 seed: int = 0) -> list[np.ndarray]:
    """n HxWx3 uint8 RGB frames, round-robin over the scene types, each type its own drive."""
    from depth_node.sim.drive import Drive

    kinds = list(SCENES)
    per_kind = -(-n // len(kinds))
    base = 500 + seed * 97 + (1000 if held_out else 0)
    groups: list[list[np.ndarray]] = []
    for i, kind in enumerate(kinds[:n]):
        drive = Drive(scene_config(kind, base + i, per_kind * STRIDE + 1, width, height))
        groups.append([np.ascontiguousarray(drive.frame(STRIDE // 2 + k * STRIDE).rgb) for k in range(per_kind)])
    return [g[k] for k in range(per_kind) for g in groups][:n]  # round-robin over the scene types


def drive_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """n frames spread over one default drive (seed 101 + seed, every 15th frame): near cars, open road and
    building fronts of one street. What tests and benchmarks used as sample frames before the scene types."""
    from depth_node.sim.config import CameraConfig
    from depth_node.sim.drive import Drive

    stride = 15
    drive = Drive(DriveConfig(seed=101 + seed, frames=n * stride, camera=CameraConfig(width=width, height=height)))
    return [np.ascontiguousarray(drive.frame(k * stride).rgb) for k in range(n)]
