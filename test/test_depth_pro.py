"""Depth Pro: checkpoint compatibility (keys/shapes of the released model), numerical parity with the reference
implementation (golden outputs of the tiny architecture with fixture weights), import, model-file round trip,
metric post-processing and ONNX export.

The fixtures live beside the repository (`../shared`, or $DEPTH_NODE_SHARED). Without them the tests skip,
except under CI, where a missing fixture is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from conftest import require_shared

from depth_node.checkpoints.depth_pro import import_depth_pro
from depth_node.checkpoints.model_file import ModelFileError, build_depth_net, load_model, save_model
from depth_node.networks.depth_pro import (
    PRESETS,
    DepthProConfigError,
    DepthProExport,
    build_depth_pro,
    canonical_to_metric,
    count_params,
    focal_from_fov,
)

# README tolerances: relative to the map's maximum on sub-sampled maps; absolute on means and FOV.
MAP_TOL = 2e-4
SCALAR_TOL = 1e-4
ONNX_TOL = 1e-4


def _shared() -> Path:
    """../shared (or $DEPTH_NODE_SHARED) with the fixtures these tests need: skipped outside CI, a failure in CI."""
    for sub in ("fixtures/depth_pro/golden_tiny.npz", "fixtures/monodepth2/weights_recipe.py"):
        root = require_shared(sub).parents[2]
    return root


@pytest.fixture(scope="module")
def shared() -> Path:
    return _shared()


@pytest.fixture(scope="module")
def recipe(shared: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("weights_recipe", shared / "fixtures/monodepth2/weights_recipe.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def golden(shared: Path) -> dict[str, np.ndarray]:
    return dict(np.load(shared / "fixtures/depth_pro/golden_tiny.npz"))


@pytest.fixture(scope="module")
def manifest(shared: Path) -> dict[str, dict[str, list[int]]]:
    return json.loads((shared / "fixtures/depth_pro/state_dict_manifest.json").read_text())


@pytest.fixture(scope="module")
def tiny_state(recipe: ModuleType) -> dict[str, torch.Tensor]:
    return recipe.fill_state_dict(build_depth_pro(PRESETS["tiny"]).state_dict())


@pytest.fixture(scope="module")
def tiny_net(tiny_state: dict[str, torch.Tensor]) -> torch.nn.Module:
    net = build_depth_pro(PRESETS["tiny"]).eval()
    net.load_state_dict(tiny_state, strict=True)
    return net


@pytest.fixture(scope="module")
def tiny_input(recipe: ModuleType) -> torch.Tensor:
    """The golden network input, RGB in [0, 1] (the forward pass sees it ×2−1)."""
    return recipe.test_input(1536, 1536)


@pytest.fixture(scope="module")
def tiny_forward(tiny_net: torch.nn.Module, tiny_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One 1536² forward shared by the tests that need it (~8 s on 2 cores)."""
    with torch.no_grad():
        return tiny_net(tiny_input * 2 - 1)


def _rel_max_err(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(a - ref).max() / np.abs(ref).max())


# --- architecture ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["full", "tiny"])
def test_state_dict_matches_release_manifest(name: str, manifest: dict) -> None:
    with torch.device("meta"):  # the full model is 952 M parameters: shapes only
        net = build_depth_pro(PRESETS[name])
    got = {k: list(v.shape) for k, v in net.state_dict().items()}
    want = manifest[name]
    assert sorted(set(want) - set(got)) == [], "keys missing from our network"
    assert sorted(set(got) - set(want)) == [], "keys our network has but the checkpoint does not"
    assert {k: got[k] for k in want if got[k] != want[k]} == {}, "shape mismatches"
    assert list(got) == list(want)  # same order as the reference, so positional tooling agrees too


def test_parameter_counts_match_documented_presets() -> None:
    """The released model's count (reference notes) and the table in the subpackage docstring."""
    assert count_params(PRESETS["full"]) == 951_991_330
    assert count_params(PRESETS["fast"]) == 69_381_530
    assert count_params(PRESETS["tiny"]) == 1_221_406


