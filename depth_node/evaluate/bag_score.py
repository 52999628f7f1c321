"""Scoring a recording of the node's outputs against whatever ground truth the input bag carries.

Depth (metric by default: a node that publishes metres is judged in metres; `median_scaling` for relative
models), odometry (full-trajectory ATE/RPE with SE(3) and Sim(3) alignment), latency and rate, and sample
frames (image | prediction | GT | error, plus a view of the published cloud). Missing ground truth skips that
part and says so; nothing is invented. Pairing is by header stamp: the node copies the image's header.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.evaluate import report as R
from depth_node.evaluate.depth_metrics import EVAL_MAX_DEPTH, EVAL_MIN_DEPTH, DepthEvalSettings, DepthEvaluator
from depth_node.evaluate.pose_metrics import evaluate_trajectory
from depth_node.evaluate.published_depth import PublishedDepth
from depth_node.geometry.poses import matrix_from_quaternion
from depth_node.io.bags import BagReader, stamp_to_ns
from depth_node.io.image_codec import decode_image, decode_rgb
from depth_node.io.trajectories import Trajectory, write_tum
from depth_node.runtime.bag_run import DIAGNOSTICS, RunResult, output_topic
from depth_node.runtime.topics import CAMERA_INFO_TYPE, DEPTH_IMAGE, camera_info_topic

POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseWithCovarianceStamped")


@dataclass
class ScoreSettings:
    image: str
    gt_depth: str | None = None
    gt_odom: str | None = None
    median_scaling: bool = False
    min_depth: float = EVAL_MIN_DEPTH
    max_depth: float = EVAL_MAX_DEPTH
    max_dt: float = 0.01  # s: largest stamp difference paired (GT from another sensor)
    samples: int = 4
    scale_warmup_s: float = 2.0  # depth-scale error is judged after this much bag time (scale sources settle)


def check_ground_truth_topics(bag_path: str | Path, gt_depth: str | None, gt_odom: str | None) -> None:
    """The ground-truth topics exist and have a type the scorer reads: checked before a run, which takes as long
    as the bag (online) or its inference (offline), not after it."""
    with BagReader(bag_path) as bag:
        for topic, option, types in ((gt_depth, "--gt-depth", ("sensor_msgs/msg/Image",)),
                                     (gt_odom, "--gt-odom", POSE_TYPES)):
            if not topic:
                continue
            if topic not in bag.topics:
                fitting = [t for t, s in bag.topics.items() if s.msgtype in types]
                raise DepthNodeError(f"{bag.path} has no topic {topic} ({option}); topics of a fitting type: "
                                     f"{', '.join(fitting) or 'none'}")
            msgtype = bag.topics[topic].msgtype
            if msgtype not in types:
                raise DepthNodeError(f"{topic} ({option}) is {msgtype}; it must be {' or '.join(types)}")


def gt_depth_metres(msg: Any) -> np.ndarray:
    """32FC1 metres (REP 118) or 16UC1/mono16 millimetres → float32 metres, NaN where invalid."""
    arr = decode_image(msg)
    if msg.encoding in ("16UC1", "mono16"):
        out = arr.astype(np.float32) / 1000.0
        out[arr == 0] = np.nan
        return out
    if msg.encoding != "32FC1":
        raise DepthNodeError(f"ground-truth depth must be 32FC1 (m) or 16UC1 (mm), got {msg.encoding}")
    out = np.array(arr, dtype=np.float32)
    out[~(out > 0)] = np.nan
    return out


def pose_of(msg: Any) -> np.ndarray:
    p = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
    T = np.eye(4)
    o = p.orientation
    T[:3, :3] = matrix_from_quaternion([o.x, o.y, o.z, o.w])
    T[:3, 3] = [p.position.x, p.position.y, p.position.z]
    return T


def read_trajectory_topic(bag: BagReader, topic: str, name: str) -> Trajectory:
    msgtype = bag.topics[topic].msgtype
    if msgtype not in POSE_TYPES:
        raise DepthNodeError(f"{topic} is {msgtype}; odometry ground truth must be one of {', '.join(POSE_TYPES)}")
    poses, stamps = [], []
    for m in bag.messages([topic]):
        poses.append(pose_of(m.msg))
        stamps.append(stamp_to_ns(m.msg.header.stamp) / 1e9)
    if not poses:
        raise DepthNodeError(f"{topic} has no messages")
    return Trajectory(np.stack(poses), np.array(stamps), name)


def _nearest(stamps: np.ndarray, s: int, max_dt_ns: int) -> int | None:
    if stamps.size == 0:
        return None
    i = int(np.searchsorted(stamps, s))
    best = None
    for j in (i - 1, i):
        if 0 <= j < stamps.size and (best is None or abs(stamps[j] - s) < abs(stamps[best] - s)):
            best = j
    return best if best is not None and abs(int(stamps[best]) - s) <= max_dt_ns else None


def _stats(values_ms: np.ndarray) -> dict[str, float]:
    v = np.asarray(values_ms, dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "mean_ms": float(v.mean()), "median_ms": float(np.median(v)),
            "p90_ms": float(np.percentile(v, 90)), "p99_ms": float(np.percentile(v, 99)), "max_ms": float(v.max())}


def _cloud_xyz(msg: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """x, y, z (and packed rgb) of a PointCloud2 with float32 fields, as (N, 3) and (N, 3) uint8."""
    from depth_node.geometry.pointcloud import unpack_rgb

    offs = {f.name: int(f.offset) for f in msg.fields}
    step = int(msg.point_step)
    n = int(msg.width) * int(msg.height)
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(), np.uint8)
    rec = buf[: n * step].reshape(n, step)
    xyz = np.stack([rec[:, offs[k]: offs[k] + 4].copy().view("<f4")[:, 0] for k in "xyz"], axis=1)
    rgb = unpack_rgb(rec[:, offs["rgb"]: offs["rgb"] + 4].copy().view("<f4")[:, 0]) if "rgb" in offs else None
    return xyz, rgb


# counters are cumulative: the final status has the totals; rates and latencies are per period
_COUNTER_PREFIXES = ("frames_", "errors.", "odom.", "input_errors", "camera_info_fallbacks")


def _diagnostics(bag: BagReader) -> dict[str, str]:
    """Key/values the node reported while the stream ran, with the cumulative counters of its final status.

    Rates and latencies are per diagnostics period (1 s by default), and the last period with images arriving
    is partial: the stream ends inside it (a 10 Hz stream reads 8 Hz there), and so may the first one. So the
    figures are those of the last full period: the active period (input rate > 0) before the final active one;
    a stream with a single active period gives that one. After the stream ends the rates read 0 and the
    latencies are empty. A node that never saw an image gives its final status."""
    if DIAGNOSTICS not in bag.topics:
        return {}
    last, active = None, []
    for m in bag.messages([DIAGNOSTICS]):
        for st in m.msg.status:
            if "mono_depth" in st.name:
                last = {kv.key: kv.value for kv in st.values}
                if _float(last.get("input_rate_hz")) > 0:
                    active.append(last)
    if last is None:
        return {}
    if not active:
        return last
    full = active[-2] if len(active) >= 2 else active[-1]
    return {**full, **{k: v for k, v in last.items() if k.startswith(_COUNTER_PREFIXES)}}


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _read_outputs(run: RunResult) -> tuple[PublishedDepth, Trajectory | None, dict[str, str]]:
    """The node's published depth images (their stamps; the images are read as scoring asks), its odometry, and
    its diagnostics while the stream ran."""
    preds = PublishedDepth(run.outputs_bag, output_topic(DEPTH_IMAGE))
    with BagReader(run.outputs_bag) as outs:
        odom_topic = output_topic("odom")
        pred_traj = (read_trajectory_topic(outs, odom_topic, "depth_node")
                     if odom_topic in outs.topics and outs.topics[odom_topic].count else None)
        diagnostics = _diagnostics(outs)
    if not len(preds):
        raise DepthNodeError(f"the node published no depth image into {run.outputs_bag}; see "
                             f"{run.node_log or 'the log'}")
    return preds, pred_traj, diagnostics


def _score_depth(bag: BagReader, preds: PublishedDepth, settings: ScoreSettings, out: Path,
                 metrics: dict, figs: list[tuple[str, Path]], limits: dict[str, float] | None = None) -> list[int]:
    """Depth metrics, the depth-scale error and their plots (over bag time, with the abs_rel limit where the
    command has one and the scale warm-up marked); returns the stamps of the sample frames. One ground-truth
    frame and its prediction in memory at a time (`PublishedDepth`)."""
    pred_stamps = preds.stamps
    max_dt_ns = round(settings.max_dt * 1e9)
    if settings.gt_depth not in bag.topics:
        raise DepthNodeError(f"{bag.path} has no topic {settings.gt_depth} (--gt-depth)")
    ev = DepthEvaluator(DepthEvalSettings(median_scaling=settings.median_scaling,
                                          min_depth=settings.min_depth, max_depth=settings.max_depth))
    paired: list[int] = []
    per_frame: list[float] = []
    per_frame_t: list[int] = []  # GT stamps of per_frame
    ratios: list[tuple[int, float]] = []  # (stamp, median GT / predicted depth) of each paired frame
    for m in bag.messages([settings.gt_depth]):
        s = stamp_to_ns(m.msg.header.stamp)
        j = _nearest(pred_stamps, s, max_dt_ns)
        if j is None:
            continue
        gt = gt_depth_metres(m.msg)
        pred = preds.get(int(pred_stamps[j]), floor=s - max_dt_ns)
        r = ev.add(gt, pred, name=str(s))
        ratio = frame_scale_ratio(gt, pred, settings.min_depth, settings.max_depth)
        if ratio is not None:
            ratios.append((s, ratio))
        if r.errors:
            paired.append(int(pred_stamps[j]))
            per_frame.append(r.errors["abs_rel"])
            per_frame_t.append(s)
    if not paired:
        raise DepthNodeError(f"no depth output matched a {settings.gt_depth} message within {settings.max_dt} s")
    metrics["depth"] = {**ev.result().to_dict(per_image=False),
                        "mode": "median-scaled" if settings.median_scaling else "metric"}
    t0 = min(per_frame_t[0], ratios[0][0]) if ratios else per_frame_t[0]  # one time axis for both plots
    mean = metrics["depth"]["metrics"]["abs_rel"]
    lines = [(mean, f"mean {mean:.4f} (the reported abs_rel)", "k")]
    if limits and limits.get("abs_rel") is not None:
        lines.append((limits["abs_rel"], f"acceptance limit on the mean: {limits['abs_rel']:g}", "tab:red"))
    mode = "median-scaled" if settings.median_scaling else "metric"
    figs.append((f"depth abs_rel per frame ({mode}; the reported figure is their mean)", R.plot_curves(
        out / "depth_abs_rel.png", {"abs_rel": per_frame}, xlabel="bag time [s]", ylabel="abs_rel (|pred − GT| / GT)",
        title=f"depth abs_rel per frame ({mode})", x=(np.array(per_frame_t) - t0) / 1e9, hlines=lines)))
    if ratios:
        metrics["depth_scale"] = ds = scale_summary(ratios, settings.scale_warmup_s)
        w0 = (ratios[0][0] - t0) / 1e9
        judged = (f"; after {ds['warmup_s']:g} s: median {ds['ratio_median']:.3f}, per-frame error median "
                  f"{100 * ds['error_median']:.4g} %" if ds.get("frames_after_warmup") else "")
        warm = settings.scale_warmup_s
        figs.append((f"depth scale per frame: median(GT / published depth), 1 = metric; the first {warm:g} s "
                     f"(shaded) are not judged{judged}", R.plot_curves(
                         out / "depth_scale.png", {"GT / published": [r for _, r in ratios]}, xlabel="bag time [s]",
                         ylabel="median(GT / published depth)", title="depth scale per frame",
                         x=(np.array([t for t, _ in ratios]) - t0) / 1e9, hlines=[(1.0, "metric (1)", "k")],
                         span=(w0, w0 + warm, f"warm-up ({warm:g} s, not judged)"))))
    return _spread(paired, settings.samples)


def _spread(stamps: list[int], k: int) -> list[int]:
    k = min(k, len(stamps))
    return [stamps[i] for i in np.linspace(0, len(stamps) - 1, k).astype(int)] if k else []


def final_height_error(pred_origin_aligned: np.ndarray, gt: np.ndarray, path_length: float) -> dict[str, float]:
    """How far the published odometry ends above or below the truth when both start at the same pose: the climb
    a map built with it shows. Height is z of the ground truth's world (REP 103/105: z up)."""
    dz = float(pred_origin_aligned[-1, 2, 3] - gt[-1, 2, 3])
    return {"final_height_error_m": dz,
            "final_height_error_pct_of_path": 100.0 * abs(dz) / path_length if path_length > 0 else math.nan}


