"""Metric depth from the Depth Pro-style model through the estimator: camera_info focal length vs FOV head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import weights_recipe

from depth_node.checkpoints.depth_pro import import_depth_pro
from depth_node.geometry.camera import Intrinsics
from depth_node.inference.estimator import DepthEstimator
from depth_node.inference.factory import create_backend
from depth_node.networks.depth_pro import build_depth_pro


@pytest.mark.slow
def test_focal_from_camera_info_and_from_fov_head(tmp_path):
    recipe = weights_recipe()
    ckpt = tmp_path / "depth_pro_tiny.pt"
    torch.save(recipe.fill_state_dict(build_depth_pro("tiny").state_dict()), ckpt)
    model = import_depth_pro(ckpt)
    est = DepthEstimator(create_backend(model, "torch", "fp32", "cpu"))
    assert est.metric
    rgb = (recipe.test_input(300, 600, seed=5)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    x = est.prepare(rgb)
    intr = Intrinsics(600.0, 600.0, 300.0, 150.0, 600, 300)
    with_info = est.depth(x, intr)
    from_fov = est.depth(x, None)
    assert with_info.focal_source == "camera_info" and from_fov.focal_source == "fov_head"
    assert with_info.intrinsics == intr.scaled(est.width, est.height)
    # depth = f / (C · W) on the network's pixel grid, f from camera_info (scaled) or from the FOV head
    cid = with_info.outputs["canonical_inverse_depth"].reshape(est.height, est.width).astype(np.float64)
    fov = float(np.asarray(from_fov.outputs["fov_deg"]).reshape(-1)[0])
    f_fov = 0.5 * est.width / np.tan(np.radians(0.5 * fov))
    f_info = 600.0 * est.width / 600
    for result, f in ((with_info, f_info), (from_fov, f_fov)):
        expected = 1.0 / np.clip(cid * est.width / f, 1e-4, 1e4)
        np.testing.assert_allclose(result.depth, expected, rtol=1e-4)
    assert np.nanmedian(with_info.depth) < 1e3  # camera_info path gives finite, unclamped depth here
    full = est.depth(x, intr, out_size=(300, 600))
    assert full.depth.shape == (300, 600) and full.intrinsics == intr
