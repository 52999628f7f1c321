"""`depth-node eval-zoo`: the camera zoo of issue 15, the node over held-out drives seen by unlike cameras.

Every zoo camera (street, sidewalk and indoor scenes; FOV 45°–100°, mounting height 0.3–2.0 m, aspect 10:3,
16:9, 4:3; held-out seeds from 3001) renders its own synthetic drive as an MCAP bag, the node's frame core runs
over it offline with the node's default parameters (as `eval-bag --offline`), and the outputs are scored: metric
abs_rel, depth-scale error, odometry ATE (% of path), t_rel, r_rel, each also relative to the training camera,
with PASS/FAIL against the issue's limits. Writes <out>/zoo.json, <out>/report.html and each camera's own
report under <out>/cameras/<name>/. Drives are cached there and reused by the next run with the same settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_node.errors import DepthNodeError


def register(sub, name: str, help_text: str) -> None:
    from depth_node.zoo.cameras import ZOO

    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1] if __doc__ else help_text)
    p.add_argument("--model", default="", help="model file or depth.onnx (default: the package's default model)")
    p.add_argument("--out", default="out/zoo", help="output folder (default out/zoo)")
    p.add_argument("--frames", type=int, default=60, help="frames of each drive at 10 Hz (default 60)")
    p.add_argument("--width", type=int, default=640, help="render width in px; height follows the aspect (default 640)")
    p.add_argument("--cameras", metavar="NAMES",
                   help=f"comma-separated zoo cameras (default all: {', '.join(c.name for c in ZOO)}); "
                        "the training camera is always included as the reference")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="a node parameter (YAML value) instead of its default, e.g. scale_source:=metric_model")
    p.add_argument("--json", metavar="PATH", help="also write zoo.json here")
    p.add_argument("--strict", action="store_true", help="exit 1 when a row fails the acceptance limits")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.evaluate.report import write_json
    from depth_node.runtime import params as P
    from depth_node.runtime.pipeline import resolve_model_path
    from depth_node.zoo.cameras import select
    from depth_node.zoo.run import ZooSettings
    from depth_node.zoo.table import evaluate_zoo, markdown_table

    if args.frames < 10:
        raise DepthNodeError(f"--frames must be ≥ 10 (odometry needs a path), got {args.frames}")
    if args.width < 64:
        raise DepthNodeError(f"--width must be ≥ 64 px, got {args.width}")
    cameras = select([n.strip() for n in args.cameras.split(",") if n.strip()] if args.cameras else None)
    params = P.params_from_cli(args.param)
    params["model"] = str(resolve_model_path(args.model or "").resolve())
    P.validate(params)  # a typo fails before anything renders
    out = Path(args.out)
    result = evaluate_zoo(cameras, params["model"], params, ZooSettings(frames=args.frames, width=args.width), out)
    if args.json:
        write_json(args.json, result)
    print(markdown_table(result))
    print(f"report: {out / 'report.html'}\nmetrics: {args.json or out / 'zoo.json'}")
    return 1 if args.strict and not result["pass"] else 0
