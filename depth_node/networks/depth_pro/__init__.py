"""Depth Pro-style metric ViT (Bochkovskii et al. 2024), written in-repo with the released checkpoint's
state_dict keys, so Apple's `depth_pro.pt` loads unchanged (preset `full`).

Network: a 3-level pyramid of the S×S input (S = 4 × ViT input); 5×5 and 3×3 overlapping ViT-sized windows at
the two finer levels and the whole image at the coarsest go through one shared ViT (the patch encoder); a second
ViT sees the coarsest level (image encoder); two intermediate blocks of the patch encoder feed the finest decoder
levels; a DPT-style decoder and a small head give canonical inverse depth at S×S; a FOV head (own ViT + decoder
features) gives the horizontal field of view. Metric depth = 1 / clamp(cid · W / f_px, 1e-4, 1e4), see
`canonical_to_metric`.

Presets (params; GFLOP of one batch-1 forward at S×S, 2 FLOP per multiply-add, torch FlopCounter, attention
matmuls included; the reference notes' 18.04 TFLOP for `full` is the same count without them):

    preset  ViT dim/depth/heads, input   S      decoder  params     GFLOP (without attention)
    full    1024/24/16, 384 px           1536   256      951.99 M   19 247 (18 036)
    fast    384/12/6,   256 px           1024    64       69.38 M      619    (574)
    tiny    64/4/2,     384 px           1536    32        1.22 M      118    (106)

`full` is the released model: ~18 TFLOP, seconds per frame on a Jetson Orin, so at best a keyframe model there.
`fast` keeps the reference geometry (5×5 / 3×3 windows with 25 % / 50 % overlap, two hooked blocks at the
same relative depth) at a 256-px ViT-S/16 (DINOv2-S-sized) and a 1024-px input: ~30× fewer FLOPs, which is a
few Hz on an Orin-class GPU in fp16 by FLOP count [estimate, not measured on a Jetson]. It has no released
weights: it must be trained or distilled from `full`. `tiny` exists for tests (fixture weights). Use
`count_params` / `forward_gflop` to recompute the table.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from depth_node.networks.canonical_depth import INVERSE_DEPTH_CLAMP
from depth_node.networks.depth_pro.export import DepthProExport
from depth_node.networks.depth_pro.network import (
    DepthPro,
    DepthProConfigError,
    canonical_to_metric,
    count_params,
    focal_from_fov,
    forward_gflop,
    network_input,
    network_size,
    resolve_config,
)

_FULL: dict[str, Any] = {
    "preset": "full",
    "img_size": 384,
    "patch_size": 16,
    "embed_dim": 1024,
    "depth": 24,
    "num_heads": 16,
    "mlp_ratio": 4.0,
    "qkv_bias": True,
    "layer_scale": 1e-5,
    "hooks": [5, 11, 17, 23],
    "encoder_feature_dims": [256, 512, 1024, 1024],
    "decoder_features": 256,
    "use_fov_head": True,
    "fov_encoder": True,
    "last_dims": [32, 1],
}

PRESETS: dict[str, dict[str, Any]] = {
    "full": _FULL,
    "fast": {
        **_FULL,
        "preset": "fast",
        "img_size": 256,
        "embed_dim": 384,
        "depth": 12,
        "num_heads": 6,
        "hooks": [2, 5, 8, 11],
        "encoder_feature_dims": [96, 192, 384, 384],
        "decoder_features": 64,
    },
    "small": {
        **_FULL,
        "preset": "small",
        "img_size": 64,
        "patch_size": 8,
        "embed_dim": 128,
        "depth": 4,
        "num_heads": 2,
        "hooks": [0, 1, 2, 3],
        "encoder_feature_dims": [32, 64, 128, 128],
        "decoder_features": 32,
    },
    "tiny": {
        **_FULL,
        "preset": "tiny",
        "embed_dim": 64,
        "depth": 4,
        "num_heads": 2,
        "hooks": [0, 1, 2, 3],
        "encoder_feature_dims": [16, 32, 64, 64],
        "decoder_features": 32,
    },
}


def preset(name: str) -> dict[str, Any]:
    """A copy of a preset config (callers may edit it without touching `PRESETS`)."""
    if name not in PRESETS:
        raise DepthProConfigError(f"unknown Depth Pro preset {name!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_depth_pro(config: dict[str, Any] | str) -> nn.Module:
    """The network for a config dict (as stored in a model file) or a preset name; untrained weights.

    Build under `torch.device("meta")` to get shapes without allocating (the full model is ~3.8 GB in fp32).
    """
    return DepthPro(preset(config) if isinstance(config, str) else config)


__all__ = [
    "INVERSE_DEPTH_CLAMP",
    "PRESETS",
    "DepthPro",
    "DepthProConfigError",
    "DepthProExport",
    "build_depth_pro",
    "canonical_to_metric",
    "count_params",
    "focal_from_fov",
    "forward_gflop",
    "network_input",
    "network_size",
    "preset",
    "resolve_config",
]
