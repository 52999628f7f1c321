"""A static-shape copy of a dynamic-height/width ONNX export, for tools that need fixed shapes (int8
calibration and Q/DQ insertion, `verify-engine`'s reference): same graph and weights, input and image-shaped
outputs pinned to one (height, width), cached by (content, size)."""

from __future__ import annotations

import os
from pathlib import Path

import onnx


def is_dynamic(path: str | os.PathLike) -> bool:
    m = onnx.load(str(path), load_external_data=False)
    return any(d.dim_param or d.dim_value <= 0 for i in m.graph.input for d in i.type.tensor_type.shape.dim)


def pin_shape(model: onnx.ModelProto, height: int, width: int) -> onnx.ModelProto:
    """`model` with dims named "height"/"width" (as `export_graph` names them) set to these values."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    values = {"height": int(height), "width": int(width)}
    for vi in list(out.graph.input) + list(out.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in values:
                d.dim_value = values[d.dim_param]
    del out.graph.value_info[:]
    return out


def static_onnx(path: str | os.PathLike, height: int, width: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """`path` itself when its shapes are static, else its copy pinned to height × width (cached)."""
    from depth_node.paths import cache_root, file_sha256

    path = Path(path)
    if not is_dynamic(path):
        return path
    out = cache_root(cache_dir) / "static" / f"{file_sha256(path)[:16]}-{height}x{width}" / path.name
    if out.is_file():
        return out
    pinned = pin_shape(onnx.load(str(path)), height, width)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    onnx.save(pinned, str(tmp))
    os.replace(tmp, out)
    return out
