"""Albedo of every material, as a function of the surface point only (world-anchored: no flicker).

Each function gets a `Surface` batch (the pixels of one material) and returns (n, 3) float32 albedo in [0, 1].
Patterns span several scales on purpose: coarse ones (windows, tiles, lane paint, patches) keep gradients at
1/8 of 640 × 192, where self-supervised depth losses start; fine ones (brick, grain, leaves) give matching
texture at full resolution and fade out (see `noise`) where they would alias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_node.sim.noise import cell_hash, fbm, hash01, lerp_rgb, pulse, smoothstep, stripes, value_noise


@dataclass
class Surface:
    local: np.ndarray  # (n, 3) float32 hit point in the primitive's frame (origin at its centre)
    face: np.ndarray  # (n,) int8: box 0/1/2 = x/y/z faces; cylinder 0 side, 2 cap; sphere 0
    sign: np.ndarray  # (n,) float32 ±1: which of the two faces along that axis
    half: np.ndarray  # (n, 3) float32
    color: np.ndarray  # (n, 3) float32
    seed: np.ndarray  # (n,) uint32
    variant: np.ndarray  # (n,) int16
    param: np.ndarray  # (n, 4) float32
    fw: np.ndarray  # (n,) float32 footprint, metres per pixel

    def subset(self, idx: np.ndarray) -> Surface:
        return Surface(**{k: v[idx] for k, v in self.__dict__.items()})

    def face_uv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(u, v) on box faces with v up from the bottom edge, u from the face's left edge as seen from
        outside, and the face's width and height."""
        x, y, z = self.local[:, 0], self.local[:, 1], self.local[:, 2]
        hx, hy, hz = self.half[:, 0], self.half[:, 1], self.half[:, 2]
        on_x = self.face == 0
        on_z = self.face == 2
        u = np.where(on_x, -self.sign * y + hy, self.sign * x + hx)
        width = np.where(on_x, 2 * hy, 2 * hx)
        v = np.where(on_z, y + hy, z + hz)
        height = np.where(on_z, 2 * hy, 2 * hz)
        return u.astype(np.float32), v.astype(np.float32), width.astype(np.float32), height.astype(np.float32)


def plain(s: Surface) -> np.ndarray:
    x, y, z = s.local[:, 0], s.local[:, 1], s.local[:, 2]
    n = fbm(x + 0.37 * z, y - 0.61 * z, s.seed, s.fw, 0.7, 4)
    return np.clip(s.color * (1.0 + 0.35 * n)[:, None], 0.0, 1.0)


def facade(s: Surface) -> np.ndarray:
    roof = s.face == 2
    r = np.flatnonzero(roof)
    if not len(r):  # the usual case: roofs are above the camera
        return _facade_wall(s)
    out = np.empty((len(s.fw), 3), dtype=np.float32)
    if len(r):
        x, y = s.local[r, 0], s.local[r, 1]
        g = 0.33 + 0.08 * fbm(x, y, s.seed[r] + np.uint32(9), s.fw[r], 0.5, 4)
        out[r] = g[:, None]
    w = np.flatnonzero(~roof)
    if len(w):
        out[w] = _facade_wall(s.subset(w))
    return out


