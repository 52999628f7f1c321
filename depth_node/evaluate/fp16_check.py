"""Is a graph safe to run in fp16? Measured on the user's own frames, before an fp16 engine is trusted.

fp16 tops out at 65504. Public TensorRT ports of Depth Pro report NaNs and lost quality from fp16 LayerNorm (a
decomposed LayerNorm squares its input: |x| > 256 already overflows) and from TF32. This check runs the fp32
graph with every intermediate float tensor exposed and records each tensor's largest magnitude, then runs the
fp16-typed graph (the one TensorRT 11 builds from; heads kept fp32, as `to_fp16` does) and compares outputs:

- overflow: tensors whose fp32 magnitude exceeds fp16's range;
- layernorm_risk: LayerNormalization inputs above 256 (safe in ONNX's fused op, which computes in fp32 by default,
  but an overflow wherever a builder decomposes it into Pow/ReduceMean in fp16) and explicit Pow nodes with such
  inputs;
- output ranges of both graphs (for Depth Pro: the canonical inverse depth range) and non-finite fp16 values;
- drift of fp16 against fp32 (`DriftMeter`, abs_rel directly comparable with the model's own abs_rel).

The fp16 typing itself is export's (`export/fp16_graph.py`); this module measures it, with the runners and
comparison of `parity.py`. `depth-node check-fp16` runs `check_fp16_on_images`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.evaluate.parity import checked_output, compare, load_frames, reference_runner

FP16_MAX = 65504.0
# A decomposed LayerNorm squares its input: beyond this magnitude the square overflows fp16.
SQUARE_LIMIT = 256.0


@dataclass
class TensorPeak:
    name: str
    op_type: str
    max_abs: float


@dataclass
class Fp16Report:
    frames: int
    tensors_checked: int
    peaks: list[TensorPeak]  # the largest magnitudes, descending
    overflow: list[TensorPeak]
    layernorm_risk: list[TensorPeak]
    output_range_fp32: dict[str, dict[str, float]]
    output_range_fp16: dict[str, dict[str, float]]
    nonfinite_fp16: dict[str, int]
    drift: dict[str, dict[str, float]]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        def peaks(items: list[TensorPeak]) -> list[dict[str, Any]]:
            return [{"tensor": p.name, "op": p.op_type, "max_abs": p.max_abs} for p in items]

        return {
            "frames": self.frames, "tensors_checked": self.tensors_checked, "fp16_max": FP16_MAX,
            "largest_activations": peaks(self.peaks), "overflow": peaks(self.overflow),
            "layernorm_risk": peaks(self.layernorm_risk), "output_range_fp32": self.output_range_fp32,
            "output_range_fp16": self.output_range_fp16, "nonfinite_fp16": self.nonfinite_fp16,
            "drift_fp16_vs_fp32": self.drift, "passed": self.passed, "failures": self.failures,
        }

    def lines(self) -> list[str]:
        """The report as `depth-node check-fp16` prints it."""
        out = [f"{self.tensors_checked} float tensors on {self.frames} frame(s); fp16 max {FP16_MAX:g}",
               "largest activations (fp32):"]
        out += [f"  {p.max_abs:12.4g}  {p.op_type:20s} {p.name}" for p in self.peaks]
        if self.layernorm_risk:
            out.append(f"{len(self.layernorm_risk)} LayerNorm/Pow input(s) above 256 (safe in the fused op; overflow "
                       "if a builder decomposes LayerNorm in fp16 — keep those layers fp32):")
            out += [f"  {p.max_abs:12.4g}  {p.name}" for p in self.layernorm_risk[:8]]
        for k, r in self.output_range_fp32.items():
            h = self.output_range_fp16[k]
            out.append(f"output {k}: fp32 [{r['min']:.4g}, {r['max']:.4g}] (p1 {r['p1']:.4g}, p99 {r['p99']:.4g}); "
                       f"fp16 [{h['min']:.4g}, {h['max']:.4g}], non-finite {self.nonfinite_fp16[k]}")
        for k, d in self.drift.items():
            out.append(f"fp16 vs fp32 {k:24s} max abs {d['max_abs']:.4g}  mean abs {d['mean_abs']:.4g}  "
                       f"abs_rel {d['abs_rel']:.4%}")
        out.append("PASS" if self.passed else "FAIL: " + "; ".join(self.failures))
        return out


def _range(values: list[np.ndarray]) -> dict[str, float]:
    v = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in values])
    v = v[np.isfinite(v)]
    if not v.size:
        return {"min": float("nan"), "p1": float("nan"), "median": float("nan"), "p99": float("nan"),
                "max": float("nan")}
    p1, p50, p99 = np.percentile(v, [1, 50, 99])
    return {"min": float(v.min()), "p1": float(p1), "median": float(p50), "p99": float(p99), "max": float(v.max())}


def activation_peaks(onnx_path: str | os.PathLike, inputs: list[np.ndarray]) -> tuple[list[TensorPeak], dict]:
    """Largest |value| of every float intermediate tensor of the fp32 graph over `inputs` (ONNX Runtime, CPU);
    also returns the consumers' op types per tensor (to find LayerNorm and Pow inputs)."""
    import onnx
    import onnxruntime as ort

    from depth_node.export.quantize import folded_model

    model = onnx.shape_inference.infer_shapes(folded_model(onnx_path))
    g = model.graph
    producer = {o: n.op_type for n in g.node for o in n.output}
    consumers: dict[str, set[str]] = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, set()).add(n.op_type)
    have = {o.name for o in g.output}
    floats = [vi for vi in g.value_info if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
              and vi.name in producer and vi.name not in have]
    g.output.extend(floats)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor as exported
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]
    peak = dict.fromkeys(outs, 0.0)
    for x in inputs:
        for n, v in zip(outs, sess.run(None, {name: x})):
            a = np.abs(np.asarray(v, dtype=np.float64))
            a = a[np.isfinite(a)]
            if a.size:
                peak[n] = max(peak[n], float(a.max()))
    peaks = sorted((TensorPeak(n, producer.get(n, "input"), m) for n, m in peak.items()),
                   key=lambda p: -p.max_abs)
    return peaks, consumers


