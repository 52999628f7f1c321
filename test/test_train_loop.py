"""Real training steps on tiny synthetic data: the loss falls, M/S/MS run, resume is exact, SIGTERM leaves a
loadable checkpoint, checkpoints are written atomically, DDP with two gloo processes, and the end of a run is a
model file that loads and exports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_node.train.config import TrainConfig
from depth_node.train.data import build_sequence
from depth_node.train.sources import SimDriveSource
from depth_node.train.trainer import Trainer

W, H = 192, 64
REPO = Path(__file__).resolve().parents[1]


def sim_sequences(stereo: bool, frames: int = 6, seed: int = 11, depth: bool = False):
    from depth_node.sim.config import DriveConfig

    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera.width, cfg.camera.height, cfg.camera.stereo = W, H, stereo
    return [build_sequence(SimDriveSource(cfg), W, H, need_right=stereo, need_depth=depth)]


@pytest.fixture(scope="module")
def mono_seqs():
    return sim_sequences(False, frames=5), sim_sequences(False, frames=4, seed=99, depth=True)


@pytest.fixture(scope="module")
def stereo_seqs():
    return sim_sequences(True, frames=5), sim_sequences(True, frames=4, seed=99, depth=True)


def tiny_cfg(mode: str = "M", **over) -> TrainConfig:
    d = {
        "mode": mode,
        "seed": 3,
        "data": {"width": W, "height": H, "num_workers": 0, "filter_static": False, "both_sides": False},
        "optim": {"batch_size": 2, "epochs": 1, "lr": 1e-4},
        "system": {"device": "cpu", "progress": False, "log_every": 1, "image_every": 2, "checkpoint_every": 1000},
        "output": {"export_onnx": False, "report": False},
    }
    for k, v in over.items():
        sec, key = k.split("__")
        d.setdefault(sec, {})[key] = v
    return TrainConfig.from_dict(d)


def weights(tr: Trainer) -> dict[str, torch.Tensor]:
    from depth_node.train.distributed import unwrap

    out = {f"d.{k}": v.clone() for k, v in unwrap(tr.depth).state_dict().items()}
    if tr.pose is not None:
        out.update({f"p.{k}": v.clone() for k, v in unwrap(tr.pose).state_dict().items()})
    return out


def test_optimisation_steps_reduce_the_loss(tmp_path, mono_seqs):
    """Overfit 3 triplets: the loss on a fixed, un-augmented batch must fall."""
    from torch.utils.data import default_collate

    cfg = tiny_cfg("M", optim__batch_size=3, optim__lr=2e-4, augment__flip_p=0.0, augment__color_jitter_p=0.0)
    tr = Trainer(cfg, tmp_path, train_sequences=mono_seqs[0], val_sequences=[])
    tr.setup()
    assert len(tr.dataset) == 3
    batch = default_collate([tr.dataset[i] for i in range(3)])

    def loss_now() -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            return float(tr.forward_loss(batch)[0].total)

    before = loss_now()
    for _ in range(12):
        tr.train_step(batch)
    after = loss_now()
    assert after < 0.9 * before, (before, after)


@pytest.mark.parametrize("mode", ["S", "MS"])
def test_stereo_modes_train_and_validate_metric(tmp_path, stereo_seqs, mode):
    cfg = tiny_cfg(mode, optim__max_steps=2, optim__epochs=2)
    res = Trainer(cfg, tmp_path, train_sequences=stereo_seqs[0], val_sequences=stereo_seqs[1]).train()
    assert res.steps == 2 and np.isfinite(res.losses).all()
    from depth_node.checkpoints.model_file import load_model

    mf = load_model(res.model_path)
    assert mf.scale_kind == "stereo" and mf.depth_scale == pytest.approx(5.4)
    assert (mf.pose_state is None) == (mode == "S")


def test_end_of_training_writes_model_file_onnx_and_report(tmp_path, mono_seqs):
    from depth_node.checkpoints.model_file import build_depth_net, build_pose_net, load_model
    from depth_node.export.onnx_export import read_metadata

    cfg = tiny_cfg("M", optim__epochs=1, output__export_onnx=True, output__report=True)
    res = Trainer(cfg, tmp_path, train_sequences=mono_seqs[0], val_sequences=mono_seqs[1]).train()
    assert res.epochs_done == 1 and res.history[0]["val"]["n_images"] == 4
    assert res.best is not None and res.best["epoch"] == 1
    mf = load_model(res.model_path)
    assert (mf.arch, mf.height, mf.width, mf.scale_kind) == ("monodepth2", H, W, "relative")
    prov = mf.meta["provenance"]
    assert prov["seed"] == 3 and prov["metrics"]["abs_rel"] > 0 and prov["config"]["mode"] == "M"
    net, pose = build_depth_net(mf), build_pose_net(mf)
    assert net(torch.rand(1, 3, H, W), (0,))[0].shape == (1, 1, H, W) and pose is not None
    assert (res.onnx_dir / "depth.onnx").is_file() and (res.onnx_dir / "pose.onnx").is_file()
    assert read_metadata(res.onnx_dir / "depth.onnx")["depth_node.height"] == str(H)
    html = res.report.read_text()
    assert "abs_rel" in html and "data:image/png;base64" in html
    assert (tmp_path / "tb").is_dir() and any((tmp_path / "tb").iterdir())


def test_resume_continues_exactly(tmp_path, mono_seqs):
    """6 steps in one go == 3 steps + resume for 3 more (crossing an epoch end with an LR step), bitwise."""
    over = {"optim__batch_size": 1, "optim__epochs": 3, "optim__scheduler_step_size": 1,
            "optim__scheduler_gamma": 0.5, "augment__flip_p": 0.5, "augment__color_jitter_p": 0.5}
    a = Trainer(tiny_cfg("M", optim__max_steps=6, **over), tmp_path / "a", train_sequences=mono_seqs[0],
                val_sequences=[])
    ra = a.train()
    b1 = Trainer(tiny_cfg("M", optim__max_steps=4, **over), tmp_path / "b", train_sequences=mono_seqs[0],
                 val_sequences=[])
    b1.train()
    b2 = Trainer(tiny_cfg("M", optim__max_steps=6, **over), tmp_path / "b", resume=True,
                 train_sequences=mono_seqs[0], val_sequences=[])
    rb = b2.train()
    assert a.steps_per_epoch == 3 and ra.steps == rb.steps == 6
    assert ra.losses[4:] == rb.losses  # the resumed session's losses equal the uninterrupted run's
    wa, wb = weights(a), weights(b2)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.optimizer.param_groups[0]["lr"] == b2.optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-5)


def test_resuming_a_run_that_stopped_on_its_budget_validates_nothing_twice(tmp_path, mono_seqs):
    """A run stopped mid-epoch by its budget validated those weights; `--resume` with the same budget (to get
    the model file, ONNX and report again) must not append a second entry for the same step."""
    cfg = tiny_cfg("M", optim__max_steps=4, optim__batch_size=1, optim__epochs=3)
    first = Trainer(cfg, tmp_path, train_sequences=mono_seqs[0], val_sequences=mono_seqs[1]).train()
    assert [h["epoch"] for h in first.history] == [1, 1.5] and first.history[-1]["step"] == 4
    again = Trainer(cfg, tmp_path, resume=True, train_sequences=mono_seqs[0], val_sequences=mono_seqs[1]).train()
    assert [h["step"] for h in again.history] == [3, 4] and again.model_path is not None


def test_checkpoint_write_is_atomic(tmp_path):
    from depth_node.train.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(10)})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):  # fails half-way through writing the new one
        save_checkpoint(path, {"step": 2, "w": torch.ones(1_000_000), "z": Boom()})
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left behind


def test_sigterm_saves_a_loadable_checkpoint(tmp_path):
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive
    from depth_node.sim.writers import write_drive
    from depth_node.train.checkpoint import load_checkpoint

    cfg = DriveConfig(seed=4, frames=8)
    cfg.camera.width, cfg.camera.height = W, H
    write_drive(Drive(cfg), tmp_path / "data", "kitti")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "depth_node.cli", "train", "--config", str(REPO / "config" / "train_mono.yaml"),
           "--data", str(tmp_path / "data"), "--out", str(out), f"data.width={W}", f"data.height={H}",
           "data.num_workers=0", "data.filter_static=false", "optim.batch_size=1", "optim.epochs=100",
           "system.progress=false", "system.device=cpu", "system.checkpoint_every=100000"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "tb").is_dir() or not any((out / "tb").iterdir()):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        time.sleep(2.0)  # a few steps
        proc.send_signal(signal.SIGTERM)
        text, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, text
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] >= 1 and ck["epoch"] * 6 + ck["batch_in_epoch"] == ck["step"]
    assert "continue with --resume" in text


def _ddp_worker(rank: int, world: int, port: int, out: str, results) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    cfg = tiny_cfg("M", optim__max_steps=2, optim__batch_size=1, optim__epochs=3)
    tr = Trainer(cfg, Path(out) / f"rank{rank}", train_sequences=sim_sequences(False, frames=5), val_sequences=[])
    res = tr.train()
    from depth_node.train.distributed import unwrap

    params = [p for m in (tr.depth, tr.pose) for p in unwrap(m).parameters()]  # buffers (BN stats) stay per rank
    digest = float(sum(p.detach().double().sum() for p in params))
    results.put((rank, res.steps, tr.dist.world_size, digest))


def test_ddp_two_gloo_processes(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, port, str(tmp_path), q), nprocs=2, join=True, start_method="spawn")
    got = sorted(q.get() for _ in range(2))
    assert [g[1] for g in got] == [2, 2] and [g[2] for g in got] == [2, 2]
    assert got[0][3] == pytest.approx(got[1][3], rel=1e-9)  # DDP kept the replicas identical
    assert (tmp_path / "rank0" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "rank0" / "model.pt").is_file()
    assert not (tmp_path / "rank1").exists()  # rank 1 wrote nothing
