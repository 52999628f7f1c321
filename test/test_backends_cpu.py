"""CPU backends on real sessions: OpenVINO fp32/bf16/int8 against ONNX Runtime and PyTorch, int8 Q/DQ in both
runtimes, every CPU backend/precision through the factory, and clear errors for impossible wishes.

The model is a default-initialised ResNet-18 Monodepth2 at 96x320 with a strengthened disparity head: its depth
varies across the image (std/mean ~0.2) while the body stays well conditioned, like a trained network. (The
recipe weights amplify input noise ~10x more — ±1/255 of noise moves their depth ~0.8 % — so their int8 drift
measures those weights, not the quantization pipeline under test here; `depth-node bench` reports it.)"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from depth_node.checkpoints.model_file import ModelFile, save_model
from depth_node.export.cache import onnx_for
from depth_node.export.drift import drift
from depth_node.export.openvino_cpu import cpu_has_bf16
from depth_node.export.quantize import network_inputs, quantized_onnx
from depth_node.inference.base import BackendError, ModelInfo
from depth_node.inference.factory import create_backend, resolve
from depth_node.inference.onnxruntime_backend import OnnxRuntimeBackend
from depth_node.inference.openvino_backend import OpenVinoBackend
from depth_node.networks.monodepth2 import DepthNet, PoseNet
from depth_node.sim.calibration import drive_frames

H, W = 96, 320
META = {"min_depth": 0.1, "max_depth": 100.0, "scale": {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}}
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="CPU has no native bf16 (AVX512_BF16/AMX)")


def tame_model(pose: bool = True) -> ModelFile:
    torch.manual_seed(0)
    d, p = DepthNet(18), PoseNet(18)
    sd = {k: v * 60 if k.startswith("depth.decoder.10.") else v for k, v in d.state_dict().items()}
    return ModelFile("monodepth2", {"num_layers": 18}, H, W, sd, p.state_dict() if pose else None, dict(META))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "depth_node_cache"  # shared by the test modules of one session
    model = tame_model()
    path = save_model(tmp_path_factory.mktemp("cpu") / "model.pt", model)
    depth, pose = onnx_for(model, cache)
    info = ModelInfo.from_model_file(model)
    xs = network_inputs(drive_frames(3, H, W, seed=5), [1, 3, H, W])
    ref = OnnxRuntimeBackend(info, depth, pose)
    return {
        "cache": cache, "model": model, "path": path, "depth": depth, "pose": pose, "info": info, "xs": xs,
        "ref": [ref.run_depth(x) for x in xs], "pair": np.concatenate([xs[0], xs[1]], 1),
        "ref_pose": ref.run_pose(np.concatenate([xs[0], xs[1]], 1)),
    }


def _depth(backend, env) -> list[np.ndarray]:
    return [backend.run_depth(x)["depth"] for x in env["xs"]]


def test_test_model_has_varied_depth(env):
    d = env["ref"][0]["depth"]
    assert d.std() / d.mean() > 0.05, "a flat depth map would make every drift test pass trivially"


def test_openvino_fp32_matches_onnxruntime(env):
    ov = OpenVinoBackend(env["info"], env["depth"], env["pose"], "fp32", "cpu")
    for x, ref in zip(env["xs"], env["ref"]):
        out = ov.run_depth(x)
        assert set(out) == {"disp", "depth"}
        assert np.abs(out["disp"] - ref["disp"]).max() < 1e-4
        # depth spans metres: compare relative to its size
        assert np.abs(out["depth"] - ref["depth"]).max() < 1e-4 * max(1.0, float(np.abs(ref["depth"]).max()))
    pose = ov.run_pose(env["pair"])
    for k in ("axisangle", "translation", "T"):
        assert np.abs(pose[k] - env["ref_pose"][k]).max() < 1e-5


@needs_bf16
def test_openvino_bf16_drift_under_one_percent(env):
    ov = OpenVinoBackend(env["info"], env["depth"], None, "bf16", "cpu")
    d = drift(_depth(ov, env), [r["depth"] for r in env["ref"]])
    assert 0 < d.abs_rel < 0.01, d  # > 0: bf16 really ran (fp32 would match to ~1e-7)


def test_int8_qdq_runs_in_onnxruntime_and_openvino_within_one_percent(env):
    q = quantized_onnx(env["depth"], cache_dir=env["cache"])
    ref = [r["depth"] for r in env["ref"]]
    ort_d = drift(_depth(OnnxRuntimeBackend(env["info"], q, None, "int8"), env), ref)
    ov_d = drift(_depth(OpenVinoBackend(env["info"], q, None, "int8", "cpu"), env), ref)
    for d in (ort_d, ov_d):
        assert 1e-5 < d.abs_rel < 0.01, d
    # the two runtimes execute the same Q/DQ arithmetic: they agree far better than either agrees with fp32
    assert abs(ort_d.abs_rel - ov_d.abs_rel) < 0.5 * ort_d.abs_rel


def test_openvino_int8_float_layers_run_bf16_where_native(env):
    """The layers an int8 graph leaves float (first conv, heads, what the search kept) run in bf16 on a CPU with
    native bf16 (half the time of f32 there), in f32 elsewhere: the compiled graph says which."""
    q = quantized_onnx(env["depth"], cache_dir=env["cache"])
    ov = OpenVinoBackend(env["info"], q, None, "int8", "cpu")
    got = ov._depth.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "bf16" or "f32"
    assert got == ("bf16" if cpu_has_bf16() else "f32"), got


def test_openvino_int8_refuses_a_float_graph(env):
    with pytest.raises(BackendError, match="no Q/DQ nodes"):
        OpenVinoBackend(env["info"], env["depth"], None, "int8", "cpu")


CPU_COMBOS = [
    ("torch", "fp32"),
    pytest.param("torch", "bf16", marks=needs_bf16),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    pytest.param("openvino", "bf16", marks=needs_bf16),
    ("openvino", "int8"),
]


@pytest.mark.parametrize("backend,precision", CPU_COMBOS)
def test_factory_builds_every_cpu_backend_from_a_model_file(env, backend, precision):
    b = create_backend(env["path"], backend, precision, "cpu", cache_dir=env["cache"])
    try:
        assert (b.name, b.precision) == (backend, precision)
        out = b.run_depth(env["xs"][0])
        assert out["depth"].shape == (1, 1, H, W) and np.isfinite(out["depth"]).all()
        tol = 1e-4 if precision == "fp32" else 0.02
        assert drift(out["depth"], env["ref"][0]["depth"]).abs_rel < tol
        assert b.has_pose
        pose = b.run_pose(env["pair"])
        assert pose["T"].shape == (1, 4, 4) and np.isfinite(pose["T"]).all()
    finally:
        b.close()


def test_factory_from_exported_onnx_picks_up_pose(env):
    b = create_backend(env["depth"], "openvino", "fp32", "cpu", cache_dir=env["cache"])
    assert b.has_pose and b.info.height == H and b.info.width == W and b.info.scale_kind == "stereo"


def test_torch_onnxruntime_openvino_fp32_agree(env):
    outs = {
        name: create_backend(env["model"], name, "fp32", "cpu", cache_dir=env["cache"]).run_depth(env["xs"][1])
        for name in ("torch", "onnxruntime", "openvino")
    }
    scale = max(1.0, float(np.abs(outs["torch"]["depth"]).max()))
    for name in ("onnxruntime", "openvino"):
        assert np.abs(outs[name]["depth"] - outs["torch"]["depth"]).max() < 1e-4 * scale, name


@pytest.mark.parametrize(
    "backend,precision,match",
    [
        ("openvino", "fp16", "supports precisions"),
        ("onnxruntime", "bf16", "supports precisions"),
        ("tpu", "fp32", "unknown backend"),
    ],
)
def test_impossible_wishes_are_backend_errors(env, backend, precision, match):
    with pytest.raises(BackendError, match=match):
        create_backend(env["path"], backend, precision, "cpu", cache_dir=env["cache"])


def test_openvino_unknown_device_is_a_clear_error(env):
    with pytest.raises(BackendError, match="unknown here"):
        OpenVinoBackend(env["info"], env["depth"], None, "fp32", "npu")


def test_openvino_auto_precision_follows_the_cpu():
    assert resolve("openvino", "auto", "cpu") == ("openvino", "bf16" if cpu_has_bf16() else "fp32", "cpu")
    flags = open("/proc/cpuinfo").read()
    assert cpu_has_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_openvino_gpu_wishes_are_clear_errors(env):
    import openvino as ov

    with pytest.raises(BackendError, match="CPU precision"):
        OpenVinoBackend(env["info"], env["depth"], None, "bf16", "gpu")
    if any(d.startswith("GPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an Intel GPU")
    with pytest.raises(BackendError, match="no GPU"):
        OpenVinoBackend(env["info"], env["depth"], None, "fp32", "igpu")


# ---- a Q/DQ (int8) ONNX given as the model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def int8_folder(env, tmp_path_factory):
    """A deployment folder as a user leaves it after `depth-node quantize depth.onnx`: the Q/DQ depth graph
    (depth.int8.onnx) and the export's fp32 pose.onnx beside it."""
    import shutil

    folder = tmp_path_factory.mktemp("int8_folder")
    shutil.copyfile(quantized_onnx(env["depth"], cache_dir=env["cache"]), folder / "depth.int8.onnx")
    shutil.copyfile(env["pose"], folder / "pose.onnx")
    return folder