def _facade_wall(s: Surface) -> np.ndarray:
    u, v, width, height = s.face_uv()
    fw = s.fw
    floor_h = s.param[:, 0]
    spacing = s.param[:, 1]
    shop = s.param[:, 2] > 0.5
    var = s.variant
    base = s.color
    grain = fbm(u, v, s.seed, fw, 0.3, 4, gain=0.6)
    stains = fbm(u * 0.7, v * 2.5, s.seed + np.uint32(77), fw * 2.5, 0.4, 2)
    wall = base * (1.0 + 0.3 * grain + 0.12 * stains)[:, None]
    bi = np.flatnonzero(var == 0)
    if len(bi):
        ub, vb, fb = u[bi], v[bi], fw[bi]
        course = 0.077
        offset = np.where(np.mod(np.floor(vb / course), 2) == 0, 0.0, 0.12).astype(np.float32)
        tone = cell_hash(ub + offset, vb, 0.24, course, s.seed[bi], fb) - 0.5
        mortar = np.maximum(
            stripes(vb, course, course - 0.012, course, fb), stripes(ub + offset, 0.24, 0.228, 0.24, fb)
        )
        brick_col = base[bi] * (1.0 + 0.35 * tone)[:, None]
        wall[bi] = lerp_rgb(brick_col, (0.72, 0.70, 0.66), 0.85 * mortar)
    pi = np.flatnonzero(var == 2)
    if len(pi):
        up, vp, fp = u[pi], v[pi], fw[pi]
        seam = np.maximum(stripes(up, 1.6, 1.56, 1.6, fp), stripes(vp, 1.2, 1.16, 1.2, fp))
        tone = cell_hash(up, vp, 1.6, 1.2, s.seed[pi], fp) - 0.5
        panel_col = wall[pi] * (1.0 + 0.15 * tone)[:, None]
        wall[pi] = lerp_rgb(panel_col, base[pi] * 0.45, seam)
    # window grid: the face width is divided into whole columns so windows sit evenly on every face
    cols = np.maximum(np.floor(width / spacing), 1.0)
    pitch = width / cols
    floor_v = np.mod(v, floor_h)
    storey = np.floor(v / floor_h)
    glass_wall = var == 3
    win_w = np.where(glass_wall, 0.94, 0.55).astype(np.float32)
    col_u = np.mod(u, pitch)
    win = pulse(col_u, pitch * (1 - win_w) / 2, pitch * (1 + win_w) / 2, fw) * pulse(
        floor_v, np.where(glass_wall, 0.1, 0.9), np.where(glass_wall, floor_h - 0.1, 2.3), fw
    )
    upper = (storey >= 1) & (v < height - 0.8)
    win = win * upper
    out = wall
    wi = np.flatnonzero(win > 0)
    if len(wi):
        uw, vw, fvw, fww, pw = u[wi], v[wi], floor_v[wi], fw[wi], pitch[wi]
        lit = hash01(np.floor(uw / pw), storey[wi], s.seed[wi])
        reflect = fbm(uw * 0.4 + vw * 0.3, vw * 0.6, s.seed[wi] + np.uint32(3), fww, 0.5, 3)
        glass = lerp_rgb((0.08, 0.11, 0.15), (0.50, 0.60, 0.70),
                         np.clip(fvw / floor_h[wi] + 0.3 * lit - 0.2 + 0.6 * reflect, 0, 1))
        glass[lit > 0.85] = (0.85, 0.75, 0.45)
        # mullions and transoms: a cross of frame bars in every window
        cu = col_u[wi]
        frame = np.maximum(pulse(cu, pw * 0.5 - 0.04, pw * 0.5 + 0.04, fww), pulse(fvw, 1.55, 1.62, fww))
        glass = lerp_rgb(glass, (0.82, 0.82, 0.80), frame * (~glass_wall[wi]))
        out[wi] = lerp_rgb(wall[wi], glass, win[wi])
    sill = pulse(floor_v, 0.78, 0.9, fw) * pulse(col_u, pitch * 0.2, pitch * 0.8, fw) * upper * (~glass_wall)
    out = lerp_rgb(out, (0.85, 0.85, 0.82), 0.7 * sill)
    # ground floor: shop windows and a sign band with letter-like blocks, or a door
    gi = np.flatnonzero(storey < 1)
    if len(gi):
        ug, fvg, fg, sh = u[gi], floor_v[gi], fw[gi], shop[gi]
        shop_win = pulse(fvg, 0.5, 2.4, fg) * stripes(ug, 3.0, 0.4, 2.7, fg) * sh
        door = pulse(fvg, 0.0, 2.2, fg) * stripes(ug, 7.3, 3.0, 4.2, fg) * (~sh)
        og = lerp_rgb(out[gi], (0.12, 0.14, 0.16), shop_win)
        og = lerp_rgb(og, (0.25, 0.17, 0.12), door)
        band = pulse(fvg, 2.55, floor_h[gi] - 0.1, fg) * sh
        bi = np.flatnonzero(band > 0)
        if len(bi):
            ub, vb, fb, sb = ug[bi], fvg[bi], fg[bi], s.seed[gi][bi]
            hue = hash01(np.floor(ub / 6.0), sb.astype(np.int64) % 977, 17)
            sign_col = np.stack([0.2 + 0.7 * hue, 0.3 + 0.5 * (1 - hue), 0.25 + 0.6 * np.mod(hue * 3, 1)], 1)
            letters = (cell_hash(ub, vb, 0.28, 0.22, sb + np.uint32(5), fb) > 0.45) * pulse(
                vb, 2.75, floor_h[gi][bi] - 0.3, fb
            )
            sign_col = lerp_rgb(sign_col, (0.95, 0.95, 0.92), letters * band_fade(0.28, fb))
            og[bi] = lerp_rgb(og[bi], sign_col, band[bi])
        out[gi] = og
    cornice = pulse(v, height - 0.5, height, fw)
    out = lerp_rgb(out, base * 0.7, cornice)
    return np.clip(out, 0.0, 1.0)


