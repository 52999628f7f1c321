"""`depth-node demo` (what `make demo` runs): the node on a held-out synthetic drive, scored end to end.

Renders a drive whose seed no training drive used (cached in <out>/drive), starts the real node as its own
process, replays the drive over ROS 2 with its timing, records the node's outputs into <out>/outputs (MCAP),
and writes <out>/report.html + <out>/metrics.json: metric depth against the renderer's exact depth, odometry
against the exact trajectory, latency/rate, sample frames and a view of the cloud. The run stays on loopback
in a private ROS domain. The acceptance figures of the shipped model (abs_rel ≤ 0.12 metric, ATE ≤ 5 % of the
path) are printed with PASS/FAIL; `--strict` turns a FAIL into exit status 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_node.commands.eval_bag import add_run_arguments, evaluate_bag, node_params, print_headline
from depth_node.errors import DepthNodeError

HELD_OUT_SEED = 9001  # training configs use seeds 1–999 (train) and 1001–1999 (validation)
ACCEPT = {"abs_rel": 0.12, "ate_se3_pct_of_path": 5.0}


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1] if __doc__ else help_text)
    add_run_arguments(p)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--seed", type=int, default=HELD_OUT_SEED, help=f"drive seed (default {HELD_OUT_SEED})")
    p.add_argument("--frames", type=int, default=200, help="frames of the drive at 10 Hz (default 200 = 20 s)")
    p.add_argument("--size", nargs=2, type=int, metavar=("W", "H"),
                   help="camera resolution (default: the model's input size)")
    p.add_argument("--strict", action="store_true", help="exit 1 when an acceptance figure fails")
    p.set_defaults(func=run)


def render_drive(out: Path, seed: int, frames: int, width: int, height: int) -> Path:
    """The held-out drive as an MCAP bag; reused when a previous demo rendered the same one."""
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.writers import cached_drive

    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera.width, cfg.camera.height = width, height
    print(f"demo: held-out drive (seed {seed}, {frames} frames at {width}x{height}; rendered unless {out / 'drive'} "
          "holds it)")
    return cached_drive(cfg, out / "drive")


def model_size(model: str) -> tuple[int, int]:
    """(width, height) the model takes: from the model file, or from an ONNX file's metadata."""
    from depth_node.runtime.pipeline import resolve_model_path

    path = resolve_model_path(model)
    if path.suffix == ".onnx":
        from depth_node.export.onnx_metadata import read_metadata
        from depth_node.inference.base import ModelInfo

        info = ModelInfo.from_onnx_metadata(read_metadata(path))
        return info.width, info.height
    from depth_node.checkpoints.model_file import load_model

    m = load_model(path)
    return int(m.width), int(m.height)


def run(args: argparse.Namespace) -> int:
    from depth_node.evaluate.bag_score import acceptance_lines

    if args.frames < 10:
        raise DepthNodeError(f"--frames must be ≥ 10, got {args.frames}")
    params = node_params(args, base={"stride": 2})
    w, h = args.size or model_size(params.get("model", ""))
    out = Path(args.out)
    bag = render_drive(out, args.seed, args.frames, w, h)
    notes = (f"Held-out synthetic drive: seed {args.seed}, {args.frames} frames at {w}x{h}, 10 Hz; ground truth "
             "is the renderer's exact z-depth and trajectory.",
             "Depth is scored in metres as published (no median scaling); odometry ATE after SE(3) alignment "
             "(and Sim(3) for reference) over the whole drive.")
    metrics = evaluate_bag(args, bag, out, image="/camera/image_raw", camera_info="/camera/camera_info",
                           gt_depth="/ground_truth/depth", gt_odom="/ground_truth/odom", params=params,
                           title="depth_node demo: held-out synthetic drive", notes=notes, limits=ACCEPT,
                           prog="demo")
    print_headline(metrics, out)
    for line in acceptance_lines(metrics):
        print(f"acceptance: {line}")
    ok = all(a["pass"] for a in metrics["acceptance"].values())
    print(f"metrics: {out / 'metrics.json'}")
    return 1 if (args.strict and not ok) else 0