def _no_pose_quantizing(monkeypatch):
    """quantized_onnx that fails for an fp32 graph: nothing may be quantized when the model given is Q/DQ."""
    import depth_node.export.quantize as quantize

    real = quantize.quantized_onnx

    def guarded(path, *args, **kwargs):
        if not quantize.is_quantized(path):
            raise AssertionError(f"{path} was quantized on built-in frames")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(quantize, "quantized_onnx", guarded)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "auto"])
def test_a_qdq_onnx_model_runs_and_reports_int8(env, int8_folder, monkeypatch, backend):
    """precision auto with a Q/DQ graph is int8, as the backend (so /diagnostics and eval-bag) reports it: the
    depth drifts from fp32 as int8 does (measurably, within 2 %)."""
    _no_pose_quantizing(monkeypatch)
    b = create_backend(int8_folder / "depth.int8.onnx", backend, "auto", "cpu", cache_dir=env["cache"])
    try:
        assert b.precision == "int8" and b.device == "cpu"
        assert b.name == (backend if backend != "auto" else "openvino")  # the CPU rule: OpenVINO where installed
        d = drift(_depth(b, env), [r["depth"] for r in env["ref"]])
        assert 1e-5 < d.abs_rel < 0.02, d
        assert b.has_pose and np.isfinite(b.run_pose(env["pair"])["T"]).all()
    finally:
        b.close()


