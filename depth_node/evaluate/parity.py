"""Does a fast path give the fp32 answer? A candidate and its fp32 ONNX (ONNX Runtime, CPU) run on the same frames,
and their outputs are compared with `DriftMeter` (abs_rel reads against the model's own abs_rel).

The candidate is whatever will be deployed: a TensorRT engine (.engine/.plan), another ONNX run by ONNX Runtime
(e.g. the int8 Q/DQ one), or `openvino:PATH` (an ONNX run by OpenVINO). One check for every fast path, so the
logic is exercised on CPU-only CI even though engines need a GPU. `depth-node verify-engine` runs it; the fp16
check (`fp16_check.py`) reuses its runners and comparison."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.export.drift import DriftMeter

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


def reference_runner(path: str | os.PathLike) -> tuple[Runner, list[int]]:
    """(runner, input shape [1, C, H, W]) of an ONNX file on ONNX Runtime's CPU provider."""
    from depth_node.inference.onnxruntime_backend import make_session

    path = Path(path)
    sess = make_session(path, "cpu")
    inp = sess.get_inputs()[0]
    names = [o.name for o in sess.get_outputs()]
    shape = [int(d) if isinstance(d, int) else -1 for d in inp.shape]
    if len(shape) != 4 or min(shape) <= 0:
        raise DepthNodeError(f"{path}: input shape {inp.shape} is not a static [1,C,H,W]")
    return (lambda x: dict(zip(names, sess.run(None, {inp.name: x})))), shape


def candidate_runner(spec: str, openvino_precision: str = "fp32") -> tuple[Runner, str]:
    """(runner, description) for a candidate named as on the command line: ENGINE, ONNX or openvino:ONNX."""
    from depth_node.inference.base import ModelInfo

    if spec.startswith("openvino:"):
        from depth_node.export.quantize import is_quantized
        from depth_node.inference.openvino_backend import OpenVinoBackend

        path = Path(spec.split(":", 1)[1])
        if not path.is_file():
            raise DepthNodeError(f"candidate ONNX not found: {path}")
        precision = "int8" if is_quantized(path) else openvino_precision
        b = OpenVinoBackend(ModelInfo("?", 0, 0), path, None, precision, "cpu")
        return b.run_depth, f"OpenVINO {precision} on {path}"
    path = Path(spec)
    if not path.is_file():
        raise DepthNodeError(f"candidate not found: {path}")
    if path.suffix in (".engine", ".plan"):
        from depth_node.export.tensorrt_engine import load_engine
        from depth_node.inference.tensorrt_backend import EngineRunner

        return EngineRunner(load_engine(path)), f"TensorRT engine {path}"
    if path.suffix == ".onnx":
        run, _ = reference_runner(path)
        return run, f"ONNX Runtime (CPU) on {path}"
    raise DepthNodeError(f"candidate {spec}: expected .engine/.plan, .onnx, or openvino:PATH")


def load_frames(folder: str | os.PathLike, shape: list[int], n: int) -> list[np.ndarray]:
    """At most `n` evenly spaced frames of `folder` as network inputs of `shape` (frame pairs for a pose net)."""
    from depth_node.export.quantize import folder_frames, network_inputs

    if n < 1:
        raise DepthNodeError("--frames must be at least 1")
    frames = folder_frames(Path(folder), n + 1 if shape[1] == 6 else n)
    if shape[1] == 6 and len(frames) < 2:
        raise DepthNodeError("a pose net needs at least 2 images to make a frame pair")
    return network_inputs(frames, shape)


def compare(candidate: Runner, reference: Runner, inputs: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Drift of every reference output over `inputs` (`Drift.as_dict()` per output name)."""
    meters: dict[str, DriftMeter] = {}
    for x in inputs:
        ref, got = reference(x), candidate(x)
        missing = [k for k in ref if k not in got]
        if missing:
            raise DepthNodeError(f"the candidate lacks outputs {missing} (it has {sorted(got)})")
        for k, r in ref.items():
            meters.setdefault(k, DriftMeter()).add(got[k], r)
    return {k: m.result().as_dict() for k, m in meters.items()}


def checked_output(outputs: dict[str, Any]) -> str:
    """The output a verdict is about: depth, else the first (Depth Pro: the canonical inverse depth)."""
    return "depth" if "depth" in outputs else next(iter(outputs))


@dataclass
class ParityReport:
    candidate: str  # as named by the caller
    description: str  # what ran it
    reference: Path
    images: Path
    frames: int
    abs_rel_tol: float | None
    max_abs_tol: float | None
    outputs: dict[str, dict[str, float]]  # drift per output
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def checked_output(self) -> str:
        return checked_output(self.outputs)

    def lines(self) -> list[str]:
        out = [f"candidate: {self.description}", f"reference: ONNX Runtime (CPU, fp32) on {self.reference}",
               f"frames: {self.frames} from {self.images}"]
        for k, d in self.outputs.items():
            out.append(f"  {k:12s} max abs {d['max_abs']:.4g}  mean abs {d['mean_abs']:.4g}  "
                       f"abs_rel {d['abs_rel']:.4%}")
        verdict = "FAIL: " + "; ".join(self.failures) if self.failures else "PASS"
        out.append(f"{self.checked_output}: {verdict}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate, "reference": os.fspath(self.reference), "frames": self.frames,
            "checked_output": self.checked_output,
            "tolerances": {"abs_rel": self.abs_rel_tol, "max_abs": self.max_abs_tol},
            "outputs": self.outputs, "passed": self.passed, "failures": self.failures,
        }


def verify_candidate(candidate: str, onnx: str | os.PathLike, images: str | os.PathLike, frames: int = 8,
                     abs_rel_tol: float | None = 0.01, max_abs_tol: float | None = None,
                     openvino_precision: str = "fp32") -> ParityReport:
    """Run `candidate` and the fp32 `onnx` on up to `frames` frames of `images`; fail beyond the tolerances
    (None: not checked) on the checked output."""
    reference, shape = reference_runner(onnx)
    run, description = candidate_runner(candidate, openvino_precision)
    inputs = load_frames(images, shape, frames)
    outputs = compare(run, reference, inputs)
    main = outputs[checked_output(outputs)]
    failures = []
    if abs_rel_tol is not None and main["abs_rel"] > abs_rel_tol:
        failures.append(f"abs_rel {main['abs_rel']:.4%} > {abs_rel_tol:.4%}")
    if max_abs_tol is not None and main["max_abs"] > max_abs_tol:
        failures.append(f"max abs {main['max_abs']:.4g} > {max_abs_tol:.4g}")
    return ParityReport(candidate, description, Path(onnx), Path(images), len(inputs), abs_rel_tol, max_abs_tol,
                        outputs, failures)