def _score_odometry(bag: BagReader, pred_traj: Trajectory | None, settings: ScoreSettings, out: Path,
                    metrics: dict, skipped: list[str]) -> tuple[str, Path] | None:
    """ATE/RPE, segment drift and final height error of the published odometry; the trajectory plot."""
    if not settings.gt_odom:
        skipped.append("odometry: no --gt-odom topic given")
        return None
    if pred_traj is None:
        skipped.append("odometry: the node published no odom (model without a pose network?)")
        return None
    if settings.gt_odom not in bag.topics:
        raise DepthNodeError(f"{bag.path} has no topic {settings.gt_odom} (--gt-odom)")
    gt_traj = read_trajectory_topic(bag, settings.gt_odom, "ground truth")
    ev_t = evaluate_trajectory(pred_traj, gt_traj, alignments=("se3", "sim3", "origin"), max_diff=settings.max_dt)
    metrics["odometry"] = {**ev_t.summary, **final_height_error(ev_t.aligned["origin"], ev_t.gt,
                                                                ev_t.summary["gt_path_length"])}
    write_tum(out / "odom_pred.tum", pred_traj)
    write_tum(out / "odom_gt.tum", gt_traj)
    shown = {k: v[:, :3, 3] for k, v in ev_t.aligned.items() if k != "origin"}
    # top view in the ground truth's world, z up (REP 103/105): x–y, also on a straight drive
    return ("odometry over ground truth, top view (x–y of the ground truth's frame, SE(3)- and Sim(3)-aligned), "
            "and the SE(3) ATE per pose", R.plot_trajectory(
                out / "trajectory.png", ev_t.gt[:, :3, 3], shown, title="odometry (top view, z up)",
                errors=ev_t.ate_errors.get("se3"), stamps=ev_t.stamps, up=2))


