"""`depth-node eval-real`: the real sets are read with their own cameras (expectations taken from the sets'
READMEs and calibration files, never from the loader), the table's numbers are right on a hand-made
prediction, and the command runs end to end on a small subset."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, make_model_file, require_shared

from depth_node.evaluate.real_data import (
    FrameRef,
    RealSet,
    kitti_annotated,
    kitti_raw_lidar,
    lidar_depth_image,
    load_sets,
    nyu,
    score_sets,
    tri_dgp,
    tum_fr3,
)
from depth_node.geometry.camera import Intrinsics


@pytest.fixture(scope="module")
def root() -> Path:
    return require_shared("realdata")


def _valid(gt: np.ndarray) -> np.ndarray:
    return gt[gt > 0]


def test_kitti_sets_use_the_days_calibration(root):
    calib = (root / "kitti_raw_2011_09_26_drive_0001/2011_09_26/calib_cam_to_cam.txt").read_text()
    P = np.array([float(v) for v in re.search(r"^P_rect_02:(.*)$", calib, re.M).group(1).split()]).reshape(3, 4)
    lidar, ann = kitti_raw_lidar(root), kitti_annotated(root)
    assert [f.name for f in lidar.frames] == [f"kitti_{i:010d}" for i in range(8)]  # README: frames 0-7
    assert [f.name for f in ann.frames] == [f"kitti_ann_{i:010d}" for i in (5, 50, 100)]
    for ref in lidar.frames + ann.frames:
        k = ref.intrinsics
        assert (k.fx, k.fy, k.cx, k.cy) == (P[0, 0], P[1, 1], P[0, 2], P[1, 2])  # not the json's 707.0493
        assert (k.width, k.height) == (1242, 375)
    fr = lidar.frames[0].load()
    assert fr.rgb.shape == (375, 1242, 3) and fr.gt.shape == (375, 1242)
    assert 0.02 < np.mean(fr.gt > 0) < 0.06  # README: about 4 % valid
    for ref in ann.frames:
        gt = ref.load().gt
        assert 0.17 < np.mean(gt > 0) < 0.22  # README: about 18-21 % valid, 5-85 m
        assert 4.0 < _valid(gt).min() and _valid(gt).max() < 86.0


def test_lidar_and_annotation_agree_on_frame_5(root):
    """The README's cross-check: LiDAR and annotated GT of frame 5 agree (median ratio ~1, abs-rel ~0.013)."""
    lidar = dict((f.name, f) for f in kitti_raw_lidar(root).frames)["kitti_0000000005"].load().gt
    ann = kitti_annotated(root).frames[0].load().gt
    both = (lidar > 0) & (ann > 0)
    assert both.sum() > 5000
    assert abs(np.median(lidar[both] / ann[both]) - 1) < 0.01


def test_tri_dgp_every_camera_with_its_calibration(root):
    s = tri_dgp(root)
    # README: scene_01 has 3 samples with 3 cameras, scene_02 3 samples with 6 cameras
    assert len(s.frames) == 3 * 3 + 3 * 6
    cams = sorted({f.name.split("_", 3)[-1] for f in s.frames})
    assert cams == ["CAMERA_01", "CAMERA_05", "CAMERA_06", "CAMERA_07", "CAMERA_08", "CAMERA_09"]
    cam1 = next(f for f in s.frames if f.name == "scene_01_0_CAMERA_01")
    k = cam1.intrinsics  # README: fx 2167.7, fy 2156.2, cx 951.5, cy 605.0; JPEG 1936x1216
    assert np.allclose([k.fx, k.fy, k.cx, k.cy], [2167.7, 2156.2, 951.5, 605.0], atol=0.05)
    assert (k.width, k.height) == (1936, 1216)
    fr = cam1.load()
    assert fr.rgb.shape == (1216, 1936, 3)
    d = _valid(fr.gt)
    assert 4700 < d.size < 5600  # README: about 4.8-5.5 k points land in each image
    assert d.min() > 4.5 and d.max() < 230  # 5-226 m, near range empty