def band_fade(size: float, fw) -> np.ndarray:
    return np.clip((size / np.maximum(fw, 1e-6) - 2.0) * 0.5, 0.0, 1.0)


def car_body(s: Surface) -> np.ndarray:
    x, z = s.local[:, 0], s.local[:, 2]
    hx = s.half[:, 0]
    n = fbm(s.local[:, 0], s.local[:, 1] + z, s.seed, s.fw, 1.0, 3, gain=0.6)
    sheen = 0.85 + 0.3 * np.clip(z + 0.4, 0.0, 1.0)  # darker towards the sills, as under a sky dome
    out = s.color * (sheen * (1.0 + 0.15 * n))[:, None]
    trim = pulse(z, -1.0, -0.22, s.fw)  # dark sill and bumpers
    out = lerp_rgb(out, (0.07, 0.07, 0.08), 0.8 * trim)
    y_abs = np.abs(s.local[:, 1])
    lamp_band = pulse(z, 0.0, 0.16, s.fw) * pulse(y_abs, 0.45, 0.8, s.fw)
    front = (s.face == 0) & (s.sign > 0)
    back = (s.face == 0) & (s.sign < 0)
    out = lerp_rgb(out, (0.95, 0.95, 0.85), lamp_band * front)
    out = lerp_rgb(out, (0.80, 0.05, 0.05), lamp_band * back)
    # door seams on the sides
    side = s.face == 1
    seam = (stripes(x + hx, 1.45, 1.42, 1.45, s.fw) * (np.abs(x) < 1.3)) * side
    out = lerp_rgb(out, s.color * 0.4, seam)
    return np.clip(out, 0.0, 1.0)


def car_cabin(s: Surface) -> np.ndarray:
    u, v, _width, height = s.face_uv()
    roof = s.face == 2
    glass_mask = pulse(v, 0.05, height - 0.06, s.fw) * (1 - stripes(u, np.float32(1.2), 0.0, 0.12, s.fw))
    glass = lerp_rgb((0.08, 0.10, 0.13), (0.35, 0.42, 0.5), np.clip(v / np.maximum(height, 1e-3), 0, 1))
    out = lerp_rgb(s.color * 0.9, glass, glass_mask * (~roof))
    return np.clip(out, 0.0, 1.0)


def tyre(s: Surface) -> np.ndarray:
    n = fbm(s.local[:, 0], s.local[:, 2], s.seed, s.fw, 4.0, 3)
    rim = pulse(np.hypot(s.local[:, 0], s.local[:, 2]), 0.0, 0.18, s.fw) * (s.face == 1)
    out = lerp_rgb(s.color * (1.0 + 0.3 * n)[:, None], (0.6, 0.6, 0.62), rim)
    return np.clip(out, 0.0, 1.0)


