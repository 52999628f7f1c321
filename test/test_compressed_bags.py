"""Compressed camera bags end to end: `synth --format mcap --compressed` writes sensor_msgs/CompressedImage
(JPEG) on `<image>/compressed` as image_transport records it; the training bag source, eval-bag's frame
sampling and `play` read them. Frames are checked against the raw bag of the same seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from depth_node.io.bags import open_bag, summarize
from depth_node.io.image_codec import decode_image, decode_rgb

HERE = Path(__file__).parent
DEPTH_NODE = [sys.executable, "-m", "depth_node.cli"]
RAW, COMPRESSED = "/camera/image_raw", "/camera/image_raw/compressed"
FRAMES = 4


def _synth(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DEPTH_NODE, "synth", "--out", str(out), "--frames", str(FRAMES), "--seed", "7",
                           "--format", "mcap", "--width", "160", "--height", "48", "--no-progress", "--workers", "1",
                           "--no-labels", *extra], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compressed")
    out = {"raw": root / "raw", "jpeg": root / "jpeg"}
    for name, extra in (("raw", ()), ("jpeg", ("--compressed",))):
        res = _synth(out[name], *extra)
        assert res.returncode == 0, res.stderr
    return out


def _frames(path: Path, topic: str) -> dict[int, np.ndarray]:
    with open_bag(path) as bag:
        return {m.stamp_ns: decode_rgb(m.msg) for m in bag.messages([topic])}


def test_synth_writes_jpeg_on_the_image_transport_topic(bags) -> None:
    topics = {t["topic"]: t for t in summarize(bags["jpeg"])["topics"]}
    assert topics[COMPRESSED]["type"] == "sensor_msgs/msg/CompressedImage"
    assert topics[COMPRESSED]["count"] == FRAMES and RAW not in topics
    assert "/camera/camera_info" in topics and "/ground_truth/depth" in topics
    with open_bag(bags["jpeg"]) as bag:
        m = next(iter(bag.messages([COMPRESSED]))).msg
    assert m.format == "jpeg" and bytes(m.data[:3]) == b"\xff\xd8\xff"
    assert len(m.data) < 160 * 48 * 3 / 2  # actually compressed


def test_jpeg_frames_match_the_raw_bag(bags) -> None:
    """Same seed, same frames: JPEG at quality 95 keeps them within 3 levels on average and > 30 dB PSNR."""
    raw, jpeg = _frames(bags["raw"], RAW), _frames(bags["jpeg"], COMPRESSED)
    assert sorted(raw) == sorted(jpeg) and len(raw) == FRAMES
    for stamp, ref in raw.items():
        diff = jpeg[stamp].astype(np.float64) - ref
        psnr = 10 * np.log10(255.0**2 / max(np.mean(diff**2), 1e-12))
        assert np.abs(diff).mean() <= 3.0 and psnr > 30.0, (stamp, np.abs(diff).mean(), psnr)


def test_compressed_needs_a_bag(tmp_path: Path) -> None:
    res = subprocess.run([*DEPTH_NODE, "synth", "--out", str(tmp_path / "k"), "--frames", "1", "--format", "kitti",
                          "--compressed", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "--format mcap" in res.stderr


def test_training_bag_source_reads_compressed_bags(bags) -> None:
    from depth_node.train import bag_frames

    cfg = SimpleNamespace(max_sync_dt=0.005)
    plan = bag_frames.plan(bags["jpeg"], cfg, with_right=False)
    assert plan.image_topic == COMPRESSED and plan.info_topic == "/camera/camera_info"
    got = [left for left, _ in bag_frames.iterate(bags["jpeg"], plan, cfg)]
    ref = list(_frames(bags["raw"], RAW).values())
    assert len(got) == FRAMES
    for a, b in zip(got, ref):
        assert a.shape == b.shape == (48, 160, 3) and np.abs(a.astype(float) - b).mean() <= 3.0


def test_eval_bag_frame_sampling_reads_compressed_images(bags) -> None:
    """eval-bag's sample frames (evaluate/bag_score.py) take Image or CompressedImage through decode_rgb."""
    with open_bag(bags["jpeg"]) as bag:
        m = next(iter(bag.messages([COMPRESSED]))).msg
    with open_bag(bags["raw"]) as bag:
        r = next(iter(bag.messages([RAW]))).msg
    assert np.abs(decode_rgb(m).astype(float) - decode_image(r)).mean() <= 3.0


