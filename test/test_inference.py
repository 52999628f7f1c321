"""The backend interface, shared pre/post-processing and the estimator's conventions (PyTorch, ONNX Runtime)."""

from __future__ import annotations

import numpy as np
import pytest

from depth_node.geometry.camera import Intrinsics
from depth_node.inference.base import BackendError
from depth_node.inference.estimator import DepthEstimator
from depth_node.inference.factory import create_backend, resolve
from depth_node.inference.preprocess import resize_depth, resize_rgb, to_network_input


def _frame(h=375, w=1242, seed=0):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    img = np.stack([np.sin(x / (7 + c) + y / (11 + c)) for c in range(3)], -1) * 0.4 + 0.5
    img += rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def estimators(small_model_path, onnx_cache):
    return {
        b: DepthEstimator(create_backend(small_model_path, b, "fp32", "cpu", cache_dir=onnx_cache))
        for b in ("torch", "onnxruntime")
    }


def test_onnxruntime_matches_torch_within_1e4(estimators):
    x = estimators["torch"].prepare(_frame())
    a = estimators["torch"].backend.run_depth(x)
    b = estimators["onnxruntime"].backend.run_depth(x)
    assert np.max(np.abs(a["disp"] - b["disp"])) < 1e-4
    assert np.max(np.abs(a["depth"] - b["depth"]) / a["depth"]) < 1e-4


# the conftest model: Monodepth2 with min/max depth 0.1/100 m and the stereo factor 5.4 (metres per unit)
MIN_DEPTH, MAX_DEPTH, FACTOR = 0.1, 100.0, 5.4


