"""Writers and readers: KITTI folder and MCAP bag round trips, and the reader on the real KITTI raw sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import require_shared

from depth_node.geometry.poses import matrix_from_quaternion
from depth_node.io import kitti_folder as kf
from depth_node.io.bags import BagReader, stamp_to_ns
from depth_node.io.image_codec import decode_image
from depth_node.sim import Drive, DriveConfig
from depth_node.sim.writers import write_drive

KITTI_SAMPLE = "realdata/kitti_raw_2011_09_26_drive_0001"  # under ../shared (conftest.require_shared)


@pytest.fixture(scope="module")
def drive_and_frames():
    cfg = DriveConfig(seed=21, frames=4)
    cfg.camera.width, cfg.camera.height, cfg.camera.stereo = 320, 96, True
    cfg.traffic.oncoming_cars = 2
    drive = Drive(cfg)
    return drive, [drive.frame(k) for k in range(len(drive))]


def test_kitti_folder_round_trip(tmp_path, drive_and_frames):
    drive, frames = drive_and_frames
    res = write_drive(drive, tmp_path / "out", "kitti", depth_png=True)
    assert res.frames == 4 and res.render_fps > 0
    root = tmp_path / "out"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["seed"] == 21 and manifest["frames"] == 4 and manifest["render_fps"] > 0
    assert manifest["config"]["camera"]["width"] == 320
    drive_dir = root / manifest["drive_dir"]
    assert drive_dir.name == "2023_11_14_drive_0021_sync" and drive_dir.parent.name == "2023_11_14"
    assert (drive_dir / "image_02" / "data" / "0000000003.png").exists()
    assert (drive_dir / "image_03" / "data" / "0000000003.png").exists()
    assert (root / "frames.txt").read_text().splitlines()[1] == "2023_11_14/2023_11_14_drive_0021_sync 1 l"

    kd = kf.KittiDrive(root)
    assert kd.drive_dir == drive_dir and kd.frame_ids == [0, 1, 2, 3]
    K = drive.intrinsics
    ki = kd.intrinsics
    for a, b in ((ki.fx, K.fx), (ki.fy, K.fy), (ki.cx, K.cx), (ki.cy, K.cy)):
        assert a == pytest.approx(b, rel=1e-9)
    assert (kd.intrinsics.width, kd.intrinsics.height) == (320, 96)
    assert kd.baseline == pytest.approx(0.54, rel=1e-8)
    for f in frames:
        back = kd.load(f.index)
        np.testing.assert_array_equal(back.rgb, f.rgb)
        np.testing.assert_array_equal(back.rgb_right, f.rgb_right)
        np.testing.assert_array_equal(back.depth, f.depth)  # exact float32, inf for sky
        np.testing.assert_array_equal(back.semantic, f.semantic)
        np.testing.assert_array_equal(back.instance, f.instance)
        np.testing.assert_allclose(back.pose, f.pose, atol=1e-9)
        assert back.stamp_ns == f.stamp_ns
        np.testing.assert_array_equal(kd.depth(f.index, camera=3), f.depth_right)
    # the KITTI-style 16-bit PNG (m·256, 0 = invalid) agrees to its quantisation
    png = kf.load_uint16_png(drive_dir / "proj_depth" / "groundtruth" / "image_02" / "0000000002.png")
    d = frames[2].depth
    ok = np.isfinite(d) & (d < 255)
    np.testing.assert_allclose(png[ok] / 256.0, d[ok], atol=0.5 / 256 + 1e-6)
    assert (png[~np.isfinite(d)] == 0).all()
    # the right camera's poses: the left ones shifted 0.54 m along x
    kd3 = kf.KittiDrive(drive_dir, camera=3)
    rel = np.linalg.inv(kd.poses()[0]) @ kd.poses()[3]
    rel3 = np.linalg.inv(kd3.poses()[0]) @ kd3.poses()[3]
    off = np.eye(4)
    off[0, 3] = 0.54
    np.testing.assert_allclose(rel3, np.linalg.inv(off) @ rel @ off, atol=1e-8)


def test_mcap_bag_round_trip(tmp_path, drive_and_frames):
    drive, frames = drive_and_frames
    bag_dir = tmp_path / "bag"
    write_drive(drive, bag_dir, "mcap")
    assert (bag_dir / "metadata.yaml").exists() and (bag_dir / "manifest.json").exists()
    by_topic: dict[str, list] = {}
    with BagReader(bag_dir) as bag:
        assert bag.topics["/camera/image_raw"].msgtype == "sensor_msgs/msg/Image"
        assert bag.topics["/ground_truth/odom"].msgtype == "nav_msgs/msg/Odometry"
        for m in bag.messages():
            assert stamp_to_ns(m.msg.header.stamp) == m.stamp_ns  # bag time = header stamp
            by_topic.setdefault(m.topic, []).append(m.msg)
    assert all(len(v) == 4 for v in by_topic.values()) and len(by_topic) == 8
    K = drive.intrinsics
    for k, f in enumerate(frames):
        img = by_topic["/camera/image_raw"][k]
        assert img.header.frame_id == "camera_optical_frame" and img.encoding == "rgb8"
        assert stamp_to_ns(img.header.stamp) == f.stamp_ns
        np.testing.assert_array_equal(decode_image(img), f.rgb)
        np.testing.assert_array_equal(decode_image(by_topic["/camera_right/image_raw"][k]), f.rgb_right)
        depth = decode_image(by_topic["/ground_truth/depth"][k])
        assert by_topic["/ground_truth/depth"][k].encoding == "32FC1"
        np.testing.assert_array_equal(np.isnan(depth), ~np.isfinite(f.depth))
        np.testing.assert_array_equal(depth[np.isfinite(f.depth)], f.depth[np.isfinite(f.depth)])
        np.testing.assert_array_equal(decode_image(by_topic["/ground_truth/instance"][k]), f.instance)
        np.testing.assert_array_equal(decode_image(by_topic["/ground_truth/semantic"][k]), f.semantic)
        info, info_r = by_topic["/camera/camera_info"][k], by_topic["/camera_right/camera_info"][k]
        np.testing.assert_allclose(info.k, K.K.reshape(-1))
        assert info.p[3] == 0.0 and info_r.p[3] == pytest.approx(-K.fx * 0.54)
        assert info_r.header.frame_id == "camera_right_optical_frame"
        odom = by_topic["/ground_truth/odom"][k]
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
        p, q = odom.pose.pose.position, odom.pose.pose.orientation
        T = np.eye(4)
        T[:3, :3] = matrix_from_quaternion([q.x, q.y, q.z, q.w])
        T[:3, 3] = [p.x, p.y, p.z]
        np.testing.assert_allclose(T, f.pose_body, atol=1e-9)
        assert odom.twist.twist.linear.x == pytest.approx(f.twist[0])
    # base_link is REP 103: the car drives along +x of odom
    last = by_topic["/ground_truth/odom"][-1].pose.pose.position
    assert last.x > 1.0 and abs(last.y) < 0.3 * last.x


def test_real_kitti_raw_sample_reads_with_its_calibration():
    real = require_shared(KITTI_SAMPLE)  # a failure in CI when missing
    kd = kf.KittiDrive(real / "2011_09_26" / "2011_09_26_drive_0001_sync")
    K = kd.intrinsics
    assert (K.fx, K.fy, K.cx, K.cy) == (721.5377, 721.5377, 609.5593, 172.854)
    assert (K.width, K.height) == (1242, 375)
    assert kd.baseline == pytest.approx(0.5327, abs=1e-3)  # (P_rect_02 - P_rect_03)[0, 3] / fx
    assert kd.frame_ids == list(range(8))
    img = kd.image(5)
    assert img.shape == (375, 1242, 3) and img.dtype == np.uint8
    assert kd.image(5, camera=3).shape == (375, 1242, 3)
    assert kd.stamp_ns(0) == kf.parse_timestamp("2011-09-26 13:02:25.961661696")
    assert 0.09e9 < kd.stamp_ns(1) - kd.stamp_ns(0) < 0.11e9
    # OXTS → camera poses, as the sample's own derived file (devkit convention) has them
    ref = kf.read_poses(real / "derived" / "oxts_poses_cam02_kitti_format.txt")
    np.testing.assert_allclose(kd.poses(), ref, atol=2e-4)
    assert 1.2 < np.linalg.norm(kd.poses()[1][:3, 3]) < 1.5  # ~13 m/s at 10 Hz
    assert not kd.has_depth(0)
    # the reader on the annotated-depth PNG convention of the same drive
    png = kf.load_uint16_png(real / "metric3d_kitti_demo" / "depth_annotated_gt" / "0000000005.png")
    valid = png > 0
    assert 0.1 < valid.mean() < 0.3 and 5 < np.median(png[valid]) / 256.0 < 85


def test_timestamp_format_round_trip():
    ns = 1_700_000_000_123_456_789
    line = kf.format_timestamp(ns)
    assert line == "2023-11-14 22:13:20.123456789"
    assert kf.parse_timestamp(line) == ns


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(kf.KittiFolderError, match="does not exist"):
        kf.KittiDrive(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(kf.KittiFolderError, match="no KITTI drive"):
        kf.KittiDrive(tmp_path / "empty")
    drive = tmp_path / "2020_01_01" / "2020_01_01_drive_0001_sync"
    (drive / "image_02" / "data").mkdir(parents=True)
    with pytest.raises(kf.KittiFolderError, match="calib_cam_to_cam"):
        kf.KittiDrive(drive)


def test_synth_cli_config_overrides_and_errors(tmp_path, capsys):
    from depth_node.cli import main as cli_main

    cfg = tmp_path / "drive.yaml"
    cfg.write_text("traffic:\n  oncoming_cars: 0\n  lead_cars: 0\nlighting:\n  sun_elevation_deg: 20\n")
    out = tmp_path / "k"
    rc = cli_main(["synth", "--out", str(out), "--frames", "2", "--seed", "8", "--format", "kitti", "--width", "96",
                   "--height", "32", "--config", str(cfg), "--set", "scene.trees_per_100m=9", "--no-progress",
                   "--workers", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 frames at 96×32 (seed 8)" in text and "fps" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["render_fps"] > 0 and manifest["config"]["lighting"]["sun_elevation_deg"] == 20
    assert manifest["config"]["scene"]["trees_per_100m"] == 9 and manifest["config"]["traffic"]["lead_cars"] == 0
    assert manifest["intrinsics"]["width"] == 96 and manifest["moving_instances"] == []
    # a second run into the same folder must not silently clobber it
    assert cli_main(["synth", "--out", str(out), "--frames", "1", "--width", "96", "--height", "32",
                     "--no-progress"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert cli_main(["synth", "--out", str(tmp_path / "x"), "--set", "scene.nope=1", "--no-progress"]) == 2
    assert "unknown drive config field 'scene.nope'" in capsys.readouterr().err
    assert cli_main(["synth", "--out", str(tmp_path / "y"), "--width", "96", "--no-progress"]) == 2
    assert "both --width and --height" in capsys.readouterr().err
    out = tmp_path / "wide"  # camera.aspect sets the height: --width alone is enough (README's examples)
    assert cli_main(["synth", "--out", str(out), "--frames", "1", "--width", "96", "--set", "camera.aspect=16:9",
                     "--no-progress", "--workers", "1", "--no-labels"]) == 0
    assert "1 frames at 96×54" in capsys.readouterr().out


def test_parallel_rendering_gives_the_same_frames(tmp_path):
    cfg = DriveConfig(seed=13, frames=3)
    cfg.camera.width, cfg.camera.height = 96, 32
    write_drive(Drive(cfg), tmp_path / "one", "kitti", workers=1)
    write_drive(Drive(cfg), tmp_path / "two", "kitti", workers=2)
    a, b = kf.KittiDrive(tmp_path / "one"), kf.KittiDrive(tmp_path / "two")
    for k in range(3):
        np.testing.assert_array_equal(a.image(k), b.image(k))
        np.testing.assert_array_equal(a.depth(k), b.depth(k))
    np.testing.assert_array_equal(a.poses(), b.poses())