def metal(s: Surface) -> np.ndarray:
    ang = np.arctan2(s.local[:, 1], s.local[:, 0]) * 0.1
    n = fbm(ang, s.local[:, 2] * 3.0, s.seed, s.fw, 1.0, 4)
    band = stripes(s.local[:, 2], 1.7, 0.0, 0.1, s.fw)
    out = s.color * (1.0 + 0.2 * n)[:, None]
    return np.clip(lerp_rgb(out, s.color * 0.5, band), 0.0, 1.0)


def bark(s: Surface) -> np.ndarray:
    r = np.maximum(s.half[:, 0], 1e-3)
    ang = np.arctan2(s.local[:, 1], s.local[:, 0])
    # the seam of the angle at ±π sits on the far side of a trunk; tiling by 2π·r keeps it invisible
    u = (ang + np.pi) * r
    n = fbm(u * 6.0, s.local[:, 2] * 0.8, s.seed, s.fw * 6.0, 1.0, 4)
    return np.clip(s.color * (1.0 + 0.45 * n)[:, None], 0.0, 1.0)


def foliage(s: Surface) -> np.ndarray:
    x, y, z = s.local[:, 0], s.local[:, 1], s.local[:, 2]
    a = fbm(x + 0.5 * z, y - 0.4 * z, s.seed, s.fw, 1.0, 5, gain=0.7)
    b = fbm((y + 0.3 * x) * 1.3, (z - 0.2 * y) * 1.3, s.seed + np.uint32(3), s.fw * 1.3, 2.0, 2)
    t = np.clip(0.5 + 1.6 * a + 0.6 * b, 0.0, 1.0)
    dark = s.color * 0.45
    light = np.clip(s.color * 1.5, 0.0, 1.0)
    return np.clip(lerp_rgb(dark, light, t), 0.0, 1.0)


def sign(s: Surface) -> np.ndarray:
    y, z = s.local[:, 1], s.local[:, 2]
    r = np.hypot(y, z)
    face = s.face == 0
    front = face & (s.sign > 0)
    var = s.variant
    red_ring = pulse(r, 0.26, 0.36, s.fw)
    disc = pulse(r, 0.0, 0.34, s.fw)
    inner = pulse(r, 0.0, 0.1, s.fw)
    white = np.array([0.92, 0.92, 0.9], dtype=np.float32)
    out = np.broadcast_to(white, (len(r), 3)).copy()
    out = np.where((var == 0)[:, None], lerp_rgb(out, (0.8, 0.08, 0.06), red_ring), out)
    blue = lerp_rgb(lerp_rgb(out, (0.1, 0.25, 0.7), disc), white, inner)
    out = np.where((var == 1)[:, None], blue, out)
    yellow = lerp_rgb((0.95, 0.75, 0.1), (0.1, 0.1, 0.1), pulse(np.abs(y) + np.abs(z), 0.22, 0.27, s.fw))
    out = np.where((var == 2)[:, None], yellow, out)
    return np.where(front[:, None], out, np.array([0.45, 0.46, 0.47], dtype=np.float32))


def crate(s: Surface) -> np.ndarray:
    u, v, _, _ = s.face_uv()
    var = s.variant
    n = fbm(u * 0.5, v * 4.0, s.seed, s.fw, 2.0, 3)
    wood = lerp_rgb((0.45, 0.30, 0.16), (0.62, 0.45, 0.26), 0.5 + 0.8 * n)
    wood = lerp_rgb(wood, (0.2, 0.13, 0.07), stripes(v, 0.15, 0.0, 0.015, s.fw))
    plastic = s.color * (1.0 + 0.15 * fbm(u, v, s.seed, s.fw, 3.0, 3))[:, None]
    label = pulse(v, 0.25, 0.45, s.fw) * stripes(u, 1.0, 0.2, 0.7, s.fw)
    plastic = lerp_rgb(plastic, (0.95, 0.95, 0.95), 0.8 * label)
    awning = lerp_rgb(s.color, (0.95, 0.95, 0.92), stripes(u, 0.6, 0.0, 0.3, s.fw))
    kiosk = np.where((v > 1.4)[:, None], awning, lerp_rgb((0.2, 0.22, 0.25), (0.7, 0.7, 0.65), 0.5 + 0.5 * n))
    out = np.where((var == 0)[:, None], wood, plastic)
    return np.clip(np.where((var == 3)[:, None], kiosk, out), 0.0, 1.0)


