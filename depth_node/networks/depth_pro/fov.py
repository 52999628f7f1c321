"""Field-of-view head: predicts the horizontal FOV (degrees) from the decoder's coarsest features, optionally
helped by its own ViT on the quarter-resolution image (the released model has one; the paper's Tab. 14 shows
it matters)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_node.networks.vit import VisionTransformer


def _half(n: int) -> int:
    """Output size of a 3×3, stride-2, padding-1 convolution."""
    return (n - 1) // 2 + 1


class FOVNetwork(nn.Module):
    """Keys: `encoder.0` (ViT) + `encoder.1` (Linear), `downsample.0`, `head.{0,2,4}` — or, without an encoder,
    `head.{0,2,4,6}`. The last conv's kernel covers the whole remaining map (6×6 for the reference geometry), so
    it is derived from the input size rather than hard-coded."""

    def __init__(
        self,
        num_features: int,
        lowres_size: int,
        fov_encoder: VisionTransformer | None = None,
        input_scale: float = 0.25,
    ):
        super().__init__()
        self.input_scale = float(input_scale)  # network input → FOV ViT input (a constant: static graph)
        f = num_features
        # With 16-px patches the FOV ViT's grid is half the decoder's coarsest map (stride-2 downsample, as the
        # reference); with 8-px patches they are the same size and the downsample keeps the size (stride 1).
        stride = 1 if fov_encoder is not None and fov_encoder.grid_size == lowres_size else 2
        down = [nn.Conv2d(f, f // 2, kernel_size=3, stride=stride, padding=1), nn.ReLU(True)]
        size = _half(lowres_size) if stride == 2 else lowres_size
        if fov_encoder is not None and fov_encoder.grid_size != size:
            raise ValueError(f"FOV ViT grid {fov_encoder.grid_size} does not match the {size}² downsampled features")
        size = _half(_half(size))
        head: list[nn.Module] = [
            nn.Conv2d(f // 2, f // 4, kernel_size=3, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(f // 4, f // 8, kernel_size=3, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(f // 8, 1, kernel_size=size, stride=1, padding=0),
        ]
        self.encoder: nn.Sequential | None
        if fov_encoder is not None:
            self.encoder = nn.Sequential(fov_encoder, nn.Linear(fov_encoder.embed_dim, f // 2))
            self.downsample = nn.Sequential(*down)
        else:
            self.encoder = None
            head = down + head
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor, lowres: torch.Tensor) -> torch.Tensor:
        """x: network input (B, 3, S, S); lowres: decoder's coarsest features. Returns FOV in degrees (B,1,1,1)."""
        if self.encoder is not None:
            vit: VisionTransformer = self.encoder[0]  # type: ignore[assignment]
            small = F.interpolate(x, scale_factor=self.input_scale, mode="bilinear", align_corners=False)
            tokens = self.encoder(small)[:, vit.num_prefix_tokens :]  # (B, N, C/2)
            lowres = self.downsample(lowres)
            b, c, h, w = lowres.shape
            lowres = tokens.transpose(1, 2).reshape(b, c, h, w) + lowres
        return self.head(lowres)
