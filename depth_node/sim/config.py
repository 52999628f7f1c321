"""Configuration of a synthetic drive: one dataclass tree, loadable from YAML and overridable from the CLI.

Every random choice of a drive derives from `DriveConfig.seed` plus these parameters, so a (seed, config) pair
names a drive exactly; held-out drives differ from training drives by seed and, if wanted, by any field here
(denser traffic, other light, other speeds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics

# KITTI raw 2011_09_26, P_rect_02, at its native 1242 × 375.
KITTI_INTRINSICS = Intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
KITTI_BASELINE_M = 0.54


@dataclass
class CameraConfig:
    width: int = 1242
    height: int = 375
    # Intrinsics at 1242 × 375; another width/height scales them (the image is the KITTI view resized).
    fx: float = KITTI_INTRINSICS.fx
    fy: float = KITTI_INTRINSICS.fy
    cx: float = KITTI_INTRINSICS.cx
    cy: float = KITTI_INTRINSICS.cy
    base_width: int = 1242
    base_height: int = 375
    stereo: bool = False
    baseline: float = KITTI_BASELINE_M
    height_m: float = 1.65  # optical centre above the road

    def intrinsics(self) -> Intrinsics:
        base = Intrinsics(self.fx, self.fy, self.cx, self.cy, self.base_width, self.base_height)
        if (self.width, self.height) == (self.base_width, self.base_height):
            return base
        return base.scaled(self.width, self.height)


@dataclass
class TrajectoryConfig:
    fps: float = 10.0
    cruise_speed: float = 10.0  # m/s: about 1 m per frame at 10 Hz, as in KITTI
    speed_variation: float = 0.35  # relative spread of the cruise speeds between phases
    stops_per_km: float = 2.0  # full stops (static frames)
    stop_duration: tuple[float, float] = (1.5, 4.0)  # seconds
    max_accel: float = 2.0  # m/s²
    curviness: float = 0.5  # 0 = straight road, 1 = mostly curves
    min_radius: float = 45.0  # m
    pitch_wobble_deg: float = 0.3  # body pitch/roll sway, so poses are not planar-exact
    lane_offset: float = -1.75  # ego lane centre, metres left of the road centreline (right-hand traffic)


@dataclass
class SceneConfig:
    building_density: float = 0.85  # fraction of the street front that has buildings
    building_height: tuple[float, float] = (6.0, 24.0)
    parked_cars_per_100m: float = 5.0  # per side
    boxes_per_100m: float = 2.0  # crates, bins and kiosks on the sidewalks, per side
    poles_per_100m: float = 3.0
    trees_per_100m: float = 4.0
    crosswalks_per_km: float = 4.0
    texture_variety: float = 1.0  # 0 = few plain palettes, 1 = full mix of brick/plaster/signage/colours
    road_half_width: float = 6.0  # kerb to centreline: a 3.5 m lane plus a 2.5 m parking strip per side
    sidewalk_width: float = 3.5
    kerb_height: float = 0.15


@dataclass
class TrafficConfig:
    oncoming_cars: int = 6  # cars in the opposite lane over the whole drive
    lead_cars: int = 1  # cars ahead in the ego lane that keep about the ego speed (what auto-masking is for)


@dataclass
class LightingConfig:
    sun_azimuth_deg: float = 35.0  # from the road's initial heading, counter-clockwise
    sun_elevation_deg: float = 40.0
    sun_intensity: float = 0.75
    ambient: float = 0.45
    sky_clouds: float = 0.5
    detail: float = 1.0  # strength of the pixel-scale texture layer on every surface
    haze_distance: float = 900.0  # m: exp(-distance / this) of a surface's colour survives the haze


@dataclass
class DriveConfig:
    seed: int = 0
    frames: int = 100
    start_stamp: float = 1.7e9  # seconds since the epoch of frame 0, so stamps look like real ones
    view_distance: float = 250.0  # objects beyond this are culled; ground beyond it is haze
    camera: CameraConfig = field(default_factory=CameraConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    lighting: LightingConfig = field(default_factory=LightingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DriveConfig:
        cfg = cls()
        for key, value in (data or {}).items():
            _assign(cfg, key, value, key)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> DriveConfig:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DepthNodeError(f"cannot read drive config {path}: {exc}") from exc
        if data is not None and not isinstance(data, dict):
            raise DepthNodeError(f"drive config {path} must be a mapping, got {type(data).__name__}")
        return cls.from_dict(data)

    def with_overrides(self, overrides: list[str]) -> DriveConfig:
        """Apply `section.field=value` strings (value parsed as YAML: `0.5`, `true`, `[1, 3]`)."""
        cfg = dataclasses.replace(self)
        cfg.camera, cfg.trajectory = dataclasses.replace(self.camera), dataclasses.replace(self.trajectory)
        cfg.scene, cfg.traffic = dataclasses.replace(self.scene), dataclasses.replace(self.traffic)
        cfg.lighting = dataclasses.replace(self.lighting)
        for item in overrides:
            if "=" not in item:
                raise DepthNodeError(f"override {item!r} must look like section.field=value")
            key, raw = item.split("=", 1)
            target: Any = cfg
            parts = key.strip().split(".")
            for part in parts[:-1]:
                if not dataclasses.is_dataclass(getattr(target, part, None)):
                    raise DepthNodeError(f"override {item!r}: {part!r} is not a config section")
                target = getattr(target, part)
            _assign(target, parts[-1], yaml.safe_load(raw), key)
        return cfg


def _assign(target: Any, name: str, value: Any, path: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    if name not in fields:
        raise DepthNodeError(f"unknown drive config field {path!r}; known here: {', '.join(sorted(fields))}")
    current = getattr(target, name)
    if dataclasses.is_dataclass(current):
        if not isinstance(value, dict):
            raise DepthNodeError(f"drive config {path!r} must be a mapping")
        for key, sub in value.items():
            _assign(current, key, sub, f"{path}.{key}")
        return
    try:
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise TypeError("expected true or false")
            coerced: Any = value
        elif isinstance(current, tuple):
            coerced = tuple(float(v) for v in value)
            if len(coerced) != len(current):
                raise TypeError(f"expected {len(current)} numbers")
        elif isinstance(current, int):
            coerced = int(value)
        elif isinstance(current, float):
            coerced = float(value)
        else:
            coerced = value
    except (TypeError, ValueError) as exc:
        raise DepthNodeError(f"drive config {path!r}: bad value {value!r} ({exc})") from exc
    setattr(target, name, coerced)
