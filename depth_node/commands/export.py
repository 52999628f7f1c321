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
    p.add_argument("--tol", type=float, default=1e-4,
                   help="max abs error allowed against PyTorch (fp32), for `depth` as a fraction of its largest "
                        "value (default 1e-4)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    p.add_argument("--weights", choices=("fp32", "fp16"), default="fp32",
                   help="fp16: store large weights as fp16 (+ Cast), half the file, fp32 arithmetic (default fp32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.export.onnx_export import export_model

    res = export_model(args.model, args.output, opset=args.opset, check=not args.no_check, tol=args.tol,
                       weights=args.weights)
    for net, path in res.files().items():
        errs = res.errors.get(net, {})
        detail = ", ".join(f"{k} {v:.2e}" for k, v in errs.items()) if errs else "not checked"
        print(f"{path}: max abs error vs PyTorch: {detail}")
    (args.output / "export.json").write_text(json.dumps(res.as_dict(), indent=2))
    return 0
