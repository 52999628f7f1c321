"""Does a fast path give the fp32 answer? A candidate and its fp32 ONNX (ONNX Runtime, CPU) run on the same frames,
and their outputs are compared with `DriftMeter`.

The candidate is whatever will be deployed: a TensorRT engine (.engine/.plan), another ONNX run by ONNX Runtime
(e.g. the int8 Q/DQ one), or `openvino:PATH` (an ONNX run by OpenVINO). One check for every fast path, so the
logic is exercised on CPU-only CI even though engines need a GPU. `depth-node verify-engine` runs it; the fp16
check (`fp16_check.py`) reuses its runners and comparison.

The verdict (`judge`):
- depth (and any other non-pose output checked: Depth Pro's canonical inverse depth) by abs_rel, which reads
  against the model's own abs_rel (`abs_rel_tol`, default 1 %), and by max abs error where `max_abs_tol` is set;
- a pose net's outputs (axisangle, translation, T) by their max abs error in their own units: radians for
  axisangle, model units for translation (metres once multiplied by the model's scale factor; 1e-3 is 5.4 mm
  for the stereo-scaled default model), T's entries the same. The tolerance is `max_abs_tol` when given, else
  `POSE_MAX_ABS_TOL` = 1e-3 (0.057° of rotation per frame pair). Relative error is not used for them: frame-to-
  frame motion is near zero (components of 1e-4 rad), so a bf16 error of 4e-5 rad reads as "abs_rel 5.7 %" and
  fails a sound candidate. The limit of the rule: a candidate that outputs no motion at all passes on frames
  whose motion is below the tolerance, so check pose on frames that move.

Sizes: a dynamic-size export (a model trained on several aspects, `depth_node.sizes` in its metadata) is checked
at each listed size the candidate accepts: every one for a dynamic candidate (the fp32/bf16 ONNX, an fp16/fp32
engine with its profile), the training size alone for a static one (an int8 Q/DQ graph or engine, built at that
size); the report says which."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.export.drift import DriftMeter

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]

POSE_OUTPUTS = ("axisangle", "translation", "T")
POSE_MAX_ABS_TOL = 1e-3  # radians (axisangle), model units (translation): see the module docstring
POSE_UNITS = {"axisangle": "rad", "translation": "model units", "T": "rotation entries, model units"}


def _session_runner(path: str | os.PathLike) -> tuple[Runner, list[int]]:
    """(runner, input shape with -1 for dynamic dims) of an ONNX file on ONNX Runtime's CPU provider."""
    from depth_node.inference.onnxruntime_backend import make_session

    sess = make_session(Path(path), "cpu")
    inp = sess.get_inputs()[0]
    names = [o.name for o in sess.get_outputs()]
    shape = [int(d) if isinstance(d, int) and d > 0 else -1 for d in inp.shape]
    return (lambda x: dict(zip(names, sess.run(None, {inp.name: x})))), shape


def reference_runner(path: str | os.PathLike) -> tuple[Runner, list[int]]:
    """(runner, input shape [1, C, H, W]) of a static-shape ONNX file on ONNX Runtime's CPU provider."""
    path = Path(path)
    run, shape = _session_runner(path)
    if len(shape) != 4 or min(shape) <= 0:
        raise DepthNodeError(f"{path}: input shape {shape} is not a static [1,C,H,W] (a dynamic-size export: pin it "
                             "to its training size first, `export.tensorrt_engine.training_size_onnx`)")
    return run, shape


def _onnx_input_shape(path: Path) -> list[int]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return [d.dim_value if d.dim_value > 0 else -1 for d in m.graph.input[0].type.tensor_type.shape.dim]


def _candidate(spec: str, openvino_precision: str = "fp32") -> tuple[Runner, str, list[int]]:
    """(runner, description, input shape with -1 for dynamic dims) for a candidate named as on the command line."""
    from depth_node.inference.base import ModelInfo

    if spec.startswith("openvino:"):
        from depth_node.export.quantize import is_quantized
        from depth_node.inference.openvino_backend import OpenVinoBackend

        path = Path(spec.split(":", 1)[1])
        if not path.is_file():
            raise DepthNodeError(f"candidate ONNX not found: {path}")
        precision = "int8" if is_quantized(path) else openvino_precision
        b = OpenVinoBackend(ModelInfo("?", 0, 0), path, None, precision, "cpu")
        return b.run_depth, f"OpenVINO {precision} on {path}", _onnx_input_shape(path)
    path = Path(spec)
    if not path.is_file():
        raise DepthNodeError(f"candidate not found: {path}")
    if path.suffix in (".engine", ".plan"):
        from depth_node.export.tensorrt_engine import load_engine
        from depth_node.inference.tensorrt_backend import EngineRunner

        runner = EngineRunner(load_engine(path))
        shape = [int(d) if int(d) > 0 else -1 for d in runner.engine.get_tensor_shape(runner.input_name)]
        return runner, f"TensorRT engine {path}", shape
    if path.suffix == ".onnx":
        run, shape = _session_runner(path)
        return run, f"ONNX Runtime (CPU) on {path}", shape
    raise DepthNodeError(f"candidate {spec}: expected .engine/.plan, .onnx, or openvino:PATH")


