"""`depth-node eval-depth --model FILE --data DIR --json PATH`: depth metrics of a model against ground truth
(library: `evaluate/model_depth.py`, frames from `evaluate/depth_data.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Depth metrics of a model on frames with ground-truth depth, computed as Monodepth2's evaluate_depth.py does:
prediction resized to the GT size (inverse depth interpolated), GT masked to min < gt < max (+ optional
Garg/Eigen crop), per-image median scaling (or metric: none), prediction clamped to [min, max], abs_rel sq_rel
rmse rmse_log a1 a2 a3 per image, averaged over images. With dense GT (synthetic drives) the scale-invariant
boundary F1 (Depth Pro) is reported too.

Data: --data DIR, a KITTI-raw folder (as `depth-node synth` writes it: gt_depth/image_02/*.npy, or real KITTI
with proj_depth/groundtruth PNGs; intrinsics from calib_cam_to_cam.txt), or --images DIR --gt-depth DIR with
matching file stems. GT depth: .npy in metres, or KITTI's uint16 PNG (metres × 256, 0 = no GT)."""


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model file (.pt) or exported depth.onnx")
    src = p.add_argument_group("data (either --data, or --images with --gt-depth)")
    src.add_argument("--data", type=Path, default=None, help="KITTI-raw folder (root or *_sync drive) with GT depth")
    src.add_argument("--images", type=Path, default=None, help="folder of RGB images")
    src.add_argument("--gt-depth", type=Path, default=None, help="folder of GT depth (.npy metres / KITTI PNG)")
    src.add_argument("--fx", type=float, default=None,
                     help="focal length [px] of the images when the data carries no calibration (metric models)")
    p.add_argument("--json", type=Path, required=True, help="write metrics, settings and counts here")
    p.add_argument("--html", type=Path, default=None, help="HTML report with sample panels")
    p.add_argument("--samples", type=int, default=4, help="panels in the HTML report (image | pred | GT | error)")
    sc = p.add_mutually_exclusive_group()
    sc.add_argument("--median-scaling", dest="scaling", action="store_const", const="median",
                    help="per-image median scaling (default for relative-scale models)")
    sc.add_argument("--metric", dest="scaling", action="store_const", const="metric",
                    help="no scaling: the model's depth is taken as metres (default for metric/stereo models)")
    p.add_argument("--scale-factor", type=float, default=1.0, help="multiply predictions first (reference's "
                   "--pred_depth_scale_factor; stereo models already carry baseline/0.1)")
    p.add_argument("--min-depth", type=float, default=1e-3)
    p.add_argument("--max-depth", type=float, default=80.0)
    p.add_argument("--crop", choices=("none", "garg", "eigen"), default="none")
    p.add_argument("--boundary", choices=("auto", "on", "off"), default="auto",
                   help="boundary F1 per image (auto: where GT is dense)")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N frames only (0 = all)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--per-image", action="store_true", help="include per-image metrics in the JSON")
    p.set_defaults(func=run, scaling=None)


def run(args: argparse.Namespace) -> int:
    from depth_node.evaluate.depth_data import GroundTruthSource
    from depth_node.evaluate.model_depth import ModelDepthOptions, evaluate_model_depth, summary_lines

    source = GroundTruthSource(args.data, args.images, args.gt_depth, args.fx, args.limit)
    options = ModelDepthOptions(
        scaling=args.scaling, scale_factor=args.scale_factor, min_depth=args.min_depth, max_depth=args.max_depth,
        crop=args.crop, boundary={"auto": None, "on": True, "off": False}[args.boundary], backend=args.backend,
        precision=args.precision, device=args.device, per_image=args.per_image, samples=args.samples,
    )
    result = evaluate_model_depth(args.model, source, args.json, args.html, options)
    print("\n".join(summary_lines(result)))
    return 0
