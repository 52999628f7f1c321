"""Export-facing wrapper: the graph every backend runs for a Depth Pro model file.

Input `image` float32 [1, 3, S, S] RGB in [0, 1]; the [-1, 1] normalisation is part of the graph so that no
backend can forget it. Outputs `canonical_inverse_depth` [1, 1, S, S] and `fov_deg` [1, 1]. The metric
conversion (focal length, resize to the camera size, inversion) stays outside: it depends on the camera and is
cheap; `depth_node.networks.depth_pro.canonical_to_metric` implements it.
"""

from __future__ import annotations

import torch
from torch import nn

from depth_node.networks.depth_pro.network import DepthPro, network_input


class DepthProExport(nn.Module):
    def __init__(self, net: DepthPro):
        super().__init__()
        self.net = net
        # Instance attribute: a model without a FOV head has one output only.
        self.output_names: tuple[str, ...] = (
            ("canonical_inverse_depth", "fov_deg") if net.fov is not None else ("canonical_inverse_depth",)
        )

    @property
    def input_size(self) -> int:
        return self.net.img_size

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cid, fov = self.net(network_input(image))
        if fov is None:
            return (cid,)
        return cid, fov.reshape(fov.shape[0], 1)