def candidate_runner(spec: str, openvino_precision: str = "fp32") -> tuple[Runner, str]:
    """(runner, description) for a candidate named as on the command line: ENGINE, ONNX or openvino:ONNX."""
    run, description, _ = _candidate(spec, openvino_precision)
    return run, description


def listed_sizes(onnx: str | os.PathLike) -> list[tuple[int, int]]:
    """The input sizes (h, w) a dynamic-size export lists in its metadata, the training size first."""
    from depth_node.export.onnx_metadata import read_metadata

    sizes = json.loads(read_metadata(Path(onnx)).get("depth_node.sizes", "[]") or "[]")
    if not sizes:
        raise DepthNodeError(f"{onnx} has dynamic height/width but its metadata lists no input sizes "
                             "(depth_node.sizes): re-export it with `depth-node export`")
    return [(int(h), int(w)) for h, w in sizes]


def sizes_to_check(onnx: str | os.PathLike, reference_shape: list[int],
                   candidate_shape: list[int]) -> tuple[list[tuple[int, int]], str]:
    """(sizes, note): the static reference's one size; for a dynamic one every listed size a dynamic candidate
    accepts, or the static candidate's own size (an int8 graph or engine: the training size) with a note."""
    if len(reference_shape) != 4:
        raise DepthNodeError(f"{onnx}: input shape {reference_shape} is not [1,C,H,W]")
    if min(reference_shape[2:]) > 0:
        return [(reference_shape[2], reference_shape[3])], ""
    listed = listed_sizes(onnx)
    if len(candidate_shape) == 4 and min(candidate_shape[2:]) > 0:
        h, w = candidate_shape[2], candidate_shape[3]
        where = "its training size" if (h, w) == listed[0] else "its only size"
        note = (f"the candidate is static at {h}x{w} ({where}): checked at that size only, of the "
                f"{len(listed)} the export lists")
        return [(h, w)], note
    return listed, f"checked at every size the export lists ({len(listed)})" if len(listed) > 1 else ""


def load_frames(folder: str | os.PathLike, shape: list[int], n: int) -> list[np.ndarray]:
    """At most `n` evenly spaced frames of `folder` as network inputs of `shape` (frame pairs for a pose net)."""
    from depth_node.export.quantize import folder_frames, network_inputs

    if n < 1:
        raise DepthNodeError("--frames must be at least 1")
    frames = folder_frames(Path(folder), n + 1 if shape[1] == 6 else n)
    if shape[1] == 6 and len(frames) < 2:
        raise DepthNodeError("a pose net needs at least 2 images to make a frame pair")
    return network_inputs(frames, shape)


def _add(meter_sets: list[dict[str, DriftMeter]], candidate: Runner, reference: Runner,
         inputs: list[np.ndarray]) -> None:
    """Run both on `inputs` and add every output's drift to each of `meter_sets` (one per size, one overall)."""
    for x in inputs:
        ref, got = reference(x), candidate(x)
        missing = [k for k in ref if k not in got]
        if missing:
            raise DepthNodeError(f"the candidate lacks outputs {missing} (it has {sorted(got)})")
        for k, r in ref.items():
            for meters in meter_sets:
                meters.setdefault(k, DriftMeter()).add(got[k], r)


