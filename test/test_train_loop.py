"""Real training steps on tiny synthetic data: the loss falls, M/S/MS run, resume is exact, SIGTERM leaves a
loadable checkpoint, checkpoints are written atomically, DDP with two gloo processes, and the end of a run is a
model file that loads and exports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


def sim_sequences(stereo: bool, frames: int = 6, seed: int = 11, depth: bool = False, size: tuple = (W, H)):
    from depth_node.sim.config import DriveConfig

    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera.width, cfg.camera.height, cfg.camera.stereo = *size, stereo
    return [build_sequence(SimDriveSource(cfg), *size, need_right=stereo, need_depth=depth)]


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
        "system": {"device": "cpu", "amp": "off", "progress": False, "log_every": 1, "image_every": 2,
                   "checkpoint_every": 1000},
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


def test_the_model_file_records_the_camera_it_was_trained_on(tmp_path):
    """A model trained on a 100° camera (not the default 81° synthetic one) records that camera as its canonical
    one: fx, fy of the training frames at the network size (each frame resized from 320×180 to W×H), so the
    node's focal correction compares another camera with the right one. By hand: f = 320 / (2 tan 50°)."""
    import math

    from depth_node.checkpoints.model_file import load_model
    from depth_node.sim.config import DriveConfig

    drive = DriveConfig(seed=5, frames=5)
    drive.camera.width, drive.camera.height, drive.camera.hfov_deg = 320, 180, 100.0
    seqs = [build_sequence(SimDriveSource(drive), W, H, need_right=False, need_depth=False)]
    res = Trainer(tiny_cfg("M", optim__max_steps=1), tmp_path, train_sequences=seqs).train()
    can = load_model(res.model_path).meta["camera"]["canonical"]
    f = 320 / (2 * math.tan(math.radians(50.0)))
    assert can["fx"] == pytest.approx(f * W / 320, rel=1e-6) and can["fy"] == pytest.approx(f * H / 180, rel=1e-6)
    assert (can["width"], can["height"], can["source"]) == (W, H, "training_data")


def test_end_of_training_writes_model_file_onnx_and_report(tmp_path, mono_seqs):
    from depth_node.checkpoints.model_file import build_depth_net, build_pose_net, load_model
    from depth_node.export.onnx_metadata import read_metadata

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