@pytest.mark.ros
def test_play_publishes_the_compressed_topic(bags) -> None:
    pytest.importorskip("rclpy")
    from ros_helpers import ros_env

    expected = {COMPRESSED: ["sensor_msgs/msg/CompressedImage", FRAMES],
                "/camera/camera_info": ["sensor_msgs/msg/CameraInfo", FRAMES]}
    env = ros_env(47)
    sub = subprocess.Popen([sys.executable, str(HERE / "bag_subscriber.py"), json.dumps(expected), "40"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert sub.stdout.readline().strip() == "READY"
        play = subprocess.run([*DEPTH_NODE, "play", str(bags["jpeg"]), "--rate", "4", "--start-delay", "0.5",
                               "--wait-for-subscribers", "30", "--no-clock", "--topics", COMPRESSED,
                               "/camera/camera_info"], capture_output=True, text=True, timeout=90, env=env)
        assert play.returncode == 0, play.stderr
        out, _ = sub.communicate(timeout=60)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert json.loads(out.strip().splitlines()[-1]) == {COMPRESSED: FRAMES, "/camera/camera_info": FRAMES}


def test_training_decodes_bag_frames_as_the_node_does(tmp_path: Path) -> None:
    """mono16 scaled by 255/65535 (cv_bridge's mono16 → mono8, as the node does: not by each frame's maximum), a
    Bayer mosaic demosaiced (not repeated as grey): the pixels training sees are the ones the node will see."""
    from depth_node.geometry.camera import Intrinsics
    from depth_node.io.bags import BagWriter, typestore
    from depth_node.io.image_codec import encode_image
    from depth_node.train import bag_frames

    ts = typestore().types
    grey = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 7).astype(np.uint16)  # max 21497: not 65535
    mosaic = np.random.default_rng(3).integers(0, 256, (48, 64), dtype=np.uint8)
    frames = {"/mono/image_raw": ("mono16", grey), "/bayer/image_raw": ("bayer_rggb8", mosaic)}
    with BagWriter(tmp_path / "b") as w:
        for k, (topic, (encoding, array)) in enumerate(frames.items()):
            enc = encode_image(array, encoding)
            stamp = ts["builtin_interfaces/msg/Time"](sec=1, nanosec=k)
            header = ts["std_msgs/msg/Header"](stamp=stamp, frame_id="cam")
            w.add_topic(topic, "sensor_msgs/msg/Image")
            w.write(topic, 10**9 + k, ts["sensor_msgs/msg/Image"](
                header=header, height=enc.height, width=enc.width, encoding=enc.encoding, is_bigendian=0,
                step=enc.step, data=enc.data))
    cfg = SimpleNamespace(max_sync_dt=0.005)
    got = {}
    for topic in frames:
        plan = bag_frames.BagPlan(topic, None, None, None, Intrinsics(50, 50, 32, 24, 64, 48), None, 1)
        (got[topic], _), = list(bag_frames.iterate(tmp_path / "b", plan, cfg))  # the whole bag read, then closed
    expected = np.round(grey.astype(np.float64) * 255 / 65535).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(got["/mono/image_raw"][..., c], expected)
    bayer = got["/bayer/image_raw"]
    assert bayer.shape == (48, 64, 3)
    # demosaiced: the red channel at a red site (even row, even column of RGGB) is the mosaic's own value
    np.testing.assert_array_equal(bayer[2:-2:2, 2:-2:2, 0], mosaic[2:-2:2, 2:-2:2])
    assert not np.array_equal(bayer[..., 0], bayer[..., 1])  # not the raw mosaic repeated as grey
