"""Which convolutions an int8 depth graph may run in int8 and stay within its drift budget.

Per-layer sensitivity: the depth drift (abs_rel against the fp32 graph) when ONLY that convolution is int8, run by
ONNX Runtime's real int8 kernels. It only orders the candidates and picks each one's weight width; every trial of
the search below is judged by the worse of ONNX Runtime and OpenVINO (`graph_drift`), so the budget holds for both
while the ranking costs one runtime, not two (half of `depth-node quantize`'s time). On a CPU without VNNI each
layer is measured twice, with 8-bit and with 7-bit weights, and keeps the better: 8-bit weights are twice as fine,
but the AVX2 kernels (VPMADDUBSW) saturate their pairwise int16 sums on some layers (on the trained default model
one decoder conv moves depth 26 % with 8-bit weights against 0.5 % in exact Q/DQ arithmetic), and only a measurement
tells which.

Single-layer sensitivities do not add up (errors of different layers partly cancel, partly compound), so the
choice itself is a drift-budgeted greedy search on the whole graph: start with every candidate convolution in
float, then turn them to int8 one at a time, the most compute per unit of sensitivity first, keeping each one
only while the whole graph's drift on the validation frames stays within the budget. It therefore ends within
the budget by construction (`budgeted_int8`).

Every trial re-uses one calibration (ranges cached as JSON by onnxruntime's `calibration_cache_path`): a graph
rewrite plus a few ONNX Runtime runs, not a new calibration."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from depth_node.export.drift import drift
from depth_node.export.openvino_cpu import core, cpu_config
from depth_node.export.ort_cpu import cpu_session

# (out, nodes kept float, nodes to quantize or None for all others, convs with 7-bit weights)
Build = Callable[[Path, list[str], list[str] | None, list[str]], None]
Progress = Callable[[str], None] | None


def abs_rel(candidate: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """The drift's abs_rel (`export.drift`: mean |c - r| / r where the reference is finite and positive; infinite
    when the candidate is not finite there), the figure the benchmark reports for the same graph."""
    return drift(candidate, reference).abs_rel


def run_graph(path: Path, input_name: str, output: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    sess = cpu_session(path)
    return [sess.run([output], {input_name: x})[0] for x in inputs]


def run_openvino(path: Path, output: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The graph through OpenVINO's CPU plugin with the openvino backend's settings for an int8 graph
    (`export.openvino_cpu`): its int8 kernels for the Q/DQ parts, the float layers in bf16 where the CPU computes
    bf16 natively, else f32; so the drift budget holds for what runs."""
    ov = core()
    compiled = ov.compile_model(ov.read_model(str(path)), "CPU", cpu_config("int8"))
    request = compiled.create_infer_request()
    index = next(i for i, p in enumerate(compiled.outputs) if output in p.get_names())
    out = []
    for x in inputs:
        request.infer({0: x})
        out.append(request.get_output_tensor(index).data.copy())
    return out


def graph_drift(path: Path, input_name: str, output: str, inputs: list[np.ndarray], fp32_outputs: list[np.ndarray]
                ) -> float:
    """The worse abs_rel of ONNX Runtime and (where installed) OpenVINO: the same Q/DQ file runs through different
    int8 kernels in each (on the default model one search result drifted 0.68 % in ORT and 0.92 % in OpenVINO),
    and the budget must hold for both."""
    drift = abs_rel(run_graph(path, input_name, output, inputs), fp32_outputs)
    if importlib.util.find_spec("openvino") is not None:
        drift = max(drift, abs_rel(run_openvino(path, output, inputs), fp32_outputs))
    return drift


