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
from depth_node.evaluate.depth_metrics import DepthEvalSettings, DepthEvaluator
from depth_node.evaluate.pose_metrics import evaluate_trajectory
from depth_node.evaluate.trajectory_io import Trajectory, write_tum
from depth_node.geometry.poses import matrix_from_quaternion
from depth_node.io.bags import BagReader, stamp_to_ns
from depth_node.io.image_codec import decode_image, decode_rgb
from depth_node.ros.bag_runner import DIAGNOSTICS, RunResult, output_topic

POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseWithCovarianceStamped")


@dataclass
class ScoreSettings:
    image: str
    gt_depth: str | None = None
    gt_odom: str | None = None
    median_scaling: bool = False
    min_depth: float = 1e-3
    max_depth: float = 80.0
    max_dt: float = 0.01  # s: largest stamp difference paired (GT from another sensor)
    samples: int = 4
    scale_warmup_s: float = 2.0  # depth-scale error is judged after this much bag time (scale sources settle)


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


def _diagnostics(bag: BagReader) -> dict[str, str]:
    """Key/values of the node's last /diagnostics status."""
    if DIAGNOSTICS not in bag.topics:
        return {}
    last = None
    for m in bag.messages([DIAGNOSTICS]):
        for st in m.msg.status:
            if "mono_depth" in st.name:
                last = st
    return {kv.key: kv.value for kv in last.values} if last is not None else {}


