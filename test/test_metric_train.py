"""Supervised metric-ViT training (mode: metric) on tiny synthetic drives: the loss falls on a fixed batch, the
curriculum switches to the derivative losses, the FOV head is fitted afterwards on frozen depth weights, resume is
exact, and the end of a run is a Depth Pro model file that the runtime loads and exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_node.train.config import ConfigError, TrainConfig
from depth_node.train.data import build_sequence
from depth_node.train.metric_trainer import MetricTrainer
from depth_node.train.sources import SimDriveSource

W, H = 128, 64
# The `small` preset's geometry (8-px patches, 64-px windows, S = 256) with a very narrow ViT and decoder.
NET = {"embed_dim": 32, "depth": 2, "num_heads": 2, "hooks": [0, 1, 1, 1], "encoder_feature_dims": [16, 16, 32, 32],
       "decoder_features": 16}


def sequences(frames: int, seed: int):
    from depth_node.sim.config import DriveConfig

    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera.width, cfg.camera.height = W, H
    return [build_sequence(SimDriveSource(cfg), W, H, need_depth=True)]


@pytest.fixture(scope="module")
def seqs():
    return sequences(4, 21), sequences(3, 98)


def cfg_for(**over) -> TrainConfig:
    d = {
        "mode": "metric",
        "seed": 5,
        "metric": {"preset": "small", "network": NET, "stage2_epoch": 1, "fov_steps": 2},
        "data": {"width": W, "height": H, "num_workers": 0},
        "optim": {"batch_size": 2, "epochs": 2, "lr": 3e-4},
        "system": {"device": "cpu", "amp": "off", "progress": False, "log_every": 1, "image_every": 1,
                   "checkpoint_every": 1000},
        "output": {"export_onnx": False, "report": False},
    }
    for k, v in over.items():
        sec, key = k.split("__")
        d.setdefault(sec, {})[key] = v
    return TrainConfig.from_dict(d)


def test_config_names_bad_metric_keys():
    with pytest.raises(ConfigError, match=r"metric\.preset"):
        cfg_for(metric__preset="huge")
    with pytest.raises(ConfigError, match=r"metric\.network.*patch_size 6"):
        cfg_for(metric__network={"patch_size": 6})
    with pytest.raises(ConfigError, match=r"metric\.weights"):
        cfg_for(metric__weights={"mse": 1.0})


def test_loss_falls_and_stage_two_adds_derivative_losses(tmp_path, seqs):
    from torch.utils.data import default_collate

    cfg = cfg_for(augment__flip_p=0.0, augment__color_jitter_p=0.0, metric__zoom_p=0.0)
    tr = MetricTrainer(cfg, tmp_path, train_sequences=seqs[0], val_sequences=[])
    tr.setup()
    assert len(tr.dataset) == 4 and tr.net_size == 256
    batch = default_collate([tr.dataset[i] for i in range(2)])
    assert batch["image"].shape == (2, 3, 256, 256) and batch["depth"].shape == (2, 1, H, W)
    # canonical inverse depth of the target: f/(W·d) with the drive's own focal length
    assert float(batch["f_norm"][0]) == pytest.approx(float(seqs[0][0].K_norm[0, 0]))

    def loss_now() -> float:
        with torch.no_grad():
            return float(tr.forward_loss(batch)[0].total)

    out, _ = tr.forward_loss(batch)
    assert out.stage == 1 and set(out.parts) == {"mae"}
    before = loss_now()
    for _ in range(15):
        tr.train_step(batch)
    after = loss_now()
    assert after < 0.7 * before, (before, after)
    tr.epoch = 1
    out, _ = tr.forward_loss(batch)
    assert out.stage == 2 and set(out.parts) == {"mae", "mage", "msge", "male"}
    # the FOV head is not trained with depth
    net = tr.depth
    assert all(not p.requires_grad for n, p in net.named_parameters() if n.startswith("fov."))


def test_zoom_changes_focal_length_and_fov(seqs):
    from depth_node.train.metric_data import MetricFrameDataset, fov_from_focal

    cfg = cfg_for(metric__zoom_p=1.0, metric__zoom_min=0.5)
    ds = MetricFrameDataset(seqs[0], cfg, 256, train=True)
    f0 = float(seqs[0][0].K_norm[0, 0])
    zoomed = [ds[(0, s)] for s in range(6)]
    for z in zoomed:
        f = float(z["f_norm"])
        assert f0 <= f <= f0 / 0.5 + 1e-5
        assert float(z["fov_deg"]) == pytest.approx(fov_from_focal(f), rel=1e-5)
        d = z["depth"][0].numpy()
        assert d.shape == (H, W) and np.isfinite(d).all() and (d >= 0).all()
    assert len({round(float(z["f_norm"]), 4) for z in zoomed}) > 1
    plain = MetricFrameDataset(seqs[0], cfg, 256, train=False)[0]
    assert float(plain["f_norm"]) == pytest.approx(f0)


def test_run_writes_depth_pro_model_file_that_loads_and_exports(tmp_path, seqs):
    from depth_node.checkpoints.model_file import load_model
    from depth_node.export.onnx_export import export_model
    from depth_node.geometry.camera import Intrinsics
    from depth_node.inference.estimator import DepthEstimator
    from depth_node.inference.factory import create_backend

    cfg = cfg_for(optim__max_steps=3, output__report=True)
    res = MetricTrainer(cfg, tmp_path, train_sequences=seqs[0], val_sequences=seqs[1]).train()
    assert res.steps == 3 and np.isfinite(res.losses).all()
    val = res.history[-1]["val"]
    assert "ratio_median" not in val and val["n_images"] == 3  # metric: no median scaling
    assert "boundary_f1" in val and "fov_abs_err_deg" in res.history[-1]
    mf = load_model(res.model_path)
    assert mf.arch == "depth_pro" and mf.scale_kind == "metric" and (mf.height, mf.width) == (256, 256)
    assert mf.config["embed_dim"] == 32 and mf.meta["provenance"]["fov_steps"] == 2
    # the FOV phase changed only the FOV head
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=False)["depth"]
    assert all(torch.equal(best[k], mf.depth_state[k]) for k in best)
    # the node's path (estimator, camera_info focal length, ONNX Runtime on the exported graph) gives the depth
    # the trainer validated with
    export_model(res.model_path, tmp_path / "onnx")
    tr = MetricTrainer(cfg_for(model__init=str(res.model_path)), tmp_path / "again", train_sequences=seqs[0],
                       val_sequences=seqs[1])
    tr.setup()
    frame = tr.valset.frames[0]
    expected = tr.predict_val([frame])[0]
    est = DepthEstimator(create_backend(str(tmp_path / "onnx" / "depth.onnx"), "onnxruntime", "fp32", "cpu"))
    f = frame.f_norm * W
    got = est.depth(frame.rgb, Intrinsics(f, f, W / 2, H / 2, W, H), out_size=(H, W))
    assert got.focal_source == "camera_info"
    np.testing.assert_allclose(got.depth, expected, rtol=2e-3)
    html = res.report.read_text()
    assert "metric" in html and "data:image/png;base64" in html


def test_resume_continues_exactly_through_the_fov_phase(tmp_path, seqs):
    over = {"optim__batch_size": 1, "optim__epochs": 1, "metric__fov_steps": 2}
    a = MetricTrainer(cfg_for(optim__max_steps=3, **over), tmp_path / "a", train_sequences=seqs[0],
                      val_sequences=[])
    ra = a.train()
    b1 = MetricTrainer(cfg_for(optim__max_steps=2, metric__fov_steps=0, optim__batch_size=1, optim__epochs=1),
                       tmp_path / "b", train_sequences=seqs[0], val_sequences=[])
    b1.train()
    b2 = MetricTrainer(cfg_for(optim__max_steps=3, **over), tmp_path / "b", resume=True,
                       train_sequences=seqs[0], val_sequences=[])
    rb = b2.train()
    assert ra.steps == rb.steps == 3 and ra.losses[2:] == rb.losses
    wa, wb = a.depth.state_dict(), b2.depth.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_more_fov_steps_on_resume_continue_the_fov_phase_exactly(tmp_path, seqs):
    base = {"optim__batch_size": 1, "optim__epochs": 1, "optim__max_steps": 1}
    a = MetricTrainer(cfg_for(metric__fov_steps=4, **base), tmp_path / "a", train_sequences=seqs[0],
                      val_sequences=[])
    a.train()
    MetricTrainer(cfg_for(metric__fov_steps=2, **base), tmp_path / "b", train_sequences=seqs[0],
                  val_sequences=[]).train()
    b = MetricTrainer(cfg_for(metric__fov_steps=4, **base), tmp_path / "b", resume=True, train_sequences=seqs[0],
                      val_sequences=[])
    b.train()
    assert a.fov_step == b.fov_step == 4
    wa, wb = a.depth.state_dict(), b.depth.state_dict()
    fov_keys = [k for k in wa if k.startswith("fov.")]
    assert fov_keys and all(torch.equal(wa[k], wb[k]) for k in wa)
