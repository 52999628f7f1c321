"""Inference graphs as exported and as run by the PyTorch backend: one definition, so ONNX, TensorRT, OpenVINO and
PyTorch compute the same function. Inputs are RGB in [0, 1]; normalisation lives inside the graph."""

from __future__ import annotations

import torch
from torch import nn

from depth_node.checkpoints.model_file import ModelFile, build_depth_net, build_pose_net
from depth_node.geometry.depth import disp_to_depth
from depth_node.geometry.poses import transformation_from_parameters

DEPTH_INPUT = "image"
POSE_INPUT = "image_pair"


class Monodepth2DepthGraph(nn.Module):
    """image [1,3,H,W] → disp (sigmoid, full resolution), depth (= factor × disp_to_depth; metres for stereo models)."""

    output_names = ("disp", "depth")

    def __init__(self, net: nn.Module, min_depth: float, max_depth: float, factor: float):
        super().__init__()
        self.net = net
        self.min_depth, self.max_depth, self.factor = float(min_depth), float(max_depth), float(factor)

    def forward(self, image: torch.Tensor):
        disp = self.net(image, out_scales=(0,))[0]
        _, depth = disp_to_depth(disp, self.min_depth, self.max_depth)
        return disp, depth * self.factor


class Monodepth2PoseGraph(nn.Module):
    """image_pair [1,6,H,W] (earlier frame first) → axisangle, translation [1,2,1,3] and T [1,4,4] (earlier→later)."""

    output_names = ("axisangle", "translation", "T")

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image_pair: torch.Tensor):
        axisangle, translation = self.net(image_pair)
        T = transformation_from_parameters(axisangle[:, 0], translation[:, 0])
        return axisangle, translation, T


def depth_graph(model: ModelFile) -> nn.Module:
    net = build_depth_net(model)
    if model.arch == "monodepth2":
        return Monodepth2DepthGraph(
            net, model.meta.get("min_depth", 0.1), model.meta.get("max_depth", 100.0), model.depth_scale
        ).eval()
    if model.arch == "depth_pro":
        from depth_node.networks.depth_pro import DepthProExport

        return DepthProExport(net).eval()
    raise ValueError(model.arch)


def pose_graph(model: ModelFile) -> nn.Module | None:
    net = build_pose_net(model)
    return None if net is None else Monodepth2PoseGraph(net).eval()


def graph_output_names(graph: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(graph, "output_names", ("canonical_inverse_depth", "fov_deg")))