def _sample_figures(bag: BagReader, preds: PublishedDepth, samples: list[int], settings: ScoreSettings,
                    out: Path) -> list[tuple[str, Path]]:
    """image | predicted depth | GT | relative error panels of the sample frames."""
    from depth_node.evaluate.depth_metrics import resize_to

    want = set(samples)
    rgbs = {s: np.array(decode_rgb(m.msg)) for m in bag.messages([settings.image])
            if (s := stamp_to_ns(m.msg.header.stamp)) in want}
    gts: dict[int, np.ndarray] = {}
    if settings.gt_depth and samples:
        arr = np.array(samples, dtype=np.int64)
        for m in bag.messages([settings.gt_depth]):
            j = _nearest(arr, stamp_to_ns(m.msg.header.stamp), round(settings.max_dt * 1e9))
            if j is not None:
                gts[samples[j]] = gt_depth_metres(m.msg)
    depths = preds.read(samples)
    figs = []
    for i, s in enumerate(samples):
        pred, gt, rgb = depths[s], gts.get(s), rgbs.get(s)
        if gt is not None and pred.shape != gt.shape:
            pred = resize_to(pred, gt.shape)
        if rgb is not None and rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        if rgb is not None and rgb.shape[:2] != pred.shape:
            from PIL import Image

            rgb = np.asarray(Image.fromarray(rgb).resize((pred.shape[1], pred.shape[0]), Image.BILINEAR))
        panel = R.depth_panel(rgb, pred, gt, max_depth=settings.max_depth)
        legend = R.panel_legend(R.depth_range(pred, gt, settings.max_depth), with_error=gt is not None)
        t = (s - samples[0]) / 1e9
        figs.append((f"frame at +{t:.1f} s: image | predicted depth | ground truth | relative error; {legend}"
                     if gt is not None else f"frame at +{t:.1f} s: image | predicted depth; {legend}",
                     R.save_png(out / f"sample_{i}.png", panel)))
    return figs


