"""Band-limited procedural patterns: hashed value noise, fBm and box-filtered stripes.

Every pattern takes the pixel footprint `fw` (metres of surface per pixel) and drops detail finer than about
two pixels, fading it in smoothly above that. Without it, far texture aliases and changes from frame to frame,
and photometric matching (what self-supervised depth training and our reprojection tests rely on) breaks.
All functions are pure NumPy on 1-D arrays of surface points; coordinates may be float64 for precision.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint32(0x8DA6B343)
_M2 = np.uint32(0xD8163841)
_M3 = np.uint32(0x2C1B3C6D)
_M4 = np.uint32(0x297A2D39)
_INV24 = np.float32(1.0 / (1 << 24))


def _mix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h *= _M3
    h ^= h >> np.uint32(15)
    return h


def hash01(ix: np.ndarray, iy: np.ndarray, seed) -> np.ndarray:
    """Uniform [0, 1) float32 per integer lattice point (ix, iy are int arrays), deterministic in `seed`."""
    h = (ix.astype(np.int64).astype(np.uint32) * _M1) ^ (iy.astype(np.int64).astype(np.uint32) * _M2)
    h = _mix(h ^ (np.asarray(seed, dtype=np.uint32) * _M4))
    return (h >> np.uint32(8)).astype(np.float32) * _INV24


def _lattice_table() -> np.ndarray:
    """256 × 256 random lattice values, padded to 257 × 257 with wrapped copies so the +1 neighbours of any
    cell are plain offsets in the flat table."""
    t = np.random.default_rng(0x5EED).random((256, 256), dtype=np.float32)
    return np.pad(t, ((0, 1), (0, 1)), mode="wrap").reshape(-1)


_TABLE = _lattice_table()


def value_noise(x: np.ndarray, y: np.ndarray, seed) -> np.ndarray:
    """Smooth value noise in [0, 1) with unit lattice spacing.

    Lattice values come from a fixed 256 × 256 table (four gathers instead of four hashes: this function is
    most of the renderer's shading time); the seed shifts the table, so the pattern repeats only every 256
    cells of a given octave, and differently per seed and octave."""
    sx, sy = _seed_shift(seed)
    return _lattice_noise(x, y, sx, sy)


def _seed_shift(seed) -> tuple[np.ndarray, np.ndarray]:
    seed = np.asarray(seed, dtype=np.uint32)
    return (seed & np.uint32(255)).astype(np.int64), ((seed >> np.uint32(8)) & np.uint32(255)).astype(np.int64)


def _lattice_noise(x, y, sx, sy) -> np.ndarray:
    xf = np.floor(x)
    yf = np.floor(y)
    fx = (x - xf).astype(np.float32, copy=False)
    fy = (y - yf).astype(np.float32, copy=False)
    idx = ((yf.astype(np.int64) + sy) & 255) * 257 + ((xf.astype(np.int64) + sx) & 255)
    a = _TABLE.take(idx)
    b = _TABLE.take(idx + 1)
    c = _TABLE.take(idx + 257)
    d = _TABLE.take(idx + 258)
    u = fx * fx * (3.0 - 2.0 * fx)
    v = fy * fy * (3.0 - 2.0 * fy)
    ab = a + (b - a) * u
    cd = c + (d - c) * u
    return ab + (cd - ab) * v


def band_weight(freq: float, fw: np.ndarray, min_px: float = 2.0) -> np.ndarray:
    """1 where a pattern of spatial frequency `freq` (cycles/m) spans ≥ 2·min_px pixels per cycle, 0 at ≤ min_px."""
    return np.clip((1.0 / (freq * fw) - min_px) / min_px, 0.0, 1.0).astype(np.float32)


def fbm(x, y, seed, fw, base_freq: float, octaves: int, gain: float = 0.5, min_px: float = 2.0) -> np.ndarray:
    """Fractal noise in about [-1, 1]; octaves too fine for the footprint fade out (mean 0). Fine octaves are
    evaluated only on the pixels near enough to resolve them, which is most of the saving at a distance."""
    n_pix = np.shape(x)[0]
    out = np.zeros(n_pix, dtype=np.float32)
    norm = sum(gain**o for o in range(octaves))
    amp = 2.0 / norm
    freq = base_freq
    sx, sy = _seed_shift(seed)
    per_pixel_seed = sx.ndim > 0
    fdt = np.result_type(x, np.float32).type
    for o in range(octaves):
        sel = fw < 1.0 / (min_px * freq)  # band_weight > 0
        count = int(np.count_nonzero(sel))
        if count == 0:
            break
        ox, oy = (o * 157) & 255, (o * 89) & 255  # a different table shift per octave
        f = fdt(freq)
        if count > 0.6 * n_pix:
            n = _lattice_noise(x * f, y * f, sx + ox, sy + oy)
            out += np.float32(amp) * band_weight(freq, fw, min_px) * (n - np.float32(0.5))
        else:
            ii = np.flatnonzero(sel)
            n = _lattice_noise(x[ii] * f, y[ii] * f, (sx[ii] if per_pixel_seed else sx) + ox,
                               (sy[ii] if per_pixel_seed else sy) + oy)
            out[ii] += np.float32(amp) * band_weight(freq, fw[ii], min_px) * (n - np.float32(0.5))
        amp *= gain
        freq *= 2.0
    return out


def pulse(x, lo: float, hi: float, fw) -> np.ndarray:
    """Box-filtered indicator of lo ≤ x ≤ hi (x in metres, fw the footprint)."""
    fw = np.maximum(fw, 1e-6)
    a = np.clip((x - lo) / fw + 0.5, 0.0, 1.0)
    b = np.clip((x - hi) / fw + 0.5, 0.0, 1.0)
    return (a - b).astype(np.float32)


def stripes(x, period, lo: float, hi: float, fw) -> np.ndarray:
    """Box-filtered periodic indicator of lo ≤ (x mod period) ≤ hi (0 ≤ lo < hi ≤ period), exact for any
    footprint via the indicator's running integral; fades to its duty cycle below a few pixels per period."""
    fw = np.maximum(fw, 1e-6)
    half = 0.5 * fw
    a, b = x - half, x + half
    na, nb = np.floor(a / period), np.floor(b / period)
    ma, mb = a - na * period, b - nb * period
    width = hi - lo
    integral = (nb - na) * width + np.clip(mb - lo, 0.0, width) - np.clip(ma - lo, 0.0, width)
    p = integral / fw
    duty = width / period
    w = np.clip((period / fw - 2.0) * 0.5, 0.0, 1.0)
    return (w * p + (1.0 - w) * duty).astype(np.float32)


def cell_hash(x, y, size_x: float, size_y: float, seed, fw) -> np.ndarray:
    """A random value in [0, 1) per rectangular cell (tiles, bricks); fades to 0.5 when cells get small."""
    h = hash01(np.floor(x / size_x), np.floor(y / size_y), seed)
    w = band_weight(1.0 / min(size_x, size_y), fw)
    return w * h + (1.0 - w) * 0.5


def smoothstep(e0: float, e1: float, x) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def lerp_rgb(a, b, t) -> np.ndarray:
    """Per-pixel blend of colours a → b by t (n,); a, b are (3,) or (n, 3)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return a + (b - a) * np.asarray(t, dtype=np.float32)[:, None]
