"""The road: a tangent-continuous chain of straight segments and circular arcs on the ground plane (z = 0).

Everything that follows the street (lanes, kerbs, sidewalks, the ego path, parked and moving cars, building
lots) is placed in road coordinates (s along the centreline, d to its left), so curves come for free. Because
joints are tangent-continuous, every point near the road has exactly one closest segment, and (s, d) is a
continuous, world-anchored function of position: textures drawn in (s, d) do not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Road:
    start: np.ndarray  # (K, 2) segment start points (world x, y)
    heading: np.ndarray  # (K,) heading at the segment start, radians from +x, counter-clockwise
    length: np.ndarray  # (K,) metres
    curvature: np.ndarray  # (K,) 1/m, positive = left turn, 0 = straight
    s0: np.ndarray  # (K,) arc length at the segment start

    @property
    def total_length(self) -> float:
        return float(self.s0[-1] + self.length[-1])

    @classmethod
    def generate(cls, rng: np.random.Generator, length: float, curviness: float, min_radius: float) -> Road:
        """Straights alternating with arcs; the heading is kept within ±110° of the start so the street never
        folds back onto itself (no self-intersections over kilometres)."""
        starts, headings, lengths, curvs = [], [], [], []
        p = np.zeros(2)
        th = 0.0
        s = 0.0
        first = True
        while s < length:
            straight = first or rng.random() >= curviness
            if straight:
                seg_len = rng.uniform(80.0, 220.0) if first else rng.uniform(30.0, 160.0) * (1.2 - 0.6 * curviness)
                k = 0.0
            else:
                radius = rng.uniform(min_radius, max(min_radius * 1.01, 4.0 * min_radius))
                angle = np.deg2rad(rng.uniform(15.0, 80.0))
                sign = rng.choice([-1.0, 1.0])
                if abs(th + sign * angle) > np.deg2rad(110.0):
                    sign = -sign
                k = sign / radius
                seg_len = angle * radius
            starts.append(p.copy())
            headings.append(th)
            lengths.append(seg_len)
            curvs.append(k)
            p, th = _advance(p, th, seg_len, k)
            s += seg_len
            first = False
        lengths_a = np.asarray(lengths)
        s0 = np.concatenate([[0.0], np.cumsum(lengths_a)[:-1]])
        return cls(np.asarray(starts), np.asarray(headings), lengths_a, np.asarray(curvs), s0)

    @classmethod
    def straight(cls, length: float = 1000.0) -> Road:
        return cls(np.zeros((1, 2)), np.zeros(1), np.array([float(length)]), np.zeros(1), np.zeros(1))

    def pose(self, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centreline (x, y, heading) at arc lengths s (any shape); beyond the ends the end segments extend."""
        s = np.asarray(s, dtype=np.float64)
        k = np.clip(np.searchsorted(self.s0, s, side="right") - 1, 0, len(self.s0) - 1)
        sl = s - self.s0[k]
        th0 = self.heading[k]
        kap = self.curvature[k]
        straight = np.abs(kap) < 1e-12
        safe = np.where(straight, 1.0, kap)
        th = th0 + kap * sl
        x = self.start[k, 0] + np.where(straight, sl * np.cos(th0), (np.sin(th) - np.sin(th0)) / safe)
        y = self.start[k, 1] + np.where(straight, sl * np.sin(th0), (np.cos(th0) - np.cos(th)) / safe)
        return x, y, th

    def point(self, s, d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World (x, y) of road coordinates (s, d) and the road heading there."""
        x, y, th = self.pose(s)
        d = np.asarray(d, dtype=np.float64)
        return x - d * np.sin(th), y + d * np.cos(th), th

    def segments_near(self, x: float, y: float, radius: float) -> np.ndarray:
        """Indices of segments that come within `radius` of (x, y) (bounding-circle test)."""
        mid_s = self.s0 + self.length / 2
        mx, my, _ = self.pose(mid_s)
        reach = self.length / 2 + radius
        return np.nonzero((mx - x) ** 2 + (my - y) ** 2 <= reach**2)[0]

    def locate(self, x: np.ndarray, y: np.ndarray, segments: np.ndarray | None = None, origin=(0.0, 0.0)):
        """Road coordinates of world points: (s, d, nx, ny), (nx, ny) the unit left normal of the closest point.

        x, y are given relative to `origin` (world), which lets the hot path run in float32 near the camera;
        s is float64, the rest float32. Only `segments` (indices) are considered; by default all.
        """
        seg_ids = np.arange(len(self.s0)) if segments is None else np.asarray(segments)
        if len(seg_ids) == 0:
            seg_ids = np.array([0])
        dtype = np.result_type(x, np.float32)
        best = None
        for k in seg_ids:
            px = x - dtype.type(self.start[k, 0] - origin[0])
            py = y - dtype.type(self.start[k, 1] - origin[1])
            th0 = self.heading[k]
            c, s_ = dtype.type(np.cos(th0)), dtype.type(np.sin(th0))
            kap = self.curvature[k]
            L = self.length[k]
            if abs(kap) < 1e-12:
                sl = px * c + py * s_
                d = py * c - px * s_
                nx = ny = None
                normal = (-float(s_), float(c))
            else:
                # centre of the arc, relative to the segment start
                cxr, cyr = dtype.type(-s_ / kap), dtype.type(c / kap)
                rx, ry = px - cxr, py - cyr
                rho = np.sqrt(rx * rx + ry * ry)
                # angle swept from the start radius (-cxr, -cyr), in the travel direction
                phi = np.arctan2(ry * (-cxr) - rx * (-cyr), rx * (-cxr) + ry * (-cyr))
                sl = phi * dtype.type(1.0 / kap)
                d = dtype.type(np.sign(kap)) * (dtype.type(1.0 / abs(kap)) - rho)
                inv = dtype.type(-np.sign(kap)) / np.maximum(rho, dtype.type(1e-9))
                nx, ny = rx * inv, ry * inv
                normal = None
            excess = np.maximum(-sl, 0) + np.maximum(sl - dtype.type(L), 0)
            dist2 = d * d + excess * excess
            if best is None:
                best = {"dist2": dist2, "k": np.full(np.shape(x), k, dtype=np.int32), "sl": sl, "d": d}
                best["nx"] = np.full(np.shape(x), normal[0], np.float32) if nx is None else nx.astype(np.float32)
                best["ny"] = np.full(np.shape(x), normal[1], np.float32) if ny is None else ny.astype(np.float32)
            else:
                closer = dist2 < best["dist2"]
                if not closer.any():
                    continue
                best["dist2"] = np.where(closer, dist2, best["dist2"])
                best["k"][closer] = k
                best["sl"] = np.where(closer, sl, best["sl"])
                best["d"] = np.where(closer, d, best["d"])
                if nx is None:
                    best["nx"][closer] = normal[0]
                    best["ny"][closer] = normal[1]
                else:
                    best["nx"] = np.where(closer, nx, best["nx"])
                    best["ny"] = np.where(closer, ny, best["ny"])
        s_out = self.s0[best["k"]] + best["sl"].astype(np.float64)
        return s_out, best["d"].astype(np.float32), best["nx"], best["ny"]


def _advance(p: np.ndarray, th: float, length: float, k: float) -> tuple[np.ndarray, float]:
    if abs(k) < 1e-12:
        return p + length * np.array([np.cos(th), np.sin(th)]), th
    th1 = th + k * length
    return p + np.array([(np.sin(th1) - np.sin(th)) / k, (np.cos(th) - np.cos(th1)) / k]), th1
