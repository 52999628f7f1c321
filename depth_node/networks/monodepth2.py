"""Monodepth2's networks (Godard et al., ICCV 2019) with the reference implementation's state_dict keys, so the
released `encoder.pth` / `depth.pth` / `pose_encoder.pth` / `pose.pth` load unchanged.

Key layout matters more than style here: the depth decoder registers its convolutions only through an
`nn.ModuleList` built from an ordered dict, so its keys are positional (`decoder.N.…`) in the order
upconv 4→0 (two per level) then dispconv 0→3; we build the same list in the same order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_node.networks.resnet import ResNet

# Input normalisation of the reference encoder: RGB in [0, 1] → (x − 0.45) / 0.225 (not ImageNet mean/std).
INPUT_MEAN = 0.45
INPUT_STD = 0.225


class ResnetEncoder(nn.Module):
    def __init__(self, num_layers: int = 18, num_input_images: int = 1):
        super().__init__()
        if num_input_images > 1 and num_layers not in (18, 50):
            raise ValueError("multi-image ResNet encoders exist for 18 and 50 layers only (as in the reference)")
        self.num_ch_enc = [64, 64, 128, 256, 512]
        if num_layers > 34:
            self.num_ch_enc[1:] = [c * 4 for c in self.num_ch_enc[1:]]
        self.encoder = ResNet(num_layers, num_input_images)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        e = self.encoder
        x = (x - INPUT_MEAN) / INPUT_STD
        f0 = e.relu(e.bn1(e.conv1(x)))
        f1 = e.layer1(e.maxpool(f0))
        f2 = e.layer2(f1)
        f3 = e.layer3(f2)
        f4 = e.layer4(f3)
        return [f0, f1, f2, f3, f4]


class Conv3x3(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_ch, out_ch, 3)

    def forward(self, x):
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = Conv3x3(in_ch, out_ch)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x):
        return self.nonlin(self.conv(x))


class DepthDecoder(nn.Module):
    """Returns sigmoid disparities for `scales` (index s → resolution H/2^s), finest first."""

    def __init__(self, num_ch_enc: list[int], scales=(0, 1, 2, 3), num_output_channels: int = 1):
        super().__init__()
        self.scales = tuple(scales)
        self.num_ch_enc = list(num_ch_enc)
        self.num_ch_dec = [16, 32, 64, 128, 256]
        upconvs: list[nn.Module] = []
        for i in range(4, -1, -1):
            c_in = self.num_ch_enc[-1] if i == 4 else self.num_ch_dec[i + 1]
            upconvs.append(ConvBlock(c_in, self.num_ch_dec[i]))
            c_in = self.num_ch_dec[i] + (self.num_ch_enc[i - 1] if i > 0 else 0)
            upconvs.append(ConvBlock(c_in, self.num_ch_dec[i]))
        dispconvs = [Conv3x3(self.num_ch_dec[s], num_output_channels) for s in self.scales]
        self.decoder = nn.ModuleList(upconvs + dispconvs)
        self._n_up = len(upconvs)

    def forward(self, features: list[torch.Tensor], out_scales=None) -> dict[int, torch.Tensor]:
        """`out_scales` limits which disparities are computed (inference needs scale 0 only)."""
        wanted = self.scales if out_scales is None else tuple(out_scales)
        outputs: dict[int, torch.Tensor] = {}
        x = features[-1]
        for k, i in enumerate(range(4, -1, -1)):
            x = self.decoder[2 * k](x)
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], 1)
            x = self.decoder[2 * k + 1](x)
            if i in wanted:
                outputs[i] = torch.sigmoid(self.decoder[self._n_up + self.scales.index(i)](x))
        return outputs


class PoseDecoder(nn.Module):
    """Keys `net.0..3`; output ×0.01 as (B, frames, 1, 6) → axisangle, translation (B, frames, 1, 3)."""

    def __init__(self, num_ch_enc: list[int], num_input_features: int = 1, num_frames_to_predict_for: int = 2):
        super().__init__()
        self.num_input_features = num_input_features
        self.num_frames_to_predict_for = num_frames_to_predict_for
        self.net = nn.ModuleList(
            [
                nn.Conv2d(num_ch_enc[-1], 256, 1),
                nn.Conv2d(num_input_features * 256, 256, 3, 1, 1),
                nn.Conv2d(256, 256, 3, 1, 1),
                nn.Conv2d(256, 6 * num_frames_to_predict_for, 1),
            ]
        )

    def forward(self, input_features: list[list[torch.Tensor]]):
        last = [f[-1] for f in input_features]
        out = torch.cat([F.relu(self.net[0](f)) for f in last], 1)
        out = F.relu(self.net[1](out))
        out = F.relu(self.net[2](out))
        out = self.net[3](out)
        out = out.mean(3).mean(2)
        out = 0.01 * out.view(-1, self.num_frames_to_predict_for, 1, 6)
        return out[..., :3], out[..., 3:]


class DepthNet(nn.Module):
    """Encoder + decoder; `forward` returns the disparities at all decoder scales (training and parity tests)."""

    def __init__(self, num_layers: int = 18, scales=(0, 1, 2, 3)):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, 1)
        self.depth = DepthDecoder(self.encoder.num_ch_enc, scales)

    def forward(self, rgb: torch.Tensor, out_scales=None) -> dict[int, torch.Tensor]:
        return self.depth(self.encoder(rgb), out_scales)


class PoseNet(nn.Module):
    """Separate-ResNet pose net: input (B, 6, H, W) = earlier frame's RGB then the later frame's."""

    def __init__(self, num_layers: int = 18):
        super().__init__()
        self.pose_encoder = ResnetEncoder(num_layers, 2)
        self.pose = PoseDecoder(self.pose_encoder.num_ch_enc, 1, 2)

    def forward(self, pair: torch.Tensor):
        return self.pose([self.pose_encoder(pair)])