def _cloud_figure(run: RunResult, samples: list[int], out: Path) -> tuple[str, Path] | None:
    with BagReader(run.outputs_bag) as outs:
        pts = output_topic("points")
        if not samples or pts not in outs.topics:
            return None
        mid = samples[len(samples) // 2]
        for m in outs.messages([pts]):
            if stamp_to_ns(m.msg.header.stamp) == mid:
                xyz, rgb = _cloud_xyz(m.msg)
                return ("the published point cloud of the middle sample frame", R.plot_cloud(
                    out / "cloud.png", xyz, rgb, title="organized cloud (optical frame)"))
    return None


E2E_NOTE = ("end-to-end latency: the recorder's receive time of a depth image minus the player's send time of the "
            "image with the same stamp (transport both ways + queueing + inference + publishing the depth image)")
NODE_LATENCY_NOTE = ("the node's own latency (node_diagnostics.latency_*): from its image callback to depth, "
                     "depth/camera_info and the cloud published (odometry after them is not included), per "
                     "diagnostics period; the report takes the last full period with images arriving")
PIPELINE_NOTE = ("offline: no transport, so no latency or output rate; pipeline time per frame = the frame core's "
                 "pre-processing + inference + scale + odometry, in-process, every image in order; throughput = "
                 "1 / its mean")


def _timing(run: RunResult, settings: ScoreSettings, out: Path) -> tuple[dict[str, Any], tuple[str, Path] | None]:
    """Latency and rates: end to end through ROS 2 (online), or the pipeline's time per frame (offline)."""
    timing: dict[str, Any] = {}
    fig = None
    if run.arrivals is not None:
        a = run.arrivals
        img_in = a.by_stamp(settings.image)
        out_recv = a.by_stamp(output_topic(DEPTH_IMAGE))
        pairs = sorted((s, (r - img_in[s]) / 1e6) for s, r in out_recv.items() if s in img_in)
        lat = np.array([p[1] for p in pairs])
        timing["end_to_end_latency"] = _stats(lat)
        timing["output_rate_hz"] = _rate(np.array(sorted(out_recv.values()), dtype=np.float64) / 1e9)
        timing["input_rate_hz"] = _rate(np.array(sorted(img_in.values()), dtype=np.float64) / 1e9)
        timing["note"] = E2E_NOTE
        if lat.size:
            fig = ("end-to-end latency through the node: player send of an image → recorder receive of its depth "
                   "image (median, p90, p99 as in the JSON)", R.plot_latency(
                       out / "latency.png", lat, np.array([p[0] for p in pairs]) / 1e9, "end-to-end latency"))
    if run.frame_seconds:
        sec = np.array(run.frame_seconds) * 1e3
        timing["pipeline_latency"] = _stats(sec)
        timing["pipeline_rate_hz"] = float(1e3 / sec.mean())
        timing["note"] = PIPELINE_NOTE
        fig = ("pipeline time per frame (offline, in-process: pre-processing + inference + scale + odometry; no "
               "transport, so not a latency)", R.plot_latency(out / "latency.png", sec, title="pipeline time per frame",
                                                              quantity="pipeline time"))
    return timing, fig


def _rate(t: np.ndarray) -> float:
    return float((t.size - 1) / (t[-1] - t[0])) if t.size > 1 and t[-1] > t[0] else math.nan


def _camera(bag: BagReader, image: str) -> str:
    """'W×H, fx F px' of the input camera (from its first image and camera_info when the bag has one)."""
    first = next(iter(bag.messages([image])), None)
    if first is None:
        return "n/a"
    if hasattr(first.msg, "width"):
        text = f"{first.msg.width}×{first.msg.height}"
    else:  # CompressedImage: the size is in the data
        h, w = decode_rgb(first.msg).shape[:2]
        text = f"{w}×{h}"
    info = camera_info_topic(image, [t for t, s in bag.topics.items() if s.msgtype == CAMERA_INFO_TYPE])
    if info is not None:
        m = next(iter(bag.messages([info])), None)
        if m is not None and float(m.msg.k[0]) > 0:
            text += f", fx {float(m.msg.k[0]):.1f} px"
    return text


def score_run(input_bag: str | Path, run: RunResult, out_dir: str | Path, settings: ScoreSettings,
              title: str = "depth_node on a bag", notes: tuple[str, ...] = (),
              limits: dict[str, float] | None = None, params: dict[str, Any] | None = None) -> dict:
    """Score `run`'s outputs bag; write report.html, metrics.json and PNGs into `out_dir`; return the metrics.
    `limits` {headline key: upper bound} adds an `acceptance` section (value, limit, pass) to both; `params`
    (the node parameters of the run) puts those that differ from the node's defaults on the summary card."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {"run": {"mode": run.mode, "model": run.model, "images_in": run.images_in,
                                       "wall_s": run.wall_s, "outputs_bag": str(run.outputs_bag)},
                               "settings": asdict(settings)}
    skipped: list[str] = []
    plots: list[tuple[str, Path]] = []
    preds, pred_traj, metrics["node_diagnostics"] = _read_outputs(run)
    loaded = metrics["node_diagnostics"].get("model", "")
    if loaded and loaded != "(not loaded)":  # the model the node (or the offline core) reports it loaded
        metrics["run"]["model"] = loaded
    if params is not None:
        metrics["run"]["node_params"] = non_default_params(params)
    metrics["counts"] = {"depth_out": len(preds), "odom_out": len(pred_traj) if pred_traj is not None else 0,
                         "dropped_or_lost": max(0, run.images_in - len(preds))}
    with BagReader(input_bag) as bag, preds:
        if settings.gt_depth:
            samples = _score_depth(bag, preds, settings, out, metrics, plots, limits)
        else:
            skipped.append("depth: no --gt-depth topic given")
            samples = _spread([int(t) for t in preds.stamps], settings.samples)
        trajectory = _score_odometry(bag, pred_traj, settings, out, metrics, skipped)
        sample_figs = _sample_figures(bag, preds, samples, settings, out)
        camera = _camera(bag, settings.image)
    metrics["timing"], latency = _timing(run, settings, out)
    metrics["skipped"] = skipped
    metrics["headline"] = h = headline(metrics)
    if limits:
        metrics["acceptance"] = acceptance(h, limits)
    # pictures a person looks for first: frames, trajectory, cloud, latency; then the per-frame curves
    figs = [*sample_figs, *(f for f in (trajectory, _cloud_figure(run, samples, out), latency) if f), *plots]
    timing_notes = ((PIPELINE_NOTE,) if run.frame_seconds else (E2E_NOTE,)) + (
        (NODE_LATENCY_NOTE,) if metrics["node_diagnostics"].get("latency_mean_ms") else ())
    R.write_json(out / "metrics.json", metrics)
    R.write_html_report(out / "report.html", title, metrics, figs, card=card_items(h, limits or {}, _rpe_step(metrics)),
                        facts=run_facts(metrics, camera),
                        notes=(*notes, *(n[0].upper() + n[1:] + "." for n in timing_notes),
                               *(f"Not scored: {s}." for s in skipped)))
    return metrics


def non_default_params(params: dict[str, Any]) -> dict[str, Any]:
    """The node parameters of a run that differ from the node's defaults (the model is reported on its own)."""
    from depth_node.runtime.params import defaults

    base = defaults()
    return {k: v for k, v in sorted(params.items()) if k != "model" and (k not in base or base[k] != v)}


CARD = (  # headline key, label, unit, factor from the headline's value to the unit shown
    ("abs_rel", "depth abs_rel", "", 1.0),
    ("depth_scale_error", "depth scale error (per-frame median, after warm-up)", "%", 100.0),
    ("ate_se3_pct_of_path", "odometry ATE (SE(3))", "% of path", 1.0),
    ("rpe_trans_rmse_m", "odometry RPE translation (RMSE, {step})", "m", 1.0),
    ("rpe_rot_rmse_deg", "odometry RPE rotation (RMSE, {step})", "°", 1.0),
    ("t_rel_pct", "odometry t_rel", "%", 1.0),
    ("r_rel_deg_per_100m", "odometry r_rel", "°/100 m", 1.0),
    ("odom_scale_error", "odometry scale error (Sim(3))", "%", 100.0),
    ("final_height_error_pct_of_path", "final height error", "% of path", 1.0),
    ("latency_median_ms", "end-to-end latency to the depth image (median)", "ms", 1.0),
    ("output_rate_hz", "output rate (depth images received)", "Hz", 1.0),
    ("pipeline_time_median_ms", "pipeline time per frame (median, offline)", "ms", 1.0),
    ("pipeline_throughput_hz", "pipeline throughput (offline, 1 / mean time)", "frames/s", 1.0),
)

CARD_ROWS = {key: (label, unit, factor) for key, label, unit, factor in CARD}


def _rpe_step(metrics: dict) -> str:
    rpe = metrics.get("odometry", {}).get("rpe", {}).get("se3", {})
    delta, unit = rpe.get("delta", 1), rpe.get("unit", "frames")
    return "per frame step" if (delta, unit) == (1, "frames") else f"per {delta:g} {unit}"


def card_items(head: dict, limits: dict[str, float], rpe_step: str = "per frame step") -> list[R.CardItem]:
    """The report's summary card: the headline figures, judged against `limits` where a limit is given (in
    the headline's units; fractions are shown, with their limits, in %)."""
    return [_card_item(key, head.get(key), limits.get(key), rpe_step) for key, *_ in CARD
            if head.get(key) is not None or limits.get(key) is not None]


def _card_item(key: str, value: float | None, limit: float | None, rpe_step: str) -> R.CardItem:
    """One headline figure as the card shows it: CARD's label and unit, fractions (value and limit) in %."""
    label, unit, factor = CARD_ROWS.get(key, (key, "", 1.0))
    return R.CardItem.judged(label.format(step=rpe_step), None if value is None else value * factor,
                             None if limit is None else limit * factor, unit)


def acceptance_lines(metrics: dict) -> list[str]:
    """The acceptance checks as a person reads them, with the card's labels, units and digits:
    'odometry ATE (SE(3)): 0.5881 % of path (limit ≤ 5 % of path): PASS'."""
    lines = []
    for key, a in metrics.get("acceptance", {}).items():
        item = _card_item(key, a["value"], a["limit"], _rpe_step(metrics))
        value = "n/a" if item.value is None else f"{item.value:.4g} {item.unit}".strip()
        lines.append(f"{item.label}: {value} (limit {R.limit_text(item)}): {'PASS' if a['pass'] else 'FAIL'}")
    return lines


def run_facts(metrics: dict, camera: str) -> dict[str, str]:
    """Model, camera, backend, node parameters set, mode and frame counts of the run, and the node's own view
    of its rates and latency (online), for the summary card."""
    run, diag, counts = metrics["run"], metrics.get("node_diagnostics", {}), metrics["counts"]
    backend = " ".join(diag[k] for k in ("backend", "precision", "device") if k in diag) or "n/a (not recorded)"
    segs = metrics.get("odometry", {}).get("segment_lengths_m")
    model = Path(run["model"]).name if run["model"] else ""
    if model and diag.get("model_digest"):
        model += f" (digest {diag['model_digest']})"
    facts = {"model": model or "n/a", "camera": camera, "backend": backend}
    if "node_params" in run:
        facts["node parameters"] = (", ".join(f"{k}: {R._fmt(v)}" for k, v in run["node_params"].items())
                                    or "the node's defaults")
    facts["run"] = (f"{run['mode']}{' (in-process frame core, no ROS 2 transport)' if run['mode'] == 'offline' else ''}"
                    f", {counts['depth_out']}/{run['images_in']} frames out")
    if diag.get("latency_mean_ms") and _float(diag.get("input_rate_hz")) > 0:
        facts["node's own figures"] = (
            f"input {_float(diag['input_rate_hz']):.2f} Hz, output {_float(diag.get('output_rate_hz')):.2f} Hz, "
            f"latency mean {_float(diag['latency_mean_ms']):.1f} ms (image callback → depth + cloud published; "
            "last full diagnostics period)")
    if segs:
        facts["segment lengths"] = ", ".join(f"{x:g}" for x in segs) + " m"
    return facts


def frame_scale_ratio(gt: np.ndarray, pred: np.ndarray, min_depth: float, max_depth: float) -> float | None:
    """Median over valid pixels of GT / predicted depth: how far this frame's published scale is from metric."""
    from depth_node.evaluate.depth_metrics import resize_to

    if pred.shape != gt.shape:
        pred = resize_to(pred, gt.shape)
    ok = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth) & np.isfinite(pred) & (pred > 0)
    if ok.sum() < 10:
        return None
    return float(np.median(gt[ok] / pred[ok]))


