"""Monodepth2's photometric augmentation in plain torch (no torchvision): torchvision's ColorJitter semantics.

One draw per sample (factors and the order of the four operations) is applied to every frame of the sample, so
the pose net sees consistent frames; the loss always uses the un-augmented images. Draws come from a NumPy
generator the caller seeds per sample, which makes augmentation independent of worker count and resumable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class JitterDraw:
    brightness: float
    contrast: float
    saturation: float
    hue: float
    order: tuple[int, ...]


def draw_jitter(rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue: float):
    """Factors as torchvision draws them: uniform in [1 − x, 1 + x] (hue: [−h, h]), random operation order."""
    return JitterDraw(
        float(rng.uniform(1 - brightness, 1 + brightness)),
        float(rng.uniform(1 - contrast, 1 + contrast)),
        float(rng.uniform(1 - saturation, 1 + saturation)),
        float(rng.uniform(-hue, hue)),
        tuple(int(i) for i in rng.permutation(4)),
    )


def _gray(img: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma, as torchvision's rgb_to_grayscale; img (..., 3, H, W)."""
    r, g, b = img.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: float) -> torch.Tensor:
    return (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(-3)
    maxc = torch.max(img, dim=-3).values
    minc = torch.min(img, dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_div = torch.where(eqc, ones, cr)
    rc = (maxc - r) / cr_div
    gc = (maxc - g) / cr_div
    bc = (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def hsv_to_rgb(img: torch.Tensor) -> torch.Tensor:
    h, s, v = img.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int32) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    mask = i.unsqueeze(-3) == torch.arange(6, device=i.device).view(-1, 1, 1)
    a1 = torch.stack((v, q, p, p, t, v), dim=-3)
    a2 = torch.stack((t, v, v, q, p, p), dim=-3)
    a3 = torch.stack((p, p, t, v, v, q), dim=-3)
    a4 = torch.stack((a1, a2, a3), dim=-4)
    return torch.einsum("...ijk,...xijk->...xjk", mask.to(img.dtype), a4)


def adjust_hue(img: torch.Tensor, shift: float) -> torch.Tensor:
    if shift == 0:
        return img
    hsv = rgb_to_hsv(img)
    h, s, v = hsv.unbind(-3)
    h = (h + shift) % 1.0
    return hsv_to_rgb(torch.stack((h, s, v), dim=-3))


def apply_jitter(img: torch.Tensor, d: JitterDraw) -> torch.Tensor:
    """img (..., 3, H, W) in [0, 1]; contrast uses each frame's own mean grey level (torchvision does too)."""
    for op in d.order:
        if op == 0:
            img = _blend(img, torch.zeros_like(img), d.brightness)
        elif op == 1:
            mean = _gray(img).mean(dim=(-3, -2, -1), keepdim=True)
            img = _blend(img, mean, d.contrast)
        elif op == 2:
            img = _blend(img, _gray(img), d.saturation)
        else:
            img = adjust_hue(img, d.hue)
    return img
