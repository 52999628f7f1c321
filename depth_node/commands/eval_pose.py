"""`depth-node eval-pose --pred TRAJ --gt TRAJ --json PATH`: ATE/RPE of a trajectory against ground truth."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from depth_node.errors import DepthNodeError

log = logging.getLogger(__name__)

DESCRIPTION = """\
ATE and RPE of a predicted trajectory against ground truth, with SE(3) and Sim(3) (Umeyama) alignment (the
numbers evo gives), ATE as a percentage of the GT path length, distance-based RPE (--delta-m), and Monodepth2's
5-frame snippet ATE (per-snippet scale; the figure in the papers' tables), and the KITTI odometry segment drift
t_rel (%) and r_rel (deg/100 m) over segments of 100..800 m (scaled down by powers of ten on drives shorter than
100 m; the lengths used are in the JSON as segment_lengths_m). TUM and EuRoC files are associated
by timestamp (nearest within --max-diff); KITTI files have no stamps and are compared index by index."""


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", type=Path, required=True, help="predicted trajectory file")
    p.add_argument("--gt", type=Path, required=True, help="ground-truth trajectory file")
    p.add_argument("--format", default="auto", choices=("auto", "tum", "kitti", "euroc"),
                   help="format of both files (auto: guessed per file from its first line)")
    p.add_argument("--gt-format", default=None, choices=("tum", "kitti", "euroc"), help="GT format, if it differs")
    p.add_argument("--pred-times", type=Path, default=None, help="KITTI: times.txt for the prediction")
    p.add_argument("--gt-times", type=Path, default=None, help="KITTI: times.txt for the GT")
    p.add_argument("--json", type=Path, required=True, help="write all metrics here")
    p.add_argument("--plot", type=Path, default=None, help="PNG: top view of the aligned prediction over GT")
    p.add_argument("--html", type=Path, default=None, help="HTML report (metrics + plot)")
    p.add_argument("--max-diff", type=float, default=0.01, help="association: max. time difference [s] (evo's)")
    p.add_argument("--offset", type=float, default=0.0, help="association: time offset added to the prediction [s]")
    p.add_argument("--delta", type=int, default=1, help="RPE step in frames")
    p.add_argument("--delta-m", type=float, default=None, help="also RPE over this path distance [m]")
    p.add_argument("--all-pairs", action="store_true", help="RPE over all pairs, not consecutive ones")
    p.add_argument("--align", nargs="+", default=["se3", "sim3"],
                   choices=("none", "origin", "se3", "sim3", "scale"), help="alignments to report")
    p.add_argument("--snippet", type=int, default=5, help="snippet length of the Monodepth2 ATE (0 = skip)")
    p.add_argument("--segment-lengths", type=float, nargs="+", default=None, metavar="M",
                   help="segment lengths [m] of t_rel/r_rel (default: KITTI's 100..800, adapted to the drive)")
    p.add_argument("--segment-step", type=int, default=1,
                   help="a segment starts every N-th frame (default 1: all segments; the KITTI devkit uses 10)")
    p.add_argument("--max-ate-pct", type=float, default=None,
                   help="exit 1 when the SE(3)-aligned ATE exceeds this %% of the path length")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.evaluate.pose_metrics import evaluate_trajectory
    from depth_node.evaluate.report import plot_trajectory, write_html_report, write_json
    from depth_node.io.trajectories import read_trajectory

    if args.delta < 1:
        raise DepthNodeError("--delta must be at least 1")
    if args.segment_step < 1:
        raise DepthNodeError("--segment-step must be at least 1")
    if args.max_diff <= 0:
        raise DepthNodeError("--max-diff must be positive")
    pred = read_trajectory(args.pred, args.format, args.pred_times)
    gt = read_trajectory(args.gt, args.gt_format or args.format, args.gt_times)
    aligns = tuple(dict.fromkeys(args.align))
    if args.max_ate_pct is not None and "se3" not in aligns:
        aligns = ("se3", *aligns)
    ev = evaluate_trajectory(
        pred, gt, alignments=aligns, max_diff=args.max_diff, offset=args.offset, delta=args.delta,
        delta_m=args.delta_m, all_pairs=args.all_pairs, snippet_length=args.snippet,
        segment_lengths=tuple(args.segment_lengths) if args.segment_lengths else None, segment_step=args.segment_step,
    )
    out = dict(ev.summary)
    out["files"] = {"pred": str(args.pred), "gt": str(args.gt)}
    if args.max_ate_pct is not None:
        out["acceptance"] = {"max_ate_pct": args.max_ate_pct,
                             "passed": bool(out["ate_se3_pct_of_path"] <= args.max_ate_pct)}
    plot = args.plot
    if args.html is not None and plot is None:
        plot = args.html.with_suffix(".png")
    if plot is not None:
        main = "se3" if "se3" in ev.aligned else next(iter(ev.aligned))
        plot_trajectory(
            plot, ev.gt[:, :3, 3], {f"prediction ({m})": P[:, :3, 3] for m, P in ev.aligned.items()},
            title=f"{args.pred.name} vs {args.gt.name}", errors=ev.ate_errors[main], stamps=ev.stamps,
        )
        out["files"]["plot"] = str(plot)
    write_json(args.json, out)
    if args.html is not None:
        write_html_report(args.html, f"eval-pose: {args.pred.name}", out,
                          [("aligned prediction over ground truth; ATE per pose", plot)] if plot else [],
                          card=_card(out, args.max_ate_pct),
                          facts={"files": f"{args.pred.name} vs {args.gt.name}",
                                 "segment lengths": ", ".join(f"{x:g}" for x in out["segment_lengths_m"]) + " m"})
    _print_summary(out)
    if args.max_ate_pct is not None and not out["acceptance"]["passed"]:
        print(f"FAIL: ATE {out['ate_se3_pct_of_path']:.2f} % of path > {args.max_ate_pct} %")
        return 1
    return 0


def _card(out: dict, max_ate_pct: float | None) -> list:
    """The report's summary card: ATE (judged when --max-ate-pct is given), segment drift, path length."""
    from depth_node.evaluate.report import CardItem

    return [CardItem.judged("ATE (SE(3))", out.get("ate_se3_pct_of_path"), max_ate_pct, "% of path"),
            CardItem("t_rel", out["t_rel_pct"], "%"), CardItem("r_rel", out["r_rel_deg_per_100m"], "°/100 m"),
            CardItem("GT path length", out["gt_path_length"], "m")]


def _print_summary(out: dict) -> None:
    print(f"poses: {out['n_matched']} paired ({out['association']['by']}) of {out['n_pred']} predicted / "
          f"{out['n_gt']} GT; GT path {out['gt_path_length']:.3f} m")
    for mode, a in out["ate"].items():
        r = out["rpe"].get(mode, {})
        line = (f"  {mode:>6}: ATE rmse {a['trans']['rmse']:.4f} m ({a['pct_of_path']:.2f} % of path), "
                f"rot {a['rot_deg']['rmse']:.3f} deg")
        if "trans" in r:
            line += f"; RPE/{r['delta']}f rmse {r['trans']['rmse']:.4f} m, {r['rot_deg']['rmse']:.4f} deg"
        if mode == "sim3":
            line += f"; scale {a['alignment']['scale']:.4f}"
        print(line)
    lengths = ", ".join(f"{L:g}" for L in out["segment_lengths_m"]) or "none (no path)"
    print(f"  segment drift over {lengths} m: t_rel {out['t_rel_pct']:.3f} %, "
          f"r_rel {out['r_rel_deg_per_100m']:.3f} deg/100 m ({out['segment_drift']['n_segments']} segments)")
    if "snippet_ate" in out:
        s = out["snippet_ate"]
        print(f"  snippet ATE ({s['length']} frames): {s['mean']:.4f} ± {s['std']:.4f}")
