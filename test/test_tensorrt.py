"""TensorRT: engines from the ONNX exports (fp16, int8 from Q/DQ), run through the backend and compared with
ONNX Runtime; corrupt engines give clear errors and cached ones are rebuilt.

GPU tests run wherever `tensorrt` imports and CUDA sees a device, and are skipped elsewhere. The tests at
the top run everywhere: they pin down that the TensorRT code imports and fails cleanly without TensorRT."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_node.checkpoints.model_file import ModelFile
from depth_node.inference.base import BackendError
from depth_node.inference.factory import NVIDIA_DEVICE_FILES

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
H, W = 96, 320
META = {"min_depth": 0.1, "max_depth": 100.0, "scale": {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}}


def tame_model() -> ModelFile:
    torch.manual_seed(0)
    from depth_node.networks.monodepth2 import DepthNet, PoseNet

    d, p = DepthNet(18), PoseNet(18)
    sd = {k: v * 60 if k.startswith("depth.decoder.10.") else v for k, v in d.state_dict().items()}
    return ModelFile("monodepth2", {"num_layers": 18}, H, W, sd, p.state_dict(), dict(META))


# ---------------------------------------------------------------------------------------------- everywhere


def test_tensorrt_modules_import_without_tensorrt():
    import depth_node.export.tensorrt_engine as te
    import depth_node.inference.tensorrt_backend as tb

    assert te.PRECISIONS == ("fp16", "fp32", "int8") and tb.TensorRTBackend.name == "tensorrt"


@pytest.mark.skipif(HAVE_TRT, reason="checks the message shown when tensorrt is missing")
def test_missing_tensorrt_is_a_clear_error(tmp_path, capsys):
    from depth_node.cli import main
    from depth_node.export.tensorrt_engine import import_tensorrt

    with pytest.raises(BackendError, match="pip install tensorrt"):
        import_tensorrt()
    onnx_file = tmp_path / "depth.onnx"
    onnx_file.write_bytes(b"not used")
    assert main(["build-engine", str(onnx_file)]) == 2
    assert "TensorRT is not installed" in capsys.readouterr().err


def _tiny_onnx(path: Path) -> Path:
    """A one-conv fp32 ONNX: enough for commands that must stop before reading it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((1, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["image", "w"], ["depth"], pads=[1, 1, 1, 1])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, 8, 8])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


