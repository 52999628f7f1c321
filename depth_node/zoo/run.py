"""One zoo camera end to end: render its held-out drive as an MCAP bag (as `depth-node demo` does), run the node's
frame core over it offline with the node's default parameters (`ros.bag_runner.run_offline`, the path of
`eval-bag --offline`), and score the recorded outputs with `evaluate.bag_score` (which also writes the camera's
own report.html and metrics.json). The row keeps the figures the acceptance judges."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depth_node.evaluate.depth_metrics import EVAL_MAX_DEPTH
from depth_node.zoo.cameras import ZooCamera

IMAGE, CAMERA_INFO = "/camera/image_raw", "/camera/camera_info"
GT_DEPTH, GT_ODOM = "/ground_truth/depth", "/ground_truth/odom"
SAMPLES = 3  # per-camera report; the zoo page shows the middle one


@dataclass(frozen=True)
class ZooSettings:
    frames: int = 60  # frames of each drive at 10 Hz
    width: int = 640  # render width; the height follows the camera's aspect ratio
    max_depth: float = EVAL_MAX_DEPTH
    scale_warmup_s: float = 2.0  # as eval-bag: scale sources settle before the depth-scale error is judged
    progress: bool = True


def render_bag(cam: ZooCamera, settings: ZooSettings, out: Path) -> Path:
    """The camera's held-out drive as an MCAP bag in `out`; reused when a previous run rendered the same config."""
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.writers import cached_drive

    cfg = DriveConfig(seed=cam.seed, frames=settings.frames).with_overrides(cam.overrides(settings.width))
    return cached_drive(cfg, out, settings.progress)


def run_camera(cam: ZooCamera, model: str, params: dict[str, Any], settings: ZooSettings, out: Path) -> dict:
    """Render, run and score one camera; its report lands in `out`, its drive in `out/drive`."""
    from depth_node.evaluate.bag_score import ScoreSettings, score_run
    from depth_node.ros.bag_runner import run_offline

    bag = render_bag(cam, settings, out / "drive")
    params = camera_params(cam, params)
    result = run_offline(bag, out / "outputs", image=IMAGE, camera_info=CAMERA_INFO, params=params,
                         progress=settings.progress)
    score = ScoreSettings(image=IMAGE, gt_depth=GT_DEPTH, gt_odom=GT_ODOM, max_depth=settings.max_depth,
                          samples=SAMPLES, scale_warmup_s=settings.scale_warmup_s)
    metrics = score_run(bag, result, out, score, title=f"depth_node on zoo camera {cam.name} ({cam.describe()})",
                        notes=(f"Held-out drive seed {cam.seed}, {settings.frames} frames at 10 Hz.",), params=params)
    return camera_row(cam, metrics, out)


def camera_params(cam: ZooCamera, params: dict[str, Any]) -> dict[str, Any]:
    """The node's parameters for one camera: the ground-plane scale source gets the camera's own mounting height
    (as a robot's parameter file would), unless `params` set one for every camera."""
    return {"ground_plane.camera_height": cam.height_m, **params}


def camera_row(cam: ZooCamera, metrics: dict, out: Path) -> dict:
    """The figures of one camera: metric abs_rel, depth-scale error (median GT / published depth − 1, after the
    warm-up when the drive is long enough, else over every frame), odometry ATE (SE(3)) % of path, t_rel, r_rel."""
    h, ds = metrics["headline"], metrics.get("depth_scale", {})
    after = bool(ds.get("frames_after_warmup"))
    ratio = ds.get("ratio_median") if after else ds.get("ratio_median_all")
    sample = out / f"sample_{SAMPLES // 2}.png"
    if not sample.is_file():
        sample = out / "sample_0.png"
    return {
        "camera": {"seed": cam.seed, "scene": cam.kind, "layout": cam.layout or None, "hfov_deg": cam.hfov_deg,
                   "aspect": cam.aspect, "height_m": cam.height_m, "pitch_deg": cam.pitch_deg,
                   "describe": cam.describe(), **_image_of(out / "drive")},
        "abs_rel": h["abs_rel"], "a1": h["a1"], "rmse": h["rmse"],
        "depth_scale_ratio": ratio,
        "depth_scale_error": None if ratio is None else ratio - 1.0,
        "depth_scale_frames": "after warm-up" if after else "all frames (drive shorter than the warm-up)",
        "ate_se3_pct_of_path": h["ate_se3_pct_of_path"], "t_rel_pct": h["t_rel_pct"],
        "r_rel_deg_per_100m": h["r_rel_deg_per_100m"], "gt_path_length_m": h["gt_path_length_m"],
        "frames_scored": metrics.get("depth", {}).get("counts", {}).get("images"),
        "frames_out": metrics["counts"]["depth_out"],
        "report": str(out / "report.html"), "sample": str(sample) if sample.is_file() else None,
    }


def _image_of(bag: Path) -> dict[str, Any]:
    """Resolution and focal length of the rendered camera, from the drive's manifest."""
    m = json.loads((bag / "manifest.json").read_text())
    return {"resolution": m["resolution"], "fx_px": m["intrinsics"]["fx"]}
