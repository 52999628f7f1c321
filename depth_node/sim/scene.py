"""Scene content: analytic primitives (yawed boxes, vertical cylinders, spheres) in flat arrays, the procedural
street built from them, and the traffic that moves through it.

World frame: x, y on the ground, z up, ground (road) at z = 0. Objects are stored as structure-of-arrays so
that culling and shading are vectorised over objects and pixels alike; the renderer only loops over the few
objects that survive culling. Everything is drawn from one `numpy.random.Generator`, so (seed, config)
determines the scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from depth_node.sim.config import DriveConfig, LightingConfig, SceneConfig
from depth_node.sim.labels import SemanticClass
from depth_node.sim.road import Road


class Kind(IntEnum):
    BOX = 0
    CYLINDER = 1  # vertical axis; half = (r, r, half height)
    SPHERE = 2  # half = (r, r, r)


class Material(IntEnum):
    FACADE = 0
    CAR_BODY = 1
    CAR_CABIN = 2
    TYRE = 3
    METAL = 4
    BARK = 5
    FOLIAGE = 6
    SIGN = 7
    CRATE = 8
    PLAIN = 9  # base colour with mild noise: test scenes and anything unremarkable


@dataclass
class Primitives:
    kind: np.ndarray  # (N,) int8
    center: np.ndarray  # (N, 3) float64
    half: np.ndarray  # (N, 3) float64
    yaw: np.ndarray  # (N,) float64
    material: np.ndarray  # (N,) int16
    semantic: np.ndarray  # (N,) uint16
    instance: np.ndarray  # (N,) uint16
    color: np.ndarray  # (N, 3) float32 base albedo
    seed: np.ndarray  # (N,) uint32 texture seed
    variant: np.ndarray  # (N,) int16 material-specific pattern choice
    param: np.ndarray  # (N, 4) float32 material-specific numbers

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def radius(self) -> np.ndarray:
        return np.linalg.norm(self.half, axis=1)

    def take(self, idx) -> Primitives:
        return Primitives(**{k: v[idx] for k, v in self.__dict__.items()})

    @classmethod
    def concat(cls, parts: list[Primitives]) -> Primitives:
        parts = [p for p in parts if p is not None]
        if not parts:
            return PrimitiveBuilder().build()
        return cls(**{k: np.concatenate([p.__dict__[k] for p in parts]) for k in parts[0].__dict__})


class PrimitiveBuilder:
    """Collects primitives one by one (scene generation is not the hot path) and packs them into arrays."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(
        self,
        kind: Kind,
        center,
        half,
        *,
        yaw: float = 0.0,
        material: Material = Material.PLAIN,
        semantic: SemanticClass = SemanticClass.OBJECT,
        instance: int = 0,
        color=(0.5, 0.5, 0.5),
        seed: int = 0,
        variant: int = 0,
        param=(0.0, 0.0, 0.0, 0.0),
    ) -> None:
        self.rows.append(
            (int(kind), tuple(center), tuple(half), float(yaw), int(material), int(semantic), int(instance),
             tuple(color), int(seed) & 0xFFFFFFFF, int(variant), tuple(param))
        )

    def box(self, center, half, **kw) -> None:
        self.add(Kind.BOX, center, half, **kw)

    def cylinder(self, x: float, y: float, z0: float, z1: float, radius: float, **kw) -> None:
        self.add(Kind.CYLINDER, (x, y, (z0 + z1) / 2), (radius, radius, (z1 - z0) / 2), **kw)

    def sphere(self, center, radius: float, **kw) -> None:
        self.add(Kind.SPHERE, center, (radius, radius, radius), **kw)

    def build(self) -> Primitives:
        n = len(self.rows)
        cols = list(zip(*self.rows)) if n else [()] * 11
        return Primitives(
            kind=np.asarray(cols[0], dtype=np.int8).reshape(n),
            center=np.asarray(cols[1], dtype=np.float64).reshape(n, 3),
            half=np.asarray(cols[2], dtype=np.float64).reshape(n, 3),
            yaw=np.asarray(cols[3], dtype=np.float64).reshape(n),
            material=np.asarray(cols[4], dtype=np.int16).reshape(n),
            semantic=np.asarray(cols[5], dtype=np.uint16).reshape(n),
            instance=np.asarray(cols[6], dtype=np.uint16).reshape(n),
            color=np.asarray(cols[7], dtype=np.float32).reshape(n, 3),
            seed=np.asarray(cols[8], dtype=np.uint32).reshape(n),
            variant=np.asarray(cols[9], dtype=np.int16).reshape(n),
            param=np.asarray(cols[10], dtype=np.float32).reshape(n, 4),
        )


