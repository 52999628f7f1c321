"""Distorted input end to end (issue 17): a synthetic drive rendered through a plumb_bob lens (D in
camera_info, ground truth on the undistorted grid) run through the node's frame core with `rectify: auto`
scores within 10 % of the same drive rendered undistorted; with `rectify: false` it does measurably worse
(so the test can fail). Offline runner, the shipped default model, a short drive at 640×192."""

from __future__ import annotations

from pathlib import Path

import pytest

from depth_node.evaluate.bag_score import ScoreSettings, score_run
from depth_node.ros.bag_runner import run_offline
from depth_node.sim.config import DriveConfig
from depth_node.sim.drive import Drive
from depth_node.sim.writers import write_drive

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "default.pt"
D = (-0.3, 0.1, 0.0, 0.0, 0.0)  # strong barrel distortion, about KITTI's raw lens

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="the shipped default model is not installed")


def _drive(out: Path, distortion: tuple[float, ...]) -> Path:
    cfg = DriveConfig(seed=9002, frames=8)
    cfg.camera.width, cfg.camera.height = 640, 192
    cfg.camera.distortion = distortion
    write_drive(Drive(cfg), out, "mcap", labels=False)
    return out


def _abs_rel(bag: Path, tmp: Path, rectify: str) -> float:
    params = {"model": str(MODEL), "backend": "onnxruntime", "rectify": rectify}
    run = run_offline(bag, tmp / "outputs", image="/camera/image_raw", camera_info=None, params=params,
                      progress=False)
    m = score_run(bag, run, tmp / "report", ScoreSettings(image="/camera/image_raw", gt_depth="/ground_truth/depth"))
    return float(m["depth"]["metrics"]["abs_rel"])


def test_rectify_auto_scores_like_an_undistorted_camera(tmp_path) -> None:
    plain = _abs_rel(_drive(tmp_path / "plain", (0.0,) * 5), tmp_path / "p", "auto")
    bent = _drive(tmp_path / "bent", D)
    auto = _abs_rel(bent, tmp_path / "a", "auto")
    off = _abs_rel(bent, tmp_path / "f", "false")
    assert abs(auto - plain) <= 0.10 * plain, (plain, auto, off)
    assert off > auto * 1.05, (plain, auto, off)
