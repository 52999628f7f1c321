"""`depth-node pack`: compact model file + fp16-weight ONNX + model card, for both model families."""

from __future__ import annotations

import numpy as np
import torch

from depth_node.checkpoints.depth_pro import depth_pro_model_file
from depth_node.checkpoints.model_file import load_model, save_model
from depth_node.cli import main
from depth_node.networks.depth_pro import build_depth_pro, preset, resolve_config


def test_pack_monodepth2(small_model_path, tmp_path, capsys):
    assert main(["pack", str(small_model_path), "-o", str(tmp_path), "--name", "cam", "--storage", "int8"]) == 0
    packed, ref = load_model(tmp_path / "cam.pt"), load_model(small_model_path)
    assert (tmp_path / "cam.pt").stat().st_size < 0.4 * small_model_path.stat().st_size
    k = next(k for k, v in ref.depth_state.items() if v.dim() == 4)
    np.testing.assert_allclose(packed.depth_state[k], ref.depth_state[k], atol=float(ref.depth_state[k].abs().max())
                               / 100)
    assert (tmp_path / "cam_onnx" / "depth.onnx").is_file() and (tmp_path / "cam_onnx" / "pose.onnx").is_file()
    card = (tmp_path / "cam.md").read_text()
    assert "Monodepth2 ResNet-18" in card and "storage drift" in card and "int8" in card
    assert "storage drift" in capsys.readouterr().out


def test_pack_depth_pro(tmp_path):
    cfg = resolve_config({**preset("small"), "embed_dim": 32, "depth": 2, "num_heads": 2, "hooks": [0, 1, 1, 1],
                          "encoder_feature_dims": [16, 16, 32, 32], "decoder_features": 16, "preset": "small+custom"})
    torch.manual_seed(0)
    net = build_depth_pro(cfg)
    with torch.no_grad():
        net.head[4].bias.fill_(0.05)
    src = save_model(tmp_path / "m.pt", depth_pro_model_file(cfg, net.state_dict(), {"source": "test"}))
    assert main(["pack", str(src), "-o", str(tmp_path / "out"), "--name", "metric", "--storage", "fp16"]) == 0
    card = (tmp_path / "out" / "metric.md").read_text()
    assert "Depth Pro-style metric ViT" in card and "canonical inverse depth" in card
    assert (tmp_path / "out" / "metric_onnx" / "depth.onnx").is_file()
    drift = float(card.split("storage drift on held-out frames: mean ")[1].split(" %")[0])
    assert 0 < drift < 0.5  # fp16 storage moves the output by well under a percent
    assert load_model(tmp_path / "out" / "metric.pt").arch == "depth_pro"


def test_pack_refuses_unreadable_metrics_before_writing(small_model_path, tmp_path, capsys):
    for metrics, why in ((tmp_path / "missing.json", "cannot read"), (tmp_path / "list.json", "JSON object")):
        if metrics.name == "list.json":
            metrics.write_text("[1, 2]")
        out = tmp_path / f"o_{metrics.stem}"
        assert main(["pack", str(small_model_path), "-o", str(out), "--metrics", str(metrics)]) == 2
        assert why in capsys.readouterr().err
        assert not out.exists(), "a half-packed folder was left behind"


def test_pack_rejects_a_non_model(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a model")
    assert main(["pack", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "x.pt" in capsys.readouterr().err