SHADERS = {0: facade, 1: car_body, 2: car_cabin, 3: tyre, 4: metal, 5: bark, 6: foliage, 7: sign, 8: crate, 9: plain}


# ------------------------------------------------------------------------------------------ ground


def road_surface(wx, wy, s, d, fw, seed: int, half_width: float, lane_width: float, crosswalks) -> np.ndarray:
    grain = fbm(wx, wy, seed, fw, 0.25, 5, gain=0.65)
    patches = smoothstep(0.55, 0.7, value_noise(wx * 0.06, wy * 0.06, seed + 11))
    cracks = 1.0 - smoothstep(0.0, 0.04, np.abs(fbm(wx, wy, seed + 13, fw * 4.0, 0.3, 2)))
    lane_c = lane_width / 2
    tracks = (np.exp(-(((np.abs(d) - lane_c) ** 2 - 0.64) ** 2) / 0.05)).astype(np.float32)
    g = 0.31 + 0.14 * grain - 0.05 * patches - 0.03 * tracks - 0.06 * cracks
    out = np.stack([g, g, g * 1.03], axis=1)
    ad = np.abs(d)
    paint = pulse(d, -0.07, 0.07, fw) * stripes(s, 12.0, 0.0, 3.0, fw)  # dashed centre line
    paint = np.maximum(paint, pulse(ad, lane_width - 0.07, lane_width + 0.07, fw))  # lane edge
    paint = np.maximum(paint, pulse(ad, lane_width, half_width - 0.3, fw) * stripes(s, 6.0, 0.0, 0.12, fw))
    if len(crosswalks):
        idx = np.clip(np.searchsorted(crosswalks, s), 1, len(crosswalks)) - 1
        near = np.minimum(np.abs(s - crosswalks[idx]), np.abs(s - crosswalks[np.minimum(idx + 1, len(crosswalks) - 1)]))
        zebra = pulse(near, -2.0, 2.0, fw) * stripes(d + 0.25, 1.0, 0.0, 0.5, fw) * (ad < half_width - 0.3)
        paint = np.maximum(paint, zebra.astype(np.float32))
    wear = 0.85 + 0.15 * value_noise(wx * 3.0, wy * 3.0, seed + 5)
    return np.clip(lerp_rgb(out, (0.86, 0.86, 0.82), paint * wear), 0.0, 1.0)


def sidewalk_surface(wx, wy, s, d, fw, seed: int, half_width: float) -> np.ndarray:
    ad = np.abs(d) - half_width
    tile = cell_hash(s, ad, 0.5, 0.5, seed + 21, fw) - 0.5
    seams = np.maximum(stripes(s, 0.5, 0.0, 0.015, fw), stripes(ad, 0.5, 0.0, 0.015, fw))
    grain = fbm(wx, wy, seed + 23, fw, 0.5, 4, gain=0.7)
    g = 0.58 + 0.1 * tile + 0.1 * grain
    out = np.stack([g, g * 0.98, g * 0.95], axis=1)
    out = lerp_rgb(out, (0.35, 0.34, 0.33), 0.7 * seams)
    kerb_stone = pulse(ad, 0.0, 0.3, fw)
    return np.clip(lerp_rgb(out, (0.72, 0.72, 0.70), kerb_stone), 0.0, 1.0)


def kerb_face(s, z, wx, wy, fw, seed: int) -> np.ndarray:
    g = 0.62 + 0.1 * fbm(s, z * 2.0 + 0.3 * wx, seed + 31, fw, 1.0, 3)
    return np.clip(np.stack([g, g, g * 0.97], axis=1), 0.0, 1.0)