def _bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize (align_corners=False) written out: each output pixel samples the input at
    (i + 0.5) · in / out − 0.5, clamped to the image."""
    def coords(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = coords(height, img.shape[0])
    x0, x1, fx = coords(width, img.shape[1])
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def test_depth_at_input_size_with_scaled_intrinsics(estimators):
    est = estimators["onnxruntime"]
    intr = Intrinsics(721.5, 721.5, 609.6, 172.9, 1242, 375)
    net = est.depth(_frame(), intr)
    assert net.depth.shape == (96, 320) and net.metric and net.depth.dtype == np.float32
    assert net.intrinsics.fx == pytest.approx(721.5 * 320 / 1242) and net.intrinsics.cy == pytest.approx(
        172.9 * 96 / 375
    )
    # Monodepth2's depth from its sigmoid disparity, by hand: factor / (1/max + (1/min − 1/max) · disp)
    disp = np.asarray(net.outputs["disp"], np.float64).reshape(96, 320)
    # times the canonical-camera factor f_in / f_c: this camera's focal length at the network input over the
    # training camera's (the model file's record), geometric means of fx and fy
    canon = est.backend.info.camera["canonical"]
    f_in = np.sqrt((721.5 * 320 / 1242) * (721.5 * 96 / 375))
    cam = f_in / np.sqrt(canon["fx"] * canon["fy"])
    want = cam * FACTOR / (1 / MAX_DEPTH + (1 / MIN_DEPTH - 1 / MAX_DEPTH) * disp)
    np.testing.assert_allclose(net.depth, want, rtol=1e-5)
    assert est.depth_range == pytest.approx((MIN_DEPTH * FACTOR, MAX_DEPTH * FACTOR))
    full = est.depth(_frame(), intr, out_size=(375, 1242))
    assert full.depth.shape == (375, 1242) and full.intrinsics == intr
    # the full-size map interpolates inverse depth (as the reference evaluation does), not depth
    np.testing.assert_allclose(full.depth, 1.0 / _bilinear(1.0 / want, 375, 1242), rtol=1e-4)


def test_motion_is_inverse_of_pose_net_T(estimators):
    """The camera motion is the inverse of the pose net's M = [R(axisangle) | t] (earlier → later), its
    translation in metres like depth: written out here with Rodrigues' formula from the net's raw outputs."""
    est = estimators["torch"]
    a, b = est.prepare(_frame(seed=1)), est.prepare(_frame(seed=2))
    outs = est.backend.run_pose(np.concatenate([a, b], 1))
    w = np.asarray(outs["axisangle"], np.float64).reshape(-1, 3)[0]
    t = np.asarray(outs["translation"], np.float64).reshape(-1, 3)[0]
    theta = np.linalg.norm(w)
    k = w / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    R = np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K
    expected = np.eye(4)
    expected[:3, :3] = R.T
    expected[:3, 3] = -R.T @ t * FACTOR
    assert theta > 1e-5 and np.linalg.norm(t) > 1e-5  # a real motion, not the identity
    np.testing.assert_allclose(est.motion(a, b), expected, atol=1e-6)


def test_preprocess_any_size_and_aspect():
    x = to_network_input(_frame(480, 640), 96, 320)
    assert x.shape == (1, 3, 96, 320) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="HxWx3"):
        to_network_input(np.zeros((10, 10), np.uint8), 96, 320)


@pytest.mark.parametrize("src,dst", [((375, 1242), (192, 640)), ((192, 640), (96, 320)), ((96, 320), (192, 640)),
                                     ((480, 640), (96, 320))])
def test_uint8_resize_matches_the_float_filter(src, dst):
    """The uint8 kernel is the antialiased (shrinking) / plain (enlarging) bilinear filter of the float path,
    within one grey level. Its fixed-point rounding lifts the mean by up to a quarter level (0.1 % of the
    range, far inside training's brightness jitter); truncation would lower it by half a level."""
    import torch
    import torch.nn.functional as F

    rgb = _frame(*src)
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    ref = F.interpolate(t, size=dst, mode="bilinear", align_corners=False,
                        antialias=src[0] > dst[0] or src[1] > dst[1])[0].permute(1, 2, 0).numpy()
    out = resize_rgb(rgb, *dst)
    assert out.shape == (*dst, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(np.float32) - ref).max() <= 1.0
    assert abs(float(out.mean()) - float(ref.mean())) < 0.3
    ro = rgb.copy()
    ro.flags.writeable = False  # decoded images and memmaps arrive read-only
    np.testing.assert_array_equal(resize_rgb(ro, *dst), out)
    np.testing.assert_array_equal(resize_rgb(rgb[:, :, ::-1][:, :, ::-1], *dst), out)  # non-contiguous view
    x = to_network_input(rgb, *dst)
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), out / np.float32(255.0), atol=1e-7)


def test_resize_depth_keeps_holes_and_values():
    d = np.full((4, 8), 10.0, np.float32)
    d[:, :2] = np.nan
    r = resize_depth(d, 8, 16)
    assert np.isnan(r[:, :3]).all() and np.allclose(r[:, 6:], 10.0)


def test_backend_choice_errors():
    with pytest.raises(BackendError, match="unknown backend"):
        resolve("cuda-magic", "fp32", "cpu")
    with pytest.raises(BackendError, match="supports precisions"):
        resolve("onnxruntime", "fp16", "cpu")
    with pytest.raises(BackendError, match="slower than fp32"):
        create_backend_args = dict(backend="torch", precision="fp16", device="cpu")
        from conftest import make_model_file

        create_backend(make_model_file(64, 224, pose=False), **create_backend_args)


def test_depth_only_model_refuses_pose(tmp_path):
    from conftest import make_model_file

    est = DepthEstimator(create_backend(make_model_file(64, 224, pose=False), "torch", "fp32", "cpu"))
    assert not est.has_pose
    with pytest.raises(BackendError, match="no pose network"):
        est.motion(_frame(64, 224), _frame(64, 224))


def test_usable_cpus_follow_the_affinity_mask():
    """Pinned to one core (taskset, a cgroup cpuset), the CPU runtimes (sized by usable_cpus) get one thread."""
    import subprocess
    import sys

    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from depth_node.cpu_info import usable_cpus; print(usable_cpus())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"
