"""ONNX files derived from a model file, cached by content so backends that run ONNX (ONNX Runtime, OpenVINO,
TensorRT) can start from the model file without a manual export step."""

from __future__ import annotations

import os
from pathlib import Path

from depth_node.checkpoints.model_file import ModelFile
from depth_node.paths import cache_root


def onnx_for(model: ModelFile, cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(depth.onnx, pose.onnx or None) for this model, exporting (with the parity check) on first use."""
    from depth_node.export.onnx_export import export_model

    # "-hw": exports with dynamic height/width (one per aspect), not to be confused with older static ones
    folder = cache_root(cache_dir) / "onnx" / (model.digest() + ("-hw" if len(model.input_sizes) > 1 else ""))
    depth, pose = folder / "depth.onnx", folder / "pose.onnx"
    if not depth.is_file() or (model.has_pose and not pose.is_file()):
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        export_model(model, tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        if folder.exists():  # another process won the race
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    return depth, (pose if model.has_pose else None)
