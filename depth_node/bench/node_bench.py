"""`depth-node bench --node`: what the ROS 2 node adds on top of raw inference, measured end to end.

A node process runs the model; this process publishes frames and receives depth, points (and odom) back,
one frame at a time, so each latency is publish → last output received with no queueing, on the same
frames, same backend and same run as the raw `backend.run_depth` timing it is compared with (timed between
the node's frames); the configurations take turns in blocks so that a drift in the machine's speed hits them
alike (`_measure_configs`):

    node_overhead_ms         = median end-to-end (depth + points, odometry off) − median raw inference
    node_over_inference_ratio = median end-to-end / median raw inference

Odometry on adds the pose network: `node_overhead_with_odom_ms` subtracts both networks' raw medians, and

    odom_extra_ms            = median end-to-end (depth + points + odometry) − median end-to-end (depth + points)

is what odometry (pose network + refinement) costs a frame. `end_to_end_ms.depth_points_while_odom` times depth
and cloud of the odometry run's frames: the node publishes them before its odometry step. `node_rss_mb` is the
node process's peak resident memory (the kernel's VmHWM, read just before the node is stopped; None where /proc
is not there).
The point-cloud construction cost at 640×192 is measured in-process (builder, and builder + message).

The benchmark keeps its ROS 2 traffic private: loopback discovery and its own domain (`--node-domain`), set
for this process and the node process it starts. The node itself never sets either.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.bench.load import LoadMonitor
from depth_node.bench.machine import machine_with_load, write_report
from depth_node.errors import DepthNodeError
from depth_node.ros.node_process import NodeProcess
from depth_node.runtime.tool_isolation import isolate

log = logging.getLogger(__name__)

OVERHEAD_GOAL_MS = 4.0  # issue 18: end to end (depth + points) minus raw inference
ODOM_GOAL_MS = 15.0  # issue 18: what odometry adds to a frame (end to end with odometry minus depth + points)
# pause between the node's work and this process's: idle OpenMP worker threads spin-wait for a while after a
# parallel region, and on a small CPU the other process's spinning threads would be timed as its latency
SETTLE_S = 0.2
CLOUD_GOAL_MS = 2.0
RSS_GOAL_MB = 350.0  # the node with an ONNX Runtime or OpenVINO backend (issue 18)
ONNX_BACKENDS = ("onnxruntime", "openvino")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Node-specific options; --json, --model, --backends, --precisions, --cache-dir, --quick are shared with
    the inference benchmark and read from there when present."""
    g = p.add_argument_group("node benchmark (--node)")
    g.add_argument("--node-frames", type=int, default=None, help="timed frames per configuration (default 40)")
    g.add_argument("--node-input-size", default="640x192", help="WxH of the published camera frames")
    g.add_argument("--node-domain", type=int, default=None,
                   help="ROS_DOMAIN_ID of the private benchmark graph (default: $ROS_DOMAIN_ID or 73)")
    g.add_argument("--node-device", default="auto", help="device for the node and the raw timing (auto, cpu, cuda)")
    g.add_argument("--node-dds-profile", default=None, metavar="auto|none|shm|PATH",
                   help="transports: auto (default) = the node's own choice (the package's shared-memory profile "
                        "unless Fast DDS is configured), this process set up by the environment like RViz; none = "
                        "Fast DDS defaults on both sides; shm or a Fast DDS XML path = that profile on both")
    g.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                   help="a node parameter for the benchmarked node (e.g. cloud_rgb:=false); repeatable")


def _first(csv: str | None, default: str) -> str:
    if not csv:
        return default
    return csv.split(",")[0].strip() or default


