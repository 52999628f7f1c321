"""`depth-node check-fp16` on a real exported Depth Pro-style graph: a sane model passes with its canonical inverse
depth range and fp16 drift reported; the same model with activations pushed past fp16's range fails, naming the
overflowing tensors and the LayerNorm inputs at risk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_small_drive

from depth_node.checkpoints.depth_pro import depth_pro_model_file
from depth_node.cli import main
from depth_node.export.onnx_export import export_model
from depth_node.networks.depth_pro import build_depth_pro, preset, resolve_config

NET = {"embed_dim": 32, "depth": 2, "num_heads": 2, "hooks": [0, 1, 1, 1], "encoder_feature_dims": [16, 16, 32, 32],
       "decoder_features": 16}


def export(tmp: Path, scale_tokens: float = 1.0) -> Path:
    cfg = resolve_config({**preset("small"), **NET, "preset": "small+custom"})
    torch.manual_seed(0)
    net = build_depth_pro(cfg)
    with torch.no_grad():
        net.head[4].bias.fill_(0.05)
        net.encoder.patch_encoder.patch_embed.proj.weight.mul_(scale_tokens)
    mf = depth_pro_model_file(cfg, net.state_dict(), {"source": "test"})
    # (the parity check's absolute tolerance means nothing for activations scaled to 1e5)
    export_model(mf, tmp / "onnx", check=scale_tokens == 1.0)
    return tmp / "onnx" / "depth.onnx"


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    drive = write_small_drive(tmp_path_factory.mktemp("drive"), seed=4, frames=2)
    return next(p.parent for p in sorted(drive.rglob("*.png")) if "image_02" in str(p))


def test_sane_model_passes_with_ranges_and_drift(tmp_path, frames):
    onnx_path = export(tmp_path)
    rc = main(["check-fp16", str(onnx_path), "--images", str(frames), "--frames", "2", "--json",
               str(tmp_path / "r.json")])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rc == 0 and rep["passed"], rep["failures"]
    assert rep["tensors_checked"] > 100 and not rep["overflow"]
    cid = rep["output_range_fp32"]["canonical_inverse_depth"]
    assert 0 <= cid["min"] <= cid["median"] <= cid["max"] < 10
    d = rep["drift_fp16_vs_fp32"]["canonical_inverse_depth"]
    assert 0 < d["abs_rel"] < 0.01  # fp16 differs, but little
    assert rep["nonfinite_fp16"]["canonical_inverse_depth"] == 0


def test_activations_beyond_fp16_range_fail(tmp_path, frames, capsys):
    onnx_path = export(tmp_path, scale_tokens=1e5)
    rc = main(["check-fp16", str(onnx_path), "--images", str(frames), "--frames", "1", "--json",
               str(tmp_path / "r.json")])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rc == 1 and not rep["passed"]
    assert rep["overflow"] and rep["overflow"][0]["max_abs"] > 65504
    assert rep["layernorm_risk"] and all(p["max_abs"] > 256 for p in rep["layernorm_risk"])
    assert "exceed fp16's range" in capsys.readouterr().out
