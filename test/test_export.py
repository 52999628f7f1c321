"""`depth-node export`: the ONNX contract (names, shapes, opset, metadata) and parity with the reference."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import make_model_file, require_shared

from depth_node.checkpoints.model_file import save_model
from depth_node.export.onnx_export import ExportError, export_model
from depth_node.export.onnx_metadata import read_metadata


@pytest.fixture(scope="module")
def exported(tmp_path_factory, recipe_model_path):
    out = tmp_path_factory.mktemp("export")
    proc = subprocess.run(
        [sys.executable, "-m", "depth_node.cli", "export", str(recipe_model_path), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def _shape(value_info):
    return [d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_depth_onnx_contract(exported):
    out, stdout = exported
    m = onnx.load(str(out / "depth.onnx"))
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = m.graph.input
    assert _shape(inp) == [1, 3, 192, 640] and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    outs = {o.name: _shape(o) for o in m.graph.output}
    assert outs["disp"] == [1, 1, 192, 640] and outs["depth"] == [1, 1, 192, 640]
    meta = read_metadata(out / "depth.onnx")
    assert meta["depth_node.arch"] == "monodepth2" and json.loads(meta["depth_node.scale"])["factor"] == 5.4
    assert "max abs error vs PyTorch: disp" in stdout
    report = json.loads((out / "export.json").read_text())
    assert report["max_abs_error"]["depth"]["disp"] <= 1e-4


def test_pose_onnx_contract(exported):
    out, _ = exported
    m = onnx.load(str(out / "pose.onnx"))
    (inp,) = m.graph.input
    assert _shape(inp) == [1, 6, 192, 640]
    outs = {o.name: _shape(o) for o in m.graph.output}
    assert outs["axisangle"] == [1, 2, 1, 3] and outs["translation"] == [1, 2, 1, 3] and outs["T"] == [1, 4, 4]


def test_onnx_reproduces_reference_golden(exported):
    """ONNX Runtime on the exported graphs gives the reference implementation's outputs (normalisation inside)."""
    out, _ = exported
    golden = np.load(require_shared("fixtures/monodepth2") / "golden.npz")
    s = ort.InferenceSession(str(out / "depth.onnx"), providers=["CPUExecutionProvider"])
    disp, depth = s.run(["disp", "depth"], {"image": golden["input_a"]})
    np.testing.assert_allclose(disp, golden["resnet18_disp0"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(depth, 5.4 * golden["resnet18_depth0"], rtol=1e-4)
    p = ort.InferenceSession(str(out / "pose.onnx"), providers=["CPUExecutionProvider"])
    pair = np.concatenate([golden["input_a"], golden["input_b"]], axis=1)
    aa, _, T = p.run(["axisangle", "translation", "T"], {"image_pair": pair})
    np.testing.assert_allclose(aa, golden["resnet18_axisangle"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(T, golden["resnet18_T"], atol=1e-4, rtol=0)


def test_model_without_pose_exports_depth_only(tmp_path):
    path = save_model(tmp_path / "m.pt", make_model_file(64, 224, pose=False))
    res = export_model(path, tmp_path / "o")
    assert res.pose_onnx is None and not (tmp_path / "o" / "pose.onnx").exists()
    assert res.errors["depth"]["disp"] < 1e-4


def test_old_opset_refused(tmp_path):
    with pytest.raises(ExportError, match="opset"):
        export_model(make_model_file(64, 224, pose=False), tmp_path, opset=13)


def test_fp16_weight_export_halves_the_file_and_keeps_fp32_arithmetic(small_model_path, tmp_path):
    """`export --weights fp16`: the shipped default model's ONNX form. Same inputs, outputs, metadata; only the
    weights' fp16 rounding differs from the fp32 export."""
    full, half = tmp_path / "fp32", tmp_path / "fp16"
    cmd = [sys.executable, "-m", "depth_node.cli", "export", str(small_model_path), "-o"]
    subprocess.run([*cmd, str(full)], check=True, capture_output=True, timeout=300)
    p = subprocess.run([*cmd, str(half), "--weights", "fp16"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    for net in ("depth", "pose"):
        a, b = full / f"{net}.onnx", half / f"{net}.onnx"
        assert b.stat().st_size < 0.55 * a.stat().st_size
        assert read_metadata(b) == read_metadata(a)
        g = onnx.load(str(b)).graph
        assert all(i.data_type != onnx.TensorProto.FLOAT or np.prod(i.dims) < 256 for i in g.initializer)
    x = np.random.default_rng(0).random((1, 3, 96, 320), dtype=np.float32)
    outs = [ort.InferenceSession(str(d / "depth.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})
            for d in (full, half)]
    for a, b in zip(*outs, strict=True):
        assert b.dtype == np.float32
        rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-6)
        assert 0 < float(np.median(rel)) < 5e-3
    info = json.loads((half / "export.json").read_text())
    assert info["weights"] == "fp16" and info["max_abs_error"]["depth"]


def test_model_files_with_the_same_weights_do_not_share_an_export(tmp_path):
    """A `--stereo-baseline` import keeps the weights and changes the scale factor the graph bakes in: each file
    gets its own cached export, and its ONNX depth is its own (the ratio of the factors, computed from the files)."""
    from depth_node.export.cache import export_key, onnx_for

    a = make_model_file(96, 320, pose=False, scale={"kind": "stereo", "baseline_m": 0.54, "factor": 5.4})
    b = make_model_file(96, 320, pose=False, scale={"kind": "stereo", "baseline_m": 0.12, "factor": 1.2})
    assert a.digest() == b.digest() and export_key(a) != export_key(b) and export_key(a) == export_key(a)
    x = np.random.default_rng(0).random((1, 3, 96, 320), dtype=np.float32)
    out = {}
    for name, m in (("a", a), ("b", b)):
        depth, _ = onnx_for(m, tmp_path / "cache")
        sess = ort.InferenceSession(str(depth), providers=["CPUExecutionProvider"])
        out[name] = sess.run(["depth"], {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(out["a"] / out["b"], 5.4 / 1.2, rtol=1e-5)


def test_a_cache_folder_another_process_published_first_is_kept(tmp_path):
    from depth_node.paths import publish_folder

    theirs, mine = tmp_path / "key", tmp_path / "key.tmp1"
    theirs.mkdir()
    (theirs / "depth.onnx").write_text("theirs")
    mine.mkdir()
    (mine / "depth.onnx").write_text("mine")
    publish_folder(mine, theirs)
    assert (theirs / "depth.onnx").read_text() == "theirs" and not mine.exists()
    fresh = tmp_path / "fresh.tmp1"
    fresh.mkdir()
    publish_folder(fresh, tmp_path / "fresh")
    assert (tmp_path / "fresh").is_dir() and not fresh.exists()
