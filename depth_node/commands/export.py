"""`depth-node export model.pt -o DIR`: depth.onnx (+ pose.onnx), parity-checked against PyTorch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("model", type=Path, help="depth_node model file (.pt)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (≥ 17)")
    p.add_argument("--tol", type=float, default=1e-4, help="max abs error allowed against PyTorch (fp32)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    p.add_argument("--weights", choices=("fp32", "fp16"), default="fp32",
                   help="fp16: store large weights as fp16 (+ Cast), half the file, fp32 arithmetic (default fp32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.export.onnx_export import export_model

    res = export_model(args.model, args.output, opset=args.opset, check=not args.no_check, tol=args.tol)
    if args.weights == "fp16":
        from depth_node.export.fp16_weights import fp16_weights

        for path in (res.depth_onnx, res.pose_onnx):
            if path is not None:
                fp16_weights(path, path)
        res.errors = fp16_parity(args.model, res)
    for path in (res.depth_onnx, res.pose_onnx):
        if path is None:
            continue
        net = "depth" if path == res.depth_onnx else "pose"
        errs = res.errors.get(net, {})
        detail = ", ".join(f"{k} {v:.2e}" for k, v in errs.items()) if errs else "not checked"
        print(f"{path}: max abs error vs PyTorch: {detail}")
    (args.output / "export.json").write_text(
        json.dumps(
            {
                "depth_onnx": str(res.depth_onnx),
                "pose_onnx": str(res.pose_onnx) if res.pose_onnx else None,
                "max_abs_error": res.errors,
                "opset": args.opset,
                "weights": args.weights,
            },
            indent=2,
        )
    )
    return 0



def fp16_parity(model_path: Path, res) -> dict:
    """Max abs errors of the fp16-weight graphs against PyTorch fp32, on the export's example inputs."""
    import torch

    from depth_node.checkpoints.model_file import load_model
    from depth_node.export.onnx_export import example_image, onnx_parity
    from depth_node.export.wrappers import depth_graph, pose_graph

    m = load_model(model_path)
    x = example_image(m.height, m.width)
    errors = {"depth": onnx_parity(res.depth_onnx, depth_graph(m), x)}
    if res.pose_onnx is not None:
        pair = torch.cat([x, example_image(m.height, m.width, seed=3)], 1)
        errors["pose"] = onnx_parity(res.pose_onnx, pose_graph(m), pair)
    return errors
