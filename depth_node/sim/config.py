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

import numpy as np
import yaml

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics

# KITTI raw 2011_09_26, P_rect_02, at its native 1242 × 375.
KITTI_INTRINSICS = Intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
KITTI_BASELINE_M = 0.54


ASPECTS = {"10:3": (10, 3), "16:9": (16, 9), "4:3": (4, 3), "1:1": (1, 1), "3:2": (3, 2)}
# KITTI's colour camera: horizontal field of view of P_rect_02 over its 1242 px (about 81.4°)
KITTI_HFOV_DEG = float(np.degrees(2.0 * np.arctan(KITTI_INTRINSICS.width / 2.0 / KITTI_INTRINSICS.fx)))


@dataclass
class CameraConfig:
    """The camera and its mounting. Two ways to give the lens: KITTI's K scaled to width × height (the default),
    or a pinhole by field of view (`hfov_deg` > 0 or an `aspect`): square pixels, fx = fy = W / (2 tan(hfov/2)),
    principal point at the image centre plus `cx_offset`·W, `cy_offset`·H. `aspect` ("16:9", "4:3", "1:1",
    "10:3", "3:2") sets the height from the width. Mounting: `height_m` above the ground the camera moves on,
    `pitch_deg` (> 0 looks down) and `roll_deg` (> 0 turns the image clockwise as seen by the camera)."""

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
    height_m: float = 1.65  # optical centre above the road (sidewalk scenes: above the sidewalk)
    hfov_deg: float = 0.0  # > 0: pinhole by field of view (see above)
    aspect: str = ""  # "" = width × height as given
    cx_offset: float = 0.0  # principal point offset, fraction of the width (pinhole mode)
    cy_offset: float = 0.0  # fraction of the height (pinhole mode)
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    # plumb_bob (k1, k2, p1, p2, k3); non-zero: bags carry the image as this lens distorts it and D in
    # camera_info; ground-truth depth stays on the undistorted (rectified, P = K) grid, as image_rect would be
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def size(self) -> tuple[int, int]:
        if not self.aspect:
            return int(self.width), int(self.height)
        if self.aspect not in ASPECTS:
            raise DepthNodeError(f"camera.aspect {self.aspect!r} is not one of {', '.join(ASPECTS)}")
        a, b = ASPECTS[self.aspect]
        return int(self.width), max(8, round(self.width * b / a))

    @property
    def pinhole(self) -> bool:
        return self.hfov_deg > 0 or bool(self.aspect)

    def intrinsics(self) -> Intrinsics:
        w, h = self.size()
        if self.pinhole:
            hfov = self.hfov_deg if self.hfov_deg > 0 else KITTI_HFOV_DEG
            if not 1.0 < hfov < 179.0:
                raise DepthNodeError(f"camera.hfov_deg must lie in (1, 179) for a pinhole, got {hfov}")
            f = w / (2.0 * np.tan(np.radians(hfov) / 2.0))
            return Intrinsics(f, f, (w - 1) / 2.0 + self.cx_offset * w, (h - 1) / 2.0 + self.cy_offset * h, w, h)
        base = Intrinsics(self.fx, self.fy, self.cx, self.cy, self.base_width, self.base_height)
        if (w, h) == (self.base_width, self.base_height):
            return base
        return base.scaled(w, h)


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


SCENE_KINDS = ("street", "sidewalk", "indoor")


@dataclass
class SceneConfig:
    # street: the camera drives in a lane; sidewalk: it rolls along the right-hand sidewalk of the same street
    # (small robots); indoor: corridors, warehouse aisles, offices (section `indoor`). Setting the kind applies
    # its preset (KIND_PRESETS) first; the other --set keys then override it.
    kind: str = "street"
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
    sidewalk_path: float = 1.7  # sidewalk kind: the camera's path, metres beyond the kerb line


INDOOR_LAYOUTS = ("corridor", "warehouse", "office", "mixed")


@dataclass
class IndoorConfig:
    layout: str = "mixed"  # corridor | warehouse | office | mixed (one of the three, by seed)
    people_per_10m: float = 1.0  # standing people-sized obstacles beside the path
    clutter: float = 1.0  # 0 = bare rooms, 1 = full furnishing (boxes, cabinets, desks, cartons)
    ahead_m: tuple[float, float] = (6.0, 25.0)  # room left in front of the last frame, before the end wall


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
    shadows: bool = False  # objects cast sun shadows on the ground (street and sidewalk scenes)


