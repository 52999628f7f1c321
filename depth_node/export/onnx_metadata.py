"""Reading an exported graph's `metadata_props` (sizes, model kind, normalisation) without torch: the node loads
ONNX models on robots that may have no torch installed."""

from __future__ import annotations

from pathlib import Path

import onnx


def read_metadata(path: str | Path) -> dict[str, str]:
    m = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}