def score_run(input_bag: str | Path, run: RunResult, out_dir: str | Path, settings: ScoreSettings,
              title: str = "depth_node on a bag", notes: tuple[str, ...] = (),
              limits: dict[str, float] | None = None) -> dict:
    """Score `run`'s outputs bag; write report.html, metrics.json and PNGs into `out_dir`; return the metrics.
    `limits` {headline key: upper bound} adds an `acceptance` section (value, limit, pass) to both."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs: list[tuple[str, Path]] = []
    metrics: dict[str, Any] = {"run": {"mode": run.mode, "model": run.model, "images_in": run.images_in,
                                       "wall_s": run.wall_s, "outputs_bag": str(run.outputs_bag)},
                               "settings": asdict(settings)}
    skipped: list[str] = []

    with BagReader(run.outputs_bag) as outs:
        depth_topic = output_topic("depth")
        preds: dict[int, np.ndarray] = {}
        if depth_topic in outs.topics:
            for m in outs.messages([depth_topic]):
                preds[stamp_to_ns(m.msg.header.stamp)] = np.array(decode_image(m.msg), dtype=np.float32)
        odom_topic = output_topic("odom")
        pred_traj = (read_trajectory_topic(outs, odom_topic, "depth_node")
                     if odom_topic in outs.topics and outs.topics[odom_topic].count else None)
        metrics["node_diagnostics"] = _diagnostics(outs)
    if not preds:
        raise DepthNodeError(f"the node published no depth image into {run.outputs_bag}; see "
                             f"{run.node_log or 'the log'}")
    pred_stamps = np.array(sorted(preds), dtype=np.int64)
    metrics["counts"] = {"depth_out": len(preds), "odom_out": len(pred_traj) if pred_traj is not None else 0,
                         "dropped_or_lost": max(0, run.images_in - len(preds))}

    # ------------------------------------------------------------------ depth
    samples: list[int] = []
    max_dt_ns = round(settings.max_dt * 1e9)
    with BagReader(input_bag) as bag:
        if settings.gt_depth:
            if settings.gt_depth not in bag.topics:
                raise DepthNodeError(f"{input_bag} has no topic {settings.gt_depth} (--gt-depth)")
            ev = DepthEvaluator(DepthEvalSettings(median_scaling=settings.median_scaling,
                                                  min_depth=settings.min_depth, max_depth=settings.max_depth))
            paired: list[int] = []
            per_frame: list[float] = []
            ratios: list[tuple[int, float]] = []  # (stamp, median GT / predicted depth) of each paired frame
            for m in bag.messages([settings.gt_depth]):
                s = stamp_to_ns(m.msg.header.stamp)
                j = _nearest(pred_stamps, s, max_dt_ns)
                if j is None:
                    continue
                gt = gt_depth_metres(m.msg)
                r = ev.add(gt, preds[int(pred_stamps[j])], name=str(s))
                ratio = frame_scale_ratio(gt, preds[int(pred_stamps[j])], settings.min_depth, settings.max_depth)
                if ratio is not None:
                    ratios.append((s, ratio))
                if r.errors:
                    paired.append(int(pred_stamps[j]))
                    per_frame.append(r.errors["abs_rel"])
            if not paired:
                raise DepthNodeError(f"no depth output matched a {settings.gt_depth} message within "
                                     f"{settings.max_dt} s")
            res = ev.result()
            metrics["depth"] = {**res.to_dict(per_image=False), "mode": "median-scaled" if settings.median_scaling
                                else "metric"}
            figs.append(("abs_rel per frame", R.plot_curves(out / "depth_abs_rel.png", {"abs_rel": per_frame},
                                                            xlabel="frame", title="abs_rel per frame")))
            if ratios:
                metrics["depth_scale"] = scale_summary(ratios, settings.scale_warmup_s)
                figs.append(("depth scale per frame: median(GT / published depth); 1 = metric", R.plot_curves(
                    out / "depth_scale.png", {"GT / published": [r for _, r in ratios], "metric": [1.0] * len(ratios)},
                    xlabel="frame", title="depth scale per frame")))
            k = min(settings.samples, len(paired))
            samples = [paired[i] for i in np.linspace(0, len(paired) - 1, k).astype(int)] if k else []
        else:
            skipped.append("depth: no --gt-depth topic given")
            k = min(settings.samples, len(pred_stamps))
            samples = [int(pred_stamps[i]) for i in np.linspace(0, len(pred_stamps) - 1, k).astype(int)] if k else []

        # -------------------------------------------------------------- odometry
        if settings.gt_odom and pred_traj is not None:
            if settings.gt_odom not in bag.topics:
                raise DepthNodeError(f"{input_bag} has no topic {settings.gt_odom} (--gt-odom)")
            gt_traj = read_trajectory_topic(bag, settings.gt_odom, "ground truth")
            ev_t = evaluate_trajectory(pred_traj, gt_traj, max_diff=settings.max_dt)
            metrics["odometry"] = ev_t.summary
            write_tum(out / "odom_pred.tum", pred_traj)
            write_tum(out / "odom_gt.tum", gt_traj)
            figs.append(("trajectory over ground truth (SE(3)-aligned), and ATE per pose", R.plot_trajectory(
                out / "trajectory.png", ev_t.gt[:, :3, 3], {k: v[:, :3, 3] for k, v in ev_t.aligned.items()},
                title="odometry (top view)", errors=ev_t.ate_errors.get("se3"), stamps=ev_t.stamps)))
        elif settings.gt_odom:
            skipped.append("odometry: the node published no odom (model without a pose network?)")
        else:
            skipped.append("odometry: no --gt-odom topic given")

        # -------------------------------------------------------------- sample frames
        want = set(samples)
        rgbs: dict[int, np.ndarray] = {}
        gts: dict[int, np.ndarray] = {}
        img_stamps = []
        for m in bag.messages([settings.image]):
            s = stamp_to_ns(m.msg.header.stamp)
            img_stamps.append(s)
            if s in want:
                rgbs[s] = np.array(decode_rgb(m.msg))  # Image in any camera encoding, or CompressedImage
        if settings.gt_depth:
            for m in bag.messages([settings.gt_depth]):
                s = stamp_to_ns(m.msg.header.stamp)
                j = _nearest(np.array(samples, dtype=np.int64), s, max_dt_ns) if samples else None
                if j is not None:
                    gts[samples[j]] = gt_depth_metres(m.msg)
    for i, s in enumerate(samples):
        pred = preds[s]
        gt = gts.get(s)
        rgb = rgbs.get(s)
        if gt is not None and pred.shape != gt.shape:
            from depth_node.evaluate.depth_metrics import resize_to

            pred = resize_to(pred, gt.shape)
        if rgb is not None and rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        if rgb is not None and rgb.shape[:2] != pred.shape:
            from PIL import Image

            rgb = np.asarray(Image.fromarray(rgb).resize((pred.shape[1], pred.shape[0]), Image.BILINEAR))
        panel = R.depth_panel(rgb, pred, gt, max_depth=settings.max_depth)
        t = (s - samples[0]) / 1e9
        figs.append((f"frame at +{t:.1f} s: image | predicted depth | ground truth | relative error"
                     if gt is not None else f"frame at +{t:.1f} s: image | predicted depth",
                     R.save_png(out / f"sample_{i}.png", panel)))
    with BagReader(run.outputs_bag) as outs:
        pts = output_topic("points")
        if samples and pts in outs.topics:
            mid = samples[len(samples) // 2]
            for m in outs.messages([pts]):
                if stamp_to_ns(m.msg.header.stamp) == mid:
                    xyz, rgb = _cloud_xyz(m.msg)
                    figs.append(("the published point cloud of the middle sample frame", R.plot_cloud(
                        out / "cloud.png", xyz, rgb, title="organized cloud (optical frame)")))
                    break

    # ------------------------------------------------------------------ timing
    timing: dict[str, Any] = {}
    if run.arrivals is not None:
        a = run.arrivals
        img_in = a.by_stamp(settings.image)
        out_recv = a.by_stamp(output_topic("depth"))
        pairs = sorted((s, (r - img_in[s]) / 1e6) for s, r in out_recv.items() if s in img_in)
        lat = np.array([p[1] for p in pairs])
        timing["end_to_end_latency"] = _stats(lat)
        recv = np.array(sorted(out_recv.values()), dtype=np.float64) / 1e9
        in_recv = np.array(sorted(img_in.values()), dtype=np.float64) / 1e9
        timing["output_rate_hz"] = float((recv.size - 1) / (recv[-1] - recv[0])) if recv.size > 1 else math.nan
        timing["input_rate_hz"] = (float((in_recv.size - 1) / (in_recv[-1] - in_recv[0]))
                                   if in_recv.size > 1 else math.nan)
        timing["note"] = ("end-to-end: the recorder's receive time of a depth image minus the player's send time of "
                          "the image with the same stamp (transport both ways + queueing + inference + publishing)")
        if lat.size:
            figs.append(("end-to-end latency through the node", R.plot_latency(
                out / "latency.png", lat, np.array([p[0] for p in pairs]) / 1e9, "end-to-end latency")))
    if run.frame_seconds:
        sec = np.array(run.frame_seconds) * 1e3
        timing["pipeline_latency"] = _stats(sec)
        timing["pipeline_rate_hz"] = float(1e3 / sec.mean())
        figs.append(("pipeline time per frame (offline)", R.plot_latency(out / "latency.png", sec,
                                                                         title="pipeline time per frame")))
    metrics["timing"] = timing
    metrics["skipped"] = skipped
    metrics["headline"] = h = headline(metrics)
    summary = [f"{k}: {v:.4g}" for k, v in h.items() if isinstance(v, float)]
    if limits:
        metrics["acceptance"] = acc = acceptance(h, limits)
        summary += [f"{k} ≤ {a['limit']}: {'PASS' if a['pass'] else 'FAIL'}" for k, a in acc.items()]
    R.write_json(out / "metrics.json", metrics)
    R.write_html_report(out / "report.html", title, metrics, figs,
                        notes=("Headline — " + "; ".join(summary) + ".", *notes,
                               *(f"Not scored: {s}." for s in skipped)))
    return metrics


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
    d = metrics.get("depth", {}).get("metrics", {})
    o = metrics.get("odometry", {})
    t = metrics.get("timing", {})
    lat = t.get("end_to_end_latency") or t.get("pipeline_latency") or {}
    return {
        "abs_rel": d.get("abs_rel"),
        "rmse": d.get("rmse"),
        "a1": d.get("a1"),
        "ate_se3_pct_of_path": o.get("ate_se3_pct_of_path"),
        "ate_se3_rmse_m": o.get("ate", {}).get("se3", {}).get("trans", {}).get("rmse"),
        "gt_path_length_m": o.get("gt_path_length"),
        "depth_scale_error": metrics.get("depth_scale", {}).get("error_median"),
        "odom_scale_error": _odom_scale_error(o),
        "latency_median_ms": lat.get("median_ms"),
        "output_rate_hz": t.get("output_rate_hz", t.get("pipeline_rate_hz")),
    }