def _timing(values_ms: list[float]) -> dict[str, float]:
    a = np.asarray(values_ms, dtype=np.float64)
    return {"median_ms": round(float(np.median(a)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "mean_ms": round(float(a.mean()), 3), "min_ms": round(float(a.min()), 3), "n": int(a.size)}


def _frames(n: int, width: int, height: int) -> tuple[list[np.ndarray], np.ndarray, float]:
    """Consecutive drive frames (odometry needs real motion), their intrinsics [fx, fy, cx, cy] and the camera's
    frame period (s)."""
    try:
        from depth_node.sim.config import DriveConfig
        from depth_node.sim.drive import Drive

        cfg = DriveConfig(seed=11, frames=n)
        cfg.camera.width, cfg.camera.height = width, height
        drive = Drive(cfg)
        intr = drive.intrinsics
        return [np.ascontiguousarray(drive.frame(k).rgb) for k in range(n)], np.array(
            [intr.fx, intr.fy, intr.cx, intr.cy]), 1.0 / cfg.trajectory.fps
    except ImportError:
        from depth_node.export.quantize import builtin_frames

        return (builtin_frames(n, height, width), np.array([0.58 * width, 1.92 * height, 0.5 * width, 0.5 * height]),
                0.1)


def pointcloud_timing(iters: int = 50) -> dict[str, Any]:
    """Cloud construction at 640×192 with colour: the builder (NumPy) and builder + PointCloud2 message."""
    from depth_node.geometry.camera import Intrinsics
    from depth_node.geometry.pointcloud import OrganizedCloudBuilder

    intr = Intrinsics(370.0, 370.0, 320.0, 96.0, 640, 192)
    rng = np.random.default_rng(0)
    depth = (1.0 + 40.0 * rng.random((192, 640))).astype(np.float32)
    rgb = rng.integers(0, 255, (192, 640, 3), dtype=np.uint8)
    b = OrganizedCloudBuilder()
    out: dict[str, Any] = {}

    def med(fn) -> float:
        for _ in range(5):
            fn()
        ts = []
        for _ in range(iters):
            t = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t) * 1e3)
        return round(float(np.median(ts)), 3)

    out["pointcloud_ms_640x192"] = med(lambda: b.build(depth, intr, 1, rgb))
    out["pointcloud_xyz_ms_640x192"] = med(lambda: b.build(depth, intr, 1, None))
    try:
        from depth_node.ros.messages import empty_header, pointcloud_msg

        h = empty_header()
        out["pointcloud_msg_ms_640x192"] = med(lambda: pointcloud_msg(b.build(depth, intr, 1, rgb), h))
    except ImportError:
        out["pointcloud_msg_ms_640x192"] = None
    return out


class RawInference:
    """The same backend in this process, timed on the same frames between end-to-end frames (interleaved, so
    both medians come from the same minutes of a possibly shared machine)."""

    def __init__(self, model_path: Path, backend: str, precision: str, device: str, cache_dir, frames):
        from depth_node.inference.estimator import DepthEstimator
        from depth_node.inference.factory import create_backend

        self.be = create_backend(model_path, backend, precision, device, cache_dir=cache_dir)
        self.est = DepthEstimator(self.be)
        self.frames = frames
        self.xs = [self.est.prepare(f) for f in frames]
        for x in self.xs[:3]:
            self.be.run_depth(x)
        self.raw: list[float] = []
        self.full: list[float] = []
        self.pose: list[float] = []
        self.info = {"backend": self.be.name, "precision": self.be.precision, "device": self.be.device,
                     "resolution": f"{self.be.info.width}x{self.be.info.height}"}

    def time_frame(self, k: int, pose: bool = False) -> None:
        x = self.xs[k % len(self.xs)]
        t = time.perf_counter()
        self.be.run_depth(x)
        self.raw.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        self.est.depth(self.frames[k % len(self.frames)])
        self.full.append((time.perf_counter() - t) * 1e3)
        if pose and self.est.has_pose:
            t = time.perf_counter()
            self.est.motion(self.xs[(k - 1) % len(self.xs)], x)
            self.pose.append((time.perf_counter() - t) * 1e3)

    def close(self) -> None:
        self.be.close()


def _dds_setup(profile: str | None) -> dict[str, str]:
    """Transports of the two processes. Default: both see this environment, so this process (the subscriber)
    is set up as RViz or a user's node would be, and the node makes its own choice
    (`depth_node.ros.dds_profile`); `none`: Fast DDS defaults on both sides; `shm` or a path: that profile on
    both sides."""
    from depth_node.paths import config_file
    from depth_node.ros import dds_profile as D

    if profile in (None, "", "auto"):  # as deployed: both sides see this environment
        user = next((os.environ[k] for k in D.FASTDDS_ENV if os.environ.get(k)), None)
        _, why = D.choose_profile(os.environ, config_file(D.PROFILE_NAME))
        return {"subscriber": user or "Fast DDS defaults", "node": why}
    for key in (*D.FASTDDS_ENV, D.ENV):
        os.environ.pop(key, None)
    if profile == "none":
        os.environ[D.ENV] = "none"  # inherited by the node
        return {"subscriber": "Fast DDS defaults", "node": "Fast DDS defaults"}
    path = config_file(D.PROFILE_NAME) if profile == "shm" else Path(profile)
    if not path.is_file():
        raise DepthNodeError(f"--node-dds-profile: no such file {path}")
    D.set_profile(os.environ, path)
    os.environ[D.ENV] = str(path)
    return {"subscriber": str(path), "node": str(path)}