def test_lidar_depth_image_projects_and_keeps_the_nearest():
    intr = Intrinsics(100.0, 100.0, 20.0, 10.0, 40, 20)
    T = np.eye(4)
    T[:3, 3] = [0.0, 0.0, 1.0]  # LiDAR 1 m behind the camera
    pts = np.array([
        [0.0, 0.0, 9.0, 0.5],  # z_cam 10 → pixel (20, 10)
        [0.0, 0.0, 4.0, 0.5],  # z_cam 5, same ray → same pixel, nearer: wins
        [0.0, 0.0, 19.0, 0.5],  # z_cam 20, same pixel, farther: hidden
        [1.0, -0.5, 9.0, 0.5],  # (100·1/10 + 20, 100·(−0.5)/10 + 10) = (30, 5)
        [0.0, 0.0, -3.0, 0.5],  # behind the camera
        [50.0, 0.0, 9.0, 0.5],  # outside the image
    ])
    d = lidar_depth_image(pts, T, intr)
    assert d[10, 20] == 5.0 and d[5, 30] == 10.0
    assert np.count_nonzero(d) == 2


def test_indoor_sets_decode_depth_and_intrinsics_as_the_readme_says(root):
    readme = (root / "rgbd_single_frames/README.md").read_text()
    fx, fy, cx, cy = (float(v) for v in re.search(r"fx ([\d.]+), fy ([\d.]+),\s*cx ([\d.]+), cy ([\d.]+), no distort",
                                                  readme).groups())
    tum = tum_fr3(root).frames
    assert len(tum) == 1
    k = tum[0].intrinsics
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (fx, fy, cx, cy, 640, 480)
    fr = tum[0].load()
    assert fr.rgb.shape == (480, 640, 3)
    d = _valid(fr.gt)  # README: 1.46-9.33 m, 81 % valid
    assert abs(d.min() - 1.46) < 0.01 and abs(d.max() - 9.33) < 0.01 and abs(d.size / fr.gt.size - 0.81) < 0.01

    ann = json.loads((root / "rgbd_single_frames/nyu_metric3d_demo/test_annotations_as_published.json").read_text())
    K_ud = np.load(root / "rgbd_single_frames/nyu_unidepth_demo/intrinsics.npy")
    frames = nyu(root).frames
    assert len(frames) == 4
    for ref, entry in zip(frames[:3], ann["files"]):
        k = ref.intrinsics
        assert [k.fx, k.fy, k.cx, k.cy] == entry["cam_in"]
        gt = ref.load().gt
        d = _valid(gt)  # README: 0.71-8.27 m, 67-75 % valid
        assert d.min() > 0.70 and d.max() < 8.28 and 0.66 < d.size / gt.size < 0.76
    k = frames[3].intrinsics
    assert np.allclose(k.K, K_ud) and (k.width, k.height) == (640, 480)
    gt = frames[3].load().gt
    assert _valid(gt).max() == pytest.approx(10.0) and abs(np.mean(gt > 0) - 0.68) < 0.01  # max 10 m, 68 % valid


class _Oracle:
    """Stands in for a depth network: returns ground truth × factor for each frame in turn."""

    def __init__(self, gts: list[np.ndarray], factor: float):
        self._gts = iter(gts)
        self.factor = factor

    def depth(self, rgb, intrinsics, out_size):
        from depth_node.inference.estimator import DepthResult

        gt = next(self._gts)
        assert gt.shape == tuple(out_size)
        return DepthResult(gt * np.float32(self.factor), intrinsics, True)


def _hand_made_set(name: str, group: str, gts: list[np.ndarray], tmp: Path) -> RealSet:
    from PIL import Image

    h, w = gts[0].shape
    img = tmp / f"{name}.png"
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(img)
    intr = Intrinsics(50.0, 50.0, w / 2, h / 2, w, h)
    refs = [FrameRef(f"{name}_{i}", img, intr, lambda g=g: g) for i, g in enumerate(gts)]
    return RealSet(name, name, group, 1e-3, 80.0, "none", refs)


def test_scores_of_a_prediction_ten_percent_too_far(tmp_path):
    rng = np.random.default_rng(0)
    gts = [rng.uniform(1.0, 50.0, (12, 16)).astype(np.float32) for _ in range(3)]
    gts[1][:4] = 0.0  # no GT there
    a = _hand_made_set("a", "g", gts[:2], tmp_path)
    b = _hand_made_set("b", "g", gts[2:], tmp_path)
    out, images = score_sets(_Oracle(gts, 1.1), [a, b], panel_dir=tmp_path / "panels", samples=1)
    for row in out["table"] + [out["groups"]["g"]["metric"], out["groups"]["g"]["median"]]:
        if row["scaling"] == "metric":  # |1.1 g − g| / g = 0.1 at every pixel; ratio 1.1 < 1.25
            assert row["abs_rel"] == pytest.approx(0.1, abs=1e-6) and row["a1"] == 1.0
        else:  # median scaling divides the 1.1 out
            assert row["abs_rel"] == pytest.approx(0.0, abs=1e-6) and row["a1"] == 1.0
    assert out["datasets"]["a"]["metric"]["frames"] == 2 and out["datasets"]["b"]["median"]["frames"] == 1
    assert out["datasets"]["a"]["median"]["ratio_median"] == pytest.approx(1 / 1.1, rel=1e-6)
    assert out["groups"]["g"]["sets"] == ["a", "b"] and out["groups"]["g"]["metric"]["frames"] == 3
    assert len(images) == 2 and all(p.is_file() for _, p in images)


