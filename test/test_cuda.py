"""The CUDA paths, on a real GPU: the PyTorch backend (CUDA graphs, channels-last, fp32/fp16/bf16) against the CPU
in fp32, the Depth Pro network on the GPU, and training steps with AMP (fp16 + GradScaler) and channels-last for
both trainers, including an exact resume. CI has no GPU: every test here is skipped there, saying why; they run
wherever torch sees a CUDA device (`pytest test/test_cuda.py` on the robot or a workstation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_node.checkpoints.model_file import ModelFile
from depth_node.export.drift import drift
from depth_node.export.quantize import network_inputs
from depth_node.inference.factory import create_backend
from depth_node.networks.monodepth2 import DepthNet, PoseNet
from depth_node.sim.calibration import drive_frames

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")

H, W = 96, 320
META = {"min_depth": 0.1, "max_depth": 100.0, "scale": {"kind": "relative"}}


def varied_model() -> ModelFile:
    """Default-initialised ResNet-18 with a strengthened disparity head, so depth varies across the image."""
    torch.manual_seed(0)
    d, p = DepthNet(18), PoseNet(18)
    sd = {k: v * 60 if k.startswith("depth.decoder.10.") else v for k, v in d.state_dict().items()}
    return ModelFile("monodepth2", {"num_layers": 18}, H, W, sd, p.state_dict(), dict(META))


@pytest.fixture(scope="module")
def cpu_reference():
    model = varied_model()
    xs = network_inputs(drive_frames(3, H, W, seed=5), [1, 3, H, W])
    ref = create_backend(model, "torch", "fp32", "cpu")
    pair = np.concatenate([xs[0], xs[1]], 1)
    return model, xs, [ref.run_depth(x)["depth"] for x in xs], ref.run_pose(pair), pair


@pytest.mark.parametrize(("precision", "limit", "pose_limit"),
                         [("fp32", 2e-3, 5e-3), ("fp16", 1e-2, 1e-2), ("bf16", 4e-2, 2e-2)])
def test_torch_backend_on_cuda_matches_cpu_fp32(cpu_reference, precision, limit, pose_limit):
    """fp32 on CUDA may use TF32 convolutions (cuDNN's default), hence a limit above float rounding. The pose
    outputs (axis-angle and translation of ~1e-3 here) may be off by pose_limit of their largest magnitude: bf16
    on a CPU is off by 0.4 %, so each limit is about five rounding errors of its precision, not the value itself."""
    model, xs, ref_depth, ref_pose, pair = cpu_reference
    be = create_backend(model, "torch", precision, "cuda")
    got = [be.run_depth(x)["depth"] for x in xs]
    d = drift(got, ref_depth)
    assert np.isfinite(got).all() and d.abs_rel < limit, (precision, d)
    again = be.run_depth(xs[0])["depth"]  # CUDA-graph replay: same input, same output, no stale buffers
    assert np.array_equal(again, got[0]) and not np.array_equal(got[0], got[1])
    pose = be.run_pose(pair)
    for key, val in ref_pose.items():
        motion = val - np.eye(4) if key == "T" else val  # T is near identity: compare its motion part
        err = float(np.abs(pose[key] - val).max())
        assert err <= pose_limit * float(np.abs(motion).max()), (key, err, float(np.abs(motion).max()))


def test_depth_pro_on_cuda_matches_cpu():
    from depth_node.networks.depth_pro import build_depth_pro

    torch.manual_seed(1)
    net = build_depth_pro("tiny").eval()
    x = torch.rand(1, 3, 1536, 1536) * 2 - 1
    with torch.no_grad():
        ref = net(x)
        got = net.cuda()(x.cuda())
    for r, g in zip(ref, got, strict=True):
        r, g = r.float(), g.float().cpu()
        assert torch.isfinite(g).all()
        assert (g - r).abs().max() <= 2e-3 * r.abs().max() + 1e-4


def _drive(width: int, height: int, frames: int, seed: int, depth: bool):
    from depth_node.sim.config import DriveConfig
    from depth_node.train.data import build_sequence
    from depth_node.train.sources import SimDriveSource

    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera.width, cfg.camera.height = width, height
    return [build_sequence(SimDriveSource(cfg), width, height, need_depth=depth)]


def _cfg(mode: str, width: int, height: int, **extra):
    from depth_node.train.config import TrainConfig

    d = {
        "mode": mode, "seed": 4,
        "data": {"width": width, "height": height, "num_workers": 0, "filter_static": False},
        "optim": {"batch_size": 2, "epochs": 2, "lr": 2e-4, "scheduler_step_size": 1, "max_steps": 4},
        "system": {"device": "cuda", "amp": "auto", "channels_last": "auto", "progress": False, "log_every": 1,
                   "image_every": 2, "checkpoint_every": 1000},
        "output": {"export_onnx": False, "report": False},
        **extra,
    }
    return TrainConfig.from_dict(d)


def test_self_supervised_training_on_cuda_uses_amp_and_resumes_exactly(tmp_path):
    from depth_node.train.trainer import Trainer

    train, val = _drive(192, 64, 7, 11, False), _drive(192, 64, 3, 99, True)
    cfg = _cfg("M", 192, 64)
    a = Trainer(cfg, tmp_path / "a", train_sequences=train, val_sequences=val)
    ra = a.train()
    assert a.scaler.is_enabled() and a.amp_dtype == torch.float16 and a.channels_last
    assert ra.steps == 4 and np.isfinite(ra.losses).all() and ra.history[-1]["val"]["abs_rel"] > 0
    ck = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["scaler"] is not None and ck["scaler"]["scale"] > 0

    b1 = Trainer(_cfg("M", 192, 64, optim={**cfg.to_dict()["optim"], "max_steps": 2}), tmp_path / "b",
                 train_sequences=train, val_sequences=val)
    b1.train()
    b2 = Trainer(cfg, tmp_path / "b", resume=True, train_sequences=train, val_sequences=val)
    rb = b2.train()
    assert rb.steps == 4
    # cuDNN picks kernels per run, so resume is exact to float noise on a GPU, not bitwise
    assert np.allclose(ra.losses[2:], rb.losses, rtol=1e-2), (ra.losses, rb.losses)


def test_metric_training_on_cuda(tmp_path):
    from depth_node.train.metric_trainer import MetricTrainer

    net = {"embed_dim": 32, "depth": 2, "num_heads": 2, "hooks": [0, 1, 1, 1],
           "encoder_feature_dims": [16, 16, 32, 32], "decoder_features": 16}
    cfg = _cfg("metric", 128, 64, metric={"preset": "small", "network": net, "stage2_epoch": 1, "fov_steps": 2})
    tr = MetricTrainer(cfg, tmp_path, train_sequences=_drive(128, 64, 4, 21, True),
                       val_sequences=_drive(128, 64, 3, 98, True))
    res = tr.train()
    assert tr.scaler.is_enabled() and res.steps == 4 and np.isfinite(res.losses).all()
    val = res.history[-1]["val"]
    assert np.isfinite(val["abs_rel"]) and 0 <= val["a1"] <= 1


def test_backend_auto_runs_an_exported_onnx_on_the_gpu_machine(cpu_reference, tmp_path):
    """PyTorch runs model files only: for an exported ONNX, auto takes TensorRT where it is installed, else ONNX
    Runtime's CUDA provider (onnxruntime-gpu), else a CPU backend; never torch."""
    import onnxruntime

    from depth_node.export.cache import onnx_for
    from depth_node.inference.factory import importable

    model, xs, ref_depth, _, _ = cpu_reference
    depth, _ = onnx_for(model, tmp_path)
    b = create_backend(depth, "auto", "auto", "auto", cache_dir=tmp_path)
    try:
        if importable("tensorrt"):
            assert (b.name, b.precision) == ("tensorrt", "fp16")
        elif "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            assert (b.name, b.device) == ("onnxruntime", "cuda")
        else:
            assert b.name in ("openvino", "onnxruntime") and b.device == "cpu"
        got = [b.run_depth(x)["depth"] for x in xs]
        assert drift(got, ref_depth).abs_rel < 1e-2
    finally:
        b.close()