def _status_mb(pid: int, keys: tuple[str, ...]) -> dict[str, float]:
    """Fields of /proc/<pid>/status given in kB, in MB (Linux); {} where /proc is not there."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in keys:
                out[key] = round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        return {}
    return out


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process in MB, from /proc (Linux); None elsewhere."""
    return _status_mb(pid, ("VmHWM",)).get("VmHWM")


def rss_parts_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now and what it is made of: anonymous (heap, weights, activations), file
    pages (libraries, mapped files) and shared memory (the Fast DDS shared-memory segment it writes into)."""
    names = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"}
    return {names[k]: v for k, v in _status_mb(pid, tuple(names)).items()}


def node_model(model: Path | None, backend: str, precision: str, device: str, tmp: Path) -> tuple[Path, str]:
    """The model file the node is started from, and how the JSON names the weights. An ONNX backend runs the
    shipped ONNX export (models/default_onnx/depth.onnx, pose.onnx beside it) when no --model is given, as a
    robot without torch does: a .pt would make the node load torch to read it. A given --model (.pt or
    depth.onnx) is used as it is; without either, the default .pt, else recipe weights (saved to `tmp`)."""
    from depth_node.inference.factory import resolve

    if model is not None and Path(model).suffix == ".onnx":
        return Path(model), str(model)
    if model is None and resolve(backend, precision, device)[0] in ONNX_BACKENDS:
        from depth_node.paths import default_onnx_model

        shipped = default_onnx_model()
        if shipped.is_file():
            return shipped, str(shipped)
    from depth_node.bench.inference import resolve_model
    from depth_node.checkpoints.model_file import save_model

    loaded, weights = resolve_model(model)
    return (Path(weights) if weights != "recipe" else save_model(tmp / "recipe.pt", loaded)), weights


def torch_loaded(pid: int) -> bool | None:
    """Whether a live process has torch's library mapped (it imported torch); None where /proc is not there."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None