def scale_summary(ratios: list[tuple[int, float]], warmup_s: float) -> dict[str, Any]:
    """Depth-scale error after warm-up: per frame |ratio − 1| (median, p90, max) and the bias |median ratio − 1|.
    The per-frame figure includes the model's own frame-to-frame scale jitter, which no scale source removes."""
    t0 = ratios[0][0]
    after = np.array([r for s, r in ratios if (s - t0) / 1e9 >= warmup_s], dtype=np.float64)
    out: dict[str, Any] = {"warmup_s": warmup_s, "frames": len(ratios), "frames_after_warmup": int(after.size),
                           "ratio_median_all": float(np.median([r for _, r in ratios]))}
    if after.size:
        err = np.abs(after - 1.0)
        out.update({"ratio_median": float(np.median(after)), "bias": float(abs(np.median(after) - 1.0)),
                    "error_median": float(np.median(err)), "error_p90": float(np.percentile(err, 90)),
                    "error_max": float(err.max()), "within_5pct": float(np.mean(err <= 0.05))})
    return out


def acceptance(head: dict, limits: dict[str, float]) -> dict[str, dict]:
    out = {}
    for key, limit in limits.items():
        v = head.get(key)
        out[key] = {"value": v, "limit": limit, "pass": v is not None and v <= limit}
    return out


