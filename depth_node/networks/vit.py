"""A plain Vision Transformer whose parameter names and numerics match timm's `VisionTransformer` (the DINOv2
flavour: class token, learned absolute position embedding that includes the class position, pre-norm blocks
with layer scale, LayerNorm eps 1e-6, exact GELU, fused qkv with bias).

Why not timm: it is not a dependency of this package, and the Depth Pro checkpoint only needs the forward pass of
one configuration. Writing it here also lets us

* return intermediate block outputs explicitly instead of through forward hooks (the reference stores hook
  outputs on the module, which makes a shared model unsafe to call from two threads);
* keep the graph static for ONNX export: the position embedding is used as stored (no resampling path that
  the exporter could leave in the graph), and the input size is checked against the configured size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-6  # timm's ViT default; the released Depth Pro weights were trained with it


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection; timm's key is `patch_embed.proj`."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"ViT input {img_size} is not a multiple of the patch size {patch_size}")
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The position embedding is only valid for the configured grid: fail loudly instead of silently
        # broadcasting a wrong embedding (shapes are static, so this costs nothing in an exported graph).
        if not torch.jit.is_tracing() and (x.shape[-2] != self.img_size or x.shape[-1] != self.img_size):
            raise ValueError(f"ViT expects {self.img_size}x{self.img_size} input, got {tuple(x.shape[-2:])}")
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, C), row-major over the patch grid


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        # timm's 1/sqrt(head_dim), passed as a constant: left to SDPA, the exported graph recomputes it from
        # the tensor shape (Shape/Cast/Sqrt nodes per block).
        x = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class LayerScale(nn.Module):
    """Per-channel scale on each residual branch (DINOv2); the parameter is called `gamma` as in timm."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, layer_scale: float | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """Feature extractor only (no classification head, no `fc_norm`): Depth Pro uses all tokens.

    `forward` returns the final-normed tokens (B, 1 + N, C), class token first, like timm's `forward_features`.
    """

    num_prefix_tokens = 1

    def __init__(
        self,
        img_size: int = 384,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_scale: float | None = 1e-5,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.blocks = nn.ModuleList(
            [Block(embed_dim, num_heads, mlp_ratio, qkv_bias, layer_scale) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        """timm-like init so an untrained network is a sensible starting point (meta tensors are skipped)."""
        if self.pos_embed.is_meta:
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def grid_size(self) -> int:
        return self.patch_embed.grid_size

    def forward_with_intermediates(
        self, x: torch.Tensor, block_ids: Sequence[int] = ()
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final tokens plus the raw outputs (before the final norm, class token included) of `block_ids`."""
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], 1, self.embed_dim)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        ids = [int(i) for i in block_ids]
        if any(not 0 <= i < len(self.blocks) for i in ids):
            raise ValueError(f"block ids {ids} out of range for a {len(self.blocks)}-block ViT")
        kept: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in ids:
                kept[i] = x
        return self.norm(x), [kept[i] for i in ids]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_intermediates(x)[0]


def tokens_to_grid(tokens: torch.Tensor, grid: int, prefix: int = 1) -> torch.Tensor:
    """(B, prefix + grid², C) tokens → (B, C, grid, grid) feature map, class token dropped."""
    b, _, c = tokens.shape
    return tokens[:, prefix:, :].reshape(b, grid, grid, c).permute(0, 3, 1, 2)