def compare(candidate: Runner, reference: Runner, inputs: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Drift of every reference output over `inputs` (`Drift.as_dict()` per output name)."""
    meters: dict[str, DriftMeter] = {}
    _add([meters], candidate, reference, inputs)
    return {k: m.result().as_dict() for k, m in meters.items()}


def is_pose(outputs: dict[str, Any]) -> bool:
    return "depth" not in outputs and any(k in outputs for k in POSE_OUTPUTS)


def checked_outputs(outputs: dict[str, Any]) -> list[str]:
    """The outputs a verdict is about: depth; a pose net's axisangle, translation and T; else the first output
    (Depth Pro: the canonical inverse depth)."""
    if "depth" in outputs:
        return ["depth"]
    pose = [k for k in POSE_OUTPUTS if k in outputs]
    return pose or [next(iter(outputs))]


def checked_output(outputs: dict[str, Any]) -> str:
    """The (first) output a verdict is about (`checked_outputs`)."""
    return checked_outputs(outputs)[0]


def judge(outputs: dict[str, dict[str, float]], abs_rel_tol: float | None = 0.01,
          max_abs_tol: float | None = None) -> list[str]:
    """Failures of one comparison (`compare`'s result) under the module docstring's rule: depth by abs_rel (and
    max abs when `max_abs_tol` is set), pose outputs by max abs in their own units (`max_abs_tol`, else
    POSE_MAX_ABS_TOL)."""
    failures = []
    if is_pose(outputs):
        tol = POSE_MAX_ABS_TOL if max_abs_tol is None else max_abs_tol
        for k in checked_outputs(outputs):
            if not outputs[k]["max_abs"] <= tol:
                failures.append(f"{k}: max abs {outputs[k]['max_abs']:.4g} > {tol:.4g} ({POSE_UNITS[k]})")
        return failures
    main = outputs[checked_output(outputs)]
    if abs_rel_tol is not None and main["abs_rel"] > abs_rel_tol:
        failures.append(f"abs_rel {main['abs_rel']:.4%} > {abs_rel_tol:.4%}")
    if max_abs_tol is not None and main["max_abs"] > max_abs_tol:
        failures.append(f"max abs {main['max_abs']:.4g} > {max_abs_tol:.4g}")
    return failures


@dataclass
class ParityReport:
    candidate: str  # as named by the caller
    description: str  # what ran it
    reference: Path
    images: Path
    frames: int  # inputs per size
    abs_rel_tol: float | None
    max_abs_tol: float | None
    outputs: dict[str, dict[str, float]]  # drift per output, over every size checked
    failures: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (h, w) checked
    by_size: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # "HxW" → drift per output
    note: str = ""  # which sizes were checked and why

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def checked_output(self) -> str:
        return checked_output(self.outputs)

    @property
    def checked_outputs(self) -> list[str]:
        return checked_outputs(self.outputs)

    @property
    def pose(self) -> bool:
        return is_pose(self.outputs)

    @property
    def pose_max_abs_tol(self) -> float | None:
        return (POSE_MAX_ABS_TOL if self.max_abs_tol is None else self.max_abs_tol) if self.pose else None

    def _output_lines(self, outputs: dict[str, dict[str, float]], indent: str) -> list[str]:
        out = []
        for k, d in outputs.items():
            line = f"{indent}{k:12s} max abs {d['max_abs']:.4g}  mean abs {d['mean_abs']:.4g}"
            out.append(line if self.pose else line + f"  abs_rel {d['abs_rel']:.4%}")
        return out

    def lines(self) -> list[str]:
        sizes = ", ".join(f"{h}x{w}" for h, w in self.sizes)
        out = [f"candidate: {self.description}", f"reference: ONNX Runtime (CPU, fp32) on {self.reference}",
               f"frames: {self.frames} from {self.images}" + (f" at {sizes}" if sizes else "")]
        if self.note:
            out.append(f"note: {self.note}")
        if self.pose:
            out.append(f"pose outputs judged by max abs error in their own units (axisangle rad, translation model "
                       f"units), tolerance {self.pose_max_abs_tol:.4g}; not by relative error (motion is near zero)")
        if len(self.by_size) > 1:
            for size, outputs in self.by_size.items():
                out.append(f"  at {size}:")
                out += self._output_lines(outputs, "    ")
        else:
            out += self._output_lines(self.outputs, "  ")
        verdict = "FAIL: " + "; ".join(self.failures) if self.failures else "PASS"
        out.append(f"{', '.join(self.checked_outputs)}: {verdict}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate, "reference": os.fspath(self.reference), "frames": self.frames,
            "checked_output": self.checked_output, "checked_outputs": self.checked_outputs,
            "tolerances": {"abs_rel": None if self.pose else self.abs_rel_tol,
                           "max_abs": self.pose_max_abs_tol if self.pose else self.max_abs_tol},
            "sizes": [list(s) for s in self.sizes], "note": self.note,
            "outputs": self.outputs, "by_size": self.by_size, "passed": self.passed, "failures": self.failures,
        }


def verify_candidate(candidate: str, onnx: str | os.PathLike, images: str | os.PathLike, frames: int = 8,
                     abs_rel_tol: float | None = 0.01, max_abs_tol: float | None = None,
                     openvino_precision: str = "fp32") -> ParityReport:
    """Run `candidate` and the fp32 `onnx` on up to `frames` frames of `images` at each size to check
    (`sizes_to_check`); fail beyond the tolerances (`judge`; None: not checked) at any size."""
    reference, ref_shape = _session_runner(onnx)
    run, description, cand_shape = _candidate(candidate, openvino_precision)
    sizes, note = sizes_to_check(onnx, ref_shape, cand_shape)
    total: dict[str, DriftMeter] = {}
    by_size: dict[str, dict[str, dict[str, float]]] = {}
    failures: list[str] = []
    n = 0
    for h, w in sizes:
        inputs = load_frames(images, [1, ref_shape[1], h, w], frames)
        n = len(inputs)
        meters: dict[str, DriftMeter] = {}
        _add([meters, total], run, reference, inputs)
        outputs = {k: m.result().as_dict() for k, m in meters.items()}
        by_size[f"{h}x{w}"] = outputs
        prefix = f"at {h}x{w}: " if len(sizes) > 1 else ""
        failures += [prefix + f for f in judge(outputs, abs_rel_tol, max_abs_tol)]
    outputs = {k: m.result().as_dict() for k, m in total.items()}
    return ParityReport(candidate, description, Path(onnx), Path(images), n, abs_rel_tol, max_abs_tol, outputs,
                        failures, sizes, by_size if len(sizes) > 1 else {}, note)