def _cli_train(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    """`depth-node train` on a 128×64 drive, one thread (bitwise-repeatable CPU arithmetic), no export."""
    cmd = [sys.executable, "-m", "depth_node.cli", "train", "--config", str(REPO / "config" / "train_mono.yaml"),
           "--data", str(data), "--out", str(out), "--max-steps", "12", "--no-export", "data.width=128",
           "data.height=64", "data.num_workers=0", "data.filter_static=false", "optim.batch_size=1",
           "optim.epochs=100", "optim.scheduler_step_size=1", "optim.scheduler_gamma=0.5", "system.device=cpu",
           "system.threads=1", "system.checkpoint_every=100000", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _terminate_after_steps(proc: subprocess.Popen, steps: int, timeout: float = 300.0) -> str:
    """Read the run's output (tqdm writes `k/12 [`), send SIGTERM once it reports `steps` steps; all output."""
    import re
    import threading

    seen: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            seen.append(chunk)
            counts = [int(m) for m in re.findall(rb"(\d+)/12 \[", b"".join(seen[-4:]))]
            if counts and max(counts) >= steps and not done.is_set():
                done.set()
                proc.send_signal(signal.SIGTERM)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    t.join(10)
    return b"".join(seen).decode(errors="replace")


def test_resume_from_the_sigterm_checkpoint_equals_an_uninterrupted_run(tmp_path):
    """SIGTERM mid-run (the first epoch of 6 steps) → a checkpoint and exit status 128+15; `--resume` runs to step 12
    across two epoch ends (LR halves at each). Weights, Adam moments and the LR schedule then equal a run that
    was never stopped, bitwise: the checkpoint restores data order, RNG streams (augmentation, automask noise) and
    optimiser state, and one thread makes the CPU arithmetic itself repeatable."""
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive
    from depth_node.sim.writers import write_drive
    from depth_node.train.checkpoint import load_checkpoint

    cfg = DriveConfig(seed=4, frames=8)
    cfg.camera.width, cfg.camera.height = 128, 64
    write_drive(Drive(cfg), tmp_path / "data", "kitti")
    text = _terminate_after_steps(_cli_train(tmp_path / "data", tmp_path / "b"), steps=2)
    assert "continue with --resume" in text, text[-2000:]
    stopped = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert 2 <= stopped["step"] < 12 and stopped["epoch"] * 6 + stopped["batch_in_epoch"] == stopped["step"]
    resumed = _cli_train(tmp_path / "data", tmp_path / "b", "--resume")
    straight = _cli_train(tmp_path / "data", tmp_path / "a")
    for p in (resumed, straight):
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode(errors="replace")[-2000:]
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 12 and a["epoch"] == b["epoch"] == 2
    for net in ("depth", "pose"):
        assert a[net].keys() == b[net].keys()
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    assert a["scheduler"] == b["scheduler"] and a["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2.5e-5)


# Automask off: its 1e-5 tie-break noise is drawn per process, and at initialisation the pose net predicts almost
# no motion, so warped ≈ unwarped on most pixels and that noise (not DDP) decides which error enters the loss.
# lr 1e-6: Adam's first steps move each weight by ≈ ±lr·g/|g|, so with a large lr float noise in a near-zero
# gradient flips whole steps; this small, weights differ by float32 rounding only and the second step's gradients
# stay comparable.
DDP_OVER = {"optim__max_steps": 2, "optim__epochs": 1, "optim__lr": 1e-6, "model__freeze_bn": True,
            "system__threads": 1, "data__width": 128, "data__height": 64, "loss__automask": False}


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    cfg = tiny_cfg("M", optim__batch_size=1, **DDP_OVER)
    tr = Trainer(cfg, Path(out) / f"rank{rank}", train_sequences=_ddp_data(), val_sequences=[])
    res = tr.train()
    torch.save((res.steps, tr.dist.world_size, res.losses, weights(tr), adam_moments(tr)),
               Path(out) / f"result{rank}.pt")


def adam_moments(tr: Trainer) -> dict[str, torch.Tensor]:
    """Adam's first moment per parameter: (1 − β1)·(β1·g1 + g2) after two steps, linear in the gradients (unlike
    the weights: Adam's update does not change when every gradient is scaled, e.g. summed instead of averaged)."""
    from depth_node.train.distributed import unwrap

    named = [(f"{p}.{k}", v) for p, m in (("d", tr.depth), ("p", tr.pose)) for k, v in unwrap(m).named_parameters()]
    return {name: tr.optimizer.state[v]["exp_avg"].clone() for name, v in named}


def _ddp_data():
    return sim_sequences(False, frames=6, seed=5, size=(128, 64))  # 4 triplets: 2 steps of 2 samples


def test_two_gloo_processes_with_batch_1_train_like_one_process_with_batch_2(tmp_path):
    """Each step, rank r gets sample 2·step + r of the epoch's permutation (with that position's augmentation
    draw), computes the mean loss of its sample, and DDP averages the two gradients: the mean of equal-size
    per-sample losses, i.e. one process's batch-2 loss. BatchNorm is frozen (`model.freeze_bn`) because
    otherwise each rank would normalise by its own single sample (CPU has no SyncBatchNorm). See DDP_OVER.

    Tolerances (float32, sums taken in another order): losses 1e-5 relative (measured ~1e-7); Adam's first
    moments 1e-3 of each tensor's norm (measured ≤ 2e-4: conv weight gradients are sums over pixels with much
    cancellation); weights half an lr (measured 1.2e-7 = one float32 ulp at |w| ≈ 1; a wrong sample or a missed
    all-reduce moves weights by a whole lr)."""
    import socket

    import torch.multiprocessing as mp

    torch.set_num_threads(1)
    single = Trainer(tiny_cfg("M", optim__batch_size=2, **DDP_OVER), tmp_path / "single",
                     train_sequences=_ddp_data(), val_sequences=[])
    rs = single.train()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    (steps0, world0, loss0, w0, m0), (steps1, world1, loss1, w1, _) = (torch.load(tmp_path / f"result{r}.pt")
                                                                         for r in range(2))
    assert steps0 == steps1 == rs.steps == 2 and world0 == world1 == 2
    np.testing.assert_allclose(np.mean([loss0, loss1], axis=0), rs.losses, rtol=1e-5)
    assert abs(loss0[0] - loss1[0]) > 1e-3  # the ranks did see different samples
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # DDP kept the replicas identical
    ws, ms = weights(single), adam_moments(single)
    assert all(float((m0[k] - ms[k]).norm()) <= 1e-3 * float(ms[k].norm()) for k in ms)
    lr = 1e-6
    start = _initial_weights()
    assert max(float((ws[k] - start[k]).abs().max()) for k in start) > 1.5 * lr  # two steps did move the weights
    assert max(float((ws[k] - w0[k]).abs().max()) for k in w0) < 0.5 * lr
    assert (tmp_path / "rank0" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "rank0" / "model.pt").is_file()
    assert not (tmp_path / "rank1").exists()  # rank 1 wrote nothing


def _initial_weights() -> dict[str, torch.Tensor]:
    """The networks as set-up leaves them (seeded), before any step."""
    tr = Trainer(tiny_cfg("M", optim__batch_size=2, **DDP_OVER), Path("never-written"),
                 train_sequences=_ddp_data(), val_sequences=[])
    tr.setup()
    return weights(tr)


def _cpu_flags_from_proc() -> set[str]:
    """The test's own reading of /proc/cpuinfo (not cpu_info's)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((ln for ln in text.splitlines() if ln.startswith("flags")), "").partition(":")[2].split())


def test_auto_precision_is_bf16_only_where_the_cpu_computes_in_bf16(caplog):
    """`system.amp=auto` on the CPU autocasts to bf16 only with AVX512_BF16 or AMX; elsewhere bf16 is emulated
    (~13× slower than fp32 measured on an AVX2 EPYC) and auto trains in fp32. An explicit bf16 there warns."""
    from depth_node.train.loop import autocast_settings

    native = bool(_cpu_flags_from_proc() & {"avx512_bf16", "amx_bf16"})
    cpu = torch.device("cpu")
    expected_auto = (torch.bfloat16, False) if native else (None, False)
    assert autocast_settings(tiny_cfg(system__amp="auto"), cpu) == expected_auto
    assert autocast_settings(tiny_cfg(system__amp="off"), cpu) == (None, False)
    with caplog.at_level("WARNING", logger="depth_node.train.loop"):
        assert autocast_settings(tiny_cfg(system__amp="bf16"), cpu) == (torch.bfloat16, False)
    assert ("without native bf16" in caplog.text) == (not native)


# ------------------------------------------------------------------------------- --resume from the saved config


def _train_cli(*args: str) -> int:
    """`depth-node train ...` in this process (the real argument parsing and `train_from_files`)."""
    from depth_node.cli import main

    return main(["train", *args])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 1-step CLI run at 64×64 (the smallest valid input) on a 6-frame drive; tests resume copies of it."""
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive
    from depth_node.sim.writers import write_drive

    root = tmp_path_factory.mktemp("tiny_run")
    cfg = DriveConfig(seed=4, frames=6)
    cfg.camera.width, cfg.camera.height = 64, 64
    write_drive(Drive(cfg), root / "data", "kitti")
    rc = _train_cli("--config", str(REPO / "config" / "train_mono.yaml"), "--data", str(root / "data"),
                    "--out", str(root / "run"), "--no-export", "data.width=64", "data.height=64",
                    "data.num_workers=0", "data.filter_static=false", "optim.batch_size=2", "system.device=cpu",
                    "system.amp=off", "system.progress=false", "--max-steps", "1")
    assert rc == 0
    return root / "data", root / "run"


def _copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def test_cli_resume_continues_from_the_runs_saved_config(tmp_path, tiny_run, caplog):
    """`train --out RUN --resume` with neither --data nor --config: the run's own config.yaml (data, 64×64 size,
    batch size) is the base, --max-steps changes only the budget, and the step count continues. A --config given
    with --resume is checked, not applied: its other keys keep the run's values (with a warning naming them)."""
    import yaml

    from depth_node.checkpoints.model_file import load_model
    from depth_node.train.checkpoint import load_checkpoint

    data, run = tiny_run
    out = _copy_run(run, tmp_path / "run")
    assert _train_cli("--out", str(out), "--resume", "--max-steps", "2") == 0
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == 2 and ck["input"] == {"height": 64, "width": 64}
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["data"]["width"], saved["data"]["height"], saved["data"]["train"]) == (64, 64, [str(data)])
    assert saved["optim"]["batch_size"] == 2 and saved["optim"]["max_steps"] == 2
    mf = load_model(out / "model.pt")
    assert (mf.width, mf.height) == (64, 64) and mf.meta["provenance"]["steps"] == 2

    # the file (train_mono.yaml: batch 12, no data) agrees on the size once told; its other values are not applied
    with caplog.at_level("WARNING", logger="depth_node.train.run"):
        assert _train_cli("--config", str(REPO / "config" / "train_mono.yaml"), "--out", str(out), "--resume",
                          "data.width=64", "data.height=64", "--max-steps", "3") == 0
    assert "data.train" in caplog.text and "optim.batch_size" in caplog.text
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3

    # an optim.lr given on resume is the rate the next steps use (the optimiser's saved state would bring the old
    # one back); still in the schedule's first step, so exactly the new rate
    assert _train_cli("--out", str(out), "--resume", "optim.lr=3e-5", "--max-steps", "4") == 0
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == 4 and [g["lr"] for g in ck["optimizer"]["param_groups"]] == pytest.approx([3e-5])
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["train"] == [str(data)] and saved["optim"]["batch_size"] == 2


def test_resume_refuses_a_change_of_input_size(tmp_path, tiny_run, capsys, mono_seqs):
    """A size the checkpoint was not trained at is refused before any data is touched, naming the key, the
    saved and the new value; the run is left as it was. The same through --config (train_mono.yaml is 640×192)
    and through the Python API (the checkpoint's own config)."""
    from depth_node.train.checkpoint import load_checkpoint
    from depth_node.train.config import ConfigError

    _, run = tiny_run
    out = _copy_run(run, tmp_path / "run")
    before = (out / "config.yaml").read_text()
    assert _train_cli("--out", str(out), "--resume", "data.height=128") == 2
    err = capsys.readouterr().err
    assert "data.height=128" in err and "data.height=64" in err and "data.width" not in err, err
    assert _train_cli("--config", str(REPO / "config" / "train_mono.yaml"), "--out", str(out), "--resume") == 2
    err = capsys.readouterr().err
    assert "data.width=640, data.height=192" in err and "data.width=64, data.height=64" in err, err
    assert (out / "config.yaml").read_text() == before
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 1
    tr = Trainer(tiny_cfg("M"), out, resume=True, train_sequences=mono_seqs[0], val_sequences=[])  # 192×64
    with pytest.raises(ConfigError, match=r"data\.width=192.*trained with data\.width=64"):
        tr.setup()


@pytest.mark.parametrize("side", [0, 32, 40, 48, 80])
def test_input_sides_below_64_are_refused_with_a_valid_suggestion(side):
    """The 1/32 feature map of a 32-px side is 1 px, which the encoder's reflect padding cannot take: such sides
    are refused, and the suggested nearest size is itself valid (≥ 64, a multiple of 32)."""
    import re

    from depth_node.train.config import ConfigError

    with pytest.raises(ConfigError, match="at least 64") as exc:
        tiny_cfg("M", data__height=side)
    nearest = int(re.search(r"nearest: (\d+)", str(exc.value)).group(1))
    assert nearest >= 64 and nearest % 32 == 0
    tiny_cfg("M", data__height=nearest)  # the suggestion passes validation


def test_a_64x64_input_trains(tmp_path):
    """64 px, the smallest side accepted, really trains (the encoder's reflect padding at 1/32 needs 2 px)."""
    seqs = sim_sequences(False, frames=4, size=(64, 64))
    res = Trainer(tiny_cfg("M", data__width=64, data__height=64, optim__max_steps=1), tmp_path,
                  train_sequences=seqs, val_sequences=[]).train()
    assert res.steps == 1 and np.isfinite(res.losses).all()


def test_data_paths_are_recorded_absolute(tmp_path, monkeypatch):
    """--data as typed (relative) is recorded as an absolute path in the run's config, so a --resume from another
    working directory reads the same data."""
    import argparse

    from depth_node.commands.train import overrides

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(init=None, preset=None, overrides=[], image_topic=None, camera_info_topic=None,
                              camera_height=None, data=["drives/a,drives/b"], val_data=["held"], max_steps=None,
                              max_minutes=None, no_export=False)
    got = overrides(args)
    assert f"data.train=['{tmp_path / 'drives/a'}', '{tmp_path / 'drives/b'}']" in got, got
    assert f"data.val=['{tmp_path / 'held'}']" in got, got


def test_validation_with_a_camera_height_is_median_scaled_and_says_so():
    """With model.scale_camera_height_m the factor the model ships with is measured on the final weights, so
    validation must not judge the init model's factor (another scale than the one written): median scaling,
    labelled with the camera height."""
    tr = Trainer.__new__(Trainer)  # the scale rules only: no data, no networks
    tr.init_scale = {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}
    tr.cfg = tiny_cfg("M", model__keep_init_scale=True)
    assert not tr.median_scaling and tr.scale_factor() == pytest.approx(5.4)
    tr.cfg = tiny_cfg("M", model__keep_init_scale=True, model__scale_camera_height_m=1.0)
    assert tr.median_scaling and tr.scale_factor() == 1.0
    assert "camera height 1 m" in tr.scaling_label() and "median" in tr.scaling_label()


def test_a_camera_height_run_warns_up_front_when_the_floor_is_not_seen(mono_seqs, caplog, monkeypatch):
    """The camera-height scale is measured on the final weights from the floor in the lower part of the frames:
    when the starting weights see no floor, say so before training, not after the whole run."""
    from test_scale import road_depth

    from depth_node.geometry.camera import Intrinsics

    tr = Trainer.__new__(Trainer)  # the check only: its frames are real training frames, its depths given here
    tr.cfg, tr._train_seqs = tiny_cfg("M", model__scale_camera_height_m=1.0), mono_seqs[0]
    wall = np.full((H, W), 5.0, np.float32)
    monkeypatch.setattr(tr, "predict_depth", lambda frames: [wall] * len(frames), raising=False)
    with caplog.at_level("WARNING", logger="depth_node.train.trainer"):
        tr._check_ground_is_visible(1.0)
    assert "find a ground plane in 0 of" in caplog.text
    caplog.clear()
    road = road_depth(1.0, 3.0, Intrinsics(120.0, 120.0, W / 2, H / 2, W, H))
    monkeypatch.setattr(tr, "predict_depth", lambda frames: [road] * len(frames), raising=False)
    with caplog.at_level("WARNING", logger="depth_node.train.trainer"):
        tr._check_ground_is_visible(1.0)
    assert "ground plane" not in caplog.text


# ------------------------------------------------------------------------------ time budget: progress and stop


def test_a_budget_stop_is_said_and_bounds_the_progress_total(tmp_path, caplog, capsys):
    """With a time budget (optim.max_minutes, how --preset adapt ends) the progress bar's total is the steps the
    budget leaves room for at the measured rate, not epochs × steps/epoch (which the run never reaches), so its
    ETA is bounded by the budget; the run says the budget stopped it, after how many steps."""
    import re

    seqs = sim_sequences(False, frames=6, size=(64, 64))
    cfg = tiny_cfg("M", data__width=64, data__height=64, optim__epochs=200, optim__max_minutes=0.05,
                   system__progress=True, system__log_every=1000)
    tr = Trainer(cfg, tmp_path, train_sequences=seqs, val_sequences=[])
    with caplog.at_level("INFO", logger="depth_node.train.loop"):
        res = tr.train()
    epochs_total = 200 * tr.steps_per_epoch
    assert 0 < res.steps < epochs_total
    stops = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped:")]
    assert len(stops) == 1 and "0.05-min budget" in stops[0] and f"after {res.steps} steps" in stops[0], stops
    bars = [(int(n), int(t)) for n, t in re.findall(r"(\d+)/(\d+) \[", capsys.readouterr().err)]
    assert bars and bars[-1] == (res.steps, res.steps), bars[-3:]  # ends full at the steps taken
    assert all(t < epochs_total for n, t in bars if n >= 1), bars  # bounded once a step has been timed

    # the total: steps done + measured rate × budget left, never above the step total
    tr._session_start, tr.step, tr.train_seconds = (0, 0.0), 10, 5.0  # 10 steps in 5 s of a 60-s budget
    tr.cfg.optim.max_minutes = 1.0
    assert tr.progress_total() == 10 + 2 * 55  # 2 steps/s for the 55 s left
    tr.cfg.optim.max_minutes = 100.0
    assert tr.progress_total() == epochs_total


def test_max_steps_beyond_the_epochs_is_said_once(tmp_path, caplog):
    seqs = sim_sequences(False, frames=6, size=(64, 64))
    cfg = tiny_cfg("M", data__width=64, data__height=64, optim__epochs=1, optim__max_steps=50)
    with caplog.at_level("INFO", logger="depth_node.train.loop"):
        res = Trainer(cfg, tmp_path, train_sequences=seqs, val_sequences=[]).train()
    said = [r.getMessage() for r in caplog.records if "optim.max_steps=50" in r.getMessage()]
    assert len(said) == 1 and f"training ends after {res.steps} steps" in said[0], said
    assert "raise optim.epochs" in said[0] and not any(r.getMessage().startswith("stopped:") for r in caplog.records)