def test_int8_with_a_qdq_model_runs_the_fp32_pose_beside_it_as_fp32(env, int8_folder, monkeypatch):
    """`precision: int8` with a Q/DQ depth graph: the fp32 pose.onnx beside it is not quantized on built-in
    patterns; it runs as it is (ONNX Runtime: fp32, the reference's own numbers)."""
    _no_pose_quantizing(monkeypatch)
    b = create_backend(int8_folder / "depth.int8.onnx", "onnxruntime", "int8", "cpu", cache_dir=env["cache"])
    assert (b.name, b.precision) == ("onnxruntime", "int8")
    pose = b.run_pose(env["pair"])
    for k in ("axisangle", "translation", "T"):
        assert np.abs(pose[k] - env["ref_pose"][k]).max() < 1e-6, k


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_qdq_onnx_model_refuses_a_float_precision(env, int8_folder, precision):
    """A Q/DQ graph runs int8 whatever precision is asked: a float wish is an error, not a wrong label."""
    backend = "onnxruntime" if precision == "fp32" else "openvino"
    with pytest.raises(BackendError, match="Q/DQ"):
        create_backend(int8_folder / "depth.int8.onnx", backend, precision, "cpu", cache_dir=env["cache"])


# ---- backend auto for an ONNX model on a GPU machine without TensorRT ------------------------------------------


def _gpu_without_tensorrt(monkeypatch, tmp_path, ort_cuda: bool) -> None:
    """This machine as an NVIDIA one: a driver device file present, torch seeing CUDA, onnxruntime-gpu's CUDA
    provider present or not; tensorrt does not import (it is not installed here)."""
    import onnxruntime

    from depth_node.inference import factory

    driver = tmp_path / "nvidiactl"
    driver.write_text("")
    monkeypatch.setattr(factory, "NVIDIA_DEVICE_FILES", (str(driver),))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if ort_cuda else ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: providers)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_backend_auto_runs_an_onnx_model_on_a_gpu_without_tensorrt(env, int8_folder, monkeypatch, tmp_path):
    """PyTorch cannot run an ONNX file: without TensorRT, auto takes ONNX Runtime's CUDA provider where
    onnxruntime-gpu has it, else a CPU backend; a model file still runs on PyTorch CUDA."""
    _gpu_without_tensorrt(monkeypatch, tmp_path, ort_cuda=False)
    assert resolve("auto", "auto", "auto") == ("torch", "fp16", "cuda")  # a model file: PyTorch on the GPU
    b = create_backend(env["depth"], "auto", "auto", "auto", cache_dir=env["cache"])
    try:
        assert b.name in ("openvino", "onnxruntime") and b.device == "cpu"
        assert drift(_depth(b, env), [r["depth"] for r in env["ref"]]).abs_rel < 0.01
    finally:
        b.close()
    _gpu_without_tensorrt(monkeypatch, tmp_path, ort_cuda=True)
    assert resolve("auto", "auto", "auto", env["depth"]) == ("onnxruntime", "fp32", "cuda")
    assert resolve("auto", "auto", "auto", int8_folder / "depth.int8.onnx") == ("onnxruntime", "int8", "cuda")