def run_node_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able result (also written to --json when given)."""
    quick = bool(getattr(args, "quick", False))
    n = int(getattr(args, "node_frames", None) or (12 if quick else 40))
    try:
        w_in, h_in = (int(v) for v in str(getattr(args, "node_input_size", "640x192")).lower().split("x"))
    except ValueError as exc:
        raise DepthNodeError("--node-input-size must look like 640x192") from exc
    domain = int(getattr(args, "node_domain", None) or os.environ.get("ROS_DOMAIN_ID") or 73)
    isolate(domain)  # this benchmark's private graph (and the node's it starts): loopback, its own domain
    dds_profile = _dds_setup(getattr(args, "node_dds_profile", None))
    from depth_node.runtime import params as P

    extra = P.params_from_cli(list(getattr(args, "node_param", None) or []), "--node-param")
    backend = _first(getattr(args, "backends", None), "auto")
    precision = _first(getattr(args, "precisions", None), "auto")
    device = getattr(args, "node_device", "auto") or "auto"
    cache_dir = getattr(args, "cache_dir", None)
    tmp = Path(tempfile.mkdtemp(prefix="depth_node_bench_"))
    model_path, weights = node_model(getattr(args, "model", None), backend, precision, device, tmp)
    # a block's frames (its share of n and ~5 warm-up frames) without a wrap back to the drive's start
    frames, K, period_s = _frames(max(8, min(-(-n // config_blocks(n)) + 6, 64)), w_in, h_in)

    raw = RawInference(model_path, backend, precision, device, cache_dir, frames)
    info = raw.info
    node_params = {"model": str(model_path), "backend": info["backend"], "precision": info["precision"],
                   "device": info["device"], "scale_source": "fixed", "cache_dir": str(cache_dir or ""),
                   "output_qos": "reliable", "output_qos_depth": 5,
                   "odom.continuous": False,  # configurations are chosen by subscribing: odometry only while read
                   **extra}
    P.validate(node_params)  # a typo in --node-param fails here, naming the parameter, before a node starts
    node = NodeProcess(node_params, tmp / "node.log").start()
    node_log = node.log_path
    pipe = None
    result: dict[str, Any] = {}
    ok = False
    try:
        from depth_node.ros.bench_probe import BenchProbe

        pipe = BenchProbe(frames, K, period_s)  # stamped on the camera's clock, whenever sent
        node.wait_until(lambda: "active:" in node.log(), 180, "become active")
        monitor = LoadMonitor().start()  # other processes' CPU use while the frames run (the node is ours)
        e2e, breakdown = _measure_configs(pipe, raw, n, node_log)
        monitor.stop()
        raw_t, full_t = _timing(raw.raw), _timing(raw.full)
        pose_t = _timing(raw.pose) if raw.pose else None
        overhead = e2e["depth_points"]["median_ms"] - raw_t["median_ms"]
        result = {
            "mode": "node",
            **info,
            "input_size": f"{w_in}x{h_in}",
            "weights": "recipe (untrained; speed is representative)" if weights == "recipe" else weights,
            "frames": n,
            "config_blocks": config_blocks(n),  # the configurations took turns in this many blocks each
            "dds_profile": dds_profile,
            "subscriber_executor": pipe.executor_name,
            "node_params": extra,
            "raw_inference_ms": raw_t,
            "estimator_depth_ms": full_t,
            "pose_net_ms": pose_t,
            "end_to_end_ms": e2e,
            # the node's own view (its /diagnostics): receive → worker start, pre + inference + post, publishing
            "node_breakdown_ms": breakdown,
            "node_overhead_ms": round(overhead, 3),
            "node_over_inference_ratio": round(e2e["depth_points"]["median_ms"] / raw_t["median_ms"], 3),
            # odometry on: end to end minus both networks (depth and pose), i.e. what the node adds
            "node_overhead_with_odom_ms": round(e2e["depth_points_odom"]["median_ms"] - raw_t["median_ms"]
                                                - (pose_t["median_ms"] if pose_t else 0.0), 3),
            "odom_extra_ms": round(e2e["depth_points_odom"]["median_ms"] - e2e["depth_points"]["median_ms"], 3),
            "node_rss_mb": peak_rss_mb(node.pid),
            "node_rss_now_mb": rss_parts_mb(node.pid),
            "node_model_format": model_path.suffix.lstrip("."),
            "node_torch_loaded": torch_loaded(node.pid),
            **pointcloud_timing(),
            "goals": {"node_overhead_ms": OVERHEAD_GOAL_MS, "odom_extra_ms": ODOM_GOAL_MS,
                      "pointcloud_ms_640x192": CLOUD_GOAL_MS},
        }
        result["meets_goals"] = {k: result[k] <= g for k, g in result["goals"].items()}
        load = monitor.summary()
        if load["loaded"]:  # latencies inflated by other work: no verdict on them (memory is still judged)
            result["meets_goals"] = dict.fromkeys(result["meets_goals"])
            result["goals_verdict"] = ("latencies not judged: other processes used the CPU during the run "
                                       "(machine.load); re-run when idle")
        if info["backend"] in ONNX_BACKENDS and result["node_rss_mb"] is not None:
            result["goals"]["node_rss_mb"] = RSS_GOAL_MB
            result["meets_goals"]["node_rss_mb"] = result["node_rss_mb"] <= RSS_GOAL_MB
        result["machine"] = machine_with_load(load)
        ok = True
    finally:
        raw.close()
        if pipe is not None:
            pipe.close()
        node.stop()
        if ok:  # keep the node's log (and the recipe model) only when something went wrong
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log.error("node benchmark failed; node log and parameters kept in %s", tmp)
    return result


def print_table(r: dict[str, Any]) -> None:
    e = r["end_to_end_ms"]
    rows = [
        ("raw inference (backend.run_depth)", r["raw_inference_ms"]["median_ms"]),
        ("estimator depth (pre + infer + post)", r["estimator_depth_ms"]["median_ms"]),
        ("end to end: depth only", e["depth"]["median_ms"]),
        ("end to end: depth + points", e["depth_points"]["median_ms"]),
        ("end to end: depth + points + odom", e["depth_points_odom"]["median_ms"]),
        ("  of which depth + points out", e["depth_points_while_odom"]["median_ms"]),
        ("node overhead (e2e − raw)", r["node_overhead_ms"]),
        ("odometry extra (e2e odom − depth + points)", r["odom_extra_ms"]),
        ("point cloud 640x192 xyz+rgb", r["pointcloud_ms_640x192"]),
        ("point cloud + PointCloud2 message", r["pointcloud_msg_ms_640x192"]),
    ]
    print(f"node benchmark: {r['backend']}/{r['precision']}/{r['device']} at {r['resolution']}, input "
          f"{r['input_size']}, {r['frames']} frames")
    for name, v in rows:
        print(f"  {name:40s} {v if v is None else f'{v:8.2f} ms'}")
    for label, b in r.get("node_breakdown_ms", {}).items():  # odometry_ms only where odometry ran
        if b and label != "depth":
            print(f"  node's own timings, {label} (diagnostics): " + ", ".join(f"{k} {v:.2f} ms"
                                                                           for k, v in b.items()))
    print(f"  node / inference ratio {r['node_over_inference_ratio']:.2f}; goals met: {r['meets_goals']}")
    load = r.get("machine", {}).get("load", {})
    if load.get("loaded"):
        print(f"  LOADED: other processes used {load['other_cpu_mean']:.0%} of the CPUs on average (p90 "
              f"{load['other_cpu_p90']:.0%}); latencies are inflated and not judged")
    torch = {True: "torch loaded", False: "no torch", None: "torch: unknown"}[r.get("node_torch_loaded")]
    print(f"  node peak resident memory {r['node_rss_mb']} MB (model {r.get('node_model_format')}, {torch})")


CONFIGS = (("depth", {"depth"}), ("depth_points", {"depth", "points"}),
           ("depth_points_odom", {"depth", "points", "odom"}))
BLOCKS = 4  # each configuration's frames in this many blocks, the configurations taking turns


def config_blocks(n: int) -> int:
    """Blocks per configuration for n timed frames each: BLOCKS, fewer where a block would hold < 3 frames."""
    return max(1, min(BLOCKS, n // 3))


def _measure_configs(pipe: Any, raw: RawInference, n: int, node_log: Path
                     ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """End-to-end latencies (and the node's own breakdown) of each configuration in CONFIGS, n frames each.

    The configurations take turns in BLOCKS blocks (rotating which goes first) rather than one after the other:
    on a shared or throttling machine the speed drifts over a minute by more than the differences measured
    (odom_extra is the difference of two configurations), and interleaving lets the drift hit all of them alike.
    Each block starts with warm-up frames: the node sees the new subscriptions, and the odometry chain, which
    restarts when nobody wanted odometry, reaches its steady (constant-velocity prior) steps."""
    lat: dict[str, list[float]] = {label: [] for label, _ in CONFIGS}
    first: list[float] = []
    rows: dict[str, list[dict[str, str]]] = {label: [] for label, _ in CONFIGS}
    blocks, k = config_blocks(n), 0
    for b in range(blocks):
        m = n // blocks + (1 if b < n % blocks else 0)
        for label, kinds in CONFIGS[b % len(CONFIGS):] + CONFIGS[:b % len(CONFIGS)]:
            pipe.want(kinds)
            pipe.restart_drive()  # the block's frames consecutive (the odometry chain starts again here)
            for w in range(30):  # discovery, first-frame allocations, the odometry chain's first pairs
                if pipe.send(kinds, timeout=3.0) is not None and w >= 3:
                    break
            mark = len(pipe.diags)
            for _ in range(m):
                time.sleep(SETTLE_S)
                v = pipe.send(kinds)
                if v is not None:
                    lat[label].append(v)
                    if "odom" in kinds:  # depth and cloud of the same frames: odometry runs after they are out
                        first.append(max(pipe.arrival_ms["depth"], pipe.arrival_ms.get("points", 0.0)))
                time.sleep(SETTLE_S)
                raw.time_frame(k, pose="odom" in kinds)  # the node is idle now: same backend, same frame
                k += 1
            pipe.wait_for_diagnostics(3.0)  # the block's last period
            rows[label] += pipe.diags[mark:]
    e2e: dict[str, dict[str, float]] = {}
    for label, _ in CONFIGS:
        if len(lat[label]) < max(3, n // 2):
            raise DepthNodeError(f"only {len(lat[label])} of {n} frames came back ({label}); see {node_log}")
        e2e[label] = _timing(lat[label])
    e2e["depth_points_while_odom"] = _timing(first)
    return e2e, {label: pipe.node_breakdown(r) for label, r in rows.items()}


def run(args: argparse.Namespace) -> int:
    """Entry point for `depth-node bench --node` (the bench command dispatches here)."""
    r = run_node_bench(args)
    print_table(r)
    write_report(r, getattr(args, "json", None))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone: `python -m depth_node.bench.node_bench` (same options as `depth-node bench --node`)."""
    p = argparse.ArgumentParser(prog="python -m depth_node.bench.node_bench", description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, help="write the results here (JSON)")
    p.add_argument("--model", type=Path, help="model file or depth.onnx (default: the shipped ONNX export for the "
                   "ONNX backends, else models/default.pt, else recipe weights)")
    p.add_argument("--backends", help="backend to use (first of a comma-separated list; default auto)")
    p.add_argument("--precisions", help="precision to use (first of a comma-separated list; default auto)")
    p.add_argument("--cache-dir", type=Path, help="ONNX/engine cache")
    p.add_argument("--quick", action="store_true", help="fewer frames")
    add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except DepthNodeError as exc:
        print(f"node bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
