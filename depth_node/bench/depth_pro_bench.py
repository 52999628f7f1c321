"""`depth-node bench --depth-pro`: the metric ViT's presets on every available backend — parameters, GFLOP,
latency at the preset's own network size, and each fast path's drift of canonical inverse depth against PyTorch
fp32 in the same run.

Speed hardly depends on the weights, so a preset without a trained model file is timed with deterministic random
weights (drift on those is indicative only); `--model` times a real model file instead of its preset. `full`
(~19 TFLOP a frame) is left out unless named: on a CPU one forward takes minutes."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time

import torch

from depth_node.bench.load import LoadMonitor
from depth_node.bench.machine import machine_with_load, write_report
from depth_node.bench.timing import measure
from depth_node.checkpoints.model_file import ModelFile, load_model
from depth_node.errors import DepthNodeError
from depth_node.export.drift import DriftMeter

log = logging.getLogger(__name__)

DEFAULT_PRESETS = "small,fast"
OUTPUT = "canonical_inverse_depth"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", default=None,
                   help=f"--depth-pro: comma-separated presets (default {DEFAULT_PRESETS}; full only when named)")


def preset_model(name: str, model: ModelFile | None) -> tuple[ModelFile, str]:
    """The given model file when it is this preset, else the preset with deterministic random weights."""
    from depth_node.checkpoints.depth_pro import depth_pro_model_file
    from depth_node.networks.depth_pro import build_depth_pro, preset, resolve_config

    if model is not None and str(model.config.get("preset", "")).split("+")[0] == name:
        return model, "model file"
    cfg = resolve_config(preset(name))
    torch.manual_seed(0)
    net = build_depth_pro(cfg)
    with torch.no_grad():
        net.head[4].bias.fill_(0.05)  # alive outputs (a zero-bias ReLU head gives all-zero depth at random init)
    return depth_pro_model_file(cfg, net.state_dict(), {"source": "random weights (bench)"}), "random weights"


def candidates(backends: list[str] | None, precisions: list[str] | None) -> tuple[list, list[str]]:
    from depth_node.bench.inference import Candidate, cpu_bf16
    from depth_node.inference.factory import available_backends, cuda_available

    avail = available_backends()
    bf16 = cpu_bf16()
    plan = [Candidate("torch", "fp32", "cpu")] + ([Candidate("torch", "bf16", "cpu")] if bf16 else [])
    plan += [Candidate("onnxruntime", "fp32", "cpu"), Candidate("openvino", "fp32", "cpu")]
    plan += [Candidate("openvino", "bf16", "cpu")] if bf16 else []
    notes = ["int8 is not offered for the ViT presets (no calibrated Q/DQ placement for attention here)"]
    if cuda_available():
        plan += [Candidate("torch", p, "cuda") for p in ("fp32", "fp16", "bf16")]
        plan += [Candidate("tensorrt", "fp16", "cuda")]
    else:
        notes.append("no CUDA device: GPU rows skipped")
    plan = [c for c in plan if c.backend in avail]
    if backends:
        plan = [c for c in plan if c.backend in backends]
    if precisions:
        plan = [c for c in plan if c.precision in precisions]
    return plan, notes


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from depth_node.bench.inference import _csv
    from depth_node.inference.factory import create_backend
    from depth_node.inference.preprocess import to_network_input
    from depth_node.networks.depth_pro import PRESETS, count_params, forward_gflop, network_size
    from depth_node.sim.calibration import scene_frames

    started = time.perf_counter()
    presets = _csv(args.presets or DEFAULT_PRESETS, tuple(PRESETS), "preset") or []
    model = load_model(args.model) if args.model else None
    if model is not None and model.arch != "depth_pro":
        raise DepthNodeError(f"--depth-pro --model: {args.model} is a {model.arch} model, not a Depth Pro one")
    plan, notes = candidates(_csv(args.backends, None, "backend"), _csv(args.precisions, None, "precision"))
    iters, warmup = args.iters or 3, args.warmup if args.warmup is not None else 1
    frames = scene_frames(2, 375, 1242, held_out=True)
    monitor = LoadMonitor().start()  # other processes' CPU use through the whole run (bench/load.py)
    rows: list[dict] = []
    bar = tqdm(total=len(presets) * len(plan), desc="bench depth-pro", unit="run", disable=args.no_progress,
               file=sys.stderr)
    for name in presets:
        mf, weights = preset_model(name, model)
        size = network_size(mf.config)
        xs = [to_network_input(f, size, size) for f in frames]
        info = {"preset": name, "weights": weights, "network_size": size,
                "params_m": round(count_params(mf.config) / 1e6, 2), "gflop": round(forward_gflop(mf.config), 1)}
        reference = None
        for cand in plan:
            bar.set_postfix_str(f"{name} {cand.label}")
            row = {**info, "backend": cand.backend, "precision": cand.precision, "device": cand.device}
            try:
                be = create_backend(mf, cand.backend, cand.precision, cand.device, cache_dir=args.cache_dir)
                try:
                    sync = torch.cuda.synchronize if cand.device.startswith("cuda") else None
                    t = measure(lambda b=be, x0=xs[0]: b.run_depth(x0), iters, warmup, sync)
                    outs = [be.run_depth(x)[OUTPUT] for x in xs]
                finally:
                    be.close()
                row.update(t.as_dict())
                row["fps"] = round(1000.0 / t.median_ms, 2) if t.median_ms > 0 else None
                if reference is None and (cand.backend, cand.precision) == ("torch", "fp32"):
                    reference = outs
                if reference is not None:
                    meter = DriftMeter()
                    for o, r in zip(outs, reference):
                        meter.add(o, r)
                    d = meter.result()
                    row["abs_rel_drift"], row["max_abs_err"] = d.abs_rel, d.max_abs
            except Exception as exc:  # a backend that cannot run a preset is a row with the reason
                row.update(status="error", error=(str(exc).splitlines() or [type(exc).__name__])[0][:300])
                log.warning("%s %s: %s", name, cand.label, row["error"])
            rows.append(row)
            gc.collect()
            bar.update()
    bar.close()
    monitor.stop()
    load = monitor.summary()
    if load["loaded"]:
        notes.append("LOADED machine: other processes used the CPU during the run (machine.load)")
    report = {"benchmark": "depth-pro presets", "machine": machine_with_load(load),
              "iters": iters, "warmup": warmup, "rows": rows, "notes": notes,
              "seconds": round(time.perf_counter() - started, 1)}
    print(format_table(report))
    write_report(report, getattr(args, "json", None))
    return 0


def format_table(report: dict) -> str:
    lines = [f"{'preset':8s} {'size':>5s} {'params':>8s} {'GFLOP':>8s}  {'backend/precision':24s} {'median ms':>10s} "
             f"{'fps':>7s} {'drift':>8s}"]
    for r in report["rows"]:
        label = f"{r['backend']}/{r['precision']} ({r['device']})"
        if r.get("status") == "error":
            lines.append(f"{r['preset']:8s} {r['network_size']:5d} {r['params_m']:7.2f}M {r['gflop']:8.1f}  "
                         f"{label:24s} error: {r['error'][:60]}")
            continue
        drift = f"{r['abs_rel_drift']:.3%}" if r.get("abs_rel_drift") is not None else "—"
        lines.append(f"{r['preset']:8s} {r['network_size']:5d} {r['params_m']:7.2f}M {r['gflop']:8.1f}  {label:24s} "
                     f"{r['median_ms']:10.1f} {r['fps']:7.2f} {drift:>8s}")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)
