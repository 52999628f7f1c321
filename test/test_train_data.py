"""Training config validation, data sources (synthetic KITTI folder, real KITTI sample, frame folder, MCAP bag,
video), samples (intrinsics per scale, flips, stereo sign, augmentation) and the resumable sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depth_node.train.config import ConfigError, TrainConfig
from depth_node.train.data import EpochBatchSampler, TripletDataset, build_sequence, scaled_K
from depth_node.train.intrinsics_file import read_intrinsics_file
from depth_node.train.sources import DataError, open_sources

W, H = 192, 64


# ------------------------------------------------------------------------------------------------- config


def test_config_defaults_are_the_reference_recipe():
    cfg = TrainConfig()
    assert (cfg.mode, cfg.data.width, cfg.data.height, cfg.optim.batch_size, cfg.optim.lr) == ("M", 640, 192, 12, 1e-4)
    assert cfg.loss.smoothness == 1e-3 and cfg.loss.ssim_weight == 0.85 and cfg.model.scales == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "data, overrides, message",
    [
        ({"optim": {"lrr": 1e-4}}, [], "unknown config key 'optim.lrr' (did you mean 'lr'?)"),
        ({"optimizer": {}}, [], "unknown config key 'optimizer' (did you mean 'optim'?)"),
        ({"optim": {"lr": "fast"}}, [], "config key 'optim.lr' must be a number, got 'fast'"),
        ({"optim": {"batch_size": 2.5}}, [], "config key 'optim.batch_size' must be an integer"),
        ({"data": {"width": 300}}, [], "'data.width': must be a multiple of 32 and at least 64"),
        ({}, ["data.height=32"], "nearest: 64"),
        ({}, ["data.height=100"], "nearest: 96"),
        ({"mode": "X"}, [], "'mode': must be one of M, S, MS"),
        ({"loss": {"automask": "yes"}}, [], "'loss.automask' must be true or false"),
        ({}, ["optim.lr"], "must look like section.key=value"),
        ({}, ["data.nope=1"], "unknown config key 'data.nope'"),
        ({"data": 3}, [], "'data' is a section"),
    ],
)
def test_config_errors_name_the_key(tmp_path, data, overrides, message):
    import yaml

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        TrainConfig.from_yaml(p, overrides)
    assert message in str(exc.value)


def test_config_overrides_parse_yaml_values():
    over = ["optim.lr=5e-5", "model.scales=[0, 1]", "data.train=a,b", "synth.train.seeds=[3]"]
    cfg = TrainConfig().with_overrides(over)
    assert cfg.optim.lr == 5e-5 and cfg.model.scales == [0, 1] and cfg.data.train == ["a", "b"]
    assert cfg.synth is not None and cfg.synth.train.seeds == [3]


def test_shipped_configs_load():
    repo = Path(__file__).resolve().parents[1]
    shipped = sorted(p.name for p in (repo / "config").glob("train_*.yaml"))
    assert len(shipped) >= 7, shipped
    for name in shipped:
        cfg = TrainConfig.from_yaml(repo / "config" / name)
        assert cfg.data.width % 32 == 0
    assert TrainConfig.from_yaml(repo / "config" / "train_metric_fast_gpu.yaml").metric.preset == "fast"
    assert TrainConfig.from_yaml(repo / "config" / "train_mono_stereo.yaml").mode == "MS"
    metric = TrainConfig.from_yaml(repo / "config" / "train_metric_small.yaml")
    assert metric.is_metric and not metric.use_temporal and not metric.use_stereo and metric.metric.preset == "small"


# ------------------------------------------------------------------------------------------------ sources


@pytest.fixture(scope="module")
def kitti_dir(tmp_path_factory) -> Path:
    """A stereo synthetic drive written by the sim's KITTI writer (9 frames, 192×64, with labels)."""
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive
    from depth_node.sim.writers import write_drive

    cfg = DriveConfig(seed=5, frames=9)
    cfg.camera.width, cfg.camera.height, cfg.camera.stereo = W, H, True
    out = tmp_path_factory.mktemp("kitti") / "drive"
    write_drive(Drive(cfg), out, "kitti")
    return out


def _cfg(mode: str = "MS", **data) -> TrainConfig:
    return TrainConfig.from_dict({"mode": mode, "data": {"width": W, "height": H, "filter_static": False, **data}})