@dataclass(frozen=True)
class Street:
    """Cross-section of the street, in metres from the centreline: lanes, parking strips, kerbs, sidewalks."""

    road: Road
    half_width: float = 6.0
    lane_width: float = 3.5
    sidewalk_width: float = 3.5
    kerb_height: float = 0.15
    crosswalks: np.ndarray = field(default_factory=lambda: np.zeros(0))  # arc lengths of zebra crossings


@dataclass
class Scene:
    static: Primitives
    lighting: LightingConfig = field(default_factory=LightingConfig)
    street: Street | None = None  # None: a flat featureless ground plane (or none, with ground=False)
    ground: bool = True
    traffic: Traffic | None = None
    view_distance: float = 250.0
    sun_heading: float = 0.0  # radians; the sun azimuth is measured from here
    instance_classes: dict[int, int] = field(default_factory=dict)
    floor: tuple[int, tuple[float, float, float]] | None = None  # indoor: (textures.floor_surface variant, tint)

    def dynamic(self, t: float, ego_s: float) -> Primitives | None:
        return None if self.traffic is None else self.traffic.primitives(t, ego_s)


# ---------------------------------------------------------------------------------------------- traffic


@dataclass
class Mover:
    lane_d: float
    direction: float  # +1 along the road, -1 against it
    s0: float  # oncoming: position at t = 0; lead: gap to the ego car
    speed: float  # oncoming: m/s; lead: gap oscillation amplitude (m)
    phase: float
    instance: int
    color: tuple[float, float, float]
    seed: int
    lead: bool


@dataclass
class Traffic:
    road: Road
    movers: list[Mover]

    def primitives(self, t: float, ego_s: float) -> Primitives | None:
        if not self.movers:
            return None
        b = PrimitiveBuilder()
        for m in self.movers:
            if m.lead:
                # gap breathes with distance driven, so a stopped ego car has a stopped lead car
                s = ego_s + m.s0 + m.speed * np.sin(ego_s / 25.0 + m.phase)
            else:
                s = m.s0 + m.direction * m.speed * t
            if not 0.0 < s < self.road.total_length:
                continue
            x, y, th = self.road.point(s, m.lane_d)
            yaw = float(th) + (0.0 if m.direction > 0 else np.pi)
            add_car(b, float(x), float(y), yaw, m.color, m.instance, m.seed)
        return b.build()

    def moving_instances(self) -> tuple[int, ...]:
        return tuple(m.instance for m in self.movers)


# ------------------------------------------------------------------------------------------- objects

_CAR_COLOURS = [
    (0.75, 0.08, 0.06), (0.08, 0.18, 0.55), (0.85, 0.85, 0.82), (0.12, 0.12, 0.13), (0.55, 0.56, 0.58),
    (0.10, 0.35, 0.16), (0.85, 0.65, 0.10), (0.35, 0.20, 0.12), (0.30, 0.45, 0.70), (0.60, 0.10, 0.35),
]


def add_car(b: PrimitiveBuilder, x: float, y: float, yaw: float, color, instance: int, seed: int) -> None:
    """A car of four boxes (body, cabin, two axles) sharing one instance id; local +x is the front."""
    c, s = np.cos(yaw), np.sin(yaw)
    common = {"yaw": yaw, "semantic": SemanticClass.CAR, "instance": instance, "seed": seed}

    def at(fwd: float, z: float):
        return (x + c * fwd, y + s * fwd, z)

    b.box(at(0.0, 0.62), (2.15, 0.9, 0.38), material=Material.CAR_BODY, color=color, **common)
    b.box(at(-0.25, 1.22), (1.2, 0.78, 0.23), material=Material.CAR_CABIN, color=color, **common)
    for fwd in (1.35, -1.35):
        b.box(at(fwd, 0.33), (0.33, 0.86, 0.33), material=Material.TYRE, color=(0.06, 0.06, 0.07), **common)


