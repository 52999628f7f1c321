"""ONNX export of a model file: `depth.onnx` (and `pose.onnx` when the model has a pose net), normalisation
inside the graph, model metadata in `metadata_props`, and a parity check against PyTorch.

Shapes: a model that accepts several input sizes (`ModelFile.input_sizes`: one per aspect ratio, Monodepth2)
is exported with dynamic height and width (`depth_node.sizes` in the metadata lists the supported ones, and
parity is checked at each); a one-size model (Depth Pro) with static shapes.

The TorchScript exporter (opset 17) is used: it produces plain Conv/Resize/Pad graphs that every backend here
(ONNX Runtime, OpenVINO, TensorRT 10) parses, and it exports this network without warnings."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

import depth_node
from depth_node.checkpoints.model_file import ModelFile, load_model
from depth_node.errors import DepthNodeError
from depth_node.export.ort_cpu import cpu_session
from depth_node.export.wrappers import DEPTH_INPUT, POSE_INPUT, depth_graph, graph_output_names, pose_graph

log = logging.getLogger(__name__)
DEFAULT_OPSET = 17
PARITY_TOL = 1e-4
EXTERNAL_DATA_BYTES = 1_800_000_000  # stay clear of protobuf's 2 GB limit


class ExportError(DepthNodeError):
    pass


@dataclass
class ExportResult:
    depth_onnx: Path
    pose_onnx: Path | None
    errors: dict[str, dict[str, float]] = field(default_factory=dict)  # net → output → max abs error
    opset: int = DEFAULT_OPSET
    weights: str = "fp32"  # weight storage of the files (fp16: + Cast, fp32 arithmetic)

    def files(self) -> dict[str, Path]:
        """net → ONNX file, for the nets the model has."""
        return {net: p for net, p in (("depth", self.depth_onnx), ("pose", self.pose_onnx)) if p is not None}

    def as_dict(self) -> dict[str, object]:
        """What `depth-node export` writes to export.json."""
        return {"depth_onnx": str(self.depth_onnx), "pose_onnx": str(self.pose_onnx) if self.pose_onnx else None,
                "max_abs_error": self.errors, "opset": self.opset, "weights": self.weights}


def example_image(height: int, width: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """A smooth textured image in [0, 1] (closer to real input statistics than noise), shape (1, C, H, W)."""
    y, x = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    chans = [
        np.clip(0.5 + 0.3 * np.sin(x / (9.0 + c + seed) + y / (13.0 + 2 * c)) + 0.15 * np.cos(x * y / 1500.0), 0, 1)
        for c in range(channels)
    ]
    return torch.from_numpy(np.stack(chans)[None].astype(np.float32))


def model_metadata(model: ModelFile, net: str) -> dict[str, str]:
    scale = model.meta.get("scale", {})
    meta = {
        "producer": f"depth_node {depth_node.__version__}",
        "depth_node.net": net,
        "depth_node.arch": model.arch,
        "depth_node.config": json.dumps(model.config, sort_keys=True),
        "depth_node.model_digest": model.digest(),
        "depth_node.input": f"float32 [1,{6 if net == 'pose' else 3},{model.height},{model.width}] RGB in [0,1]",
        "depth_node.height": str(model.height),
        "depth_node.width": str(model.width),
        "depth_node.min_depth": str(model.meta.get("min_depth", 0.1)),
        "depth_node.max_depth": str(model.meta.get("max_depth", 100.0)),
        "depth_node.scale": json.dumps(scale, sort_keys=True),
        "depth_node.camera": json.dumps(model.camera, sort_keys=True),
        "depth_node.sizes": json.dumps([list(s) for s in model.input_sizes]),
    }
    return meta


def export_graph(
    graph: nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    metadata: dict[str, str],
    opset: int = DEFAULT_OPSET,
    dynamic: bool = False,
) -> Path:
    """`dynamic`: height and width of the input (and of image-shaped outputs) become named dynamic axes."""
    output_names = list(graph_output_names(graph))
    with torch.no_grad():
        outs = graph(example)
    hw = {2: "height", 3: "width"}
    axes = {input_name: hw, **{n: hw for n, o in zip(output_names, outs) if o.dim() == 4}} if dynamic else None
    path.parent.mkdir(parents=True, exist_ok=True)
    n_bytes = sum(p.numel() * p.element_size() for p in graph.parameters())
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=output_names,
            opset_version=opset,
            do_constant_folding=True,
            dynamic_axes=axes,
            dynamo=False,
        )
    large = n_bytes > EXTERNAL_DATA_BYTES
    m = onnx.load(str(path))
    for name, value_info, tensor in zip(output_names, m.graph.output, outs):  # output shapes for builders, readers
        dims = value_info.type.tensor_type.shape.dim
        del dims[:]
        for i, n in enumerate(tensor.shape):
            if axes and name in axes and i in hw:
                dims.add().dim_param = hw[i]
            else:
                dims.add().dim_value = int(n)
    del m.metadata_props[:]
    for k, v in metadata.items():
        m.metadata_props.add(key=k, value=v)
    if large:
        onnx.save_model(
            m, str(path), save_as_external_data=True, location=path.name + ".data", all_tensors_to_one_file=True
        )
    else:
        onnx.save_model(m, str(path))
    return path


def onnx_parity(path: Path, graph: nn.Module, example: torch.Tensor) -> dict[str, float]:
    """Max abs difference per output between ONNX Runtime (CPU, fp32) and PyTorch on the same input."""
    sess = cpu_session(path)
    onnx_out = sess.run(None, {sess.get_inputs()[0].name: example.numpy()})
    with torch.no_grad():
        torch_out = graph(example)
    errors = {}
    for name, a, b in zip(graph_output_names(graph), onnx_out, torch_out):
        b = b.numpy()
        if a.shape != b.shape:
            b = b.reshape(a.shape)
        errors[name] = float(np.max(np.abs(a - b)))
    return errors


def export_model(
    model: ModelFile | str | Path,
    out_dir: str | Path,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    tol: float = PARITY_TOL,
    weights: str = "fp32",
) -> ExportResult:
    """Export and (check) parity-check every graph of `model`. weights="fp16": the files then store large weights
    in fp16 (`fp16_weights`), and `errors` are those of the fp16-weight files (reported, not judged by `tol`)."""
    if not isinstance(model, ModelFile):
        model = load_model(model)
    if opset < 17:
        raise ExportError(f"opset {opset} is too old: LayerNorm and reflect padding need ≥ 17")
    if weights not in ("fp32", "fp16"):
        raise ExportError(f"weight storage {weights!r}: choose fp32 or fp16")
    out_dir = Path(out_dir)
    torch.manual_seed(0)
    result = ExportResult(out_dir / "depth.onnx", None, opset=opset, weights=weights)
    jobs: list[tuple[str, nn.Module, torch.Tensor, Path, str]] = [
        ("depth", depth_graph(model), example_image(model.height, model.width), result.depth_onnx, DEPTH_INPUT)
    ]
    pg = pose_graph(model)
    if pg is not None:
        result.pose_onnx = out_dir / "pose.onnx"
        pair = torch.cat(
            [example_image(model.height, model.width), example_image(model.height, model.width, seed=3)], 1
        )
        jobs.append(("pose", pg, pair, result.pose_onnx, POSE_INPUT))
    sizes = model.input_sizes
    dynamic = len(sizes) > 1
    for net, graph, example, path, input_name in jobs:
        export_graph(graph, example, path, input_name, model_metadata(model, net), opset, dynamic)
        if check:
            errs: dict[str, float] = {}
            for h, w in sizes:  # every supported size: a dynamic export must not have frozen a shape
                ex = example if (h, w) == tuple(example.shape[2:]) else torch.cat(
                    [example_image(h, w, seed=s) for s in range(example.shape[1] // 3)], 1)
                for k, v in onnx_parity(path, graph, ex).items():
                    errs[k] = max(errs.get(k, 0.0), v)
            result.errors[net] = errs
            worst = max(errs.values())
            log.info("%s: max abs error vs PyTorch %s", path.name, ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
            # depth in metres spans 0.1..100 m: judge it relative to its magnitude, the rest absolutely
            bad = {k: v for k, v in errs.items() if v > tol * (_magnitude(graph, example, k))}
            if bad:
                raise ExportError(
                    f"{path.name} differs from PyTorch beyond {tol:g} (max abs error {worst:.3g} in {', '.join(bad)});"
                    " the exporter or ONNX Runtime version may mis-handle an op"
                )
    if weights == "fp16":
        from depth_node.export.fp16_weights import fp16_weights

        for net, graph, example, path, _ in jobs:
            fp16_weights(path, path)
            if check:
                result.errors[net] = onnx_parity(path, graph, example)
    return result


def _magnitude(graph: nn.Module, example: torch.Tensor, name: str) -> float:
    """1 for outputs that live in [0, 1]-ish ranges; the output's max for depth-like outputs."""
    if name not in ("depth",):
        return 1.0
    with torch.no_grad():
        out = dict(zip(graph_output_names(graph), graph(example)))[name]
    return max(1.0, float(out.abs().max()))