def test_synthetic_kitti_folder_gives_stereo_depth_and_segments(kitti_dir):
    (src,) = open_sources(str(kitti_dir))
    assert len(src) == 9 and src.baseline_m == pytest.approx(0.54)
    assert src.has_depth and src.has_seg
    seq = build_sequence(src, W, H, need_right=True, need_depth=True)
    assert seq.rgb.shape == (9, H, W, 3) and seq.rgb_right.shape == (9, H, W, 3)
    assert seq.seg.dtype == np.int32 and seq.seg.min() >= 0 and len(np.unique(seq.seg[0])) > 3
    assert seq.depth is not None and np.isfinite(seq.depth[0]).any()
    K = scaled_K(seq.K_norm, W, H, 0)
    assert K[0, 0] == pytest.approx(src.intrinsics.fx * W / src.intrinsics.width)
    assert scaled_K(seq.K_norm, W, H, 2)[0, 0] == pytest.approx(K[0, 0] / 4)


def test_disk_cache_round_trips(kitti_dir, tmp_path):
    (src,) = open_sources(str(kitti_dir))
    a = build_sequence(src, W, H, "disk", tmp_path, need_right=True, need_depth=True)
    b = build_sequence(src, W, H, "disk", tmp_path, need_right=True, need_depth=True)  # cache hit
    assert isinstance(b.rgb, np.memmap)
    np.testing.assert_array_equal(np.asarray(a.rgb), np.asarray(b.rgb))
    np.testing.assert_array_equal(a.depth[3], b.depth[3])


def test_real_kitti_sample_reads_with_calibration():
    from conftest import require_shared

    root = require_shared("realdata/kitti_raw_2011_09_26_drive_0001")
    (src,) = open_sources(str(root))
    assert len(src) == 8 and src.baseline_m == pytest.approx(0.537, abs=0.01)
    assert src.intrinsics.fx == pytest.approx(721.5377)
    seq = build_sequence(src, 416, 128, need_right=True)
    ds = TripletDataset([seq], TrainConfig.from_dict({"mode": "MS", "data": {"width": 416, "height": 128}}))
    assert len(ds) > 0  # the car drives at ~13 m/s: no triplet is static


def test_frame_folder_with_intrinsics_file(tmp_path, kitti_dir):
    from PIL import Image

    (src,) = open_sources(str(kitti_dir))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(src.read(i)).save(folder / f"f{i:03d}.png")
    with pytest.raises(DataError, match="intrinsics"):
        open_sources(str(folder))
    (folder / "intrinsics.yaml").write_text("fx: 100\nfy: 100\ncx: 96\ncy: 32\nwidth: 192\nheight: 64\n")
    (f,) = open_sources(str(folder))
    assert len(f) == 5 and f.intrinsics.fx == 100 and not f.has_right
    # a ROS camera_info file calibrated at twice the size scales down to the images
    ci = tmp_path / "ci.yaml"
    ci.write_text("image_width: 384\nimage_height: 128\ncamera_matrix: {data: [200, 0, 192, 0, 200, 64, 0, 0, 1]}\n")
    intr, _ = read_intrinsics_file(ci, 192, 64)
    assert (intr.fx, intr.cx, intr.cy) == (100, 96, 32)


def test_mcap_bag_source_pairs_stereo(tmp_path):
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive
    from depth_node.sim.writers import write_drive

    cfg = DriveConfig(seed=2, frames=5)
    cfg.camera.width, cfg.camera.height, cfg.camera.stereo = W, H, True
    write_drive(Drive(cfg), tmp_path / "bag", "mcap")
    (src,) = open_sources(str(tmp_path / "bag"), bag_cfg=TrainConfig().data.bag)
    assert src.baseline_m == pytest.approx(0.54, rel=1e-3)
    assert src.intrinsics.width == W
    seq = build_sequence(src, W, H, need_right=True)
    assert len(seq) == 5 and seq.rgb_right is not None
    d = Drive(cfg).frame(2)
    assert np.abs(seq.rgb[2].astype(int) - d.rgb.astype(int)).max() == 0


def test_video_without_pyav_says_how_to_install(tmp_path):
    try:
        import av  # noqa: F401

        pytest.skip("PyAV is installed")
    except ImportError:
        pass
    v = tmp_path / "drive.mp4"
    v.write_bytes(b"\x00" * 16)
    with pytest.raises(DataError, match="pip install av"):
        open_sources(str(v))


# ------------------------------------------------------------------------------------------------- samples


@pytest.fixture(scope="module")
def stereo_seq(kitti_dir):
    (src,) = open_sources(str(kitti_dir))
    return build_sequence(src, W, H, need_right=True, need_depth=False)


