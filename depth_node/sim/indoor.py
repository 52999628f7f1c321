"""Indoor scenes from the renderer's analytic primitives: corridors, warehouse aisles and offices along a
straight path (world +x, the path at y = 0, floor at z = 0).

Walls, ceiling and end walls are boxes; the floor is the renderer's ground plane with an indoor material.
Doors, skirting, windows, posters, cabinets, desks, chairs, shelving with cartons, pallets, ceiling lights and
people-sized obstacles fill the rooms. Everything keeps a clear lane of `IndoorLayout.clear` metres around
the path, so the camera never enters an object and the depth stays the depth of a real room. The layout's
numbers (wall and ceiling planes) are returned too: tests compare rendered depth with them analytically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.sim.config import INDOOR_LAYOUTS, DriveConfig
from depth_node.sim.labels import SemanticClass
from depth_node.sim.scene import Material, PrimitiveBuilder, Primitives
from depth_node.sim.textures import FLOOR_VARIANTS

WALL_T = 0.2  # wall and ceiling slab thickness


@dataclass(frozen=True)
class IndoorLayout:
    kind: str  # corridor | warehouse | office
    x0: float  # inner face of the wall behind the start
    x1: float  # inner face of the end wall
    left: float  # inner face of the left wall (y > 0)
    right: float  # inner face of the right wall (y < 0)
    ceiling: float  # underside of the ceiling slab (z)
    clear: float  # half-width of the lane around y = 0 that nothing enters
    band: float  # people stand between |y| = clear and |y| = band (in front of the furniture)
    floor_variant: int
    floor_color: tuple[float, float, float]


_WALL_COLOURS = [(0.86, 0.84, 0.78), (0.78, 0.80, 0.82), (0.80, 0.74, 0.62), (0.66, 0.72, 0.66),
                 (0.90, 0.88, 0.86), (0.62, 0.66, 0.74), (0.74, 0.62, 0.56)]
_FLOOR_COLOURS = {0: [(0.55, 0.55, 0.53), (0.48, 0.50, 0.52)], 1: [(0.80, 0.78, 0.72), (0.62, 0.64, 0.66)],
                  2: [(0.55, 0.38, 0.22), (0.68, 0.52, 0.34)], 3: [(0.45, 0.55, 0.58), (0.62, 0.58, 0.50)]}
_CLOTHES = [(0.15, 0.2, 0.45), (0.6, 0.1, 0.1), (0.2, 0.2, 0.22), (0.75, 0.7, 0.6), (0.1, 0.4, 0.25),
            (0.85, 0.55, 0.1)]


class _Builder:
    """PrimitiveBuilder plus instance ids and seeds drawn from one generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.b = PrimitiveBuilder()
        self.rng = rng
        self.classes: dict[int, int] = {}
        self.next_id = 1

    def instance(self, cls: SemanticClass) -> int:
        i = self.next_id
        self.next_id += 1
        self.classes[i] = int(cls)
        return i

    def seed(self) -> int:
        return int(self.rng.integers(0, 2**32 - 1))

    def box(self, lo, hi, sem: SemanticClass, material: Material = Material.PLAIN, color=(0.5, 0.5, 0.5),
            instance: int | None = None, **kw) -> None:
        """An axis-aligned box from its min and max corners."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        inst = self.instance(sem) if instance is None else instance
        self.b.box(tuple((lo + hi) / 2), tuple((hi - lo) / 2), material=material, semantic=sem, instance=inst,
                   color=color, seed=self.seed(), **kw)


def generate_indoor(cfg: DriveConfig, rng: np.random.Generator, x_start: float, x_path_end: float
                    ) -> tuple[Primitives, dict[int, int], IndoorLayout]:
    """The room(s) around a path from x_start to x_path_end along y = 0."""
    ic = cfg.indoor
    if ic.layout not in INDOOR_LAYOUTS:
        raise DepthNodeError(f"indoor.layout {ic.layout!r} is not one of {', '.join(INDOOR_LAYOUTS)}")
    kind = ic.layout if ic.layout != "mixed" else str(rng.choice(["corridor", "warehouse", "office"]))
    x0 = x_start - rng.uniform(1.5, 4.0)
    x1 = x_path_end + rng.uniform(*ic.ahead_m)
    bld = _Builder(rng)
    layout = _LAYOUTS[kind](bld, cfg, x0, x1)
    _shell(bld, layout)
    _people(bld, layout, ic.people_per_10m)
    return bld.b.build(), bld.classes, layout


def _floor(rng: np.random.Generator, variants: tuple[int, ...]) -> tuple[int, tuple[float, float, float]]:
    v = int(rng.choice(variants))
    pal = _FLOOR_COLOURS[v]
    col = np.asarray(pal[int(rng.integers(0, len(pal)))]) * rng.uniform(0.85, 1.1)
    return v, tuple(float(c) for c in np.clip(col, 0.05, 0.95))


def _shell(bld: _Builder, L: IndoorLayout) -> None:
    """Side walls, end walls and ceiling slab; skirting boards; ceiling lights along the path."""
    rng = bld.rng
    wall = _WALL_COLOURS[int(rng.integers(0, len(_WALL_COLOURS)))]
    H, T = L.ceiling, WALL_T
    xa, xb = L.x0 - T, L.x1 + T
    bld.box((xa, L.left, 0.0), (xb, L.left + T, H), SemanticClass.WALL, color=wall)
    bld.box((xa, L.right - T, 0.0), (xb, L.right, H), SemanticClass.WALL, color=wall)
    bld.box((L.x1, L.right, 0.0), (L.x1 + T, L.left, H), SemanticClass.WALL, color=wall)
    bld.box((L.x0 - T, L.right, 0.0), (L.x0, L.left, H), SemanticClass.WALL, color=wall)
    bld.box((xa, L.right - T, H), (xb, L.left + T, H + T), SemanticClass.CEILING, color=(0.9, 0.9, 0.88))
    skirt = tuple(float(c) for c in np.asarray(wall) * 0.45)
    bld.box((L.x0, L.left - 0.015, 0.0), (L.x1, L.left, 0.1), SemanticClass.WALL, color=skirt)
    bld.box((L.x0, L.right, 0.0), (L.x1, L.right + 0.015, 0.1), SemanticClass.WALL, color=skirt)
    x = L.x0 + rng.uniform(0.5, 2.0)
    spacing = rng.uniform(2.4, 4.0)
    long_strip = L.kind == "warehouse"
    while x < L.x1 - 0.8:
        hx = 1.2 if long_strip else 0.3
        for y in ((0.0,) if L.left - L.right < 5.0 else (0.35 * L.left, 0.35 * L.right)):
            bld.box((x - hx, y - 0.15, H - 0.04), (x + hx, y + 0.15, H), SemanticClass.CEILING,
                    color=(0.98, 0.97, 0.92))
        x += spacing * (2.0 if long_strip else 1.0)


def _doors_and_posters(bld: _Builder, L: IndoorLayout, door_every: float) -> None:
    """Doors (slightly proud of the wall, with frames) and posters on both walls."""
    rng = bld.rng
    for y_wall, inward in ((L.left, -1.0), (L.right, 1.0)):
        x = L.x0 + rng.uniform(1.0, door_every)
        while x < L.x1 - 1.5:
            if rng.random() < 0.7:
                w = rng.uniform(0.85, 1.0)
                h = rng.uniform(2.0, 2.15)
                y0, y1 = sorted((y_wall, y_wall + inward * 0.03))
                inst = bld.instance(SemanticClass.WALL)
                frame_col = (0.35, 0.33, 0.3) if rng.random() < 0.5 else (0.85, 0.85, 0.82)
                bld.box((x - w / 2 - 0.06, y0, 0.0), (x + w / 2 + 0.06, y1, h + 0.06), SemanticClass.WALL,
                        color=frame_col, instance=inst)
                f0, f1 = sorted((y_wall + inward * 0.03, y_wall + inward * 0.05))
                bld.box((x - w / 2, f0, 0.0), (x + w / 2, f1, h), SemanticClass.WALL, Material.CRATE,
                        color=tuple(rng.uniform(0.3, 0.8, 3)), instance=inst, variant=int(rng.integers(0, 2)))
            else:  # a poster or notice board
                w, h = rng.uniform(0.4, 1.2), rng.uniform(0.5, 0.9)
                z0 = rng.uniform(1.1, 1.5)
                y0, y1 = sorted((y_wall, y_wall + inward * 0.02))
                bld.box((x - w / 2, y0, z0), (x + w / 2, y1, z0 + h), SemanticClass.WALL, Material.CRATE,
                        color=tuple(rng.uniform(0.2, 0.9, 3)), variant=int(rng.integers(1, 3)))
            x += rng.uniform(2.0, door_every)


def _along_walls(bld: _Builder, L: IndoorLayout, every: float, add: Callable[[float, float, float], float]) -> None:
    """Call add(x, y_wall, inward) at random spacing along both walls; add returns the length it used."""
    rng = bld.rng
    for y_wall, inward in ((L.left, -1.0), (L.right, 1.0)):
        x = L.x0 + rng.uniform(0.3, every)
        while x < L.x1 - 1.0:
            used = add(x, y_wall, inward)
            x += used + rng.uniform(0.3, every)


def _cabinet(bld: _Builder, x: float, y_wall: float, inward: float, depth: float) -> float:
    rng = bld.rng
    w, h = rng.uniform(0.5, 1.6), rng.uniform(0.7, 2.0)
    y0, y1 = sorted((y_wall, y_wall + inward * depth))
    col = tuple(rng.uniform(0.3, 0.85, 3))
    bld.box((x, y0, 0.0), (x + w, y1, h), SemanticClass.FURNITURE, Material.CRATE, color=col,
            variant=int(rng.integers(1, 3)))
    return w


def _carton_stack(bld: _Builder, x: float, y_wall: float, inward: float, depth: float) -> float:
    rng = bld.rng
    w = rng.uniform(0.3, 0.7)
    z = 0.0
    for _ in range(int(rng.integers(1, 4))):
        h = rng.uniform(0.2, 0.5)
        d = min(depth, rng.uniform(0.3, 0.6))
        y0, y1 = sorted((y_wall, y_wall + inward * d))
        dx = rng.uniform(-0.04, 0.04)
        bld.box((x + dx, y0, z), (x + dx + w, y1, z + h), SemanticClass.OBJECT, Material.CRATE,
                color=(0.62, 0.46, 0.28) if rng.random() < 0.7 else tuple(rng.uniform(0.2, 0.9, 3)),
                variant=int(rng.choice([0, 1, 2])))
        z += h
    return w + 0.1


def _corridor(bld: _Builder, cfg: DriveConfig, x0: float, x1: float) -> IndoorLayout:
    rng = bld.rng
    half = rng.uniform(0.9, 1.6)
    off = rng.uniform(-0.2, 0.2)
    fv, fc = _floor(rng, (1, 3, 0))
    clear = 0.45
    depth = min(0.4, half - abs(off) - clear)
    L = IndoorLayout("corridor", x0, x1, half + off, -half + off, rng.uniform(2.5, 3.0), clear,
                     half - abs(off) - max(depth, 0.0), fv, fc)
    _doors_and_posters(bld, L, 5.0)
    if cfg.indoor.clutter > 0 and depth > 0.15:

        def add(x, y, inward):
            return (_cabinet if rng.random() < 0.5 else _carton_stack)(bld, x, y, inward, depth)

        _along_walls(bld, L, 6.0 / cfg.indoor.clutter, add)
    return L


def _warehouse(bld: _Builder, cfg: DriveConfig, x0: float, x1: float) -> IndoorLayout:
    """One aisle between two rows of pallet racking; outer walls behind the racks, a high ceiling."""
    rng = bld.rng
    aisle = rng.uniform(1.2, 1.8)  # half-width
    rack_d = rng.uniform(0.9, 1.2)
    rack_h = rng.uniform(3.0, 5.5)
    fv, fc = _floor(rng, (0,))
    L = IndoorLayout("warehouse", x0, x1, aisle + rack_d + 0.6, -(aisle + rack_d + 0.6), rng.uniform(6.0, 9.0),
                     aisle - 0.6, aisle - 0.05, fv, fc)
    upright = [(0.9, 0.45, 0.1), (0.15, 0.3, 0.6), (0.2, 0.45, 0.25)][int(rng.integers(0, 3))]
    beam = (0.9, 0.5, 0.1) if rng.random() < 0.7 else (0.85, 0.85, 0.85)
    levels = np.arange(0.0, rack_h - 0.5, rng.uniform(1.1, 1.6))
    for side in (1.0, -1.0):
        ya, yb = sorted((side * aisle, side * (aisle + rack_d)))
        inst = bld.instance(SemanticClass.FURNITURE)
        bay = rng.uniform(2.4, 3.0)
        x = x0 + 0.3
        while x < x1 - 0.3:
            xe = min(x + bay, x1 - 0.3)
            for xu in (x, xe):
                for yu in (ya, yb - 0.08):
                    bld.box((xu - 0.04, yu, 0.0), (xu + 0.04, yu + 0.08, rack_h), SemanticClass.FURNITURE,
                            Material.METAL, color=upright, instance=inst)
            for z in levels[1:]:
                bld.box((x, ya, z - 0.12), (xe, yb, z), SemanticClass.FURNITURE, Material.METAL, color=beam,
                        instance=inst)
            for z in levels:  # cartons and pallets on each level, some bays half empty
                xx = x + 0.1
                while xx < xe - 0.5 and rng.random() < 0.85 * min(cfg.indoor.clutter, 1.0) + 0.1:
                    w = rng.uniform(0.5, 1.2)
                    h = rng.uniform(0.3, min(1.0, levels[1] - 0.3 if len(levels) > 1 else 1.0))
                    inset = rng.uniform(0.0, 0.15)
                    bld.box((xx, ya + side * inset if side > 0 else ya, z),
                            (min(xx + w, xe - 0.05), yb if side > 0 else yb - inset, z + h), SemanticClass.OBJECT,
                            Material.CRATE, color=(0.62, 0.46, 0.28) if rng.random() < 0.75 else
                            tuple(rng.uniform(0.2, 0.9, 3)), variant=int(rng.choice([0, 1, 2])))
                    xx += w + rng.uniform(0.05, 0.3)
            x = xe
    return L


def _office(bld: _Builder, cfg: DriveConfig, x0: float, x1: float) -> IndoorLayout:
    """An open-plan office: desks with chairs in rows on both sides of a central walkway, windows on one wall."""
    rng = bld.rng
    half = rng.uniform(3.3, 5.0)
    walk = rng.uniform(0.8, 1.2)  # half-width of the walkway
    fv, fc = _floor(rng, (2, 3, 1))
    L = IndoorLayout("office", x0, x1, half, -half, rng.uniform(2.7, 3.2), walk - 0.45, walk + 0.1, fv, fc)
    _doors_and_posters(bld, L, 7.0)
    wy = L.left  # windows on the left wall
    x = x0 + rng.uniform(0.5, 1.5)
    while x < x1 - 1.5:
        w = rng.uniform(1.0, 2.0)
        bld.box((x, wy - 0.025, 0.9), (x + w, wy - 0.005, 2.3), SemanticClass.WALL,
                color=(0.72, 0.82, 0.9))
        x += w + rng.uniform(1.0, 2.5)
    for side in (1.0, -1.0):
        x = x0 + rng.uniform(0.5, 2.0)
        while x < x1 - 2.0:
            if rng.random() < 0.75 * min(cfg.indoor.clutter, 1.0) + 0.05:
                _desk(bld, x, side * (walk + 0.1), side)
            x += rng.uniform(1.8, 2.6)
        if cfg.indoor.clutter > 0 and rng.random() < 0.7:  # cabinets against this wall
            y_wall = L.left if side > 0 else L.right
            xx = x0 + rng.uniform(0.5, 3.0)
            while xx < x1 - 2.0:
                xx += _cabinet(bld, xx, y_wall, -side, 0.45) + rng.uniform(2.0, 8.0 / cfg.indoor.clutter)
    return L


def _desk(bld: _Builder, x: float, y_edge: float, side: float) -> None:
    """A desk whose near edge is at |y| = |y_edge| (towards the walkway), with a chair in front of it."""
    rng = bld.rng
    w, d, h = rng.uniform(1.2, 1.6), rng.uniform(0.7, 0.8), rng.uniform(0.72, 0.76)
    chair_gap = 0.55
    ya = y_edge + side * chair_gap
    yb = ya + side * d
    y0, y1 = sorted((ya, yb))
    inst = bld.instance(SemanticClass.FURNITURE)
    top = tuple(rng.uniform(0.45, 0.9, 3))
    bld.box((x, y0, h - 0.03), (x + w, y1, h), SemanticClass.FURNITURE, Material.CRATE, color=top, instance=inst,
            variant=1)
    for lx in (x + 0.03, x + w - 0.07):
        for ly in (y0 + 0.03, y1 - 0.07):
            bld.box((lx, ly, 0.0), (lx + 0.04, ly + 0.04, h - 0.03), SemanticClass.FURNITURE, Material.METAL,
                    color=(0.3, 0.3, 0.32), instance=inst)
    if rng.random() < 0.7:  # a monitor
        mx = x + rng.uniform(0.2, w - 0.7)
        my0, my1 = sorted((yb - side * 0.25, yb - side * 0.22))
        bld.box((mx, my0, h + 0.1), (mx + 0.55, my1, h + 0.45), SemanticClass.OBJECT, color=(0.08, 0.08, 0.1))
    if rng.random() < 0.8:  # the chair, between the desk and the walkway
        cx = x + w / 2 + rng.uniform(-0.3, 0.3)
        ca, cb = sorted((y_edge + side * 0.05, y_edge + side * 0.5))
        col = tuple(rng.uniform(0.1, 0.6, 3))
        ci = bld.instance(SemanticClass.FURNITURE)
        bld.box((cx - 0.24, ca, 0.42), (cx + 0.24, cb, 0.48), SemanticClass.FURNITURE, color=col, instance=ci)
        back = ca if side > 0 else cb - 0.06
        bld.box((cx - 0.22, back, 0.48), (cx + 0.22, back + 0.06, 0.95), SemanticClass.FURNITURE, color=col,
                instance=ci)
        bld.box((cx - 0.03, (ca + cb) / 2 - 0.03, 0.0), (cx + 0.03, (ca + cb) / 2 + 0.03, 0.42),
                SemanticClass.FURNITURE, Material.METAL, color=(0.2, 0.2, 0.2), instance=ci)


def _people(bld: _Builder, L: IndoorLayout, per_10m: float) -> None:
    """Standing people (a cylinder body and a sphere head) beside the lane, never in it."""
    rng = bld.rng
    n = rng.poisson(max(per_10m, 0.0) * (L.x1 - L.x0) / 10.0)
    for _ in range(n):
        side = rng.choice([-1.0, 1.0])
        r = rng.uniform(0.18, 0.24)
        room = L.band - L.clear - 2 * r - 0.02
        if room < 0:
            continue
        y = side * (L.clear + r + 0.01 + rng.uniform(0.0, room))
        x = rng.uniform(L.x0 + 1.0, L.x1 - 1.0)
        h = rng.uniform(1.45, 1.7)
        inst = bld.instance(SemanticClass.PERSON)
        col = _CLOTHES[int(rng.integers(0, len(_CLOTHES)))]
        bld.b.cylinder(x, y, 0.0, h, r, material=Material.PLAIN, semantic=SemanticClass.PERSON, instance=inst,
                       color=col, seed=bld.seed())
        skin = tuple(float(c) for c in np.array([0.85, 0.65, 0.5]) * rng.uniform(0.5, 1.1))
        bld.b.sphere((x, y, h + 0.12), 0.11, material=Material.PLAIN, semantic=SemanticClass.PERSON,
                     instance=inst, color=skin, seed=bld.seed())


_LAYOUTS = {"corridor": _corridor, "warehouse": _warehouse, "office": _office}
assert set(_LAYOUTS) | {"mixed"} == set(INDOOR_LAYOUTS)
assert len(FLOOR_VARIANTS) == len(_FLOOR_COLOURS)
