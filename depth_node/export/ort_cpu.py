"""How the export layer runs a graph on ONNX Runtime's CPU provider, written once: the export parity check, the
smoothing probe and the int8 search's drift trials all want the same quiet fp32 session, with ONNX Runtime's
default threads and optimizations (the node's sessions are `inference.onnxruntime_backend`'s)."""

from __future__ import annotations

from pathlib import Path


def cpu_session(path: str | Path):
    """An onnxruntime InferenceSession on the CPU provider that logs errors only."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
