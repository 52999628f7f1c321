"""The shipped ONNX files (`models/*_onnx/`) compute what their `.pt` computes: ONNX Runtime on the shipped graph
against PyTorch on the shipped weights, on rendered street frames of a drive no model was trained on (abs_rel drift
≤ 1e-3), and each shipped graph passes `check-fp16` (the library function behind `depth-node check-fp16`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
HELD_OUT_SEED = 9016  # training seeds of the shipped models: 1-48 (train), 1001-1003 (validation)
MAX_ABS_REL = 1e-3  # issue 16: ONNX vs .pt drift
SHIPPED = [(name, net) for name, nets in (("default", ("depth", "pose")), ("metric_small", ("depth",)))
           for net in nets]

pytest.importorskip("onnxruntime")


def _shipped(name: str, net: str) -> tuple[Path, Path]:
    pt, onnx_path = MODELS / f"{name}.pt", MODELS / f"{name}_onnx" / f"{net}.onnx"
    if not (pt.is_file() and onnx_path.is_file()):
        pytest.skip(f"{pt} or {onnx_path} is not shipped")
    return pt, onnx_path


_FRAMES: dict[tuple[int, int], np.ndarray] = {}


def _frames(width: int, height: int, n: int = 3) -> np.ndarray:
    """(n, 3, H, W) RGB in [0, 1]: frames 0, 40, 80… of the held-out drive rendered at the network's size."""
    if (width, height) not in _FRAMES:
        from depth_node.sim.config import DriveConfig
        from depth_node.sim.drive import Drive

        cfg = DriveConfig(seed=HELD_OUT_SEED, frames=40 * n)
        cfg.camera.width, cfg.camera.height = width, height
        drive = Drive(cfg)
        rgb = np.stack([drive.frame(40 * k).rgb for k in range(n)])
        _FRAMES[(width, height)] = (rgb.astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy()
    return _FRAMES[(width, height)]


def _inputs(net: str, frames: np.ndarray) -> list[np.ndarray]:
    if net == "pose":  # earlier frame first, consecutive-ish pairs
        return [np.concatenate([frames[k], frames[k + 1]])[None] for k in range(len(frames) - 1)]
    return [f[None] for f in frames]


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    """Drift relative to the reference: mean |a - ref| / |ref| for positive maps (depth, disparity, inverse depth,
    FOV: the depth metric's abs_rel), summed |a - ref| / summed |ref| for signed pose outputs."""
    a, ref = np.asarray(a, np.float64).reshape(ref.shape), np.asarray(ref, np.float64)
    assert np.isfinite(a).all() and np.isfinite(ref).all()
    if (ref > 0).all():
        return float(np.mean(np.abs(a - ref) / ref))
    return float(np.abs(a - ref).sum() / np.abs(ref).sum())


@pytest.mark.parametrize(("name", "net"), SHIPPED)
def test_shipped_onnx_matches_its_pt(name: str, net: str) -> None:
    from depth_node.checkpoints.model_file import load_model
    from depth_node.export.wrappers import depth_graph, graph_output_names, pose_graph

    pt, onnx_path = _shipped(name, net)
    model = load_model(pt)
    sess = _session(onnx_path)
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["depth_node.model_digest"] == model.digest(), f"{onnx_path} was exported from other weights"
    graph = depth_graph(model) if net == "depth" else pose_graph(model)
    names = graph_output_names(graph)
    assert [o.name for o in sess.get_outputs()] == list(names)
    drift: dict[str, float] = {}
    for x in _inputs(net, _frames(model.width, model.height)):
        got = sess.run(None, {sess.get_inputs()[0].name: x})
        with torch.no_grad():
            ref = [t.numpy() for t in graph(torch.from_numpy(x))]
        for k, a, r in zip(names, got, ref):
            assert np.abs(r).max() > 0, f"{k}: the reference output is all zero"
            drift[k] = max(drift.get(k, 0.0), _rel(a, r))
    print(f"{name}/{net}: worst per-frame drift {drift}")
    assert all(v <= MAX_ABS_REL for v in drift.values()), f"{onnx_path} drifts from {pt}: {drift}"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "net"), SHIPPED)
def test_shipped_onnx_is_safe_in_fp16(name: str, net: str, tmp_path) -> None:
    from depth_node.checkpoints.model_file import load_model
    from depth_node.evaluate.fp16_check import check_fp16

    pt, onnx_path = _shipped(name, net)
    model = load_model(pt)
    rep = check_fp16(onnx_path, _inputs(net, _frames(model.width, model.height)), cache_dir=tmp_path)
    print(f"{name}/{net}: fp16 drift {rep.drift}; largest activation {rep.peaks[0]}")
    assert rep.passed, rep.failures
    assert rep.tensors_checked > 20 and not rep.overflow
