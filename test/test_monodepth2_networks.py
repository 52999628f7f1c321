"""Our Monodepth2 networks against the reference implementation's manifest and golden outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import require_shared, weights_recipe

from depth_node.geometry.depth import disp_to_depth
from depth_node.geometry.poses import invert_se3, transformation_from_parameters
from depth_node.networks.monodepth2 import DepthNet, PoseNet


@pytest.fixture(scope="module")
def fixture_dir():
    return require_shared("fixtures/monodepth2")


def _modules(layers: int):
    d, p = DepthNet(layers).eval(), PoseNet(layers).eval()
    return d, p, {"encoder": d.encoder, "depth": d.depth, "pose_encoder": p.pose_encoder, "pose": p.pose}


@pytest.mark.parametrize("layers", [18, 50])
def test_state_dict_keys_and_shapes_match_manifest(fixture_dir, layers):
    manifest = json.loads((fixture_dir / "state_dict_manifest.json").read_text())
    _, _, mods = _modules(layers)
    for name, mod in mods.items():
        ref = manifest[f"resnet{layers}/{name}"]
        ours = {k: list(v.shape) for k, v in mod.state_dict().items()}
        assert ours == ref, f"{name}: keys/shapes differ: {set(ours) ^ set(ref)}"


@pytest.mark.parametrize("layers", [18, 50])
def test_recipe_weights_reproduce_golden_outputs(fixture_dir, layers):
    recipe = weights_recipe()
    golden = np.load(fixture_dir / "golden.npz")
    d, p, mods = _modules(layers)
    for mod in mods.values():
        mod.load_state_dict(recipe.fill_state_dict(mod.state_dict()))
    a, b = torch.from_numpy(golden["input_a"]), torch.from_numpy(golden["input_b"])
    with torch.no_grad():
        disps = d(a)
        axisangle, translation = p(torch.cat([a, b], 1))
    for s in range(4):
        np.testing.assert_allclose(disps[s].numpy(), golden[f"resnet{layers}_disp{s}"], atol=1e-4, rtol=0)
    _, depth = disp_to_depth(disps[0], 0.1, 100)
    np.testing.assert_allclose(depth.numpy(), golden[f"resnet{layers}_depth0"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(axisangle.numpy(), golden[f"resnet{layers}_axisangle"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(translation.numpy(), golden[f"resnet{layers}_translation"], atol=1e-4, rtol=0)
    T = transformation_from_parameters(axisangle[:, 0], translation[:, 0])
    np.testing.assert_allclose(T.numpy(), golden[f"resnet{layers}_T"], atol=1e-4, rtol=0)


def test_resnet34_encoder_builds_with_torchvision_layout():
    sd = DepthNet(34).encoder.state_dict()
    assert "encoder.layer3.5.conv2.weight" in sd and "encoder.layer1.0.conv3.weight" not in sd
    with pytest.raises(ValueError, match="18 and 50"):
        PoseNet(34)


def test_inverted_transformation_is_exact_inverse():
    aa = torch.tensor([[[0.1, -0.2, 0.05]]])
    t = torch.tensor([[[0.3, 0.1, 1.2]]])
    M = transformation_from_parameters(aa, t)[0].numpy().astype(np.float64)
    Minv = transformation_from_parameters(aa, t, invert=True)[0].numpy()
    np.testing.assert_allclose(Minv, invert_se3(M), atol=1e-6)
    np.testing.assert_allclose(M @ Minv, np.eye(4), atol=1e-6)


def test_disp_to_depth_range():
    _, lo = disp_to_depth(np.array(1.0))
    _, hi = disp_to_depth(np.array(0.0))
    assert lo == pytest.approx(0.1) and hi == pytest.approx(100.0)
