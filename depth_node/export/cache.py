"""ONNX files derived from a model file, cached by content so backends that run ONNX (ONNX Runtime, OpenVINO,
TensorRT) can start from the model file without a manual export step."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from depth_node.checkpoints.model_file import ModelFile
from depth_node.paths import cache_root, publish_folder


def export_key(model: ModelFile) -> str:
    """The cache folder's name: everything the exported files hold. The weights (`digest`) are not enough: the
    graph bakes in the scale factor and the depth range, and its metadata carries the camera record the backends
    read back, so two model files with the same weights (a `--stereo-baseline` import, a re-scaled copy) must not
    share an export. The producer version is in the metadata too: a new depth_node exports again."""
    from depth_node.export.onnx_export import model_metadata

    h = hashlib.sha256()
    for net in ("depth", "pose"):
        h.update(json.dumps(model_metadata(model, net), sort_keys=True).encode())
    # "-hw": exports with dynamic height/width (one per aspect), not to be confused with static ones
    return f"{model.digest()}-{h.hexdigest()[:8]}" + ("-hw" if len(model.input_sizes) > 1 else "")


def onnx_for(model: ModelFile, cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(depth.onnx, pose.onnx or None) for this model, exporting (with the parity check) on first use."""
    from depth_node.export.onnx_export import export_model

    folder = cache_root(cache_dir) / "onnx" / export_key(model)
    depth, pose = folder / "depth.onnx", folder / "pose.onnx"
    if not depth.is_file() or (model.has_pose and not pose.is_file()):
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        export_model(model, tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        publish_folder(tmp, folder)
    return depth, (pose if model.has_pose else None)

