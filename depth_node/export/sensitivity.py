"""Which convolutions to keep in float so an int8 depth graph stays within its drift budget.

Per-layer sensitivity: the depth drift (abs_rel against the fp32 graph) when ONLY that convolution is int8.
Layers are then returned to float most-sensitive first until the whole graph's drift on validation frames is
within the target. Quantization error of a trained ResNet encoder-decoder is concentrated in few layers (the
first conv sees raw pixels, the decoder's last upsampling convs write fine disparity detail), so a handful of
float layers buys most of the accuracy at little speed.

Both steps re-use one calibration (ranges cached as JSON by onnxruntime's `calibration_cache_path`), so each trial
is a graph rewrite plus a few ONNX Runtime runs, not a new calibration."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

Build = Callable[[Path, list[str], list[str] | None], None]  # (out, nodes_to_exclude, nodes_to_quantize or None)


def abs_rel(candidate: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """mean |c - r| / r over all pixels where the reference is finite and positive (the depth metric's form)."""
    num, n = 0.0, 0
    for c, r in zip(candidate, reference):
        c, r = np.asarray(c, np.float64).reshape(-1), np.asarray(r, np.float64).reshape(-1)
        ok = np.isfinite(r) & (r > 0)
        num += float((np.abs(c[ok] - r[ok]) / r[ok]).sum())
        n += int(ok.sum())
    return num / max(n, 1)


def run_graph(path: Path, input_name: str, output: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return [sess.run([output], {input_name: x})[0] for x in inputs]


def layer_sensitivity(build: Build, fp32_outputs: list[np.ndarray], layers: list[str], input_name: str,
                      output: str, inputs: list[np.ndarray], progress: Callable[[str], None] | None = None
                      ) -> dict[str, float]:
    """{conv name: drift with only that conv in int8}, most sensitive first."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dn-sens-") as tmp:
        for i, layer in enumerate(layers):
            path = Path(tmp) / f"{i}.onnx"
            build(path, [], [layer])
            out[layer] = abs_rel(run_graph(path, input_name, output, inputs), fp32_outputs)
            if progress:
                progress(f"sensitivity {i + 1}/{len(layers)} {layer}: {out[layer]:.3%}")
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def choose_float_layers(build: Build, fp32_outputs: list[np.ndarray], ranked: list[str], always: list[str],
                        target: float, input_name: str, output: str, inputs: list[np.ndarray],
                        max_float: int = 12) -> tuple[list[str], list[dict]]:
    """The fewest most-sensitive layers to keep in float (besides `always`) for drift ≤ target, and every trial
    (k, drift). Gives up at `max_float` layers (and returns the best trial) rather than drift back to fp32."""
    trials: list[dict] = []
    schedule = [k for k in (0, 1, 2, 3, 4, 6, 8, max_float) if k <= min(max_float, len(ranked))]
    best: tuple[float, list[str]] = (float("inf"), list(always))
    with tempfile.TemporaryDirectory(prefix="dn-mixed-") as tmp:
        for k in dict.fromkeys(schedule):
            keep = list(always) + ranked[:k]
            path = Path(tmp) / f"k{k}.onnx"
            build(path, keep, None)
            d = abs_rel(run_graph(path, input_name, output, inputs), fp32_outputs)
            trials.append({"float_layers": k, "abs_rel": round(d, 5)})
            if d < best[0]:
                best = (d, keep)
            if d <= target:
                return keep, trials
    return best[1], trials
