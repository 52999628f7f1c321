"""`depth-node verify-engine CANDIDATE ONNX --images DIR`: run a candidate and its fp32 ONNX (ONNX Runtime, CPU)
on the same frames and fail (exit 1) when they drift apart beyond the tolerances (library: `evaluate/parity.py`).

The candidate is whatever will be deployed: a TensorRT engine (.engine/.plan), another ONNX run by ONNX Runtime
(e.g. the int8 Q/DQ one), or `openvino:PATH` (an ONNX run by OpenVINO). One check for every fast path, so the
logic is exercised on CPU-only CI even though engines need a GPU. Depth is judged by abs_rel, a pose net's outputs
by max abs error in their own units (1e-3 rad / model units by default); a dynamic-size export is checked at every
listed size the candidate takes (a static int8 candidate: its training size only, said in the output)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Exit status: 0 within tolerance, 1 beyond it, 2 on errors.",
    )
    p.add_argument("candidate", help="ENGINE (.engine/.plan), another .onnx, or openvino:PATH.onnx")
    p.add_argument("onnx", type=Path, help="the fp32 ONNX it was made from (the reference)")
    p.add_argument("--images", type=Path, required=True, help="folder of frames, resized to the network input")
    p.add_argument("--frames", type=int, default=8, help="at most this many frames (evenly spaced, default 8)")
    p.add_argument("--max-abs-tol", type=float, default=None,
                   help="fail above this max abs error: of depth (off by default), of each pose output in its own "
                        "units, radians / model units (default 1e-3 for a pose net)")
    p.add_argument("--abs-rel-tol", type=float, default=0.01,
                   help="fail above this abs_rel of depth (default 0.01; not used for pose outputs, whose near-zero "
                        "motion makes relative error meaningless)")
    p.add_argument("--openvino-precision", choices=("fp32", "bf16"), default="fp32",
                   help="inference precision of an openvino: candidate (a Q/DQ ONNX runs int8 either way)")
    p.add_argument("--json", type=Path, help="also write the comparison here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.evaluate.parity import verify_candidate

    report = verify_candidate(args.candidate, args.onnx, args.images, args.frames, args.abs_rel_tol,
                              args.max_abs_tol, args.openvino_precision)
    print("\n".join(report.lines()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_dict(), indent=2))
    return 0 if report.passed else 1
