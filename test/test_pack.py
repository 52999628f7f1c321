"""`depth-node pack`: compact model file + fp16-weight ONNX + model card, for both model families."""

from __future__ import annotations

import numpy as np
import torch

from depth_node.checkpoints.depth_pro import depth_pro_model_file
from depth_node.checkpoints.model_file import load_model, save_model
from depth_node.cli import main
from depth_node.networks.depth_pro import build_depth_pro, preset, resolve_config


def test_pack_monodepth2(small_model_path, tmp_path, capsys, caplog):
    with caplog.at_level("WARNING", logger="depth_node.pack"):
        assert main(["pack", str(small_model_path), "-o", str(tmp_path), "--name", "cam", "--storage", "int8"]) == 0
    assert "STORAGE DRIFT" not in caplog.text  # a model not fine-tuned from int8 weights stores in int8 fine
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




# ------------------------------------------------------------------------ card of a model adapted on user data

def _adapted(height: int, width: int, scale: dict, init: str, pose: bool = True, **prov):
    """A ModelFile as `train --preset adapt` writes it: mode M on the user's recordings, from `init`."""
    from conftest import make_model_file

    mf = make_model_file(height, width, pose=pose, scale=scale)
    config = {"mode": "M", "model": {"init": init, "scale_camera_height_m": prov.pop("camera_height", None)},
              "data": {"train": ["/home/robot/recordings/yard.mcap"], "val": []}, "synth": None}
    mf.meta["provenance"] = {"trainer": "depth_node test", "mode": "M", "config": config, "seed": 0,
                             "data": {"train": ["yard.mcap"], "val": [], "train_samples": 28}, "metrics": None,
                             "best_epoch": 3, "steps": 40, "train_seconds": 61.0, **prov}
    return mf


GROUND = {"kind": "metric", "factor": 1.2282, "from": "ground plane, camera height 0.8 m", "frames_fitted": 29,
          "init_scale": {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}}


def test_card_of_a_model_adapted_on_user_data_says_so(tmp_path):
    """The scale comes from a ground-plane fit to the camera height, the data is the user's recording: the card
    says that (not "stereo baseline of the training rig", not "synthetic street scenes only") and does not put
    the project's Apache-2.0 on weights derived from the user's data."""
    from depth_node.pack import model_card

    init = str(tmp_path / "base.pt")
    src = save_model(tmp_path / "adapted.pt", _adapted(64, 128, GROUND, init, pose=False, camera_height=0.8))
    assert main(["pack", str(src), "-o", str(tmp_path / "out"), "--name", "yard", "--storage", "fp16"]) == 0
    card = (tmp_path / "out" / "yard.md").read_text()
    scale = next(line for line in card.splitlines() if line.startswith("- Scale:"))
    assert "ground-plane fit" in scale and "0.8 m" in scale and "×1.228" in scale, scale
    assert "stereo baseline" not in scale
    assert "synthetic street scenes" not in card and "Synthetic drives" not in card
    data = card.split("## Data")[1].split("##")[0]
    assert "user's own data" in data and "yard.mcap" in data and init in data, data
    licence = next(line for line in card.splitlines() if line.startswith("- Licence:"))
    assert "Apache-2.0" not in licence.split("base model")[0] and "project on its own synthetic" not in card
    assert "user's own data" in licence and "--licence" in licence, licence
    limits = card.split("## Limits")[1]
    assert "yard.mcap" in limits and "not validated against ground truth" in limits and "mounted" in limits

    # the scale kept from a stereo init is worded as the init's, and --licence is what the card says
    kept = _adapted(64, 128, {"kind": "metric", "factor": 5.4, "from": "kept from model.init (stereo)",
                              "init_scale": {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}}, init)
    card = model_card("k", kept, {"k.pt": 1}, {"mean_rel": 0.001, "p99_rel": 0.002}, "fp16", None,
                      "CC-BY-4.0 (ACME robotics)")
    assert "inherited from the init (base) model (its stereo baseline 0.54 m)" in card
    assert "- Licence: CC-BY-4.0 (ACME robotics)." in card


def test_card_of_a_model_trained_on_synthetic_drives_keeps_the_projects_wording():
    from conftest import make_model_file

    from depth_node.pack import model_card

    mf = make_model_file(96, 320)
    synth = {"train": {"seeds": [1, 2], "frames": 100}, "val": {"seeds": [1001], "frames": 40}}
    mf.meta["provenance"] = {"mode": "MS", "config": {"mode": "MS", "model": {"init": None}, "data": {"train": []},
                                                      "synth": synth},
                             "data": {"train": ["synth_train_seed1", "synth_train_seed2"], "val": [],
                                      "train_samples": 196}, "steps": 1696}
    card = model_card("d", mf, {"d.pt": 1}, {"mean_rel": 0.004, "p99_rel": 0.01}, "int8", None)
    assert "stereo baseline of the training rig (0.54 m)" in card
    assert "- Licence: Apache-2.0 (weights trained by the depth_node project on its own synthetic drives" in card
    assert "Synthetic drives rendered" in card and "synthetic street scenes only" in card


# ---------------------------------------------------------------------------------------- int8 storage drift

def test_int8_drift_of_a_short_fine_tune_of_an_int8_model_is_warned(tmp_path, caplog):
    """A short fine-tune of an int8-stored base model (as `--preset adapt` of models/default.pt) moves the weights
    by less than half an int8 step, each in its gradient's direction (Adam's first steps are lr · sign(grad));
    int8 storage rounds them back onto the base model's values and undoes the adaptation. pack measures that
    drift, warns loudly, recommends fp16 (which keeps it) and names the cause; the card says so too."""
    import dataclasses

    from depth_node.checkpoints.model_file import build_depth_net

    base = load_model(save_model(tmp_path / "base.pt", _adapted(64, 128, GROUND, "", pose=False), storage="int8"))
    net = build_depth_net(base)
    torch.manual_seed(0)
    net(torch.rand(2, 3, 64, 128))[0].mean().backward()
    params, tuned = dict(net.named_parameters()), {}
    for k, w in base.depth_state.items():
        p = params.get(k)
        if p is not None and p.grad is not None and w.dim() >= 2 and w.numel() >= 256:
            step = w.abs().reshape(w.shape[0], -1).amax(dim=1) / 127.0  # the int8 step of each output channel
            w = w + 0.3 * step.reshape(-1, *([1] * (w.dim() - 1))) * p.grad.sign()
        tuned[k] = w
    adapted = _adapted(64, 128, GROUND, str(tmp_path / "base.pt"), pose=False)
    adapted = dataclasses.replace(adapted, depth_state=tuned)
    src = save_model(tmp_path / "adapted.pt", adapted)

    with caplog.at_level("WARNING", logger="depth_node.pack"):
        assert main(["pack", str(src), "-o", str(tmp_path / "out"), "--name", "a", "--storage", "int8"]) == 0
    warned = [r.getMessage() for r in caplog.records if r.name == "depth_node.pack" and r.levelname == "WARNING"]
    assert len(warned) == 1 and "STORAGE DRIFT" in warned[0] and "--storage fp16" in warned[0], warned
    assert "init model's own int8 values" in warned[0]
    card = (tmp_path / "out" / "a.md").read_text()
    drift = float(card.split("storage drift on held-out frames: mean ")[1].split(" %")[0])
    fp16 = float(warned[0].split("its drift: ")[1].split(" %")[0])
    assert drift > 1.0 and fp16 < min(1.0, drift / 10)  # fp16 storage keeps the fine-tune
    assert "**Warning:" in card and "`--storage fp16`" in card
