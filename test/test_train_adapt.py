"""The adaptation preset end to end (`depth-node train --preset adapt` on a small compressed bag from a camera
unlike the training camera: a few real steps, a loadable model that keeps the bundled model's metric scale), and
the camera-height scale measurement against rendered ground truth."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depth_node.checkpoints.model_file import load_model

REPO = Path(__file__).resolve().parents[1]
DEPTH_NODE = [sys.executable, "-m", "depth_node.cli"]
ROBOT = ["--set", "scene.kind=sidewalk", "--set", "camera.height_m=0.35", "--set", "camera.hfov_deg=95",
         "--set", "camera.aspect=4:3"]


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("robot") / "rec"
    res = subprocess.run([*DEPTH_NODE, "synth", "--out", str(out), "--frames", "6", "--seed", "5", "--format", "mcap",
                          "--compressed", "--width", "160", "--height", "120", "--no-progress", "--workers", "1",
                          "--no-labels", *ROBOT], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return out


def test_adapt_preset_fine_tunes_the_bundled_model_on_a_compressed_bag(tmp_path, robot_bag):
    out = tmp_path / "adapt"
    res = subprocess.run(
        [*DEPTH_NODE, "train", "--preset", "adapt", "--data", str(robot_bag), "--image-topic",
         "/camera/image_raw/compressed", "--out", str(out), "--max-steps", "2", "--budget-min", "5", "--no-export",
         "optim.batch_size=2", "data.filter_static=false", "system.progress=false", "system.device=cpu"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "trained 2 steps" in res.stdout
    init = load_model(REPO / "models" / "default.pt")
    mf = load_model(out / "model.pt")
    assert (mf.height, mf.width) == (init.height, init.width)  # the node runs it at the init's input size
    assert mf.meta["provenance"]["mode"] == "M"
    cfg = mf.meta["provenance"]["config"]
    assert cfg["model"]["init"].endswith("default.pt") and cfg["optim"]["max_minutes"] == 5
    assert cfg["data"]["bag"]["image_topic"] == "/camera/image_raw/compressed"
    # monocular fine-tune of the stereo-trained model: the metric factor is kept, written as a metric scale
    assert mf.meta["scale"]["kind"] == "metric"
    assert mf.meta["scale"]["factor"] == pytest.approx(init.depth_scale)
    # the robot's camera (95° horizontal FOV, 4:3 at 160×120) is the model's canonical one now, at the network size:
    # f = 160 / (2 tan 47.5°) in the bag's pixels, scaled to 320 × 96 (the init's input size)
    can = mf.meta["camera"]["canonical"]
    f = 160 / (2 * math.tan(math.radians(47.5)))
    assert can["fx"] == pytest.approx(f * init.width / 160, rel=1e-4)
    assert can["fy"] == pytest.approx(f * init.height / 120, rel=1e-4) and can["source"] == "training_data"
    changed = [k for k, v in init.depth_state.items() if v.is_floating_point()
               and not np.array_equal(v.numpy(), mf.depth_state[k].numpy())]
    assert changed  # the steps moved the weights

    from depth_node.inference.estimator import DepthEstimator
    from depth_node.inference.factory import create_backend

    est = DepthEstimator(create_backend(out / "model.pt", backend="torch", device="cpu"))
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    d = est.depth(rgb).depth
    assert d.shape == (init.height, init.width)
    assert np.isfinite(d).all() and (d > 0).all()


def test_preset_and_config_are_exclusive(tmp_path):
    res = subprocess.run([*DEPTH_NODE, "train", "--out", str(tmp_path / "x")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode != 0 and "--preset" in res.stderr
    res = subprocess.run([*DEPTH_NODE, "train", "--preset", "nosuch", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "adapt" in res.stderr  # the error lists the known presets


@pytest.mark.parametrize("height_m", [0.35, 1.2])
def test_camera_height_factor_recovers_the_scale_of_rendered_depth(height_m):
    """Rendered GT depth divided by a known factor plays the network's output: the ground plane through it, at
    the true camera height, gives that factor back."""
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive
    from depth_node.train.scale_calib import camera_height_factor

    cfg = DriveConfig(seed=4, frames=8).with_kind("sidewalk")
    cfg.camera.width, cfg.camera.aspect, cfg.camera.hfov_deg, cfg.camera.height_m = 160, "4:3", 95.0, height_m
    drive = Drive(cfg)
    true_factor = 3.7
    depths = [drive.frame(i).depth / true_factor for i in range(len(drive))]
    factor, fitted = camera_height_factor(depths, [drive.intrinsics] * len(depths), height_m)
    assert fitted >= 5
    assert factor == pytest.approx(true_factor, rel=0.02)
