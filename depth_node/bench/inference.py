"""`depth-node bench` (default mode): latency of the depth and pose nets for every available backend and
precision, against plain PyTorch eager fp32 measured in the same run, with each fast path's accuracy drift.

Every backend is built through `factory.create_backend` from one model file, resized per benchmark resolution
(the nets are fully convolutional), so the numbers are those of the code the node runs. Drift is measured on
synthetic drive frames the int8 calibration never saw, against fp32 PyTorch: a precision that is fast but moves
depth by more than `DRIFT_GOAL` is reported, marked, and not counted as the fastest."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from depth_node.bench.flops import count_flops
from depth_node.bench.machine import cpu_busy_fraction, load_average, machine_info
from depth_node.bench.timing import Timing, measure
from depth_node.checkpoints.model_file import ModelFile, build_depth_net, build_pose_net, load_model
from depth_node.errors import DepthNodeError
from depth_node.evaluate.drift import DriftMeter

log = logging.getLogger(__name__)

DRIFT_GOAL = 0.01  # abs_rel of depth against fp32 PyTorch
SPEEDUP_GOAL = 8.0  # fastest CPU backend vs eager fp32, depth net at 640x192
REFERENCE_RESOLUTION = "640x192"
CAMERA_SIZE = (375, 1242)  # (h, w) of the frames pre/post-processing is timed on (KITTI's)
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
EAGER = "torch-eager"


@dataclass
class Settings:
    resolutions: list[tuple[int, int]]  # (width, height)
    nets: list[str]
    backends: list[str] | None
    precisions: list[str] | None
    iters: int
    warmup: int
    drift_frames: int
    cache_dir: Path | None
    calibration_frames: int | None = None  # None: quantize's default (8 built-in frames)
    quick: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class Candidate:
    backend: str
    precision: str
    device: str

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.precision}"


# ---------------------------------------------------------------------------------------------- arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, help="write the results here (JSON)")
    p.add_argument("--model", type=Path, help="model file (default: models/default.pt, else recipe weights)")
    p.add_argument("--backends", help=f"comma-separated subset of {','.join(BACKENDS)} (default: all available)")
    p.add_argument("--precisions", help="comma-separated subset of fp32,bf16,fp16,int8 (default: all)")
    p.add_argument("--resolutions", default=None, help="WxH list, default 640x192,1024x320")
    p.add_argument("--nets", default=None, help="depth,pose (default both)")
    p.add_argument("--iters", type=int, default=None, help="timed runs per measurement (default 15)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2)")
    p.add_argument("--drift-frames", type=int, default=None, help="held-out frames for accuracy drift (default 4)")
    p.add_argument("--cache-dir", type=Path, help="ONNX/int8/engine cache (default: $DEPTH_NODE_CACHE or ~/.cache)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run: 640x192, depth net, few iterations")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            w, h = (int(v) for v in item.split("x"))
        except ValueError as exc:
            raise DepthNodeError(f"resolution {item!r} must look like 640x192 (width x height)") from exc
        if w <= 0 or h <= 0 or w % 32 or h % 32:
            raise DepthNodeError(f"resolution {item}: width and height must be positive multiples of 32")
        out.append((w, h))
    return out


def _csv(text: str | None, allowed: tuple[str, ...] | None, what: str) -> list[str] | None:
    if not text:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if allowed is not None:
        bad = [t for t in items if t not in allowed]
        if bad:
            raise DepthNodeError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
    return items


def settings_from_args(args: argparse.Namespace) -> Settings:
    quick = bool(getattr(args, "quick", False))
    return Settings(
        resolutions=parse_resolutions(args.resolutions or (REFERENCE_RESOLUTION if quick else "640x192,1024x320")),
        nets=_csv(args.nets, ("depth", "pose"), "net") or (["depth"] if quick else ["depth", "pose"]),
        backends=_csv(args.backends, BACKENDS, "backend"),
        precisions=_csv(args.precisions, ("fp32", "bf16", "fp16", "int8"), "precision"),
        iters=args.iters or (5 if quick else 15),  # 15 keeps a first (cold-cache) default run near 3 minutes
        warmup=args.warmup if args.warmup is not None else (1 if quick else 2),
        drift_frames=args.drift_frames or (2 if quick else 4),
        cache_dir=args.cache_dir,
        calibration_frames=4 if quick else None,
        quick=quick,
    )


# ---------------------------------------------------------------------------------------------- model


def recipe_model() -> ModelFile:
    """ResNet-18 Monodepth2 with deterministic, non-trivial weights (a smooth function of each key): realistic
    cost and a depth map that varies across the image, until a trained default model exists."""
    from depth_node.networks.monodepth2 import DepthNet, PoseNet

    def fill(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        import math
        import zlib

        out = {}
        for key, t in sd.items():
            if not t.is_floating_point():
                out[key] = t.clone()
                continue
            n = t.numel()
            phase = (zlib.crc32(key.encode()) % 10007) / 10007.0 * 2 * math.pi
            i = np.arange(n, dtype=np.float64)
            p = (np.sin(i * 0.7548776662 + phase) + np.sin(i * 0.5698402910 + 2 * phase)) / math.sqrt(2)
            leaf = key.rsplit(".", 1)[-1]
            if leaf == "running_var":
                v = 1.0 + 0.25 * np.abs(p)
            elif leaf == "running_mean":
                v = 0.05 * p
            elif t.dim() >= 2:
                v = p * math.sqrt(2.0 / (n // t.shape[0])) * 1.8
            elif leaf == "weight":
                v = 1.0 + 0.1 * p
            else:
                v = 0.02 * p
            out[key] = torch.from_numpy(v.reshape(tuple(t.shape)).astype(np.float32)).to(t.dtype)
        return out

    meta = {"min_depth": 0.1, "max_depth": 100.0, "scale": {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}}
    d, p = DepthNet(18), PoseNet(18)
    return ModelFile("monodepth2", {"num_layers": 18}, 192, 640, fill(d.state_dict()), fill(p.state_dict()), meta)


def resolve_model(path: Path | None) -> tuple[ModelFile, str]:
    from depth_node.paths import models_dir

    if path is not None:
        return load_model(path), str(path)
    default = models_dir() / "default.pt"
    if default.is_file():
        return load_model(default), str(default)
    return recipe_model(), "recipe"


def at_resolution(model: ModelFile, width: int, height: int) -> ModelFile:
    return dataclasses.replace(model, width=width, height=height)


# ---------------------------------------------------------------------------------------------- candidates


def cpu_bf16() -> bool:
    try:
        from depth_node.inference.openvino_backend import cpu_has_bf16

        return cpu_has_bf16()
    except Exception:
        return False


def ort_has_cuda() -> bool:
    try:
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    except Exception:
        return False


def candidates(settings: Settings) -> tuple[list[Candidate], list[str]]:
    """(what to run, notes on what was skipped and why)."""
    from depth_node.inference.factory import available_backends, cuda_available

    avail = available_backends()
    notes: list[str] = []
    bf16 = cpu_bf16()
    plan = [Candidate("torch", "fp32", "cpu")]
    if bf16:
        plan.append(Candidate("torch", "bf16", "cpu"))
    else:
        notes.append("no native bf16 on this CPU: bf16 rows skipped")
    plan += [Candidate("onnxruntime", "fp32", "cpu"), Candidate("onnxruntime", "int8", "cpu")]
    plan += [Candidate("openvino", "fp32", "cpu")]
    plan += [Candidate("openvino", "bf16", "cpu")] if bf16 else []
    plan += [Candidate("openvino", "int8", "cpu")]
    if cuda_available():
        plan += [Candidate("torch", p, "cuda") for p in ("fp32", "fp16", "bf16")]
        if ort_has_cuda():
            plan += [Candidate("onnxruntime", "fp32", "cuda")]
        else:
            notes.append("ONNX Runtime has no CUDA provider here (onnxruntime-gpu not installed): its GPU row skipped")
        plan += [Candidate("tensorrt", p, "cuda") for p in ("fp16", "int8")]
    else:
        notes.append("no CUDA device: GPU rows (PyTorch CUDA + CUDA graphs, ONNX Runtime CUDA, TensorRT) skipped")
    for b in ("onnxruntime", "openvino", "tensorrt"):
        if b not in avail and any(c.backend == b for c in plan):
            notes.append(f"{b} not available here: its rows skipped")
    plan = [c for c in plan if c.backend in avail]
    if settings.backends:
        plan = [c for c in plan if c.backend in settings.backends]
    if settings.precisions:
        plan = [c for c in plan if c.precision in settings.precisions]
    return plan, notes


# ---------------------------------------------------------------------------------------------- measurement


@dataclass
class Inputs:
    depth: np.ndarray  # one network input, timed
    pose: np.ndarray
    depth_drift: list[np.ndarray]  # held-out inputs for drift
    pose_drift: list[np.ndarray]
    depth_ref: list[np.ndarray] = field(default_factory=list)  # fp32 PyTorch depth on depth_drift
    pose_ref: list[dict[str, np.ndarray]] = field(default_factory=list)


def make_inputs(frames: list[np.ndarray], height: int, width: int) -> Inputs:
    from depth_node.inference.preprocess import stack_pair, to_network_input

    x = [to_network_input(f, height, width) for f in frames]
    pairs = [stack_pair(a, b) for a, b in itertools.pairwise(x)] or [stack_pair(x[0], x[0])]
    return Inputs(x[0], pairs[0], x, pairs)


def reference_outputs(model: ModelFile, inputs: Inputs, nets: list[str]) -> None:
    """fp32 PyTorch through the exported graphs' own definition: what every backend's drift is measured against."""
    from depth_node.export.wrappers import depth_graph, graph_output_names, pose_graph

    with torch.no_grad():
        g = depth_graph(model)
        names = graph_output_names(g)
        for x in inputs.depth_drift:
            inputs.depth_ref.append(dict(zip(names, g(torch.from_numpy(x))))["depth"].numpy())
        pg = pose_graph(model) if "pose" in nets else None
        if pg is not None:
            pnames = graph_output_names(pg)
            for x in inputs.pose_drift:
                inputs.pose_ref.append({n: o.numpy() for n, o in zip(pnames, pg(torch.from_numpy(x)))})


def depth_drift(run: Callable[[np.ndarray], dict], inputs: Inputs) -> dict:
    meter = DriftMeter()
    for x, ref in zip(inputs.depth_drift, inputs.depth_ref):
        meter.add(run(x)["depth"], ref)
    d = meter.result()
    return {"abs_rel_drift": d.abs_rel, "max_abs_err": d.max_abs, "mean_abs_err": d.mean_abs}


def pose_drift(run: Callable[[np.ndarray], dict], inputs: Inputs) -> dict:
    worst, rel = 0.0, []
    for x, ref in zip(inputs.pose_drift, inputs.pose_ref):
        out = run(x)
        for k, r in ref.items():
            worst = max(worst, float(np.abs(np.asarray(out[k], np.float64).reshape(r.shape) - r).max()))
        t, tr = np.asarray(out["translation"]).reshape(-1), ref["translation"].reshape(-1)
        rel.append(float(np.linalg.norm(t - tr) / max(np.linalg.norm(tr), 1e-12)))
    return {"max_abs_err": worst, "translation_rel_err": float(np.mean(rel)) if rel else None}


def _row(cand: Candidate, net: str, res: str, timing: Timing | None, flops: int | None, **extra) -> dict:
    row = {"backend": cand.backend, "precision": cand.precision, "device": cand.device, "net": net, "resolution": res}
    if timing is not None:
        row.update(timing.as_dict())
        row["gflop"] = round(flops / 1e9, 3) if flops else None
        row["gflops"] = round(flops / 1e9 / (timing.median_ms / 1e3), 2) if flops and timing.median_ms > 0 else None
    else:
        row.update({"median_ms": None, "p90_ms": None, "gflops": None})
    row.update(extra)
    return row


def eager_rows(model: ModelFile, inputs: Inputs, settings: Settings, res: str, flops: dict) -> list[dict]:
    """The reference implementation's inference: DepthNet forward with all 4 decoder scales, fp32, NCHW,
    torch.no_grad() (and PoseNet likewise) — the baseline the speedups are quoted against."""
    cand = Candidate(EAGER, "fp32", "cpu")
    rows = []
    if "depth" in settings.nets:
        net = build_depth_net(model)
        x = torch.from_numpy(inputs.depth)

        def run_depth():
            with torch.no_grad():
                return net(x)

        rows.append(_row(cand, "depth", res, measure(run_depth, settings.iters, settings.warmup), flops["eager_depth"],
                         abs_rel_drift=0.0, max_abs_err=0.0, note="baseline: all 4 scales, NCHW, no_grad"))
    if "pose" in settings.nets and model.has_pose:
        pnet = build_pose_net(model)
        xp = torch.from_numpy(inputs.pose)

        def run_pose():
            with torch.no_grad():
                return pnet(xp)

        rows.append(_row(cand, "pose", res, measure(run_pose, settings.iters, settings.warmup), flops["pose"],
                         max_abs_err=0.0, note="baseline"))
    return rows


def backend_rows(cand: Candidate, model: ModelFile, inputs: Inputs, settings: Settings, res: str, flops: dict):
    from depth_node.export.quantize import builtin_frames
    from depth_node.inference.factory import create_backend

    calibration = None
    if cand.precision == "int8" and settings.calibration_frames:
        calibration = builtin_frames(settings.calibration_frames, model.height, model.width)
    try:
        backend = create_backend(model, cand.backend, cand.precision, cand.device, cache_dir=settings.cache_dir,
                                 calibration=calibration)
    except Exception as exc:  # a backend that cannot run here is a row with a reason, not a failed benchmark
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        log.warning("%s at %s unavailable: %s", cand.label, res, msg)
        return [_row(cand, net, res, None, None, status="error", error=msg) for net in settings.nets]
    sync = torch.cuda.synchronize if cand.device.startswith("cuda") else None
    rows = []
    try:
        if "depth" in settings.nets:
            t = measure(lambda: backend.run_depth(inputs.depth), settings.iters, settings.warmup, sync)
            rows.append(_row(cand, "depth", res, t, flops["depth"], **depth_drift(backend.run_depth, inputs)))
        if "pose" in settings.nets and backend.has_pose:
            t = measure(lambda: backend.run_pose(inputs.pose), settings.iters, settings.warmup, sync)
            rows.append(_row(cand, "pose", res, t, flops["pose"], **pose_drift(backend.run_pose, inputs)))
    except Exception as exc:
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        log.warning("%s at %s failed: %s", cand.label, res, msg)
        rows.append(_row(cand, "depth", res, None, None, status="error", error=msg))
    finally:
        backend.close()
        gc.collect()  # free sessions/threads before the next backend is timed
    return rows


def prepost_timing(frame: np.ndarray, width: int, height: int, settings: Settings) -> dict:
    """The per-frame work around the network: camera frame → network input, network depth → camera size."""
    from depth_node.inference.preprocess import resize_depth, to_network_input

    depth = np.random.default_rng(0).uniform(1.0, 80.0, (height, width)).astype(np.float32)
    pre = measure(lambda: to_network_input(frame, height, width), settings.iters, settings.warmup)
    post = measure(lambda: resize_depth(depth, *CAMERA_SIZE), settings.iters, settings.warmup)
    return {
        "resolution": f"{width}x{height}",
        "frame": f"{frame.shape[1]}x{frame.shape[0]}",
        "preprocess_median_ms": round(pre.median_ms, 3),
        "preprocess_p90_ms": round(pre.p90_ms, 3),
        "postprocess_median_ms": round(post.median_ms, 3),
        "postprocess_p90_ms": round(post.p90_ms, 3),
    }


def count_all_flops(model: ModelFile, width: int, height: int) -> dict:
    from depth_node.export.wrappers import depth_graph, pose_graph

    x = torch.zeros(1, 3, height, width)
    flops = {"depth": count_flops(depth_graph(model), x), "eager_depth": count_flops(build_depth_net(model), x)}
    pg = pose_graph(model)
    flops["pose"] = count_flops(pg, torch.zeros(1, 6, height, width)) if pg is not None else None
    return flops


# ---------------------------------------------------------------------------------------------- summary


def mark_rows(rows: list[dict]) -> None:
    eager = {(r["net"], r["resolution"]): r["median_ms"] for r in rows if r["backend"] == EAGER and r["median_ms"]}
    for r in rows:
        base = eager.get((r["net"], r["resolution"]))
        r.setdefault("status", "ok")
        r.setdefault("abs_rel_drift", None)  # depth rows only: pose rows carry translation_rel_err
        r.setdefault("max_abs_err", None)
        r["speedup_vs_eager"] = round(base / r["median_ms"], 2) if base and r.get("median_ms") else None
        drift = r.get("abs_rel_drift")
        r["meets_drift_goal"] = None if drift is None else bool(drift <= DRIFT_GOAL)


def summarize(rows: list[dict], resolution: str) -> dict:
    eager = next((r for r in rows if r["backend"] == EAGER and r["net"] == "depth" and r["resolution"] == resolution
                  and r.get("median_ms")), None)
    cpu = [r for r in rows if r["device"] == "cpu" and r["backend"] != EAGER and r["net"] == "depth"
           and r["resolution"] == resolution and r.get("median_ms")]
    ok = [r for r in cpu if r.get("meets_drift_goal")]
    best = min(ok, key=lambda r: r["median_ms"]) if ok else None
    fastest = min(cpu, key=lambda r: r["median_ms"]) if cpu else None

    def brief(r: dict | None) -> dict | None:
        if r is None:
            return None
        return {"backend": f"{r['backend']}/{r['precision']}", "median_ms": r["median_ms"], "p90_ms": r["p90_ms"],
                "abs_rel_drift": r.get("abs_rel_drift"), "speedup_vs_eager": r.get("speedup_vs_eager")}

    return {
        "eager_fp32_ms": eager["median_ms"] if eager else None,
        "best_cpu": brief(best),
        "fastest_cpu_any_drift": brief(fastest),
    }


def build_report(rows: list[dict], prepost: list[dict], settings: Settings, weights: str, model: ModelFile,
                 notes: list[str], seconds: float) -> dict:
    mark_rows(rows)
    per_res = {f"{w}x{h}": summarize(rows, f"{w}x{h}") for w, h in settings.resolutions}
    ref = per_res.get(REFERENCE_RESOLUTION) or summarize(rows, REFERENCE_RESOLUTION)
    best = ref["best_cpu"]
    speedup = best["speedup_vs_eager"] if best else None
    return {
        "tool": "depth-node bench",
        "weights": weights,
        "model": {"arch": model.arch, "config": model.config, "digest": model.digest(),
                  "native_resolution": f"{model.width}x{model.height}"},
        "settings": {"iters": settings.iters, "warmup": settings.warmup, "drift_frames": settings.drift_frames,
                     "resolutions": [f"{w}x{h}" for w, h in settings.resolutions], "nets": settings.nets,
                     "quick": settings.quick,
                     "drift_reference": "fp32 PyTorch (exported graph definition) on held-out synthetic frames"},
        "machine": machine_info(),
        f"eager_fp32_ms_{REFERENCE_RESOLUTION}": ref["eager_fp32_ms"],
        f"best_cpu_speedup_{REFERENCE_RESOLUTION}": speedup,
        "best_cpu_backend": best["backend"] if best else None,
        "best_cpu_abs_rel_drift": best["abs_rel_drift"] if best else None,
        "best_cpu": best,
        "fastest_cpu_any_drift": ref["fastest_cpu_any_drift"],
        "goals": {"speedup_vs_eager": SPEEDUP_GOAL, "abs_rel_drift": DRIFT_GOAL,
                  "speedup_met": bool(speedup is not None and speedup >= SPEEDUP_GOAL)},
        "per_resolution": per_res,
        "rows": rows,
        "pre_post": prepost,
        "notes": notes,
        "seconds": round(seconds, 1),
    }


def format_table(report: dict) -> str:
    head = f"{'backend':12s} {'prec':5s} {'dev':5s} {'net':5s} {'res':9s} {'median':>8s} {'p90':>8s} " \
           f"{'GFLOP/s':>8s} {'speedup':>7s} {'abs_rel':>8s} {'max_abs':>8s}"
    lines = [head, "-" * len(head)]

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, int | float) else "-"

    for r in report["rows"]:
        if r.get("status") == "error":
            lines.append(f"{r['backend']:12s} {r['precision']:5s} {r['device']:5s} {r['net']:5s} {r['resolution']:9s}"
                         f"  unavailable: {r.get('error', '')[:70]}")
            continue
        drift = r.get("abs_rel_drift")
        flag = "" if r.get("meets_drift_goal") in (None, True) else f"  > {DRIFT_GOAL:.0%} drift"
        lines.append(
            f"{r['backend']:12s} {r['precision']:5s} {r['device']:5s} {r['net']:5s} {r['resolution']:9s} "
            f"{f(r['median_ms'], '8.1f')} {f(r['p90_ms'], '8.1f')} {f(r.get('gflops'), '8.1f')} "
            f"{f(r.get('speedup_vs_eager'), '6.2f')}x {f(drift, '8.2%') if drift is not None else '       -'} "
            f"{f(r.get('max_abs_err'), '8.2g')}{flag}"
        )
    for pp in report["pre_post"]:
        lines.append(f"pre/post {pp['frame']} → {pp['resolution']}: to_network_input "
                     f"{pp['preprocess_median_ms']:.1f} ms, resize_depth back {pp['postprocess_median_ms']:.1f} ms")
    best = report.get("best_cpu")
    if best:
        lines.append(
            f"best CPU at {REFERENCE_RESOLUTION} within {DRIFT_GOAL:.0%} drift: {best['backend']} "
            f"{best['median_ms']:.1f} ms,"
            f" {best['speedup_vs_eager']:.2f}x eager fp32 ({report[f'eager_fp32_ms_{REFERENCE_RESOLUTION}']:.1f} ms),"
            f" abs_rel drift {best['abs_rel_drift']:.2%} (goal {SPEEDUP_GOAL:g}x)"
        )
    fastest = report.get("fastest_cpu_any_drift")
    if fastest and (not best or fastest["backend"] != best["backend"]):
        lines.append(f"fastest CPU regardless of drift: {fastest['backend']} {fastest['median_ms']:.1f} ms "
                     f"({fastest['speedup_vs_eager']:.2f}x), abs_rel drift {fastest['abs_rel_drift']:.2%}")
    lines += [f"note: {n}" for n in report["notes"]]
    m = report["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, flags {' '.join(m['cpu_flags'])}, gpu {m['gpu']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- entry point


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from depth_node.export.quantize import builtin_frames

    started = time.perf_counter()
    settings = settings_from_args(args)
    load, busy = load_average(), cpu_busy_fraction()
    model, weights = resolve_model(args.model)
    if model.arch != "monodepth2":
        raise DepthNodeError(f"bench covers Monodepth2 models; {model.arch} is not supported yet")
    plan, notes = candidates(settings)
    if busy is not None and busy > 0.25:
        notes.append(f"machine busy at start ({busy:.0%} of the CPU used by other work, load average {load}): "
                     "latencies are inflated, eager PyTorch (OpenMP) most of all, so speedups are overstated — "
                     "re-run when idle")
    if weights == "recipe":
        notes.append("no models/default.pt: recipe weights (deterministic, untrained) — speed is representative, "
                     "drift is pessimistic (this net amplifies input noise: ±1/255 moves its depth ~0.8 %)")
    # held-out drive frames (calibration uses seed 0) at the camera's size, resized like live frames
    frames = builtin_frames(max(2, settings.drift_frames), *CAMERA_SIZE, seed=7)
    rows: list[dict] = []
    prepost: list[dict] = []
    steps = len(settings.resolutions) * (len(plan) + 1)
    bar = tqdm(total=steps, desc="bench", unit="run", disable=args.no_progress, file=sys.stderr)
    for width, height in settings.resolutions:
        res = f"{width}x{height}"
        m = at_resolution(model, width, height)
        inputs = make_inputs(frames, height, width)
        reference_outputs(m, inputs, settings.nets)
        flops = count_all_flops(m, width, height)
        bar.set_postfix_str(f"{res} eager fp32")
        rows += eager_rows(m, inputs, settings, res, flops)
        prepost.append(prepost_timing(frames[0], width, height, settings))
        bar.update()
        for cand in plan:
            bar.set_postfix_str(f"{res} {cand.label}")
            rows += backend_rows(cand, m, inputs, settings, res, flops)
            bar.update()
    bar.close()
    report = build_report(rows, prepost, settings, weights, model, notes, time.perf_counter() - started)
    report["machine"]["cpu_busy_at_start"] = busy
    report["machine"]["cpu_busy_at_end"] = cpu_busy_fraction(0.5)
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0
