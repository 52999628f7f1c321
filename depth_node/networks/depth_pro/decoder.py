"""Depth Pro's multi-resolution convolutional decoder (a DPT-style fusion stack) with the checkpoint's keys.

Level 0 (finest) gets no projection when its width already equals the decoder width, so the checkpoint has no
`decoder.convs.0` key; the residual units are `Sequential(ReLU, Conv, ReLU, Conv)`, hence `residual.1/.3`.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualUnit(nn.Module):
    """Pre-activation residual unit (ReLU-conv3×3-ReLU-conv3×3) plus identity."""

    def __init__(self, features: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.ReLU(False),
            nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True),
            nn.ReLU(False),
            nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class FeatureFusionBlock(nn.Module):
    """Adds the skip (after a residual unit) to the running features, refines, optionally upsamples ×2."""

    def __init__(self, features: int, deconv: bool):
        super().__init__()
        self.resnet1 = ResidualUnit(features)
        self.resnet2 = ResidualUnit(features)
        self.deconv = nn.ConvTranspose2d(features, features, kernel_size=2, stride=2, bias=False) if deconv else None
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resnet1(skip)
        x = self.resnet2(x)
        if self.deconv is not None:
            x = self.deconv(x)
        return self.out_conv(x)


class MultiresConvDecoder(nn.Module):
    """Fuses encoder maps from coarsest to finest; returns (finest features, projected coarsest features).

    The coarsest projected map is returned too because the FOV head reads it.
    """

    def __init__(self, dims_encoder: list[int], dim_decoder: int):
        super().__init__()
        self.dims_encoder = list(dims_encoder)
        self.dim_decoder = dim_decoder
        convs: list[nn.Module] = [
            nn.Identity()
            if self.dims_encoder[0] == dim_decoder
            else nn.Conv2d(self.dims_encoder[0], dim_decoder, kernel_size=1, bias=False)
        ]
        convs += [nn.Conv2d(d, dim_decoder, kernel_size=3, padding=1, bias=False) for d in self.dims_encoder[1:]]
        self.convs = nn.ModuleList(convs)
        self.fusions = nn.ModuleList(
            [FeatureFusionBlock(dim_decoder, deconv=i != 0) for i in range(len(self.dims_encoder))]
        )

    def forward(self, encodings: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(encodings) != len(self.dims_encoder):
            raise ValueError(f"decoder expects {len(self.dims_encoder)} encoder levels, got {len(encodings)}")
        lowres = self.convs[-1](encodings[-1])
        x = self.fusions[-1](lowres)
        for i in range(len(encodings) - 2, -1, -1):
            x = self.fusions[i](x, self.convs[i](encodings[i]))
        return x, lowres