def test_fast_preset_geometry() -> None:
    """The faster preset keeps the reference's relative geometry at a 1024-px input and is much cheaper."""
    with torch.device("meta"):  # shapes only: a real 1024² forward takes ~0.6 TFLOP
        net = build_depth_pro(PRESETS["fast"]).eval()
        x = torch.zeros(1, 3, 1024, 1024)
    assert net.img_size == 1024
    assert net.encoder.level0.steps == 5 and net.encoder.level1.steps == 3
    assert net.encoder.level0.crop == 2 and net.encoder.level1.crop == 4  # 3 and 6 tokens at 24-token windows
    assert sum(p.numel() for p in net.parameters()) < 100e6
    with torch.no_grad():
        cid, fov = net(x)
    assert cid.shape == (1, 1, 1024, 1024) and fov.shape == (1, 1, 1, 1)


def test_config_errors_are_explicit() -> None:
    with pytest.raises(DepthProConfigError, match="unknown keys"):
        build_depth_pro({**PRESETS["tiny"], "embed_dims": 64})
    with pytest.raises(DepthProConfigError, match="multiple of 8 patches"):
        build_depth_pro({**PRESETS["tiny"], "img_size": 320})
    with pytest.raises(ValueError, match="1536x1536"):
        build_depth_pro(PRESETS["tiny"])(torch.zeros(1, 3, 768, 768))


