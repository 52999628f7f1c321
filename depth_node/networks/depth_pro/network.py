"""The Depth Pro network assembled from a plain config dict, plus the metric post-processing of `infer`.

The config is JSON-able on purpose: it is stored in the model file and in ONNX metadata, and a model file must
rebuild exactly the network its weights came from.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depth_node.errors import DepthNodeError
from depth_node.networks.canonical_depth import depth_from_inverse, inverse_depth_from_canonical
from depth_node.networks.depth_pro.decoder import MultiresConvDecoder
from depth_node.networks.depth_pro.encoder import PATCH_SHIFT, PYRAMID_FACTOR, DepthProEncoder
from depth_node.networks.depth_pro.fov import FOVNetwork
from depth_node.networks.vit import VisionTransformer

# Keys every config must carry (they fix parameter shapes or the function computed) ...
REQUIRED_KEYS = (
    "img_size",
    "patch_size",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
    "hooks",
    "encoder_feature_dims",
    "decoder_features",
)
# ... and keys with a default (the released model's choice).
OPTIONAL_KEYS: dict[str, Any] = {
    "preset": "custom",
    "qkv_bias": True,
    "layer_scale": 1e-5,
    "use_fov_head": True,
    "fov_encoder": True,
    "last_dims": [32, 1],
}


class DepthProConfigError(DepthNodeError, ValueError):
    """A Depth Pro config that cannot describe a network (unknown/missing keys, impossible geometry)."""


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Full, normalised copy of `config` (defaults filled in, lists as lists). Unknown keys are rejected: a
    misspelt key silently ignored would build a different network than the one described."""
    if not isinstance(config, dict):
        raise DepthProConfigError(f"Depth Pro config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unknown:
            parts.append(f"unknown keys {unknown}")
        raise DepthProConfigError("Depth Pro config: " + "; ".join(parts))
    cfg = {**copy.deepcopy(OPTIONAL_KEYS), **copy.deepcopy(config)}
    for k in ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "decoder_features"):
        cfg[k] = int(cfg[k])
    cfg["mlp_ratio"] = float(cfg["mlp_ratio"])
    cfg["hooks"] = [int(i) for i in cfg["hooks"]]
    cfg["encoder_feature_dims"] = [int(i) for i in cfg["encoder_feature_dims"]]
    cfg["last_dims"] = [int(i) for i in cfg["last_dims"]]
    cfg["layer_scale"] = None if cfg["layer_scale"] is None else float(cfg["layer_scale"])
    for k in ("qkv_bias", "use_fov_head", "fov_encoder"):
        cfg[k] = bool(cfg[k])
    if cfg["patch_size"] not in PATCH_SHIFT:
        raise DepthProConfigError(f"patch_size {cfg['patch_size']} is not supported: use 16 (the reference) or 8")
    grid, rem = divmod(cfg["img_size"], cfg["patch_size"])
    if rem or grid % 8:
        raise DepthProConfigError(
            f"img_size {cfg['img_size']} must be a multiple of 8 patches of {cfg['patch_size']} px "
            "(the 25 %/50 % window overlaps must be whole, even token counts)"
        )
    if cfg["decoder_features"] % 8:
        raise DepthProConfigError(f"decoder_features {cfg['decoder_features']} must be a multiple of 8 (FOV head)")
    return cfg


def network_size(config: dict[str, Any]) -> int:
    """Side S of the square network input (4 × the ViT input)."""
    return int(config["img_size"]) * PYRAMID_FACTOR


def _vit(cfg: dict[str, Any]) -> VisionTransformer:
    return VisionTransformer(
        img_size=cfg["img_size"],
        patch_size=cfg["patch_size"],
        embed_dim=cfg["embed_dim"],
        depth=cfg["depth"],
        num_heads=cfg["num_heads"],
        mlp_ratio=cfg["mlp_ratio"],
        qkv_bias=cfg["qkv_bias"],
        layer_scale=cfg["layer_scale"],
    )