def layer_sensitivity(build: Build, fp32_outputs: list[np.ndarray], layers: list[str], input_name: str,
                      output: str, inputs: list[np.ndarray], try_seven_bit: bool = False, progress: Progress = None
                      ) -> tuple[dict[str, float], list[str]]:
    """({conv name: drift with only that conv in int8}, most sensitive first; the convs whose 7-bit weights
    drifted less than their 8-bit ones). `try_seven_bit`: measure both widths (CPUs without VNNI)."""
    out: dict[str, float] = {}
    seven: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dn-sens-") as tmp:
        for i, layer in enumerate(layers):
            widths = {}
            for reduced in (False, True) if try_seven_bit else (False,):
                path = Path(tmp) / f"{i}-{int(reduced)}.onnx"
                build(path, [], [layer], [layer] if reduced else [])
                widths[7 if reduced else 8] = abs_rel(run_graph(path, input_name, output, inputs), fp32_outputs)
            bits = min(widths, key=lambda b: (widths[b], -b))  # ties: the finer 8-bit weights
            out[layer] = widths[bits]
            if bits == 7:
                seven.append(layer)
            if progress:
                shown = ", ".join(f"{b}-bit weights {d:.3%}" for b, d in sorted(widths.items(), reverse=True))
                progress(f"sensitivity {i + 1}/{len(layers)} {layer}: {shown}")
    return dict(sorted(out.items(), key=lambda kv: -kv[1])), seven


def budgeted_int8(build: Build, fp32_outputs: list[np.ndarray], sensitivity: dict[str, float], macs: dict[str, int],
                  always: list[str], others: list[str], seven: list[str], target: float, input_name: str, output: str,
                  inputs: list[np.ndarray], progress: Progress = None) -> tuple[list[str], list[dict], float]:
    """(nodes kept float, trials, final validation drift). Starts with every convolution of `sensitivity` in
    float besides `always`, the ops between them (`others`: adds, resizes, concats, activations) int8; if that
    start already misses `target`, those ops stay float as well and only the chosen convolutions get Q/DQ on
    their inputs (the placement TensorRT recommends; ORT and OpenVINO still run such a conv in int8). Then it
    tries each conv in int8, the most multiply-adds per unit of sensitivity first (the most speed per drift),
    keeping it where the whole graph's drift stays ≤ `target`; a layer whose drift alone exceeds the target is
    skipped without a trial. So the result is within the budget unless even the float graph is not."""
    candidates = list(sensitivity)
    order = sorted(candidates, key=lambda n: sensitivity[n] / max(macs.get(n, 1), 1))
    float_convs = set(candidates)
    float_ops: list[str] = []
    trials: list[dict] = []

    def trial(path: Path) -> float:
        keep = list(always) + float_ops + [n for n in candidates if n in float_convs]
        build(path, keep, None, [n for n in seven if n not in float_convs])
        return graph_drift(path, input_name, output, inputs, fp32_outputs)

    with tempfile.TemporaryDirectory(prefix="dn-greedy-") as tmp:
        drift = trial(Path(tmp) / "start.onnx")
        trials.append({"layer": None, "int8": False, "abs_rel": round(drift, 5)})
        if drift > target:
            float_ops = [n for n in others if n not in always]
            drift = trial(Path(tmp) / "start-float.onnx")
            trials.append({"layer": None, "int8": False, "abs_rel": round(drift, 5), "ops_between": "float"})
        for i, layer in enumerate(order):
            if sensitivity[layer] > target:
                trials.append({"layer": layer, "int8": False, "abs_rel": None, "skipped": "alone over budget"})
                continue
            float_convs.discard(layer)
            d = trial(Path(tmp) / f"{i}.onnx")
            accepted = d <= target
            trials.append({"layer": layer, "int8": accepted, "abs_rel": round(d, 5)})
            if accepted:
                drift = d
            else:
                float_convs.add(layer)
            if progress:
                progress(f"greedy {i + 1}/{len(order)} {layer} int8: drift {d:.3%} "
                         f"{'kept' if accepted else 'over budget, back to float'}")
    return list(always) + float_ops + [n for n in candidates if n in float_convs], trials, drift