def test_window_split_merge_roundtrip() -> None:
    """Merging the split of a pixel-sized map gives back the map: the windows tile the level exactly."""
    enc = build_depth_pro(PRESETS["tiny"]).encoder
    for grid, size in ((enc.level0, 1536), (enc.level1, 768)):
        # per-pixel "features" at token resolution: one token per 16-px patch
        img = torch.arange(size // 16 * size // 16, dtype=torch.float32).reshape(1, 1, size // 16, size // 16)
        patches = torch.cat(
            [img[..., r // 16 : (r + 384) // 16, c // 16 : (c + 384) // 16] for r in grid.starts for c in grid.starts]
        )
        assert torch.equal(grid.merge(patches, batch=1), img)


# --- parity with the reference ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_forward_matches_golden(tiny_forward, golden) -> None:
    cid, fov = tiny_forward
    assert cid.shape == (1, 1, 1536, 1536) and fov.shape == (1, 1, 1, 1)
    c = cid[0, 0].numpy()
    assert _rel_max_err(c[::8, ::8], golden["tiny_cid_sub8"]) < MAP_TOL
    assert abs(c.astype(np.float64).mean() - float(golden["tiny_cid_mean"])) < SCALAR_TOL
    assert abs(np.abs(c).astype(np.float64).mean() - float(golden["tiny_cid_absmean"])) < SCALAR_TOL
    assert abs(float(fov) - float(golden["tiny_fov_deg"].reshape(()))) < SCALAR_TOL


def _assert_depth_close(depth: np.ndarray, ref: np.ndarray) -> None:
    """Depth = 1/inverse magnifies float noise without bound where the inverse depth is tiny (far range, up to
    the 1e4 m clamp), so the map-level tolerance is applied in inverse depth, the space the network computes in;
    depth itself must agree closely wherever the inverse is not tiny: within 50x the nearest depth. (At 100x, the
    inverse map's float-order noise alone, ~3e-5 of its max, is ~3e-3 of the depth: the given-focal case measured
    0.97e-3 on 2 threads and 1.07e-3 on 1 there, 0.75e-3 on either within 50x.)"""
    assert depth.shape == ref.shape
    assert _rel_max_err(1.0 / depth, 1.0 / ref) < MAP_TOL
    inv_ref = 1.0 / ref
    near = inv_ref >= 0.02 * inv_ref.max()
    assert near.mean() > 0.5
    assert float(np.max(np.abs(depth[near] - ref[near]) / ref[near])) < 1e-3
    assert np.array_equal(depth == 1e4, ref == 1e4) or np.mean((depth == 1e4) != (ref == 1e4)) < 1e-3


@pytest.mark.slow
def test_tiny_infer_matches_golden_with_fov_focal(tiny_net, recipe, golden) -> None:
    y = recipe.test_input(512, 768, seed=5) * 2 - 1
    out = tiny_net.infer(y)
    f_ref = float(golden["tiny_infer_focallength_px"])
    assert abs(float(out["focallength_px"][0]) - f_ref) / abs(f_ref) < SCALAR_TOL
    assert out["depth"].shape == (1, 1, 512, 768)
    _assert_depth_close(out["depth"][0, 0].numpy()[::4, ::4], golden["tiny_infer_depth_sub4"])


@pytest.mark.slow
def test_tiny_infer_matches_golden_with_given_focal(tiny_net, recipe, golden) -> None:
    y = recipe.test_input(512, 768, seed=5) * 2 - 1
    out = tiny_net.infer(y, f_px=600.0)  # a plain float: the reference crashes on it
    assert float(out["focallength_px"][0]) == 600.0
    _assert_depth_close(out["depth"][0, 0].numpy()[::4, ::4], golden["tiny_infer_depth_fpx600_sub4"])


def test_metric_conversion_uses_given_focal_or_fov() -> None:
    """Given f_px wins over the FOV head; without it f_px = 0.5·W/tan(fov/2); depth = f_px / (W·cid)."""
    cid = torch.full((1, 1, 8, 8), 0.5)
    fov = torch.tensor([[[[60.0]]]])
    w = 640
    depth, inverse, f = canonical_to_metric(cid, (480, w), fov_deg=fov)
    f_fov = 0.5 * w / np.tan(np.deg2rad(30.0))
    assert float(f[0]) == pytest.approx(f_fov, rel=1e-6)
    assert torch.allclose(depth, torch.full((1, 1, 480, w), f_fov / (w * 0.5)), rtol=1e-5)
    depth2, _, f2 = canonical_to_metric(cid, (480, w), f_px=np.float64(320.0), fov_deg=fov)
    assert float(f2[0]) == 320.0
    assert torch.allclose(depth2, torch.full_like(depth2, 320.0 / (w * 0.5)), rtol=1e-6)
    assert torch.allclose(inverse, 1 / depth, rtol=1e-6)
    # clamp: zero inverse depth (sky) → 1e4 m, never inf
    depth3, _, _ = canonical_to_metric(torch.zeros(1, 1, 4, 4), (4, 4), f_px=100.0)
    assert torch.all(depth3 == 1e4)
    with pytest.raises(ValueError, match="FOV head"):
        canonical_to_metric(cid, (8, 8))
    with pytest.raises(ValueError, match="positive"):
        canonical_to_metric(cid, (8, 8), f_px=-5.0)
    assert float(focal_from_fov(torch.tensor(90.0), 200)) == pytest.approx(100.0, rel=1e-6)


# --- import and model file --------------------------------------------------------------------------------------


def _save_checkpoint(state: dict[str, torch.Tensor], path: Path, dtype=torch.float16) -> Path:
    """A released-format checkpoint: a plain state_dict, fp16 like Apple's file."""
    torch.save({k: v.to(dtype) for k, v in state.items()}, path)
    return path


@pytest.mark.slow
def test_import_tiny_checkpoint_roundtrip(tmp_path, tiny_state, tiny_input, tiny_forward) -> None:
    ckpt = _save_checkpoint(tiny_state, tmp_path / "depth_pro.pt", dtype=torch.float32)
    model = import_depth_pro(ckpt)
    assert model.arch == "depth_pro" and model.config["preset"] == "tiny"
    assert (model.height, model.width) == (1536, 1536) and model.pose_state is None
    assert model.meta["scale"] == {"kind": "metric", "factor": 1.0}
    assert model.meta["provenance"]["preset"] == "tiny" and len(model.meta["provenance"]["sha256"]) == 64
    path = save_model(tmp_path / "model.pt", model)
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.digest() == model.digest()
    net = build_depth_net(loaded)
    for k, v in net.state_dict().items():
        assert torch.equal(v, tiny_state[k]), k
    # Same weights bit for bit → the same outputs as the directly filled network (same input, same kernels)
    with torch.no_grad():
        cid, fov = net(tiny_input * 2 - 1)
    assert torch.allclose(cid, tiny_forward[0], rtol=0, atol=1e-7) and torch.allclose(fov, tiny_forward[1], atol=1e-7)


def test_import_recognises_presets_from_shapes(tmp_path, tiny_state) -> None:
    model = import_depth_pro(_save_checkpoint(tiny_state, tmp_path / "depth_pro.pt"))
    assert model.config == {**PRESETS["tiny"]}
    assert all(v.dtype == torch.float32 for v in model.depth_state.values())  # fp16 file, fp32 model file
    assert model.meta["provenance"]["checkpoint_dtype"] == ["torch.float16"]
    no_fov = {k: v for k, v in tiny_state.items() if not k.startswith("fov.")}
    model = import_depth_pro(_save_checkpoint(no_fov, tmp_path / "no_fov.pt"))
    assert model.config["preset"] == "tiny" and model.config["use_fov_head"] is False
    net = build_depth_net(model)
    assert net.fov is None
    assert DepthProExport(net).output_names == ("canonical_inverse_depth",)


def test_import_full_shaped_checkpoint_is_recognised(manifest) -> None:
    """Shape recognition for the released model without a 1.9 GB file: meta tensors with the manifest's shapes."""
    from depth_node.checkpoints.depth_pro import infer_config

    state = {k: torch.empty(s, device="meta") for k, s in manifest["full"].items()}
    label, config = infer_config(state)
    assert label == "full" and config == PRESETS["full"]


def test_import_rejects_corrupt_and_misshaped_checkpoints(tmp_path, tiny_state) -> None:
    bad = tmp_path / "truncated.pt"
    good = _save_checkpoint(tiny_state, tmp_path / "depth_pro.pt")
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="cannot read"):
        import_depth_pro(bad)
    with pytest.raises(ModelFileError, match="not found"):
        import_depth_pro(tmp_path / "nope.pt")

    broken = dict(tiny_state)
    broken["head.0.weight"] = torch.zeros(8, 32, 3, 3)
    del broken["decoder.convs.2.weight"]
    broken["decoder.extra.weight"] = torch.zeros(3)
    with pytest.raises(ModelFileError) as exc:
        import_depth_pro(_save_checkpoint(broken, tmp_path / "broken.pt"))
    msg = str(exc.value)
    assert "'tiny'" in msg
    assert "missing keys" in msg and "decoder.convs.2.weight" in msg
    assert "unexpected keys" in msg and "decoder.extra.weight" in msg
    assert "head.0.weight: file (8, 32, 3, 3) vs network (16, 32, 3, 3)" in msg

    with pytest.raises(ModelFileError, match="not a Depth Pro checkpoint"):
        torch.save({"encoder.conv1.weight": torch.zeros(1)}, tmp_path / "md2.pt")
        import_depth_pro(tmp_path / "md2.pt")
    with pytest.raises(ModelFileError, match="shape mismatches"):
        import_depth_pro(good, preset="full")


# --- export -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter's own deprecation notice
def test_tiny_onnx_export_matches_pytorch(tmp_path, tiny_net, tiny_input, tiny_forward, golden) -> None:
    import onnx
    import onnxruntime as ort

    graph = DepthProExport(tiny_net).eval()
    path = tmp_path / "depth_pro_tiny.onnx"
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(
            graph,
            (tiny_input,),
            str(path),
            input_names=["image"],
            output_names=list(graph.output_names),
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    export_s = time.perf_counter() - t0
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    ops = {n.op_type for n in m.graph.node}
    assert "If" not in ops and "Loop" not in ops  # no data-dependent control flow
    dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output]
    assert dims == [[1, 1, 1536, 1536], [1, 1]]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    cid_ort, fov_ort = sess.run(None, {"image": tiny_input.numpy()})
    cid, fov = tiny_forward  # PyTorch on the same [0, 1] image, normalised outside the graph
    err_cid = float(np.abs(cid_ort - cid.numpy()).max())
    err_fov = float(np.abs(fov_ort.reshape(-1) - fov.numpy().reshape(-1)).max())
    print(f"onnx export {export_s:.1f}s; max abs err cid {err_cid:.2e} fov {err_fov:.2e}")
    assert err_cid < ONNX_TOL and err_fov < ONNX_TOL
    assert _rel_max_err(cid_ort[0, 0, ::8, ::8], golden["tiny_cid_sub8"]) < MAP_TOL