@dataclass
class PhotoConfig:
    """Camera effects on the RGB only (`depth_node.sim.photometric`); ground truth is untouched. All off by
    default."""

    exposure_stops: float = 0.0  # per-drive exposure offset drawn from ±this many stops
    exposure_drift: float = 0.0  # slow auto-exposure wander, amplitude in stops (period 5-20 s)
    white_balance: float = 0.0  # per-drive channel gains drawn from 1 ± this (luminance kept)
    vignetting: float = 0.0  # brightness lost at the image corners (0.3 = 30 %, falling off as r²)
    noise: float = 0.0  # shot noise: sigma² = noise² · I + read_noise² (I in 0..1)
    read_noise: float = 0.0
    jpeg_quality: tuple[float, float] = (0.0, 0.0)  # JPEG round trip at a quality drawn from this range; 0 = off
    shutter_s: float = 0.0  # motion blur: the picture averages renders over this exposure time (GT: its middle)
    blur_samples: int = 5  # renders per blurred picture (cost × this)


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
    indoor: IndoorConfig = field(default_factory=IndoorConfig)
    photo: PhotoConfig = field(default_factory=PhotoConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DriveConfig:
        cfg = cls()
        scene = (data or {}).get("scene")
        if isinstance(scene, dict) and "kind" in scene:  # the kind's preset first, the file's values over it
            cfg = cfg.with_kind(str(scene["kind"]))
        for key, value in (data or {}).items():
            _assign(cfg, key, value, key)
        return cfg

    def with_kind(self, kind: str) -> DriveConfig:
        """This config with the scene kind's preset applied (camera height, speeds, light, traffic)."""
        if kind not in SCENE_KINDS:
            raise DepthNodeError(f"scene.kind {kind!r} is not one of {', '.join(SCENE_KINDS)}")
        cfg = self._copy()
        for key, value in KIND_PRESETS.get(kind, {}).items():
            target: Any = cfg
            parts = key.split(".")
            for part in parts[:-1]:
                target = getattr(target, part)
            _assign(target, parts[-1], value, key)
        cfg.scene.kind = kind
        return cfg

    def _copy(self) -> DriveConfig:
        cfg = dataclasses.replace(self)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                setattr(cfg, f.name, dataclasses.replace(value))
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
        cfg = self._copy()
        kinds = [item.split("=", 1)[1].strip() for item in overrides if item.split("=", 1)[0].strip() == "scene.kind"]
        if kinds:  # the preset first, whatever the order on the command line
            cfg = cfg.with_kind(kinds[-1])
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
            # text fields take the text as typed (YAML would read "16:9" as a base-60 number)
            text = isinstance(getattr(target, parts[-1], None), str)
            _assign(target, parts[-1], raw.strip() if text else yaml.safe_load(raw), key)
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
        elif isinstance(current, str):
            if not isinstance(value, str):
                raise TypeError('expected text (quote values such as "16:9" in YAML)')
            coerced = value
        else:
            coerced = value
    except (TypeError, ValueError) as exc:
        raise DepthNodeError(f"drive config {path!r}: bad value {value!r} ({exc})") from exc
    setattr(target, name, coerced)


# What a scene kind changes besides itself (applied before any other override).
KIND_PRESETS: dict[str, dict[str, Any]] = {
    "street": {},
    "sidewalk": {
        "camera.height_m": 0.4,
        "scene.sidewalk_width": 5.0,
        "scene.building_height": (4.0, 16.0),
        "scene.trees_per_100m": 6.0,
        "scene.boxes_per_100m": 3.0,
        "trajectory.cruise_speed": 1.4,
        "trajectory.speed_variation": 0.3,
        "trajectory.stops_per_km": 15.0,
        "trajectory.stop_duration": (1.0, 3.0),
        "trajectory.max_accel": 0.8,
        "trajectory.pitch_wobble_deg": 0.8,
        "traffic.lead_cars": 0,  # a lead car would creep along the road at walking pace
        "traffic.oncoming_cars": 4,
        "lighting.shadows": True,
        "view_distance": 150.0,
    },
    "indoor": {
        "camera.height_m": 0.5,
        "trajectory.cruise_speed": 1.0,
        "trajectory.speed_variation": 0.3,
        "trajectory.stops_per_km": 20.0,
        "trajectory.stop_duration": (1.0, 3.0),
        "trajectory.max_accel": 0.6,
        "trajectory.curviness": 0.0,
        "trajectory.pitch_wobble_deg": 0.3,
        "traffic.oncoming_cars": 0,
        "traffic.lead_cars": 0,
        "lighting.sun_elevation_deg": 65.0,
        "lighting.sun_intensity": 0.35,
        "lighting.ambient": 0.6,
        "lighting.haze_distance": 1.0e5,
        "view_distance": 60.0,
    },
}