def test_html_page_shows_the_results_table_first(tmp_path):
    """The page's summary card holds the per-set table (set, frames, fx, metric and median abs_rel / δ<1.25 /
    rmse), visible above the pictures, with the numbers of the JSON: a prediction 10 % too far has abs_rel 0.1
    and rmse sqrt(mean((0.1 g)²)) metric, 0 median-scaled."""
    from depth_node.evaluate.real_data import results_table
    from depth_node.evaluate.report import write_html_report

    rng = np.random.default_rng(1)
    gts = [rng.uniform(2.0, 30.0, (12, 16)).astype(np.float32) for _ in range(2)]
    a = _hand_made_set("setA", "driving", gts, tmp_path)
    out, images = score_sets(_Oracle(gts, 1.1), [a], panel_dir=tmp_path / "panels", samples=1)
    page = write_html_report(tmp_path / "p.html", "t", out, images, table=results_table(out)).read_text()
    card = page.split('id="summary"')[1].split("</section>")[0]
    assert page.index('id="summary"') < page.index('id="figures"') < page.index('id="all-metrics"')
    rmse = float(np.mean([np.sqrt(np.mean((0.1 * g) ** 2)) for g in gts]))
    row = re.search(r"<tr><td>setA: setA</td><td>2</td><td>50.0</td>((?:<td>[^<]*</td>){6})</tr>", card)
    assert row, card
    cells = [float(c) for c in re.findall(r"<td>([^<]*)</td>", row.group(1))]
    assert cells == pytest.approx([0.1, 1.0, rmse, 0.0, 1.0, 0.0], abs=6e-4)
    assert "driving (all images of setA)" in card
    assert "depth colour scale" in images[0][0] and "0–50 %" in images[0][0]


def test_unknown_set_and_missing_root_are_clear_errors(tmp_path, root):
    from depth_node.evaluate.real_data import RealDataError

    with pytest.raises(RealDataError, match="unknown real set"):
        load_sets(root, ["kitti", "nyu"])
    with pytest.raises(RealDataError, match="--data-root"):
        load_sets(tmp_path / "nowhere")
    with pytest.raises(RealDataError, match="tum_fr3: cannot read it"):
        load_sets(tmp_path, ["tum_fr3"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "depth_node.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_cli_end_to_end_on_a_small_subset(tmp_path, root):
    from depth_node.checkpoints.model_file import save_model

    model = tmp_path / "tiny.pt"
    save_model(model, make_model_file(64, 192, pose=False))
    out, html = tmp_path / "real.json", tmp_path / "real.html"
    r = _cli("eval-real", "--model", str(model), "--json", str(out), "--html", str(html), "--data-root", str(root),
             "--sets", "kitti_annotated", "tum_fr3", "--limit", "1", "--backend", "torch")
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert set(d["datasets"]) == {"kitti_annotated", "tum_fr3"}
    for ds in d["datasets"].values():
        for scaling in ("metric", "median"):
            row = ds[scaling]
            assert row["scaling"] == scaling and row["frames"] == 1
            assert 0 < row["abs_rel"] < 100 and 0 <= row["a1"] <= 1
    assert set(d["groups"]) == {"driving", "indoor"} and "EVALUATION ONLY" in d["note"]
    page = html.read_text()
    assert page.count("<img src=\"data:image/png;base64,") == 2 and "EVALUATION ONLY" in page
    assert not (tmp_path / "real_files").exists(), "the page embeds its panels: no copy beside it"
    card = page.split('id="summary"')[1].split("</section>")[0]
    for name in ("kitti_annotated", "tum_fr3"):
        assert f"<td>{d['datasets'][name]['metric']['abs_rel']:.3f}</td>" in card.split(f"<tr><td>{name}:")[1]
    assert "kitti_annotated" in r.stdout and "tum_fr3" in r.stdout

    r = _cli("eval-real", "--model", str(model), "--json", str(out), "--data-root", str(tmp_path / "none"))
    assert r.returncode == 2 and "--data-root" in r.stderr
