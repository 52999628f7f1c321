"""Multi-aspect (dynamic height/width) exports through the deployment commands: `quantize` and
`build-engine --precision int8` pin them to the model's training size (int8 runs there), `check-fp16` checks
at that size, and `verify-engine` checks every listed size a candidate takes (a static int8 candidate: its
training size), each saying so. TensorRT is simulated where an engine would be built (no GPU here)."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from depth_node.export.quantize import builtin_frames, is_quantized

TINY_SIZES = [[64, 96], [96, 64]]  # training size first
H, W = 64, 192  # the exported model's training size; it also lists 96×128 (4:3)
META = {"min_depth": 0.1, "max_depth": 100.0, "scale": {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}}


def input_dims(path: Path) -> list:
    m = onnx.load(str(path), load_external_data=False)
    return [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]


def tiny_dynamic_depth_onnx(path: Path) -> Path:
    """A four-conv depth graph (sigmoid disparity → depth) with dynamic height/width and the metadata of a
    multi-aspect export: quantizes in about a second, where the ResNet takes a minute."""
    rng = np.random.default_rng(0)
    inits, nodes, x = [], [], "image"
    chans = [3, 8, 8, 8, 1]
    for i, (cin, cout) in enumerate(itertools.pairwise(chans)):
        w = (rng.normal(size=(cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
        b = (rng.normal(size=cout) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], name=f"conv{i}"))
        x = f"c{i}"
        if i < len(chans) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"], name=f"relu{i}"))
            x = f"r{i}"
    inits += [numpy_helper.from_array(np.array(9.99, np.float32), "k"),
              numpy_helper.from_array(np.array(0.01, np.float32), "m")]
    nodes += [helper.make_node("Sigmoid", [x], ["disp"], name="sigmoid"),
              helper.make_node("Mul", ["disp", "k"], ["scaled"], name="mul"),
              helper.make_node("Add", ["scaled", "m"], ["inv"], name="add"),
              helper.make_node("Reciprocal", ["inv"], ["depth"], name="recip")]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, "height", "width"]) for n in ("disp", "depth")]
    model = helper.make_model(helper.make_graph(nodes, "tiny", [image], outs, inits),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = {"depth_node.net": "depth", "depth_node.arch": "monodepth2", "depth_node.height": str(TINY_SIZES[0][0]),
            "depth_node.width": str(TINY_SIZES[0][1]), "depth_node.sizes": json.dumps(TINY_SIZES)}
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def cli_inproc(capsys, *args: str) -> subprocess.CompletedProcess:
    from depth_node.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    for i, f in enumerate(builtin_frames(3, 375, 1242, seed=3)):
        Image.fromarray(f).save(folder / f"{i:06d}.png")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_dynamic_depth_onnx(tmp_path_factory.mktemp("tiny") / "depth.onnx")


@pytest.fixture(scope="module")
def multi_export(tmp_path_factory) -> tuple[Path, Path]:
    """depth.onnx and pose.onnx of a ResNet-18 Monodepth2 recorded as trained on two aspects (64×192 and 4:3):
    exported with dynamic height/width."""
    from depth_node.checkpoints.camera_record import derive_camera_record
    from depth_node.checkpoints.model_file import ModelFile
    from depth_node.export.cache import onnx_for
    from depth_node.networks.monodepth2 import DepthNet, PoseNet

    torch.manual_seed(0)
    d, p = DepthNet(18), PoseNet(18)
    sd = {k: v * 60 if k.startswith("depth.decoder.10.") else v for k, v in d.state_dict().items()}
    rec, _ = derive_camera_record("monodepth2", H, W, {}, aspects=["4:3"])
    model = ModelFile("monodepth2", {"num_layers": 18}, H, W, sd, p.state_dict(), {**META, "camera": rec})
    depth, pose = onnx_for(model, tmp_path_factory.getbasetemp() / "depth_node_cache")
    assert input_dims(depth) == [1, 3, "height", "width"]
    return depth, pose


def test_quantize_pins_a_dynamic_export_to_its_training_size(tiny, images, tmp_path, capsys):
    out = tmp_path / "depth.int8.onnx"
    r = cli_inproc(capsys, "quantize", str(tiny), "-o", str(out), "--frames", "2",
                   "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    assert is_quantized(out) and input_dims(out) == [1, 3, 64, 96]
    assert "64x96" in r.stdout and "training size" in r.stdout and "held-out frames" in r.stdout
    # the int8 graph against its dynamic fp32 source: checked at the one size it runs, and said so
    report = tmp_path / "verify.json"
    v = cli_inproc(capsys, "verify-engine", str(out), str(tiny), "--images", str(images), "--abs-rel-tol", "0.02",
                   "--json", str(report))
    assert v.returncode == 0, v.stdout + v.stderr
    data = json.loads(report.read_text())
    assert data["sizes"] == [[64, 96]] and "training size" in data["note"] and "training size" in v.stdout
    assert 0 < data["outputs"]["depth"]["abs_rel"] < 0.02


def test_verify_engine_checks_a_dynamic_export_at_every_listed_size(multi_export, images, tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.setenv("DEPTH_NODE_CACHE", str(tmp_path / "cache"))  # OpenVINO's compiled blobs go here
    for onnx_file in multi_export:  # depth.onnx, then pose.onnx
        report = tmp_path / f"{onnx_file.stem}.json"
        r = cli_inproc(capsys, "verify-engine", f"openvino:{onnx_file}", str(onnx_file), "--images", str(images),
                       "--frames", "2", "--json", str(report))
        assert r.returncode == 0, r.stdout + r.stderr
        data = json.loads(report.read_text())
        assert data["sizes"] == [[64, 192], [96, 128]] and set(data["by_size"]) == {"64x192", "96x128"}
        assert "at 96x128" in r.stdout and "PASS" in r.stdout
        for outputs in data["by_size"].values():  # OpenVINO fp32 against ONNX Runtime fp32: float rounding only
            for k, d in outputs.items():
                assert d["count"] > 0 and (d["abs_rel"] < 1e-4 if k in ("disp", "depth") else d["max_abs"] < 1e-5)
        if onnx_file.stem == "depth":  # each size really ran at its own shape
            assert [data["by_size"][s]["depth"]["count"] for s in ("64x192", "96x128")] == [2 * 64 * 192,
                                                                                          2 * 96 * 128]


def test_check_fp16_checks_a_dynamic_export_at_its_training_size(multi_export, images, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setenv("DEPTH_NODE_CACHE", str(tmp_path / "cache"))  # the pinned and fp16 copies go here
    report = tmp_path / "fp16.json"
    r = cli_inproc(capsys, "check-fp16", str(multi_export[0]), "--images", str(images), "--frames", "2",
                   "--json", str(report))
    assert r.returncode in (0, 1), r.stderr  # a verdict, not "not a static [1,C,H,W]"
    data = json.loads(report.read_text())
    assert data["checked_size"] == [64, 192] and data["frames"] == 2
    assert "training size 64x192" in r.stdout
    assert data["drift_fp16_vs_fp32"]["depth"]["count"] == 2 * 64 * 192


def test_build_engine_int8_from_a_dynamic_export_builds_at_the_training_size(tiny, tmp_path, monkeypatch, capsys):
    """TensorRT simulated (no GPU here): the ONNX handed to the engine builder is the real output of the int8 path,
    quantized from the export pinned to its training size."""
    import depth_node.export.tensorrt_engine as te

    built: list[Path] = []

    class Engine:
        def __init__(self, source: Path):
            m = onnx.load(str(source), load_external_data=False)
            self.io = [(v.name, tuple(d.dim_value or -1 for d in v.type.tensor_type.shape.dim))
                       for v in [*m.graph.input, *m.graph.output]]
            self.num_io_tensors = len(self.io)

        def get_tensor_name(self, i):
            return self.io[i][0]

        def get_tensor_shape(self, name):
            return dict(self.io)[name]

    def build_engine(source, precision, workspace_mb, cache_dir):
        built.append(Path(source))
        return b"plan"

    monkeypatch.setattr(te, "import_tensorrt", lambda: None)
    monkeypatch.setattr(te, "require_cuda", lambda: None)
    monkeypatch.setattr(te, "build_engine", build_engine)
    monkeypatch.setattr(te, "load_engine", lambda path: te.LoadedEngine(Path(path), None, Engine(built[-1])))
    out = tmp_path / "depth.int8.engine"
    r = cli_inproc(capsys, "build-engine", str(tiny), "--precision", "int8", "-o", str(out),
                   "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    assert len(built) == 1 and is_quantized(built[0]) and input_dims(built[0]) == [1, 3, 64, 96]
    assert out.read_bytes() == b"plan" and "64x96" in r.stdout and "image (1, 3, 64, 96)" in r.stdout
