"""Camera-aware depth: the canonical-camera record, the f_in / f_c factor on hand-computed cases, aspect-following
input sizes through every CPU backend, and one scene rendered with two focal lengths giving the same metric depth.

Expected values are computed here from the pinhole model (fx = W / (2 tan(hfov/2)), K scales with a resize), not
by the code under test."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from depth_node.checkpoints.camera_record import DEFAULT_CAMERA, aspect_sizes, derive_camera_record, input_record
from depth_node.checkpoints.model_file import ModelFile, load_model, save_model
from depth_node.geometry.camera import Intrinsics
from depth_node.inference.canonical import camera_factor, pick_input_size
from depth_node.inference.estimator import DepthEstimator
from depth_node.inference.factory import create_backend
from depth_node.networks.monodepth2 import DepthNet, PoseNet
from depth_node.paths import models_dir

DEFAULT_MODEL = models_dir() / "default.pt"
KITTI = Intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
# the default model's training camera at its 320×96 input: KITTI's K scaled by 320/1242 and 96/375
FX_C, FY_C = 721.5377 * 320 / 1242, 721.5377 * 96 / 375
META = {"min_depth": 0.1, "max_depth": 100.0, "scale": {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}}


def pinhole(hfov_deg: float, w: int, h: int) -> Intrinsics:
    f = w / (2 * math.tan(math.radians(hfov_deg) / 2))
    return Intrinsics(f, f, (w - 1) / 2, (h - 1) / 2, w, h)


# ---- (c) the record and the factor, by hand -------------------------------------------------------------------

def test_default_camera_is_the_sims_kitti_camera():
    from depth_node.sim.config import KITTI_BASELINE_M, KITTI_INTRINSICS, CameraConfig

    assert (DEFAULT_CAMERA["fx"], DEFAULT_CAMERA["fy"]) == (KITTI_INTRINSICS.fx, KITTI_INTRINSICS.fy)
    assert (DEFAULT_CAMERA["width"], DEFAULT_CAMERA["height"]) == (KITTI_INTRINSICS.width, KITTI_INTRINSICS.height)
    assert DEFAULT_CAMERA["mount_height_m"] == CameraConfig().height_m and KITTI_BASELINE_M == 0.54


def test_shipped_model_record_comes_from_its_training_config():
    cam = load_model(DEFAULT_MODEL).camera
    can = cam["canonical"]
    assert can["source"] == "training_config"
    assert can["fx"] == pytest.approx(FX_C, rel=1e-12) and can["fy"] == pytest.approx(FY_C, rel=1e-12)
    assert (can["width"], can["height"], can["mount_height_m"]) == (320, 96, 1.65)
    # trained on one shape: that one size (other cameras are resized to it, with the focal correction)
    assert cam["input"] == {"budget_px": 30720, "stride": 32, "aspects": ["10:3"], "sizes": [[96, 320]]}
    # trained on four aspects, budget 320·96 = 30720 px, multiples of 32:
    # 16:9 → h = round(√(30720·9/16)/32)·32 = 128, w = round(128·16/9/32)·32 = 224; 4:3 → 160×224; 1:1 → 160×160
    assert input_record(96, 320, ["16:9", "4:3", "1:1"])["sizes"] == [[96, 320], [128, 224], [160, 224], [160, 160]]
    metric = load_model(models_dir() / "metric_small.pt").camera
    assert metric["canonical"] is None and metric["input"]["sizes"] == [[256, 256]]  # f_px model, one size


def test_aspect_sizes_are_stride_multiples_near_the_budget():
    for budget, base in ((30720, (96, 320)), (122880, (192, 640))):
        sizes = aspect_sizes(budget, 32, ["10:3", "16:9", "4:3", "1:1"], base)
        assert sizes[0] == list(base) and len(sizes) == 4
        for (h, w), want in zip(sizes[1:], (16 / 9, 4 / 3, 1.0)):
            assert h % 32 == 0 and w % 32 == 0
            assert abs(h * w / budget - 1) < 0.2 and abs(math.log(w / h / want)) < 0.12


def test_file_without_record_gets_the_default_with_a_warning_and_keeps_a_written_one(tmp_path, caplog):
    torch.manual_seed(0)
    mf = ModelFile("monodepth2", {"num_layers": 18}, 96, 320, DepthNet(18).state_dict(), None, dict(META))
    path = save_model(tmp_path / "bare.pt", mf)
    with caplog.at_level(logging.WARNING):
        loaded = load_model(path)
    assert "no canonical-camera record" in caplog.text
    assert loaded.meta["camera"]["canonical"]["source"] == "default"
    assert loaded.meta["camera"]["canonical"]["fx"] == pytest.approx(FX_C)
    # a written record survives save/load (what `depth-node pack` does), and a broken one is refused
    loaded.meta["camera"]["canonical"].update(fx=200.0, fy=100.0, source="test")
    again = load_model(save_model(tmp_path / "rec.pt", loaded))
    assert again.camera["canonical"]["fx"] == 200.0 and again.camera["canonical"]["source"] == "test"
    loaded.meta["camera"] = {"input": {"sizes": []}}
    from depth_node.checkpoints.model_file import ModelFileError

    with pytest.raises(ModelFileError, match="sizes"):
        load_model(save_model(tmp_path / "bad.pt", loaded))


def test_hfov_override_in_training_config_sets_the_canonical_focal():
    meta = {"provenance": {"config": {"data": {"width": 320, "height": 96}, "synth": {
        "train": {"overrides": {"camera.hfov_deg": 90.0}}}}}}
    rec, warning = derive_camera_record("monodepth2", 96, 320, meta)
    # pinhole 90°: f = W/2 = 621 px at 1242 wide; rendered 1242×375 then resized to 320×96
    assert warning == ""
    assert rec["canonical"]["fx"] == pytest.approx(621 * 320 / 1242) and rec["canonical"]["fy"] == pytest.approx(
        621 * 96 / 375)


def test_camera_factor_hand_computed():
    can = {"fx": FX_C, "fy": FY_C}
    # the training camera at the training size: exactly 1
    assert camera_factor(can, KITTI, 96, 320) == pytest.approx(1.0, abs=1e-12)
    # the same camera recorded at half resolution: K halves with the image, the network input is the same
    assert camera_factor(can, KITTI.scaled(621, 187), 96, 320) == pytest.approx(1.0, abs=1e-12)
    # 90° 640×480 webcam fed at 224×160: fx' = 320·224/640 = 112, fy' = 320·160/480 = 106.67
    want = math.sqrt(112 * 320 * 160 / 480) / math.sqrt(FX_C * FY_C)
    assert camera_factor(can, pinhole(90, 640, 480), 160, 224) == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(0.5898, abs=1e-4)
    # the same webcam squeezed to a one-shape model's 320×96: fx' = 320·320/640 = 160, fy' = 320·96/480 = 64
    want = math.sqrt(160 * 64) / math.sqrt(FX_C * FY_C)
    assert camera_factor(can, pinhole(90, 640, 480), 96, 320) == pytest.approx(want, rel=1e-12)
    # a 45° 1280×720 camera at 224×128: f = 640/tan(22.5°) = 1545.1; fx' = f·224/1280, fy' = f·128/720
    f = 640 / math.tan(math.radians(22.5))
    want = math.sqrt(f * 224 / 1280 * f * 128 / 720) / math.sqrt(FX_C * FY_C)
    assert camera_factor(can, pinhole(45, 1280, 720), 128, 224) == pytest.approx(want, rel=1e-12)
    # no camera or an f_px model: no factor
    assert camera_factor(can, None, 96, 320) == 1.0
    assert camera_factor(None, KITTI, 96, 320) == 1.0
    assert camera_factor(can, Intrinsics(0, 0, 0, 0, 640, 480), 96, 320) == 1.0


def test_input_size_follows_the_aspect():
    sizes = [[96, 320], [128, 224], [160, 224], [160, 160]]
    assert pick_input_size(sizes, 375, 1242) == (96, 320)
    assert pick_input_size(sizes, 192, 640) == (96, 320)
    assert pick_input_size(sizes, 720, 1280) == (128, 224)
    assert pick_input_size(sizes, 480, 640) == (160, 224)
    assert pick_input_size(sizes, 500, 500) == (160, 160)
    assert pick_input_size(sizes, 640, 480) == (160, 160)  # portrait: the squarest size


# ---- the estimator applies the factor to depth and to the pose net's translation ----------------------------

@pytest.fixture(scope="module")
def tame_model() -> ModelFile:
    """Default-initialised ResNet-18 Monodepth2 with a strengthened disparity head (depth varies over the image),
    recorded as trained on all four aspects (as a model trained with randomised cameras will be)."""
    torch.manual_seed(0)
    d, p = DepthNet(18), PoseNet(18)
    sd = {k: v * 60 if k.startswith("depth.decoder.10.") else v for k, v in d.state_dict().items()}
    rec, _ = derive_camera_record("monodepth2", 96, 320, {}, aspects=["16:9", "4:3", "1:1"])
    return ModelFile("monodepth2", {"num_layers": 18}, 96, 320, sd, p.state_dict(), {**META, "camera": rec})


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    img = np.stack([0.5 + 0.3 * np.sin(x / (7 + 3 * c) + y / (11 + c)) for c in range(3)], -1)
    return np.clip(255 * (img + 0.05 * rng.standard_normal(img.shape)), 0, 255).astype(np.uint8)


def test_estimator_scales_depth_and_translation_by_the_factor(tame_model):
    est = DepthEstimator(create_backend(tame_model, "torch", "fp32", "cpu"))
    a, b = _frame(480, 640, 1), _frame(480, 640, 2)
    intr = pinhole(90, 640, 480)
    want = math.sqrt(112 * 320 * 160 / 480) / math.sqrt(FX_C * FY_C)  # as in the hand-computed case
    x = est.prepare(a)
    assert x.shape == (1, 3, 160, 224)
    plain, aware = est.depth(x), est.depth(x, intr)
    assert plain.camera_factor == 1.0 and aware.camera_factor == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(aware.depth, plain.depth * np.float32(want), rtol=1e-6)
    assert aware.intrinsics == intr.scaled(224, 160)
    m0 = est.motion(x, est.prepare(b), Intrinsics(1, 1, 0, 0, 0, 0))  # invalid camera: no factor
    m1 = est.motion(x, est.prepare(b), intr)
    m_last = est.motion(x, est.prepare(b))  # the camera of the latest depth() call
    np.testing.assert_allclose(m1[:3, 3], m0[:3, 3] * want, rtol=1e-9)
    np.testing.assert_allclose(m_last, m1, rtol=1e-12)
    np.testing.assert_allclose(m1[:3, :3], m0[:3, :3], rtol=0, atol=0)
    legacy = DepthEstimator(est.backend, camera_aware=False)
    assert legacy.prepare(a).shape == (1, 3, 96, 320) and legacy.depth(a, intr).camera_factor == 1.0


# ---- (b) aspect-ratio inputs through every CPU backend ------------------------------------------------------

def test_aspect_inputs_agree_across_cpu_backends(tame_model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    ests = {b: DepthEstimator(create_backend(tame_model, b, "fp32", "cpu", cache_dir=tmp_path))
            for b in ("torch", "onnxruntime", "openvino")}
    for (h, w), size in (((375, 1242), (96, 320)), ((720, 1280), (128, 224)), ((480, 640), (160, 224)),
                         ((400, 400), (160, 160))):
        a, b = _frame(h, w, 3), _frame(h, w, 4)
        intr = pinhole(80, w, h)
        res = {k: e.depth(a, intr) for k, e in ests.items()}
        mot = {k: e.motion(e.prepare(a), e.prepare(b), intr) for k, e in ests.items()}
        ref = res["torch"].depth
        assert ref.shape == size and ref.std() / ref.mean() > 0.05  # varied depth: the comparison means something
        for k in ("onnxruntime", "openvino"):
            assert res[k].depth.shape == size and res[k].camera_factor == res["torch"].camera_factor
            rel = np.abs(res[k].depth - ref) / ref
            assert rel.max() < 1e-4, f"{k} at {size}: depth differs from torch by up to {rel.max():.2e}"
            assert np.abs(mot[k] - mot["torch"]).max() < 1e-5, f"{k} at {size}: pose differs"


@pytest.mark.slow
def test_int8_runs_a_multi_size_model_at_its_training_size(tame_model, tmp_path):
    """int8 calibration needs fixed shapes: the factory pins the dynamic export to the training size."""
    pytest.importorskip("onnxruntime")
    import onnx

    est = DepthEstimator(create_backend(tame_model, "onnxruntime", "int8", "cpu", cache_dir=tmp_path))
    assert est.sizes == [(96, 320)] and est.prepare(_frame(480, 640)).shape == (1, 3, 96, 320)
    dims = [d.dim_value for d in onnx.load(str(next((tmp_path / "int8").rglob("depth.int8.onnx"))),
                                           load_external_data=False).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 96, 320]
    d = est.depth(_frame(480, 640), pinhole(90, 640, 480)).depth
    assert d.shape == (96, 320) and np.isfinite(d).all()


def test_static_onnx_without_record_runs_its_one_size(tmp_path):
    """The shipped ONNX carries its model's record; one exported before records existed (the record stripped
    here) falls back to the default synthetic camera, still at its one size."""
    pytest.importorskip("onnxruntime")
    import onnx

    shipped = models_dir() / "default_onnx" / "depth.onnx"
    est = DepthEstimator(create_backend(shipped, "onnxruntime", "fp32", "cpu"))
    from_pt = DepthEstimator(create_backend(load_model(DEFAULT_MODEL), "torch", "fp32", "cpu"))
    assert est.canonical == from_pt.canonical and est.canonical["source"] != "default"
    graph = onnx.load(str(shipped))
    kept = [p for p in graph.metadata_props if p.key != "depth_node.camera"]
    assert len(kept) == len(graph.metadata_props) - 1
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    onnx.save(graph, str(tmp_path / "depth.onnx"))
    est = DepthEstimator(create_backend(tmp_path / "depth.onnx", "onnxruntime", "fp32", "cpu"))
    assert est.sizes == [(96, 320)] and est.prepare(_frame(480, 640)).shape == (1, 3, 96, 320)
    assert est.canonical["source"] == "default" and est.canonical["fx"] == pytest.approx(FX_C)


# ---- (a) one scene, two focal lengths: the same metric depth ------------------------------------------------

def _render(hfov: float, seed: int, frames: tuple[int, ...]):
    from depth_node.sim import Drive, DriveConfig

    cfg = DriveConfig(seed=seed, frames=max(frames) + 1).with_overrides(
        [f"camera.hfov_deg={hfov}", "camera.width=640", "camera.height=192"])
    drive = Drive(cfg)
    return [drive.frame(i) for i in frames]


@pytest.mark.parametrize("hfov_other", [55.0, 100.0])
def test_two_focal_lengths_give_the_same_metric_depth(hfov_other):
    """The shipped model (trained at 81.4° HFOV) on held-out seeds rendered at 81.4° and at another HFOV from the
    same poses. On the field of view both share, the narrower render's pixel (u, v) sees the ray of the wider
    render's pixel cx_w + (u − cx_n)·f_w/f_n (same for v), so the depths must agree.

    Measured (seeds 2001/2002, frames 10/30): corrected, the median depth ratio is 1.02–1.09 and the mean
    |relative difference| 0.075–0.112 per frame; uncorrected the ratio is 0.62–0.66 (55°) and 0.74–0.77 (100°).
    The tolerance (pooled median ratio within 10 %, mean |rel| ≤ 0.13) is the measured spread plus a margin; the
    residual is the network's own error, which differs between the two views (its held-out abs_rel ≈ 0.10)."""
    est = DepthEstimator(create_backend(load_model(DEFAULT_MODEL), "torch", "fp32", "cpu"))
    ratios, rels, ratios_raw = [], [], []
    for seed in (2001, 2002):
        views = {hfov: _render(hfov, seed, (10, 30)) for hfov in (81.4, hfov_other)}
        narrow, wide = (81.4, hfov_other) if hfov_other > 81.4 else (hfov_other, 81.4)
        for fn, fw in zip(views[narrow], views[wide]):
            kn, kw = fn.intrinsics, fw.intrinsics
            rn, rw = (est.depth(f.rgb, f.intrinsics, out_size=f.depth.shape) for f in (fn, fw))
            v, u = np.mgrid[0:192, 0:640].astype(np.float64)
            uw = np.round(kw.cx + (u - kn.cx) * kw.fx / kn.fx).astype(int)
            vw = np.round(kw.cy + (v - kn.cy) * kw.fy / kn.fy).astype(int)
            ok = np.isfinite(fn.depth) & (fn.depth > 1.0) & (fn.depth < 80.0)
            dn, dw = rn.depth[ok], rw.depth[vw[ok], uw[ok]]
            good = np.isfinite(dn) & np.isfinite(dw)
            dn, dw = dn[good], dw[good]
            ratios.append(dn / dw)
            rels.append(np.abs(dn - dw) / dw)
            ratios_raw.append((dn / rn.camera_factor) / (dw / rw.camera_factor))
    ratio, rel = float(np.median(np.concatenate(ratios))), float(np.mean(np.concatenate(rels)))
    raw = float(np.median(np.concatenate(ratios_raw)))
    msg = (f"HFOV 81.4° vs {hfov_other}°: corrected median ratio {ratio:.3f}, mean |rel| {rel:.3f}; "
           f"without the correction the ratio is {raw:.3f}")
    assert abs(ratio - 1) < 0.10 and rel < 0.13, msg
    assert abs(raw - 1) > 0.2, msg  # the correction is what makes them agree