def test_sample_layout_and_stereo_sign(stereo_seq):
    cfg = _cfg("MS", both_sides=True)
    ds = TripletDataset([stereo_seq], cfg)
    assert len(ds) == 2 * 7  # frames 1..7 as targets, left and right
    s = ds[0]
    assert s["color"].shape == (3, 3, H, W) and s["color_s"].shape == (3, H, W)
    assert s["K_scales"].shape == (4, 4, 4)
    left = next(i for i, r in enumerate(ds.items) if not r.right)
    right = next(i for i, r in enumerate(ds.items) if r.right)
    # left target: the right camera sits at +x, so target points move by −baseline (nominal 0.1)
    assert ds[left]["stereo_T"][0, 3].item() == pytest.approx(-0.1)
    assert ds[right]["stereo_T"][0, 3].item() == pytest.approx(0.1)
    assert torch.equal(ds[left]["color_s"], ds[right]["color"][0])


def test_flip_mirrors_images_masks_intrinsics_and_baseline(stereo_seq):
    cfg = _cfg("MS", both_sides=False).with_overrides(["augment.flip_p=1.0", "augment.color_jitter_p=0.0"])
    ds = TripletDataset([stereo_seq], cfg)
    plain, flipped = ds[2], ds[(2, 123)]
    assert torch.equal(flipped["color"], plain["color"].flip(-1))
    assert torch.equal(flipped["seg"], plain["seg"].flip(-1))
    assert torch.equal(flipped["color_s"], plain["color_s"].flip(-1))
    assert flipped["stereo_T"][0, 3].item() == pytest.approx(-plain["stereo_T"][0, 3].item())
    cx, cxf = plain["K"][0, 2].item(), flipped["K"][0, 2].item()
    assert cxf == pytest.approx(W - 1 - cx, abs=1e-4)


def test_colour_jitter_only_touches_network_inputs(stereo_seq):
    cfg = _cfg("M").with_overrides(["augment.flip_p=0.0", "augment.color_jitter_p=1.0"])
    ds = TripletDataset([stereo_seq], cfg)
    plain, aug = ds[1], ds[(1, 7)]
    assert torch.equal(plain["color"], aug["color"])
    assert not torch.equal(aug["color"], aug["color_aug"])
    assert aug["color_aug"].min() >= 0 and aug["color_aug"].max() <= 1
    # one draw for the whole sample: the same brightness/contrast/… on every frame
    again = ds[(1, 7)]
    assert torch.equal(again["color_aug"], aug["color_aug"])
    ratio = (aug["color_aug"] + 1e-3) / (aug["color"] + 1e-3)
    assert ratio.mean((1, 2, 3)).std() < 0.05


def test_hue_jitter_matches_colorsys():
    import colorsys

    from depth_node.train.augment import adjust_hue

    rgb = torch.rand(3, 4, 5)
    out = adjust_hue(rgb, 0.1)
    r, g, b = rgb[:, 1, 2].tolist()
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    expect = colorsys.hsv_to_rgb((h + 0.1) % 1.0, s, v)
    assert out[:, 1, 2].tolist() == pytest.approx(expect, abs=1e-5)


def test_static_triplets_are_filtered():
    from depth_node.train.data import CachedSequence

    rgb = np.random.default_rng(0).integers(0, 255, (6, H, W, 3), dtype=np.uint8)
    rgb[3] = rgb[2]  # camera stood still between frames 2 and 3
    from depth_node.train.data import thumbnail

    seq = CachedSequence("s", np.eye(4), None, 6, W, H, rgb=rgb, thumbs=np.stack([thumbnail(f) for f in rgb]))
    ds = TripletDataset([seq], _cfg("M", filter_static=True))
    assert sorted(r.frame for r in ds.items) == [1, 4] and ds.n_static == 2


def test_sampler_is_deterministic_sharded_and_resumable():
    full = list(EpochBatchSampler(50, 4, seed=1, epoch=3))
    assert len(full) == 12 and full == list(EpochBatchSampler(50, 4, seed=1, epoch=3))
    assert full != list(EpochBatchSampler(50, 4, seed=1, epoch=4))
    assert list(EpochBatchSampler(50, 4, seed=1, epoch=3, start=5)) == full[5:]
    r0 = list(EpochBatchSampler(50, 4, 1, 3, rank=0, world=2))
    r1 = list(EpochBatchSampler(50, 4, 1, 3, rank=1, world=2))
    idx = [k for b in r0 + r1 for k, _ in b]
    assert len(r0) == len(r1) == 6 and len(set(idx)) == len(idx)