def check_fp16(onnx_path: str | os.PathLike, inputs: list[np.ndarray], abs_rel_tol: float = 0.01,
               top: int = 8, cache_dir: str | os.PathLike | None = None) -> Fp16Report:
    from depth_node.export.fp16_graph import fp16_typed_onnx

    onnx_path = Path(onnx_path)
    peaks, consumers = activation_peaks(onnx_path, inputs)
    overflow = [p for p in peaks if p.max_abs > FP16_MAX]
    risk = [p for p in peaks if p.max_abs > SQUARE_LIMIT and consumers.get(p.name, set()) & {"LayerNormalization",
                                                                                             "Pow"}]
    ref, _ = reference_runner(onnx_path)
    half, _ = reference_runner(fp16_typed_onnx(onnx_path, cache_dir))
    r32: dict[str, list[np.ndarray]] = {}
    r16: dict[str, list[np.ndarray]] = {}
    for x in inputs:
        for k, v in ref(x).items():
            r32.setdefault(k, []).append(v)
        for k, v in half(x).items():
            r16.setdefault(k, []).append(v)
    nonfinite = {k: int(sum((~np.isfinite(np.asarray(a))).sum() for a in v)) for k, v in r16.items()}
    drift = compare(half, ref, inputs)
    failures = []
    if overflow:
        failures.append(f"{len(overflow)} tensor(s) exceed fp16's range (largest {overflow[0].name}: "
                        f"{overflow[0].max_abs:.4g})")
    bad = {k: n for k, n in nonfinite.items() if n}
    if bad:
        failures.append(f"fp16 outputs have non-finite values: {bad}")
    key = checked_output(drift)
    if drift[key]["abs_rel"] > abs_rel_tol:
        failures.append(f"{key}: fp16 drift abs_rel {drift[key]['abs_rel']:.4%} > {abs_rel_tol:.4%}")
    return Fp16Report(len(inputs), len(peaks), peaks[:top], overflow, risk,
                      {k: _range(v) for k, v in r32.items()}, {k: _range(v) for k, v in r16.items()}, nonfinite,
                      drift, failures)


def check_fp16_on_images(onnx_path: str | os.PathLike, images: str | os.PathLike, frames: int = 4,
                         abs_rel_tol: float = 0.01) -> Fp16Report:
    """`check_fp16` on up to `frames` evenly spaced frames of the folder `images`, sized to the graph's input."""
    _, shape = reference_runner(onnx_path)
    return check_fp16(onnx_path, load_frames(images, shape, frames), abs_rel_tol)
