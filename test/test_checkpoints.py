"""Import of Monodepth2's released folder layout into our model file, and clear errors for bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_shared, weights_recipe

from depth_node.checkpoints.model_file import ModelFileError, build_depth_net, build_pose_net, load_model, save_model
from depth_node.checkpoints.monodepth2 import import_monodepth2
from depth_node.networks.monodepth2 import DepthNet, PoseNet
from depth_node.networks.resnet import ResNet


def write_released_folder(folder: Path, layers: int = 18, stereo: bool = False, pose: bool = True) -> Path:
    """The layout of Monodepth2's released zips, with the fixture's weights: encoder.pth keeps the whole
    torchvision ResNet (incl. unused fc) plus height/width/use_stereo extras."""
    recipe = weights_recipe()
    folder.mkdir(parents=True, exist_ok=True)
    d = DepthNet(layers)
    enc = {f"encoder.{k}": v for k, v in ResNet(layers).state_dict().items()}  # includes encoder.fc.*
    enc = recipe.fill_state_dict(enc)
    enc.update({"height": 192, "width": 640, "use_stereo": stereo})
    torch.save(enc, folder / "encoder.pth")
    torch.save(recipe.fill_state_dict(d.depth.state_dict()), folder / "depth.pth")
    if pose:
        p = PoseNet(layers)
        penc = {f"encoder.{k}": v for k, v in ResNet(layers, 2).state_dict().items()}
        torch.save(recipe.fill_state_dict(penc), folder / "pose_encoder.pth")
        torch.save(recipe.fill_state_dict(p.pose.state_dict()), folder / "pose.pth")
    return folder


@pytest.mark.parametrize("layers", [18, 50])
def test_released_folder_imports_and_reproduces_golden(tmp_path, layers):
    golden = np.load(require_shared("fixtures/monodepth2") / "golden.npz")
    folder = write_released_folder(tmp_path / "mono_640x192", layers)
    out = tmp_path / "model.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "depth_node.cli", "import", "monodepth2", str(folder), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    m = load_model(out)
    assert (m.arch, m.height, m.width, m.config["num_layers"], m.has_pose) == ("monodepth2", 192, 640, layers, True)
    assert m.scale_kind == "relative" and m.depth_scale == 1.0
    assert not any(".fc." in k for k in m.depth_state)
    a, b = torch.from_numpy(golden["input_a"]), torch.from_numpy(golden["input_b"])
    with torch.no_grad():
        disp = build_depth_net(m)(a)[0]
        aa, t = build_pose_net(m)(torch.cat([a, b], 1))
    np.testing.assert_allclose(disp.numpy(), golden[f"resnet{layers}_disp0"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(aa.numpy(), golden[f"resnet{layers}_axisangle"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(t.numpy(), golden[f"resnet{layers}_translation"], atol=1e-4, rtol=0)


def test_stereo_flag_gives_metric_scale(tmp_path):
    folder = write_released_folder(tmp_path / "ms", stereo=True, pose=False)
    m = import_monodepth2(folder)
    assert m.scale_kind == "stereo" and m.depth_scale == pytest.approx(5.4) and not m.has_pose
    m2 = import_monodepth2(folder, baseline_m=0.12)
    assert m2.depth_scale == pytest.approx(1.2)


def test_num_batches_tracked_may_be_absent(tmp_path):
    folder = write_released_folder(tmp_path / "nbt", pose=False)
    enc = torch.load(folder / "encoder.pth", weights_only=True)
    torch.save({k: v for k, v in enc.items() if not k.endswith("num_batches_tracked")}, folder / "encoder.pth")
    assert import_monodepth2(folder).config["num_layers"] == 18


def test_missing_file_is_named(tmp_path):
    folder = write_released_folder(tmp_path / "x", pose=False)
    (folder / "depth.pth").unlink()
    with pytest.raises(ModelFileError, match=r"depth\.pth missing"):
        import_monodepth2(folder)


def test_pose_files_come_in_pairs(tmp_path):
    folder = write_released_folder(tmp_path / "x")
    (folder / "pose.pth").unlink()
    with pytest.raises(ModelFileError, match="pair"):
        import_monodepth2(folder)


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    folder = write_released_folder(tmp_path / "x", pose=False)
    data = (folder / "depth.pth").read_bytes()
    (folder / "depth.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match=r"cannot read depth\.pth .*corrupt"):
        import_monodepth2(folder)


def test_mismatched_decoder_names_shapes(tmp_path):
    folder = write_released_folder(tmp_path / "x", pose=False)
    torch.save(DepthNet(50).depth.state_dict(), folder / "depth.pth")  # ResNet-50 decoder beside a ResNet-18 encoder
    with pytest.raises(ModelFileError, match=r"shape mismatches \(decoder\.0\.conv\.conv\.weight: file \(256, 2048"):
        import_monodepth2(folder)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    folder = write_released_folder(tmp_path / "x", pose=False)
    sd = torch.load(folder / "depth.pth", weights_only=True)
    sd["decoder.99.conv.weight"] = sd.pop("decoder.13.conv.weight")
    torch.save(sd, folder / "depth.pth")
    with pytest.raises(ModelFileError) as err:
        import_monodepth2(folder)
    assert "missing keys (e.g. decoder.13.conv.weight" in str(err.value)
    assert "unexpected keys (e.g. decoder.99.conv.weight" in str(err.value)


def test_model_file_roundtrip_and_foreign_files(tmp_path):
    folder = write_released_folder(tmp_path / "x", pose=False)
    m = import_monodepth2(folder)
    path = save_model(tmp_path / "m.pt", m)
    again = load_model(path)
    assert again.digest() == m.digest() and again.meta["provenance"]["source"] == "monodepth2-folder"
    with pytest.raises(ModelFileError, match=r"looks like a Monodepth2 encoder\.pth"):
        load_model(folder / "encoder.pth")
    (tmp_path / "junk.pt").write_bytes(b"\x00not a zip")
    with pytest.raises(ModelFileError, match="cannot read model file"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "absent.pt")
    with pytest.raises(ModelFileError, match=r"is a folder; give the \.pt file .*depth-node import monodepth2"):
        load_model(folder)
    (tmp_path / "depth.onnx").write_bytes(b"\x08\x07graph")
    with pytest.raises(ModelFileError, match="an ONNX graph, not a PyTorch file"):
        load_model(tmp_path / "depth.onnx")


def test_cli_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "depth_node.cli", "import", "monodepth2", str(tmp_path / "nope"), "-o", "x.pt"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def _rendered_frame() -> torch.Tensor:
    """A real-looking street frame (1, 3, 96, 320) in [0, 1] from a drive no model was trained on."""
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive

    cfg = DriveConfig(seed=9016, frames=2)
    cfg.camera.width, cfg.camera.height = 320, 96
    return torch.from_numpy(Drive(cfg).frame(1).rgb).permute(2, 0, 1)[None].float() / 255.0


def _storage_error_bound(v: torch.Tensor, storage: str) -> torch.Tensor:
    """The largest rounding the format allows for each value, from its definition (model_file's docstring):
    int8 is symmetric per output channel (step = channel max / 127, error ≤ half a step) for weight tensors
    (≥ 2-D, ≥ 256 values); everything else is fp16 (error ≤ 2⁻¹¹ relative, 2⁻²⁵ absolute below fp16's normals)."""
    v = v.double()
    if storage == "int8" and v.dim() >= 2 and v.numel() >= 256:
        amax = v.abs().reshape(v.shape[0], -1).amax(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
        return (amax / 127.0 / 2.0 + amax * 2.0**-22).expand_as(v)  # + float32 rounding of q × step
    return v.abs() * 2.0**-11 + 2.0**-25


# output drift (mean relative disparity change on a rendered frame): about twice what these untrained weights show
# (fp16 0.05 %, int8 0.9 %); the card of the trained default model reports 0.4 % for int8
@pytest.mark.parametrize("storage, size_ratio, max_drift", [("fp16", 0.5, 1e-3), ("int8", 0.26, 2e-2)])
def test_compact_storage_shrinks_the_file_and_loads_as_fp32(tmp_path, storage, size_ratio, max_drift):
    from conftest import make_model_file

    m = make_model_file(96, 320)
    ref = save_model(tmp_path / "fp32.pt", m)
    small = save_model(tmp_path / f"{storage}.pt", m, storage=storage)
    assert small.stat().st_size < size_ratio * 1.05 * ref.stat().st_size
    loaded = load_model(small)
    assert all(v.dtype == m.depth_state[k].dtype for k, v in loaded.depth_state.items())
    assert loaded.pose_state is not None and set(loaded.pose_state) == set(m.pose_state)
    for part, got_part in ((m.depth_state, loaded.depth_state), (m.pose_state, loaded.pose_state)):
        for k, v in part.items():
            if torch.is_floating_point(v):
                err = (got_part[k].double() - v.double()).abs()
                assert bool((err <= _storage_error_bound(v, storage)).all()), (k, float(err.max()))
    x = _rendered_frame()
    with torch.no_grad():
        a = build_depth_net(m).eval()(x)[0]  # full-resolution disparity, what the node publishes
        b = build_depth_net(loaded).eval()(x)[0]
    rel = float(((a - b).abs() / a.abs()).mean())
    assert 0 < rel < max_drift, rel  # rounded, yet close


def test_unknown_storage_is_refused(tmp_path):
    from conftest import make_model_file

    with pytest.raises(ModelFileError, match="storage"):
        save_model(tmp_path / "x.pt", make_model_file(96, 320), storage="int4")