def network_input(image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] → the network's [-1, 1] input (the reference normalises with mean 0.5, std 0.5): written once
    for the exported graph, training and the tools."""
    return image * 2.0 - 1.0


class DepthPro(nn.Module):
    """`forward(x)`: x (B, 3, S, S) RGB in [-1, 1] (`network_input`) → (canonical inverse depth (B, 1, S, S),
    FOV° (B, 1, 1, 1) or None without a FOV head). Canonical inverse depth times W/f_px is inverse metric depth
    (`infer`)."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        cfg = resolve_config(config)
        self.config = cfg
        self.img_size = network_size(cfg)
        dec = cfg["decoder_features"]
        self.encoder = DepthProEncoder(_vit(cfg), _vit(cfg), cfg["hooks"], cfg["encoder_feature_dims"], dec)
        self.decoder = MultiresConvDecoder([dec, *cfg["encoder_feature_dims"]], dec)
        last0, last1 = cfg["last_dims"]
        self.head = nn.Sequential(
            nn.Conv2d(dec, dec // 2, kernel_size=3, padding=1),
            nn.ConvTranspose2d(dec // 2, dec // 2, kernel_size=2, stride=2, bias=True),
            nn.Conv2d(dec // 2, last0, kernel_size=3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(last0, last1, kernel_size=1),
            nn.ReLU(),
        )
        if not self.head[4].bias.is_meta:
            nn.init.zeros_(self.head[4].bias)  # as the reference: start from a zero-offset inverse depth
        self.fov: FOVNetwork | None = None
        if cfg["use_fov_head"]:
            lowres = self.img_size // 32  # the decoder's coarsest map
            self.fov = FOVNetwork(
                dec, lowres, _vit(cfg) if cfg["fov_encoder"] else None, input_scale=1.0 / PYRAMID_FACTOR
            )

    def forward(self, x: torch.Tensor, with_fov: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`with_fov=False` skips the FOV head (its own ViT): depth-only training and metric depth from a known
        focal length do not need it."""
        # (skipped while tracing for export: the traced graph is static anyway, and the check would only warn)
        if not torch.jit.is_tracing() and (x.shape[-2] != self.img_size or x.shape[-1] != self.img_size):
            raise ValueError(
                f"Depth Pro runs at {self.img_size}x{self.img_size}; got {tuple(x.shape[-2:])} (use infer() to resize)"
            )
        features, lowres = self.decoder(self.encoder(x))
        cid = self.head(features)
        fov = self.fov(x, lowres.detach()) if self.fov is not None and with_fov else None
        return cid, fov

    @torch.no_grad()
    def infer(
        self, x: torch.Tensor, f_px: float | torch.Tensor | None = None, interpolation_mode: str = "bilinear"
    ) -> dict[str, torch.Tensor]:
        """Metric depth for an RGB image in [-1, 1] of any size, as the reference's `infer`: squash-resize to
        S×S, run, resize inverse depth back, invert. `f_px` (horizontal focal length in pixels of *this* image
        size; scalar or one per image) overrides the FOV head. Returns `depth` (B, 1, H, W) in metres,
        `inverse_depth` (B, 1, H, W) and `focallength_px` (B,)."""
        if x.dim() == 3:
            x = x.unsqueeze(0)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if (h, w) != (self.img_size, self.img_size):
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode=interpolation_mode, align_corners=False)
        cid, fov = self.forward(x)
        depth, inverse, f = canonical_to_metric(cid, (h, w), f_px=f_px, fov_deg=fov, mode=interpolation_mode)
        return {"depth": depth, "inverse_depth": inverse, "focallength_px": f}


def focal_from_fov(fov_deg: torch.Tensor, width: int) -> torch.Tensor:
    """Horizontal focal length (px) for an image `width` px wide with horizontal FOV `fov_deg`."""
    return 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov_deg.to(torch.float32)))


def canonical_to_metric(
    cid: torch.Tensor,
    out_hw: tuple[int, int],
    f_px: float | torch.Tensor | None = None,
    fov_deg: torch.Tensor | None = None,
    mode: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Post-processing that is *not* in the exported graph (every backend must run it on the graph's outputs).

    cid: (B, 1, S, S) canonical inverse depth; out_hw: the original image size; f_px: focal length in pixels at
    that size, else it comes from `fov_deg`. Scaling happens before the resize and the inversion after it
    (resizing inverse depth, not depth, as the reference). Returns (depth, inverse_depth, f_px (B,)).
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    if f_px is None:
        if fov_deg is None:
            raise ValueError("no focal length given and the model has no FOV head: pass f_px (e.g. CameraInfo fx)")
        f = focal_from_fov(fov_deg, w).reshape(-1, 1, 1, 1)
    else:
        # A plain float crashes the reference (f_px.squeeze()); accept floats, numpy scalars and tensors.
        f = torch.as_tensor(f_px, dtype=torch.float32, device=cid.device).reshape(-1, 1, 1, 1)
        if not bool(torch.isfinite(f).all()) or bool((f <= 0).any()):
            raise ValueError(f"focal length must be positive and finite, got {f.flatten().tolist()}")
    inverse = inverse_depth_from_canonical(cid, w, f)
    if tuple(inverse.shape[-2:]) != (h, w):
        inverse = F.interpolate(inverse, size=(h, w), mode=mode, align_corners=False)
    return depth_from_inverse(inverse), inverse, f.reshape(-1)


def count_params(config: dict[str, Any]) -> int:
    """Parameter count without allocating weights (meta device)."""
    with torch.device("meta"):
        net = DepthPro(config)
    return sum(p.numel() for p in net.parameters())


def forward_gflop(config: dict[str, Any]) -> float:
    """GFLOP (2 per multiply-add) of one batch-1 forward, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = DepthPro(config).eval()
        x = torch.empty(1, 3, net.img_size, net.img_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return counter.get_total_flops() / 1e9
