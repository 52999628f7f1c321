"""Randomised cameras for synthetic training drives: the draws stay in their ranges and are a pure function of
the drive seed, the rendered drive has the drawn camera, and each sample's own K reaches the warp (a warp of
rendered frames with the true per-sample K reproduces the target; with another sample's K it does not)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_node.train.config import ConfigError, TrainConfig
from depth_node.train.synth_data import drive_config, jobs_for, randomized_overrides

RANGES = {"kinds": ["street", "sidewalk", "indoor"], "hfov_deg": [40, 110], "aspects": ["10:3", "16:9", "4:3", "1:1"],
          "cx_offset": [-0.05, 0.05], "cy_offset": [-0.05, 0.05], "height_m": [0.2, 2.5], "pitch_deg": [-10, 10],
          "roll_deg": [-3, 3]}


def _cfg(randomize: dict, seeds: list[int]) -> TrainConfig:
    return TrainConfig.from_dict({"mode": "MS", "data": {"width": 320, "height": 96},
                                  "synth": {"train": {"seeds": seeds, "frames": 10, "randomize": randomize}}})


def test_draws_stay_in_range_cover_it_and_repeat_by_seed(tmp_path):
    from depth_node.train.config import CameraRandomization

    rnd = CameraRandomization(**RANGES)
    draws = [randomized_overrides({}, rnd, s) for s in range(300)]
    assert draws == [randomized_overrides({}, rnd, s) for s in range(300)]  # same seed, same camera
    cams = [d["camera"] for d in draws]
    for key in ("hfov_deg", "cx_offset", "cy_offset", "height_m", "pitch_deg", "roll_deg"):
        v = np.array([c[key] for c in cams])
        lo, hi = RANGES[key]
        assert lo <= v.min() and v.max() <= hi, key
        assert v.max() - v.min() > 0.9 * (hi - lo), key  # the range is used, not one corner of it
    h = np.log([c["height_m"] for c in cams])  # log-uniform: the median height is the geometric mean
    assert np.median(h) == pytest.approx(math.log(math.sqrt(0.2 * 2.5)), abs=0.2)
    assert {c["aspect"] for c in cams} == set(RANGES["aspects"])
    assert {d["scene"]["kind"] for d in draws} == set(RANGES["kinds"])
    assert len({c["hfov_deg"] for c in cams}) == 300  # seeds give different cameras
    # switching one setting off leaves the other draws of a seed as they were
    fewer = CameraRandomization(**{**RANGES, "aspects": []})
    assert [randomized_overrides({}, fewer, s)["camera"]["hfov_deg"] for s in range(20)] == \
        [c["hfov_deg"] for c in cams[:20]]


def test_rendered_drive_has_the_drawn_camera(tmp_path):
    cfg = _cfg(RANGES, [3, 4])
    for job in jobs_for(cfg, "train", tmp_path):
        dc = drive_config(job)
        cam = randomized_overrides({}, cfg.synth.train.randomize, job.seed)["camera"]
        assert dc.scene.kind == randomized_overrides({}, cfg.synth.train.randomize, job.seed)["scene"]["kind"]
        assert dc.camera.height_m == cam["height_m"]  # the drawn height wins over the kind's preset
        K = dc.camera.intrinsics()
        a, b = map(int, cam["aspect"].split(":"))
        assert (K.width, K.height) == (320, max(8, round(320 * b / a)))
        assert K.fx == pytest.approx(K.width / (2 * math.tan(math.radians(cam["hfov_deg"]) / 2)))
        assert K.cx == pytest.approx((K.width - 1) / 2 + cam["cx_offset"] * K.width)


@pytest.mark.parametrize("bad", [{"hfov_deg": [110, 40]}, {"height_m": [0.2]}, {"aspects": ["5:4"]},
                                 {"kinds": ["forest"]}])
def test_bad_randomization_names_the_key(bad):
    with pytest.raises(ConfigError, match=r"synth\.train\.randomize"):
        _cfg(bad, [1])


STRIDE = 3  # frames between target and source: a larger motion makes a wrong K show


def _sequence(seed: int, overrides: dict, width: int, height: int):
    from depth_node.sim.config import DriveConfig
    from depth_node.train.data import build_sequence
    from depth_node.train.sources import SimDriveSource

    dc = DriveConfig.from_dict(overrides)
    dc.seed, dc.frames = seed, 2 * STRIDE + 1
    dc.traffic.lead_cars = dc.traffic.oncoming_cars = 0  # a static world: the GT pose explains every pixel
    dc.camera.width = width
    src = SimDriveSource(dc)
    return build_sequence(src, width, height, need_seg=False), src


def test_each_sample_carries_its_own_K_to_the_warp():
    """Two drives with very different cameras in one batch, warped with GT depth and GT motion through the
    training geometry: the batch's per-sample K reproduces each target; the other sample's K does not."""
    from depth_node.train.data import TripletDataset
    from depth_node.train.geometry import synthesize

    W, H = 128, 64
    cams = [({"scene": {"kind": "street"}, "camera": {"hfov_deg": 45, "height": H, "height_m": 1.2}}, 21),
            ({"scene": {"kind": "indoor"}, "camera": {"hfov_deg": 105, "aspect": "1:1", "cx_offset": 0.08,
                                                      "pitch_deg": 6}}, 22)]
    seqs, srcs = zip(*[_sequence(seed, ov, W, H) for ov, seed in cams])
    cfg = TrainConfig.from_dict({"mode": "M", "data": {"width": W, "height": H, "filter_static": False,
                                                       "both_sides": False, "frame_stride": STRIDE}})
    ds = TripletDataset(list(seqs), cfg, train=False)
    idx = [next(k for k, r in enumerate(ds.items) if r.seq == s) for s in (0, 1)]
    items = [ds[k] for k in idx]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("color", "K", "inv_K")}
    depth, motion = [], []
    for k, src in zip(idx, srcs):
        t = ds.items[k].frame
        f0, f1 = src.frame(t), src.drive.frame(t + STRIDE)
        ys = ((np.arange(H) + 0.5) * f0.depth.shape[0] / H).astype(int)  # pixel centres
        xs = ((np.arange(W) + 0.5) * f0.depth.shape[1] / W).astype(int)
        depth.append(np.minimum(f0.depth[np.ix_(ys, xs)], 1e3))  # nearest resize; sky far away
        T = np.linalg.inv(f1.pose) @ f0.pose  # target → source (t + stride) camera
        assert np.linalg.norm(T[:3, 3]) > 0.05  # the camera moved
        motion.append(T)
    depth_t = torch.from_numpy(np.stack(depth)).float()[:, None]
    T_t = torch.from_numpy(np.stack(motion)).float()
    target, source = batch["color"][:, 0], batch["color"][:, 2]  # offsets [0, −stride, +stride]

    _, grid = synthesize(source, depth_t, batch["K"], batch["inv_K"], T_t)
    inside = (grid.abs() < 1).all(-1)[:, None].float()  # pixels the true motion keeps in view

    def error(K: torch.Tensor, inv_K: torch.Tensor) -> np.ndarray:
        warped, _ = synthesize(source, depth_t, K, inv_K, T_t)
        return (((warped - target).abs() * inside).sum(dim=(1, 2, 3)) / (3 * inside.sum(dim=(1, 2, 3)))).numpy()

    still = (((source - target).abs() * inside).sum(dim=(1, 2, 3)) / (3 * inside.sum(dim=(1, 2, 3)))).numpy()
    right = error(batch["K"], batch["inv_K"])
    swapped = error(batch["K"][[1, 0]], batch["inv_K"][[1, 0]])
    assert not torch.allclose(batch["K"][0], batch["K"][1])
    assert (right < 0.6 * swapped).all() and (right < 0.6 * still).all(), (right, swapped, still)