def terrain_surface(wx, wy, fw, seed: int) -> np.ndarray:
    a = fbm(wx, wy, seed + 41, fw, 0.15, 6, gain=0.6)
    dirt = smoothstep(0.5, 0.75, value_noise(wx * 0.2, wy * 0.2, seed + 43))
    grass = lerp_rgb((0.16, 0.30, 0.10), (0.42, 0.55, 0.22), np.clip(0.5 + 1.2 * a, 0, 1))
    soil = lerp_rgb((0.30, 0.24, 0.16), (0.48, 0.40, 0.28), np.clip(0.5 + 1.2 * a, 0, 1))
    return np.clip(lerp_rgb(grass, soil, dirt), 0.0, 1.0)


def plain_ground(wx, wy, fw, seed: int) -> np.ndarray:
    g = 0.42 + 0.12 * fbm(wx, wy, seed + 51, fw, 0.25, 5)
    return np.clip(np.stack([g, g, g], axis=1), 0.0, 1.0)


FLOOR_VARIANTS = ("concrete", "tiles", "planks", "vinyl")


def floor_surface(wx, wy, fw, seed: int, variant: int, color) -> np.ndarray:
    """Indoor floors, world-anchored: sealed concrete with saw-cut joints, square tiles with grout, wooden
    planks along x, mottled vinyl; `color` tints them."""
    tint = np.asarray(color, dtype=np.float32)
    grain = fbm(wx, wy, seed + 71, fw, 0.8, 5, gain=0.7)
    if variant == 0:
        base = tint * (1.0 + 0.18 * grain)[:, None]
        joints = np.maximum(stripes(wx, 5.0, 0.0, 0.01, fw), stripes(wy, 5.0, 0.0, 0.01, fw))
        out = lerp_rgb(base, tint * 0.55, 0.8 * joints)
    elif variant == 1:
        tile = cell_hash(wx, wy, 0.45, 0.45, seed + 73, fw) - 0.5
        base = tint * (1.0 + 0.25 * tile + 0.08 * grain)[:, None]
        grout = np.maximum(stripes(wx, 0.45, 0.0, 0.012, fw), stripes(wy, 0.45, 0.0, 0.012, fw))
        out = lerp_rgb(base, (0.25, 0.24, 0.22), 0.8 * grout)
    elif variant == 2:
        row = np.floor(wy / 0.18)
        stagger = hash01(row, row * 0 + 7, seed + 75) * 2.0
        plank = cell_hash(wx + stagger, wy, 2.0, 0.18, seed + 77, fw) - 0.5
        wood = fbm(wx * 0.15, wy * 3.0, seed + 79, fw, 4.0, 3)
        base = tint * (1.0 + 0.35 * plank + 0.2 * wood)[:, None]
        seams = np.maximum(stripes(wy, 0.18, 0.0, 0.006, fw), stripes(wx + stagger, 2.0, 0.0, 0.006, fw))
        out = lerp_rgb(base, tint * 0.4, 0.8 * seams)
    else:
        blot = value_noise(wx * 1.5, wy * 1.5, seed + 81) - 0.5
        out = tint * (1.0 + 0.3 * blot + 0.12 * grain)[:, None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def sky(dx, dy, dz, seed: int, clouds: float) -> np.ndarray:
    """Sky colour from the (world) ray direction only: it sits at infinity, like its depth."""
    norm = np.sqrt(dx * dx + dy * dy + dz * dz)
    el = np.clip(dz / norm, -1.0, 1.0)
    t = np.clip(el * 2.5, 0.0, 1.0)
    out = lerp_rgb((0.80, 0.85, 0.90), (0.35, 0.55, 0.85), t)
    if clouds > 0:
        up = np.maximum(el, 0.02)
        px, py = dx / norm / up, dy / norm / up
        n = value_noise(px * 3.0, py * 3.0, seed + 61) * 0.6 + value_noise(px * 7.0, py * 7.0, seed + 62) * 0.4
        c = smoothstep(0.45, 0.75, n) * clouds * np.clip(el * 8.0, 0, 1)
        out = lerp_rgb(out, (0.95, 0.95, 0.96), c)
    return out
