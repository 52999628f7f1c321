"""`depth-node eval-bag`: run the node over a bag and score what it published against the bag's ground truth.

Online (default): the real node as its own process, the bag replayed over ROS 2 with its timing, the outputs
recorded into `<out>/outputs` (MCAP). `--offline`: the node's FramePipeline over every image, no transport
(faster than real time on a GPU, and deterministic). Both write report.html + metrics.json into --out.
The online run keeps ROS 2 traffic on loopback in a private domain (`--domain-id`), so replaying a bag never
publishes camera topics into a robot's graph.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from depth_node.errors import DepthNodeError
from depth_node.evaluate.depth_metrics import EVAL_MAX_DEPTH


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1] if __doc__ else help_text)
    add_run_arguments(p)
    p.add_argument("bag", help="bag directory (with metadata.yaml) or a .mcap/.db3 file")
    p.add_argument("--image", required=True, metavar="TOPIC",
                   help="camera topic: sensor_msgs/Image, or CompressedImage on <image>/compressed (the node then "
                   "runs with transport: compressed)")
    p.add_argument("--camera-info", metavar="TOPIC",
                   help="CameraInfo topic (default: <image namespace>/camera_info when the bag has it)")
    p.add_argument("--gt-depth", metavar="TOPIC", help="ground-truth depth (32FC1 m or 16UC1 mm); omitted: not scored")
    p.add_argument("--gt-odom", metavar="TOPIC",
                   help="ground-truth poses (nav_msgs/Odometry or geometry_msgs/PoseStamped); omitted: not scored")
    p.add_argument("--out", default="out/eval_bag", help="output folder (default out/eval_bag)")
    p.add_argument("--json", metavar="PATH", help="also write the metrics JSON here")
    p.set_defaults(func=run)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared with `depth-node demo`."""
    p.add_argument("--model", default="", help="model file or depth.onnx (default: the package's default model)")
    p.add_argument("--params-file", metavar="YAML", help="node parameters (ROS params file, as for the node)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="one node parameter (YAML value), after --params-file; repeatable")
    p.add_argument("--offline", action="store_true", help="run the node's pipeline in-process instead of over ROS 2")
    p.add_argument("--rate", type=float, default=1.0, help="replay speed factor for the online run (default 1)")
    p.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID of the online run (default: a random one, 150–229)")
    p.add_argument("--median-scaling", action="store_true",
                   help="scale each depth map by median(GT)/median(pred) (relative models; default: metric)")
    p.add_argument("--max-depth", type=float, default=EVAL_MAX_DEPTH,
                   help=f"GT depth cap in metres (default {EVAL_MAX_DEPTH:g})")
    p.add_argument("--max-dt", type=float, default=0.01, help="largest stamp difference paired with GT (s)")
    p.add_argument("--samples", type=int, default=4, help="sample frames in the report (default 4)")
    p.add_argument("--scale-warmup", type=float, default=2.0,
                   help="bag seconds before the depth-scale error is judged (scale sources settle; default 2)")


def node_params(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parameters for the node: `base`, then --params-file, then -p, then --model; validated here so a typo
    fails before anything starts."""
    from depth_node.runtime import params as P

    values: dict[str, Any] = dict(base or {})
    if args.params_file:
        try:
            data = yaml.safe_load(Path(args.params_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DepthNodeError(f"cannot read --params-file {args.params_file}: {exc}") from exc
        try:
            values.update(P.params_from_yaml(data))
        except P.ParamError as exc:
            raise DepthNodeError(f"--params-file {args.params_file}: {exc}") from exc
    values.update(P.params_from_cli(args.param))
    if args.model:
        values["model"] = str(Path(args.model).expanduser().resolve())
    values.setdefault("autostart", True)
    P.validate(values)  # raises ParamError naming every bad parameter
    return values


def evaluate_bag(args: argparse.Namespace, bag: str | Path, out: Path, *, image: str, camera_info: str | None,
                 gt_depth: str | None, gt_odom: str | None, params: dict[str, Any], title: str,
                 notes: tuple[str, ...] = (), limits: dict[str, float] | None = None, prog: str = "eval-bag") -> dict:
    """Run the node over `bag` (online or --offline) and score it; `prog` (the command running it) prefixes what
    is printed on the way."""
    from depth_node.evaluate.bag_score import ScoreSettings, check_ground_truth_topics, score_run
    from depth_node.ros.bag_runner import run_offline, run_online

    check_ground_truth_topics(bag, gt_depth, gt_odom)
    out.mkdir(parents=True, exist_ok=True)
    outputs = out / "outputs"
    if args.offline:
        print(f"{prog}: loading the model for the in-process pipeline (--offline, no ROS 2 transport)", flush=True)
        run_ = run_offline(bag, outputs, image=image, camera_info=camera_info, params=params)
    else:
        from depth_node.runtime.tool_isolation import isolate

        domain = isolate(args.domain_id)
        print(f"{prog}: node and replay on ROS_DOMAIN_ID={domain}, loopback only", flush=True)
        run_ = run_online(bag, outputs, image=image, camera_info=camera_info, params=params, rate=args.rate,
                          prog=prog)
    settings = ScoreSettings(image=image, gt_depth=gt_depth, gt_odom=gt_odom, median_scaling=args.median_scaling,
                             max_depth=args.max_depth, max_dt=args.max_dt, samples=args.samples,
                             scale_warmup_s=args.scale_warmup)
    scored = [w for w, topic in (("depth", gt_depth), ("odometry", gt_odom)) if topic]
    print(f"{prog}: scoring {' and '.join(scored) or 'the outputs (no ground truth given)'} and writing the "
          f"report into {out}", flush=True)
    return score_run(bag, run_, out, settings, title=title, notes=notes, limits=limits, params=params)


def print_headline(metrics: dict, out: Path) -> None:
    h = metrics["headline"]

    def f(v, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    mode = metrics.get("depth", {}).get("mode", "")
    print(f"depth ({mode}): abs_rel {f(h['abs_rel'], '.4f')}  rmse {f(h['rmse'], '.3f')} m  δ<1.25 {f(h['a1'], '.3f')}")
    ds = metrics.get("depth_scale", {})
    if ds.get("frames_after_warmup"):
        print(f"depth scale after {ds['warmup_s']:g} s: GT/published median {ds['ratio_median']:.3f}, per-frame error "
              f"median {ds['error_median']:.2%} (p90 {ds['error_p90']:.2%}); odometry scale error "
              f"{f(h['odom_scale_error'], '.2%')}")
    print(f"odometry: ATE (SE(3)) {f(h['ate_se3_rmse_m'], '.3f')} m = {f(h['ate_se3_pct_of_path'], '.2f')} % of "
          f"{f(h['gt_path_length_m'], '.1f')} m path")
    frames = f"{metrics['counts']['depth_out']}/{metrics['run']['images_in']} frames out"
    if metrics["run"]["mode"] == "offline":  # in-process: no transport, so no latency and no output rate
        print(f"timing (offline, in-process): pipeline time per frame median {f(h['pipeline_time_median_ms'], '.1f')}"
              f" ms, pipeline throughput {f(h['pipeline_throughput_hz'], '.2f')} frames/s, {frames}")
    else:
        print(f"timing: end-to-end latency to the depth image median {f(h['latency_median_ms'], '.1f')} ms, "
              f"output rate {f(h['output_rate_hz'], '.2f')} Hz, {frames}")
    for s in metrics.get("skipped", []):
        print(f"not scored: {s}")
    print(f"report: {out / 'report.html'}")


def run(args: argparse.Namespace) -> int:
    params = node_params(args)
    out = Path(args.out)
    metrics = evaluate_bag(args, args.bag, out, image=args.image, camera_info=args.camera_info,
                           gt_depth=args.gt_depth, gt_odom=args.gt_odom, params=params,
                           title=f"depth_node on {Path(args.bag).name}")
    if args.json:
        from depth_node.evaluate.report import write_json

        write_json(args.json, metrics)
    print_headline(metrics, out)
    if args.json:
        print(f"metrics: {args.json}")
    else:
        print(json.dumps(metrics["headline"]))
    return 0