def _facade_colour(rng: np.random.Generator, variety: float) -> tuple[int, tuple[float, float, float]]:
    palettes = {
        0: [(0.55, 0.27, 0.18), (0.62, 0.35, 0.24), (0.48, 0.30, 0.25), (0.70, 0.52, 0.38)],  # brick
        1: [(0.85, 0.80, 0.68), (0.78, 0.70, 0.55), (0.70, 0.75, 0.78), (0.88, 0.72, 0.60), (0.65, 0.78, 0.65)],
        2: [(0.62, 0.62, 0.60), (0.50, 0.50, 0.52), (0.72, 0.70, 0.66)],  # concrete panels
        3: [(0.35, 0.48, 0.58), (0.30, 0.40, 0.42), (0.45, 0.52, 0.60)],  # glass curtain wall
    }
    n_var = 1 + round(3 * np.clip(variety, 0.0, 1.0))
    variant = int(rng.integers(0, n_var))
    pal = palettes[variant]
    colour = np.asarray(pal[int(rng.integers(0, len(pal)))]) * rng.uniform(0.85, 1.1)
    return variant, tuple(np.clip(colour, 0.05, 0.95))


class _Occupancy:
    """Intervals of s already taken along one strip, so sidewalk furniture does not overlap."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    def free(self, a: float, b: float) -> bool:
        return all(b <= lo or a >= hi for lo, hi in self.spans)

    def take(self, a: float, b: float) -> None:
        self.spans.append((a, b))


def generate_street(cfg: DriveConfig, road: Road, rng: np.random.Generator, s_range: tuple[float, float]):
    """Buildings, parked cars, poles, signs, trees and boxes along both sides of the road within s_range."""
    sc: SceneConfig = cfg.scene
    W, sw = sc.road_half_width, sc.sidewalk_width
    hk = sc.kerb_height
    b = PrimitiveBuilder()
    instance_classes: dict[int, int] = {}
    next_id = [1]

    def new_instance(cls: SemanticClass) -> int:
        i = next_id[0]
        next_id[0] = 1 + (next_id[0] % 65534)  # wraps only on very long drives, far from any one view
        instance_classes[i] = int(cls)
        return i

    def seed() -> int:
        return int(rng.integers(0, 2**32 - 1))

    s_lo, s_hi = s_range
    n_cross = rng.poisson(sc.crosswalks_per_km * (s_hi - s_lo) / 1000.0)
    crosswalks = np.sort(rng.uniform(s_lo + 60.0, s_hi, size=n_cross))

    def near_crosswalk(s: float, margin: float) -> bool:
        return bool(np.any(np.abs(crosswalks - s) < margin))

    for side in (-1.0, 1.0):
        kerb_strip = _Occupancy()
        inner_strip = _Occupancy()
        # buildings, lot by lot
        s = s_lo
        while s < s_hi:
            width = rng.uniform(8.0, 26.0)
            gap = rng.uniform(0.0, 3.0) if rng.random() < 0.7 else 0.0
            if rng.random() < sc.building_density:
                depth = rng.uniform(8.0, 16.0)
                height = rng.uniform(*sc.building_height)
                setback = rng.uniform(0.0, 1.5)
                sc_mid = s + width / 2
                d_mid = side * (W + sw + setback + depth / 2)
                d_mid = _clear_of_street(road, sc_mid, d_mid, width, depth, side, W + sw + 0.2)
                x, y, th = road.point(sc_mid, d_mid)
                variant, colour = _facade_colour(rng, sc.texture_variety)
                floor_h = rng.uniform(2.9, 3.6)
                win_spacing = rng.uniform(2.2, 3.8)
                shop = 1.0 if rng.random() < 0.6 * max(sc.texture_variety, 0.2) else 0.0
                b.box(
                    (float(x), float(y), (height + hk) / 2),
                    (width / 2, depth / 2, (height - hk) / 2),
                    yaw=float(th),
                    material=Material.FACADE,
                    semantic=SemanticClass.BUILDING,
                    instance=new_instance(SemanticClass.BUILDING),
                    color=colour,
                    seed=seed(),
                    variant=variant,
                    param=(floor_h, win_spacing, shop, rng.uniform(0.0, 1.0)),
                )
            else:
                # an open lot: a couple of trees further back
                for _ in range(int(rng.integers(0, 3))):
                    st = s + rng.uniform(1.0, max(1.5, width - 1.0))
                    _add_tree(b, road, st, side * (W + sw + rng.uniform(2.0, 8.0)), hk, rng, new_instance, seed)
            s += width + gap

        # parked cars in the parking strip
        s = s_lo + rng.exponential(100.0 / max(sc.parked_cars_per_100m, 1e-3))
        while s < s_hi and sc.parked_cars_per_100m > 0:
            if not near_crosswalk(s, 8.0):
                x, y, th = road.point(s, side * (W - 1.25))
                yaw = float(th) + (0.0 if side < 0 else np.pi)  # parked facing the traffic of their side
                colour = _CAR_COLOURS[int(rng.integers(0, len(_CAR_COLOURS)))]
                add_car(b, float(x), float(y), yaw, colour, new_instance(SemanticClass.CAR), seed())
            s += 5.0 + rng.exponential(100.0 / max(sc.parked_cars_per_100m, 1e-3))

        # poles (lamps / signs) at the kerb
        s = s_lo + rng.exponential(100.0 / max(sc.poles_per_100m, 1e-3))
        while s < s_hi and sc.poles_per_100m > 0:
            if kerb_strip.free(s - 1.0, s + 1.0):
                kerb_strip.take(s - 1.0, s + 1.0)
                _add_pole(b, road, s, side, W + 0.45, hk, rng, new_instance, seed)
            s += 4.0 + rng.exponential(100.0 / max(sc.poles_per_100m, 1e-3))

        # street trees at the kerb
        s = s_lo + rng.exponential(100.0 / max(sc.trees_per_100m, 1e-3))
        while s < s_hi and sc.trees_per_100m > 0:
            if kerb_strip.free(s - 2.0, s + 2.0):
                kerb_strip.take(s - 2.0, s + 2.0)
                _add_tree(b, road, s, side * (W + 1.1), hk, rng, new_instance, seed)
            s += 5.0 + rng.exponential(100.0 / max(sc.trees_per_100m, 1e-3))

        # crates, bins, kiosks near the facades
        s = s_lo + rng.exponential(100.0 / max(sc.boxes_per_100m, 1e-3))
        while s < s_hi and sc.boxes_per_100m > 0:
            kiosk = rng.random() < 0.15
            hx = rng.uniform(0.9, 1.4) if kiosk else rng.uniform(0.25, 0.6)
            hy = rng.uniform(0.9, 1.3) if kiosk else rng.uniform(0.25, 0.5)
            hz = rng.uniform(1.1, 1.4) if kiosk else rng.uniform(0.3, 0.65)
            if inner_strip.free(s - hx - 0.3, s + hx + 0.3):
                inner_strip.take(s - hx - 0.3, s + hx + 0.3)
                d = side * (W + sw - 0.35 - hy)
                x, y, th = road.point(s, d)
                b.box(
                    (float(x), float(y), hk + hz),
                    (hx, hy, hz),
                    yaw=float(th) + rng.uniform(-0.15, 0.15),
                    material=Material.CRATE,
                    semantic=SemanticClass.OBJECT,
                    instance=new_instance(SemanticClass.OBJECT),
                    color=tuple(rng.uniform(0.15, 0.85, size=3)),
                    seed=seed(),
                    variant=int(rng.integers(0, 3)) if not kiosk else 3,
                )
            s += 2.0 + rng.exponential(100.0 / max(sc.boxes_per_100m, 1e-3))

    return b.build(), crosswalks, instance_classes, next_id[0]


def _clear_of_street(road: Road, s: float, d: float, width: float, depth: float, side: float, clear: float):
    """Push a building outward until its footprint corners clear the sidewalk (matters on inner curves)."""
    for _ in range(8):
        x, y, th = road.point(s, d)
        c, sn = np.cos(th), np.sin(th)
        corners = []
        for a in (-width / 2, width / 2):
            for bb in (-depth / 2, depth / 2):
                corners.append((x + c * a - sn * bb, y + sn * a + c * bb))
        pts = np.asarray(corners, dtype=np.float64)
        near = road.segments_near(float(x), float(y), width + depth + 50.0)
        _, dd, _, _ = road.locate(pts[:, 0], pts[:, 1], near)
        worst = float(np.min(side * dd))
        if worst >= clear:
            return d
        d += side * (clear - worst + 0.1)
    return d


def _add_pole(b, road, s, side, d_abs, hk, rng, new_instance, seed) -> None:
    x, y, th = road.point(s, side * d_abs)
    height = rng.uniform(4.0, 8.0)
    colour = tuple(np.array([0.42, 0.44, 0.45]) * rng.uniform(0.6, 1.4))
    inst = new_instance(SemanticClass.POLE)
    b.cylinder(float(x), float(y), hk, hk + height, rng.uniform(0.06, 0.12), material=Material.METAL,
               semantic=SemanticClass.POLE, instance=inst, color=colour, seed=seed())
    if rng.random() < 0.5:
        # a traffic sign facing the oncoming traffic of this side
        sign_h = rng.uniform(2.0, 2.6)
        b.box((float(x), float(y), hk + sign_h), (0.03, 0.38, 0.38), yaw=float(th), material=Material.SIGN,
              semantic=SemanticClass.TRAFFIC_SIGN, instance=new_instance(SemanticClass.TRAFFIC_SIGN),
              color=(0.9, 0.9, 0.9), seed=seed(), variant=int(rng.integers(0, 3)))
    elif height > 5.5:
        # a lamp arm over the road
        arm = rng.uniform(1.0, 2.0)
        ax, ay, _ = road.point(s, side * (d_abs - arm / 2))
        b.box((float(ax), float(ay), hk + height - 0.1), (0.08, arm / 2, 0.06), yaw=float(th),
              material=Material.METAL, semantic=SemanticClass.POLE, instance=inst, color=colour, seed=seed())


def _add_tree(b, road, s, d, hk, rng, new_instance, seed) -> None:
    x, y, _ = road.point(s, d)
    inst = new_instance(SemanticClass.VEGETATION)
    trunk_h = rng.uniform(2.2, 3.5)
    crown_r = rng.uniform(1.2, 2.3)
    trunk_r = rng.uniform(0.1, 0.22)
    bark = tuple(np.array([0.33, 0.24, 0.16]) * rng.uniform(0.7, 1.2))
    b.cylinder(float(x), float(y), hk, hk + trunk_h + crown_r * 0.5, trunk_r, material=Material.BARK,
               semantic=SemanticClass.VEGETATION, instance=inst, color=bark, seed=seed())
    leaf = tuple(np.clip(np.array([0.22, 0.42, 0.14]) * rng.uniform(0.7, 1.25, size=3), 0, 1))
    centre = (float(x), float(y), hk + trunk_h + crown_r * 0.8)
    if rng.random() < 0.75:
        b.sphere(centre, crown_r, material=Material.FOLIAGE, semantic=SemanticClass.VEGETATION, instance=inst,
                 color=leaf, seed=seed())
    else:
        b.box(centre, (crown_r * 0.8, crown_r * 0.8, crown_r), yaw=rng.uniform(0, np.pi),
              material=Material.FOLIAGE, semantic=SemanticClass.VEGETATION, instance=inst, color=leaf, seed=seed())


def generate_traffic(cfg: DriveConfig, road: Road, rng: np.random.Generator, s_ego0: float, ego_distance: float,
                     duration: float, first_id: int) -> tuple[Traffic, dict[int, int]]:
    movers: list[Mover] = []
    classes: dict[int, int] = {}
    lane = abs(cfg.trajectory.lane_offset)
    next_id = first_id
    for k in range(cfg.traffic.lead_cars):
        gap = 14.0 + 16.0 * k + rng.uniform(0.0, 6.0)
        movers.append(Mover(-lane if cfg.trajectory.lane_offset < 0 else lane, 1.0, gap, rng.uniform(1.5, 4.0),
                            rng.uniform(0, 2 * np.pi), next_id, _CAR_COLOURS[int(rng.integers(0, 10))],
                            int(rng.integers(0, 2**32 - 1)), True))
        classes[next_id] = int(SemanticClass.CAR)
        next_id = 1 + (next_id % 65534)
    n = cfg.traffic.oncoming_cars
    if n > 0:
        # spread the meeting points over the drive: car k meets the ego car about at fraction (k + u)/n
        for k in range(n):
            speed = rng.uniform(7.0, 13.0)
            t_meet = duration * (k + rng.uniform(0.1, 0.9)) / n
            s_meet = s_ego0 + ego_distance * t_meet / max(duration, 1e-9)
            s0 = s_meet + speed * t_meet
            movers.append(Mover(-np.sign(cfg.trajectory.lane_offset or -1.0) * lane, -1.0, s0, speed, 0.0, next_id,
                                _CAR_COLOURS[int(rng.integers(0, 10))], int(rng.integers(0, 2**32 - 1)), False))
            classes[next_id] = int(SemanticClass.CAR)
            next_id = 1 + (next_id % 65534)
    return Traffic(road, movers), classes
