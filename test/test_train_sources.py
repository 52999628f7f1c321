"""Training data sources refuse what they cannot train on correctly, saying what to do: intrinsics that cannot be
pixels (normalised ones), frame folders mixing image sizes; and a bag recorded without CameraInfo trains with
`data.intrinsics`. Tiny data written here (PIL frames, a bag of raw images via `io.bags.BagWriter`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from depth_node.train.config import TrainConfig
from depth_node.train.data import build_sequence
from depth_node.train.intrinsics_file import read_intrinsics_file
from depth_node.train.sources import DataError, open_sources

W, H = 96, 48


def _frames(folder: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i, (w, h) in enumerate(sizes):
        p = folder / f"{i:06d}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        out.append(p)
    return out


# --------------------------------------------------------------------------------------------- intrinsics


NORMALISED = "fx: 0.4195\nfy: 0.7459\ncx: 0.498\ncy: 0.4965\n"


def test_normalised_intrinsics_in_a_folder_are_refused_with_the_pixel_values(tmp_path):
    folder = tmp_path / "frames"
    _frames(folder, [(W, H)] * 3)
    (folder / "intrinsics.yaml").write_text(NORMALISED)
    with pytest.raises(DataError) as exc:
        open_sources(str(folder))
    msg = str(exc.value)
    assert "look normalised (divided by the image size)" in msg and "give pixels" in msg
    assert f"fx = 0.4195 × width = {0.4195 * W:.2f}" in msg and f"cy = 0.4965 × height = {0.4965 * H:.2f}" in msg
    assert "intrinsics.yaml" in msg


@pytest.mark.parametrize(
    "name, text",
    [
        ("i.yaml", NORMALISED + f"width: {W}\nheight: {H}\n"),
        ("i.json", '{"K": [0.58, 0, 0.5, 0, 1.92, 0.5, 0, 0, 1], "width": 640, "height": 192}'),
        ("i.txt", "0.58 1.92 0.5 0.5"),
        ("i.txt", "0.58 0 0.5 0 1.92 0.5 0 0 1"),
        ("ci.yaml", "image_width: 640\nimage_height: 192\n"
                    "camera_matrix: {data: [0.58, 0, 0.5, 0, 1.92, 0.5, 0, 0, 1]}\n"),
    ],
)
def test_normalised_intrinsics_are_refused_in_every_format(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError, match=r"these look normalised \(divided by the image size\); give pixels: fx = "):
        read_intrinsics_file(p, W, H)


@pytest.mark.parametrize(
    "text, message",
    [
        ("fx: 2\nfy: 2\ncx: 48\ncy: 24\n", "cannot be pixels of a 96×48 image"),  # fx < 5 % of the width
        ("fx: 80\nfy: 80\ncx: 150\ncy: 24\n", "principal point (cx, cy) lies outside the 96×48 image"),
        ("fx: 80\nfy: 80\ncx: 48\ncy: -3\n", "principal point (cx, cy) lies outside the 96×48 image"),
    ],
)
def test_intrinsics_that_cannot_be_pixels_are_refused(tmp_path, text, message):
    p = tmp_path / "intrinsics.yaml"
    p.write_text(text)
    with pytest.raises(DataError) as exc:
        read_intrinsics_file(p, W, H)
    assert message in str(exc.value) and "normalised" not in str(exc.value)


@pytest.mark.parametrize(
    "name, text",
    [
        ("i.yaml", "fx: 80\nfy: 80\ncx: 48\ncy: 24\n"),  # no size: the images'
        ("i.yaml", "fx: 160\nfy: 160\ncx: 96\ncy: 48\nwidth: 192\nheight: 96\nbaseline: 0.12\n"),
        ("i.json", '{"K": [[160, 0, 96], [0, 160, 48], [0, 0, 1]], "width": 192, "height": 96}'),
        ("ci.yaml", "image_width: 192\nimage_height: 96\ncamera_matrix: {data: [160, 0, 96, 0, 160, 48, 0, 0, 1]}\n"
                    "projection_matrix: {data: [160, 0, 96, -19.2, 0, 160, 48, 0, 0, 0, 1, 0]}\n"),
        ("i.txt", "80 80 48 24"),
        ("i.txt", "160 160 96 48 192 96"),
        ("K.txt", "80 0 48\n0 80 24\n0 0 1\n"),  # 9 numbers, no size: the images'
    ],
)
def test_documented_pixel_formats_are_still_accepted(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    intr, baseline = read_intrinsics_file(p, W, H)
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (80, 80, 48, 24, W, H)
    assert baseline == (pytest.approx(0.12) if "0.12" in text or "-19.2" in text else None)


# ------------------------------------------------------------------------------------------ folder sizes


def test_folder_mixing_image_sizes_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "mixed"
    files = _frames(folder, [(W, H)] * 3 + [(2 * W, 2 * H)] + [(W, H)])
    (folder / "intrinsics.yaml").write_text(f"fx: 80\nfy: 80\ncx: 48\ncy: 24\nwidth: {W}\nheight: {H}\n")
    with pytest.raises(DataError) as exc:
        open_sources(str(folder))
    msg = str(exc.value)
    assert str(files[3]) in msg and f"{2 * W}×{2 * H}" in msg
    assert str(files[0]) in msg and f"{W}×{H}" in msg
    assert str(files[4]) not in msg  # the first offending file only


def test_stereo_folder_with_right_frames_of_another_size_is_refused(tmp_path):
    folder = tmp_path / "stereo"
    _frames(folder / "left", [(W, H)] * 3)
    right = _frames(folder / "right", [(W, H), (W + 32, H), (W, H)])
    (folder / "intrinsics.yaml").write_text("fx: 80\nfy: 80\ncx: 48\ncy: 24\nbaseline: 0.1\n")
    with pytest.raises(DataError, match=re.escape(f"{right[1]} is {W + 32}×{H}")):
        open_sources(str(folder))


def test_folder_of_one_size_still_opens(tmp_path):
    folder = tmp_path / "ok"
    _frames(folder, [(W, H)] * 4)
    (folder / "intrinsics.yaml").write_text("fx: 160\nfy: 160\ncx: 96\ncy: 48\nwidth: 192\nheight: 96\n")
    (src,) = open_sources(str(folder))
    assert len(src) == 4 and (src.intrinsics.fx, src.intrinsics.width) == (80, W)


# -------------------------------------------------------------------------------------------------- bags

IMAGE_TOPIC = "/camera/image_raw"


def _bag(path: Path, frames: int = 4, camera_info: bool = False) -> Path:
    """A bag of `frames` rgb8 images (W × H) on IMAGE_TOPIC; with `camera_info`, a CameraInfo (fx = 40) beside it."""
    from depth_node.geometry.camera import Intrinsics
    from depth_node.io.bags import BagWriter, header, typestore
    from depth_node.io.image_codec import encode_image
    from depth_node.sim.writers import camera_info as info_msg

    types = typestore().types
    rng = np.random.default_rng(1)
    with BagWriter(path) as bag:
        for i in range(frames):
            stamp = 1_700_000_000_000_000_000 + i * 100_000_000
            enc = encode_image(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), "rgb8")
            msg = types["sensor_msgs/msg/Image"](header=header(stamp, "camera"), height=enc.height, width=enc.width,
                                                 encoding=enc.encoding, is_bigendian=0, step=enc.step, data=enc.data)
            bag.write(IMAGE_TOPIC, stamp, msg)
            if camera_info:
                bag.write("/camera/camera_info", stamp,
                          info_msg(Intrinsics(40, 40, 48, 24, W, H), header(stamp, "camera")))
    return path


@pytest.fixture(scope="module")
def noinfo_bag(tmp_path_factory) -> Path:
    return _bag(tmp_path_factory.mktemp("bags") / "noinfo")


def test_bag_without_camera_info_says_to_pass_intrinsics(noinfo_bag):
    with pytest.raises(DataError) as exc:
        open_sources(str(noinfo_bag), bag_cfg=TrainConfig().data.bag)
    assert str(exc.value) == (f"{noinfo_bag} has no sensor_msgs/CameraInfo topic for {IMAGE_TOPIC}; pass "
                              "data.intrinsics=FILE (fx, fy, cx, cy in pixels) or --camera-info-topic")


def test_bag_without_camera_info_trains_with_an_intrinsics_file(noinfo_bag, tmp_path):
    from depth_node.train import bag_frames

    f = tmp_path / "intrinsics.yaml"  # calibrated at twice the bag's size: scaled to it
    f.write_text(f"fx: 150\nfy: 140\ncx: 95\ncy: 47\nwidth: {2 * W}\nheight: {2 * H}\n")
    cfg = TrainConfig().data.bag
    plan = bag_frames.plan(noinfo_bag, cfg, with_right=False, intrinsics_file=f)
    assert plan.image_topic == IMAGE_TOPIC and plan.count == 4
    assert (plan.intrinsics.fx, plan.intrinsics.fy, plan.intrinsics.cx, plan.intrinsics.cy) == (75, 70, 47.5, 23.5)
    assert (plan.intrinsics.width, plan.intrinsics.height) == (W, H)
    (src,) = open_sources(str(noinfo_bag), str(f), bag_cfg=cfg, want_right=False)
    assert src.intrinsics == plan.intrinsics
    seq = build_sequence(src, 64, 32)
    assert len(seq) == 4 and seq.rgb.shape == (4, 32, 64, 3)
    K = seq.K_norm
    assert K[0, 0] == pytest.approx(75 / W) and K[1, 1] == pytest.approx(70 / H)


def test_bag_intrinsics_file_without_size_takes_the_bag_images_size(noinfo_bag, tmp_path):
    f = tmp_path / "K.txt"
    f.write_text("60 60 48 24")
    (src,) = open_sources(str(noinfo_bag), str(f), bag_cfg=TrainConfig().data.bag, want_right=False)
    assert (src.intrinsics.fx, src.intrinsics.width, src.intrinsics.height) == (60, W, H)


def test_bag_intrinsics_file_is_checked_like_a_folders(noinfo_bag, tmp_path):
    f = tmp_path / "intrinsics.yaml"
    f.write_text(NORMALISED)
    with pytest.raises(DataError, match="these look normalised"):
        open_sources(str(noinfo_bag), str(f), bag_cfg=TrainConfig().data.bag, want_right=False)


def test_bag_intrinsics_file_replaces_camera_info(tmp_path):
    bag = _bag(tmp_path / "withinfo", camera_info=True)
    cfg = TrainConfig().data.bag
    (src,) = open_sources(str(bag), bag_cfg=cfg, want_right=False)
    assert src.intrinsics.fx == 40  # the CameraInfo
    f = tmp_path / "intrinsics.yaml"
    f.write_text("fx: 80\nfy: 80\ncx: 48\ncy: 24\n")
    (src,) = open_sources(str(bag), str(f), bag_cfg=cfg, want_right=False)
    assert src.intrinsics.fx == 80
