"""Multi-resolution patch encoder of Depth Pro: an image pyramid cut into overlapping ViT-sized windows, one
shared ViT over all windows, a second ViT over the coarsest level, and projection/upsampling blocks that turn
the token grids into a feature pyramid for the decoder.

Geometry (ViT input `v`, network input `S = 4·v`; the reference has v = 384, S = 1536):

    level 0: S      → 5×5 windows of v, stride 0.75·v (25 % overlap)
    level 1: S / 2  → 3×3 windows of v, stride 0.50·v (50 % overlap)
    level 2: S / 4  → the whole image (= one window)

All window positions are Python integers fixed at construction, so tracing yields static slices and the exported
graph has no data-dependent control flow. Windows are stitched back by dropping half the overlap (in tokens) on
each interior edge, which is the reference's simplified merge (not the paper's Voronoi merge).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_node.networks.vit import VisionTransformer, tokens_to_grid

# Overlap of neighbouring windows at pyramid levels 0 and 1 (fixed by the released model's training).
LEVEL_OVERLAP = (0.25, 0.5)
# The network input is the ViT input times this; levels 0..2 are S, S/2, S/4.
PYRAMID_FACTOR = 4
# Supported ViT patch sizes → how many ×2 upsamplings fewer than the reference (16-px patches) they need.
PATCH_SHIFT = {16: 0, 8: 1}


class WindowGrid:
    """Static sliding-window layout of one pyramid level: window starts and the token crop used when merging."""

    def __init__(self, image_size: int, window: int, patch_size: int, overlap: float):
        stride = int(window * (1 - overlap))
        steps = -(-(image_size - window) // stride) + 1  # ceil, as the reference
        overlap_px = window - stride
        if (steps - 1) * stride + window != image_size:
            raise ValueError(f"{steps} windows of {window} at stride {stride} do not tile {image_size} px exactly")
        if overlap_px % (2 * patch_size):
            raise ValueError(
                f"window overlap {overlap_px} px is not an even number of {patch_size}-px patches; "
                "choose a ViT input that is a multiple of 8 patches"
            )
        self.steps = steps
        self.starts = [i * stride for i in range(steps)]
        self.window = window
        self.crop = overlap_px // patch_size // 2  # tokens dropped on each interior edge
        self.tokens = window // patch_size  # token grid side of one window (static, not read off tensors)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (steps²·B, C, w, w), row-major over windows, batch innermost."""
        w = self.window
        return torch.cat([x[..., r : r + w, c : c + w] for r in self.starts for c in self.starts], dim=0)

    def merge(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        """Inverse of `split` on feature maps: crop the overlaps and concatenate into one map."""
        p, n, g = self.crop, self.steps, self.tokens
        rows = []
        for j in range(n):
            row = []
            for i in range(n):
                t = x[batch * (j * n + i) : batch * (j * n + i + 1)]
                rows_kept = slice(p if j > 0 else 0, g - p if j < n - 1 else g)
                cols_kept = slice(p if i > 0 else 0, g - p if i < n - 1 else g)
                row.append(t[..., rows_kept, cols_kept])
            rows.append(torch.cat(row, dim=-1))
        return torch.cat(rows, dim=-2)


def project_upsample(dim_in: int, dim_out: int, upsample_layers: int, dim_int: int | None = None) -> nn.Sequential:
    """1×1 projection then stride-2 transposed convs; all bias-free, as in the checkpoint (keys `N.weight`)."""
    dim_int = dim_out if dim_int is None else dim_int
    layers: list[nn.Module] = [nn.Conv2d(dim_in, dim_int, kernel_size=1, bias=False)]
    layers += [
        nn.ConvTranspose2d(dim_int if i == 0 else dim_out, dim_out, kernel_size=2, stride=2, bias=False)
        for i in range(upsample_layers)
    ]
    return nn.Sequential(*layers)


class DepthProEncoder(nn.Module):
    """Returns five maps, finest first (reference sizes for S = 1536, decoder 256, dims [256, 512, 1024, 1024]):
    256@768² and 256@384² from the two hooked blocks, 512@192² (level 0), 1024@96² (level 1), 1024@48² (level 2
    fused with the image encoder)."""

    def __init__(
        self,
        patch_encoder: VisionTransformer,
        image_encoder: VisionTransformer,
        hook_block_ids: list[int],
        dims_encoder: list[int],
        decoder_features: int,
    ):
        super().__init__()
        if len(dims_encoder) != 4:
            raise ValueError(f"encoder_feature_dims needs 4 entries, got {dims_encoder}")
        if len(hook_block_ids) < 2:
            raise ValueError(f"hooks needs at least 2 block ids (the first two are used), got {hook_block_ids}")
        if patch_encoder.patch_embed.img_size != image_encoder.patch_embed.img_size:
            raise ValueError("patch and image encoders must share the ViT input size")
        self.patch_encoder = patch_encoder
        self.image_encoder = image_encoder
        # Only the first two ids are hooked; the reference's config lists four, the last two are unused.
        self.hook_block_ids = [int(i) for i in hook_block_ids[:2]]
        self.dims_encoder = list(dims_encoder)

        vit_size = patch_encoder.patch_embed.img_size
        patch = patch_encoder.patch_embed.patch_size
        self.vit_size = vit_size
        self.img_size = vit_size * PYRAMID_FACTOR
        self.grid = patch_encoder.grid_size
        self.level0 = WindowGrid(self.img_size, vit_size, patch, LEVEL_OVERLAP[0])
        self.level1 = WindowGrid(self.img_size // 2, vit_size, patch, LEVEL_OVERLAP[1])

        e_patch, e_image = patch_encoder.embed_dim, image_encoder.embed_dim
        d = self.dims_encoder
        # The decoder wants maps at S/2 … S/32. 16-px patches (the reference) give token grids at S/16, S/32 and
        # S/64, hence 3/2/1/1/1 transposed-conv upsamplings; 8-px patches give grids twice as fine and need one
        # fewer each (the coarsest map then only projects: a 1×1 conv in place of the ×2 transposed conv).
        shift = PATCH_SHIFT.get(patch)
        if shift is None:
            raise ValueError(f"patch_size {patch} is not supported: use 16 (the reference) or 8")
        self.upsample_latent0 = project_upsample(e_patch, decoder_features, 3 - shift, dim_int=d[0])
        self.upsample_latent1 = project_upsample(e_patch, d[0], 2 - shift)
        self.upsample0 = project_upsample(e_patch, d[1], 1 - shift)
        self.upsample1 = project_upsample(e_patch, d[2], 1 - shift)
        self.upsample2 = project_upsample(e_patch, d[3], 1 - shift)
        self.upsample_lowres: nn.Module = (
            nn.ConvTranspose2d(e_image, d[3], kernel_size=2, stride=2, bias=True)
            if shift == 0
            else nn.Conv2d(e_image, d[3], kernel_size=1, bias=True)
        )
        self.fuse_lowres = nn.Conv2d(2 * d[3], d[3], kernel_size=1, bias=True)

    def pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # scale_factor (not size) and no antialias: what the reference does, so the weights see the same input
        x1 = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        x2 = F.interpolate(x, scale_factor=1.0 / PYRAMID_FACTOR, mode="bilinear", align_corners=False)
        return x, x1, x2

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = x.shape[0]
        x0, x1, x2 = self.pyramid(x)
        p0 = self.level0.split(x0)
        p1 = self.level1.split(x1)
        n0, n1 = p0.shape[0], p1.shape[0]

        # One batch through the shared patch encoder: 25 + 9 + 1 windows per image.
        tokens, (hook0, hook1) = self.patch_encoder.forward_with_intermediates(
            torch.cat([p0, p1, x2], dim=0), self.hook_block_ids
        )
        g = self.grid
        latent0 = self.level0.merge(tokens_to_grid(hook0[:n0], g), b)
        latent1 = self.level0.merge(tokens_to_grid(hook1[:n0], g), b)
        feats = tokens_to_grid(tokens, g)
        f0 = self.level0.merge(feats[:n0], b)
        f1 = self.level1.merge(feats[n0 : n0 + n1], b)
        f2 = feats[n0 + n1 :]

        glob = tokens_to_grid(self.image_encoder(x2), self.image_encoder.grid_size)
        glob = self.upsample_lowres(glob)
        glob = self.fuse_lowres(torch.cat([self.upsample2(f2), glob], dim=1))
        return [
            self.upsample_latent0(latent0),
            self.upsample_latent1(latent1),
            self.upsample0(f0),
            self.upsample1(f1),
            glob,
        ]
