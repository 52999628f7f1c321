"""The names a user may give for inference backends and precisions, written once.

The node's parameter table, the backend factory and the benchmarks read them from here (no heavy imports, so
the parameter table can be validated without loading an inference library).
"""

from __future__ import annotations

AUTO = "auto"
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino", "tensorrt")
# per backend, its precisions; the first is the backend's default where `auto` has no better choice
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "fp16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
    "tensorrt": ("fp16", "fp32", "int8"),
}
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
assert set(PRECISIONS) == {p for ps in BACKEND_PRECISIONS.values() for p in ps}