@pytest.mark.skipif(HAVE_TRT, reason="checks the message shown when tensorrt is missing")
def test_build_engine_int8_says_tensorrt_is_missing_before_quantizing(tmp_path, monkeypatch, capsys):
    """int8 from an fp32 ONNX quantizes for about a minute: where TensorRT is missing, that is said first."""
    import depth_node.export.quantize as quantize
    from depth_node.cli import main

    def no_quantizing(*args, **kwargs):
        raise AssertionError("quantized before finding that TensorRT is missing")

    monkeypatch.setattr(quantize, "quantized_onnx", no_quantizing)
    onnx_file = _tiny_onnx(tmp_path / "depth.onnx")
    cache = tmp_path / "cache"
    assert main(["build-engine", str(onnx_file), "--precision", "int8", "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "JetPack" in err and "pip install tensorrt" in err
    assert not cache.exists()


@pytest.mark.skipif(HAVE_TRT, reason="checks the message shown when tensorrt is missing")
@pytest.mark.parametrize("machine", ["no NVIDIA driver", "Jetson without TensorRT in the venv"])
def test_tensorrt_backend_without_tensorrt_says_it_is_missing(tmp_path, monkeypatch, machine):
    """`backend: tensorrt`, device auto, where the tensorrt package does not import: the message names the missing
    package and where it comes from (JetPack on a Jetson), not the device the node guessed."""
    from depth_node.inference import factory

    if machine.startswith("Jetson"):  # the driver is there, torch sees the GPU; TensorRT is not in this Python
        driver = tmp_path / "nvhost-ctrl-gpu"
        driver.write_text("")
        monkeypatch.setattr(factory, "NVIDIA_DEVICE_FILES", (str(driver),))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(BackendError) as info:
        factory.create_backend(tame_model(), "tensorrt", "auto", "auto", cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert "TensorRT is not installed" in msg and "JetPack" in msg and "pip install tensorrt" in msg, msg
    assert "GPUs only" not in msg


def test_int8_tensorrt_from_a_qdq_onnx_model_builds_the_fp32_pose_beside_it_in_fp16(tmp_path_factory, monkeypatch):
    """A Q/DQ depth.onnx given as the model, fp32 pose.onnx beside it, TensorRT with precision auto: the depth
    engine is int8 (auto means int8 for a Q/DQ graph; fp16 cannot build it) and the pose engine fp16 (an int8
    build needs Q/DQ nodes; quantizing it here would use built-in patterns). TensorRT is simulated: the engine
    builds are recorded, the factory's choices are real."""
    import shutil

    import depth_node.export.tensorrt_engine as te
    import depth_node.inference.tensorrt_backend as tb
    from depth_node.export.cache import onnx_for
    from depth_node.export.quantize import quantized_onnx
    from depth_node.inference import factory

    cache = tmp_path_factory.getbasetemp() / "depth_node_cache"
    depth, pose = onnx_for(tame_model(), cache)
    folder = tmp_path_factory.mktemp("int8_trt")
    shutil.copyfile(quantized_onnx(depth, cache_dir=cache), folder / "depth.int8.onnx")
    shutil.copyfile(pose, folder / "pose.onnx")

    built: dict[str, str] = {}

    def engine_for(onnx_path, precision="fp16", cache_dir=None, workspace_mb=0, device_index=0):
        built[Path(onnx_path).name] = precision
        return Path(onnx_path)

    class Runner:
        def __init__(self, loaded, device_index=0):
            self.loaded = loaded

    real_importable = factory.importable
    monkeypatch.setattr(factory, "importable", lambda name: name == "tensorrt" or real_importable(name))
    monkeypatch.setattr(te, "import_tensorrt", lambda: None)
    monkeypatch.setattr(te, "require_cuda", lambda: None)
    monkeypatch.setattr(te, "engine_for", engine_for)
    monkeypatch.setattr(tb, "EngineRunner", Runner)
    b = factory.create_backend(folder / "depth.int8.onnx", "tensorrt", "auto", "cuda", cache_dir=cache)
    assert (b.name, b.precision, b.device) == ("tensorrt", "int8", "cuda:0")
    assert built == {"depth.int8.onnx": "int8", "pose.onnx": "fp16"}
    assert b.has_pose and b.info.sizes == [(H, W)]


def test_tensorrt_backend_refuses_the_cpu(tmp_path):
    from depth_node.inference.base import ModelInfo
    from depth_node.inference.tensorrt_backend import TensorRTBackend

    with pytest.raises(BackendError, match="NVIDIA GPUs only"):
        TensorRTBackend(ModelInfo("monodepth2", H, W), tmp_path / "d.onnx", None, "fp16", "cpu")


@pytest.mark.skipif(any(Path(p).exists() for p in NVIDIA_DEVICE_FILES), reason="an NVIDIA driver is present here")
def test_cuda_runtime_without_a_gpu_is_a_clear_error():
    """The TensorRT path's CUDA calls (real cuda-python, no driver here): no device counted, and an allocation is
    one BackendError that names the failing call and says why, not a crash or a tuple nobody checks."""
    pytest.importorskip("cuda.bindings", reason="cuda-python is not installed (the test extra installs it)")
    from depth_node.export.cuda_runtime import DeviceBuffer, Stream, device_count
    from depth_node.export.tensorrt_engine import require_cuda
    from depth_node.inference.factory import cuda_available

    assert device_count() == 0 and not cuda_available("tensorrt")
    with pytest.raises(BackendError, match=r"CUDA cudaSetDevice failed: cudaError\w+ \(no usable NVIDIA driver"):
        DeviceBuffer((1, 3, H, W), np.float32)
    with pytest.raises(BackendError, match="no usable NVIDIA driver"):
        Stream(0)
    with pytest.raises(BackendError, match="CUDA cudaGetDeviceCount failed"):
        require_cuda()


@pytest.mark.parametrize("net", ["depth", "pose"])
def test_fp16_typed_onnx_for_strongly_typed_tensorrt(tmp_path_factory, net):
    """TensorRT 11 takes fp16 from the ONNX types; the typed graph must be valid, keep fp32 I/O, and compute the
    same function (ONNX Runtime runs it here on the CPU)."""
    import onnx

    from depth_node.export.cache import onnx_for
    from depth_node.export.drift import drift
    from depth_node.export.fp16_graph import fp16_typed_onnx
    from depth_node.export.quantize import network_inputs
    from depth_node.inference.onnxruntime_backend import make_session
    from depth_node.sim.calibration import drive_frames

    cache = tmp_path_factory.getbasetemp() / "depth_node_cache"
    depth, pose = onnx_for(tame_model(), cache)
    src = depth if net == "depth" else pose
    typed = fp16_typed_onnx(src, cache)
    m = onnx.load(str(typed))
    f16 = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    assert f16 > 20
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in [*m.graph.input, *m.graph.output])
    a, b = make_session(src), make_session(typed)
    xs = network_inputs(drive_frames(3, H, W, seed=5), [1, 3 if net == "depth" else 6, H, W])
    key = "depth" if net == "depth" else "T"
    ref = [a.run([key], {a.get_inputs()[0].name: x})[0] for x in xs]
    got = [b.run([key], {b.get_inputs()[0].name: x})[0] for x in xs]
    d = drift(got, ref)
    assert got[0].dtype == np.float32 and d.max_abs > 0  # really changed precision
    assert (d.abs_rel < 0.005) if net == "depth" else (d.max_abs < 1e-3), d


def test_fp16_typing_keeps_resize_scales_from_constant_nodes_in_fp32(tmp_path):
    """Some torch versions export Resize scales as Constant nodes rather than initializers (seen with torch 2.11 on
    the GPU machine); ONNX types that input float32 in any precision, so it must not be converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from depth_node.export.fp16_graph import to_fp16
    from depth_node.inference.onnxruntime_backend import make_session

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(2, 1, 3, 3)).astype(np.float32), "w")
    scales = helper.make_tensor("s", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Constant", [], ["scales"], value=scales, name="scales_const"),
        helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="nearest", name="up"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    typed = to_fp16(model, keep_fp32=set())  # raises if the typed graph does not check
    const = next(n for n in typed.graph.node if n.op_type == "Constant")
    assert const.attribute[0].t.data_type == TensorProto.FLOAT
    assert typed.graph.initializer[0].data_type == TensorProto.FLOAT16
    x = rng.normal(size=(1, 1, 4, 4)).astype(np.float32)
    outs = []
    for name, m in (("ref", model), ("typed", typed)):
        onnx.save(m, str(tmp_path / f"{name}.onnx"))
        outs.append(make_session(tmp_path / f"{name}.onnx").run(["y"], {"x": x})[0])
    ref, got = outs
    assert got.dtype == np.float32 and np.allclose(got, ref, atol=2e-2 * np.abs(ref).max())


# ---------------------------------------------------------------------------------------------- on a GPU


def _gpu():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install tensorrt on a GPU machine)")
    from depth_node.export.cuda_runtime import device_count

    if device_count() < 1:
        pytest.skip("TensorRT is installed but CUDA sees no device (or cuda-python is missing)")
    return trt


@pytest.fixture(scope="module")
def gpu_env(tmp_path_factory):
    _gpu()
    from depth_node.export.cache import onnx_for
    from depth_node.export.quantize import network_inputs
    from depth_node.inference.onnxruntime_backend import OnnxRuntimeBackend
    from depth_node.sim.calibration import drive_frames

    cache = tmp_path_factory.mktemp("trt_cache")
    model = tame_model()
    depth, pose = onnx_for(model, cache)
    from depth_node.inference.base import ModelInfo

    info = ModelInfo.from_model_file(model)
    xs = network_inputs(drive_frames(3, H, W, seed=5), [1, 3, H, W])
    ref = OnnxRuntimeBackend(info, depth, pose)
    pair = np.concatenate([xs[0], xs[1]], 1)
    return {"cache": cache, "model": model, "depth": depth, "pose": pose, "info": info, "xs": xs,
            "ref": [ref.run_depth(x) for x in xs], "pair": pair, "ref_pose": ref.run_pose(pair)}


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_fp16_engine_matches_onnxruntime(gpu_env):
    from depth_node.export.drift import drift
    from depth_node.inference.factory import create_backend

    b = create_backend(gpu_env["model"], "tensorrt", "fp16", "cuda", cache_dir=gpu_env["cache"])
    outs = [b.run_depth(x) for x in gpu_env["xs"]]
    d = drift([o["depth"] for o in outs], [r["depth"] for r in gpu_env["ref"]])
    assert d.abs_rel < 0.005, d
    assert max(np.abs(o["disp"] - r["disp"]).max() for o, r in zip(outs, gpu_env["ref"])) < 5e-3
    pose = b.run_pose(gpu_env["pair"])
    assert np.abs(pose["T"] - gpu_env["ref_pose"]["T"]).max() < 1e-3
    engine = b.engines["depth"].path
    assert re.fullmatch(r"[0-9a-f]{16}-fp16-trt[0-9.]+-[a-z0-9-]+\.engine", engine.name), engine.name
    assert engine.parent == gpu_env["cache"] / "engines"


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_int8_engine_from_qdq_onnx(gpu_env):
    from depth_node.export.drift import drift
    from depth_node.inference.factory import create_backend

    b = create_backend(gpu_env["model"], "tensorrt", "int8", "cuda", cache_dir=gpu_env["cache"])
    got = [b.run_depth(x)["depth"] for x in gpu_env["xs"]]
    assert drift(got, [r["depth"] for r in gpu_env["ref"]]).abs_rel < 0.02


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_corrupt_engine_is_a_clear_error_and_the_cache_rebuilds(gpu_env, tmp_path, capsys):
    from depth_node.cli import main
    from depth_node.export.tensorrt_engine import engine_cache_path, load_engine
    from depth_node.inference.factory import create_backend

    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"\x00garbage, not a TensorRT plan" * 10)
    with pytest.raises(BackendError, match="Rebuild it"):
        load_engine(bad)
    images = tmp_path / "frames"
    images.mkdir()
    from PIL import Image

    from depth_node.sim.calibration import drive_frames

    for i, f in enumerate(drive_frames(2, 375, 1242, seed=3)):
        Image.fromarray(f).save(images / f"{i}.png")
    assert main(["verify-engine", str(bad), str(gpu_env["depth"]), "--images", str(images)]) == 2
    assert "corrupt" in capsys.readouterr().err
    # a truncated engine in the cache (a crash mid-write of an older version, a disk error) is rebuilt
    cached = engine_cache_path(gpu_env["depth"], "fp16", gpu_env["cache"])
    create_backend(gpu_env["model"], "tensorrt", "fp16", "cuda", cache_dir=gpu_env["cache"]).close()
    cached.write_bytes(cached.read_bytes()[:1000])
    b = create_backend(gpu_env["model"], "tensorrt", "fp16", "cuda", cache_dir=gpu_env["cache"])
    assert np.isfinite(b.run_depth(gpu_env["xs"][0])["depth"]).all()


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_build_and_verify_engine_commands(gpu_env, tmp_path, capsys):
    from PIL import Image

    from depth_node.cli import main
    from depth_node.sim.calibration import drive_frames

    images = tmp_path / "frames"
    images.mkdir()
    for i, f in enumerate(drive_frames(3, 375, 1242, seed=3)):
        Image.fromarray(f).save(images / f"{i}.png")
    engine = tmp_path / "depth.fp16.engine"
    assert main(["build-engine", str(gpu_env["depth"]), "-o", str(engine), "--workspace-mb", "512"]) == 0
    assert engine.is_file()
    common = [str(engine), str(gpu_env["depth"]), "--images", str(images)]
    assert main(["verify-engine", *common, "--abs-rel-tol", "0.01"]) == 0
    assert main(["verify-engine", *common, "--abs-rel-tol", "1e-9"]) == 1
    capsys.readouterr()