def _odom_scale_error(odometry: dict) -> float | None:
    """|published / true translation − 1| from the Sim(3) alignment (scale s maps the estimate onto GT)."""
    s = odometry.get("ate", {}).get("sim3", {}).get("alignment", {}).get("scale")
    return abs(1.0 / s - 1.0) if s else None


def headline(metrics: dict) -> dict[str, float | None]:
    """The figures a person looks for first. Timing: online, end-to-end latency and output rate; offline (no
    transport), the pipeline's time per frame and its throughput instead, never under the latency's name."""
    d = metrics.get("depth", {}).get("metrics", {})
    o = metrics.get("odometry", {})
    t = metrics.get("timing", {})
    e2e, pipe = t.get("end_to_end_latency") or {}, t.get("pipeline_latency") or {}
    rpe = o.get("rpe", {}).get("se3", {})
    return {
        "abs_rel": d.get("abs_rel"),
        "rmse": d.get("rmse"),
        "a1": d.get("a1"),
        "ate_se3_pct_of_path": o.get("ate_se3_pct_of_path"),
        "ate_se3_rmse_m": o.get("ate", {}).get("se3", {}).get("trans", {}).get("rmse"),
        "rpe_trans_rmse_m": rpe.get("trans", {}).get("rmse"),
        "rpe_rot_rmse_deg": rpe.get("rot_deg", {}).get("rmse"),
        "t_rel_pct": o.get("t_rel_pct"),
        "r_rel_deg_per_100m": o.get("r_rel_deg_per_100m"),
        "final_height_error_pct_of_path": o.get("final_height_error_pct_of_path"),
        "gt_path_length_m": o.get("gt_path_length"),
        "depth_scale_error": metrics.get("depth_scale", {}).get("error_median"),
        "odom_scale_error": _odom_scale_error(o),
        "latency_median_ms": e2e.get("median_ms"),
        "output_rate_hz": t.get("output_rate_hz"),
        "pipeline_time_median_ms": pipe.get("median_ms"),
        "pipeline_throughput_hz": t.get("pipeline_rate_hz"),
    }
