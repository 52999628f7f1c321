"""Import of Monodepth2's released folder layout (`encoder.pth`, `depth.pth`, optional `pose_encoder.pth` and
`pose.pth`) — also what its trainer writes under `models/weights_N/`.

`encoder.pth` carries three non-tensor extras (`height`, `width`, `use_stereo`) and the unused `encoder.fc.*`
tensors of the torchvision ResNet; both are tolerated. The ResNet depth is read off the tensor shapes, so a
ResNet-50 folder imports without a flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from depth_node.checkpoints.model_file import ModelFile, ModelFileError, check_state_dict, load_torch_file
from depth_node.geometry.depth import stereo_scale
from depth_node.networks.monodepth2 import DepthNet, PoseNet

KITTI_BASELINE_M = 0.54


def infer_num_layers(encoder_sd: dict[str, Any]) -> int:
    """ResNet depth from an encoder state_dict: bottleneck blocks have conv3; layer3's block count does the rest."""
    prefix = "encoder." if any(k.startswith("encoder.") for k in encoder_sd) else ""
    bottleneck = f"{prefix}layer1.0.conv3.weight" in encoder_sd
    n3 = len({k[len(prefix) :].split(".")[1] for k in encoder_sd if k.startswith(f"{prefix}layer3.")})
    if bottleneck:
        return {6: 50, 23: 101, 36: 152}.get(n3, 50)
    return {2: 18, 6: 34}.get(n3, 18)


def _tensors(d: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in d.items() if isinstance(v, torch.Tensor)}


def import_monodepth2(folder: str | Path, baseline_m: float | None = None, stereo: bool | None = None) -> ModelFile:
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(f"{folder} is not a folder; expected Monodepth2's encoder.pth + depth.pth in it")
    enc_path, dec_path = folder / "encoder.pth", folder / "depth.pth"
    for p in (enc_path, dec_path):
        if not p.is_file():
            raise ModelFileError(
                f"{p.name} missing in {folder} (a Monodepth2 model folder holds encoder.pth and depth.pth)"
            )
    enc = load_torch_file(enc_path, "encoder.pth")
    dec = load_torch_file(dec_path, "depth.pth")
    if not isinstance(enc, dict) or not isinstance(dec, dict):
        raise ModelFileError("encoder.pth/depth.pth must hold state_dicts")
    num_layers = infer_num_layers(_tensors(enc))
    net = DepthNet(num_layers)
    check_state_dict(net.encoder, _tensors(enc), "encoder.pth")
    check_state_dict(net.depth, _tensors(dec), "depth.pth")
    depth_state = {f"encoder.{k}": v for k, v in _tensors(enc).items() if not k.startswith("encoder.fc.")}
    depth_state.update({f"depth.{k}": v for k, v in _tensors(dec).items()})
    height = int(enc.get("height", 192))
    width = int(enc.get("width", 640))
    use_stereo = bool(enc.get("use_stereo", False)) if stereo is None else stereo

    pose_state = None
    pe_path, pd_path = folder / "pose_encoder.pth", folder / "pose.pth"
    if pe_path.is_file() != pd_path.is_file():
        raise ModelFileError(f"{folder}: pose_encoder.pth and pose.pth come as a pair; only one is present")
    pose_layers = num_layers
    if pe_path.is_file():
        penc = _tensors(load_torch_file(pe_path, "pose_encoder.pth"))
        pdec = _tensors(load_torch_file(pd_path, "pose.pth"))
        pose_layers = infer_num_layers(penc)
        pnet = PoseNet(pose_layers)
        check_state_dict(pnet.pose_encoder, penc, "pose_encoder.pth")
        check_state_dict(pnet.pose, pdec, "pose.pth")
        pose_state = {f"pose_encoder.{k}": v for k, v in penc.items() if not k.startswith("encoder.fc.")}
        pose_state.update({f"pose.{k}": v for k, v in pdec.items()})

    if use_stereo:
        b = KITTI_BASELINE_M if baseline_m is None else float(baseline_m)
        scale = {"kind": "stereo", "baseline_m": b, "factor": stereo_scale(b)}
    else:
        scale = {"kind": "relative", "factor": 1.0}
    return ModelFile(
        arch="monodepth2",
        config={"num_layers": num_layers, "pose_num_layers": pose_layers},
        height=height,
        width=width,
        depth_state=depth_state,
        pose_state=pose_state,
        meta={
            "min_depth": 0.1,
            "max_depth": 100.0,
            "scale": scale,
            "provenance": {"source": "monodepth2-folder", "path": str(folder.resolve())},
            "licence": "see the checkpoint's origin (Monodepth2's released weights are non-commercial)",
        },
    )
