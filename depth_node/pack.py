"""Making a trained model ready to ship (`depth-node pack`): a compact model file (int8 or fp16 weight storage,
loads as fp32), its ONNX (fp16 weight storage, fp32 arithmetic, parity-checked) and a model card that says what
it was trained on, how, what compact storage changed (depth drift on held-out synthetic frames) and its licence.

It renders held-out synthetic frames, so it sits above `sim` (beside `train`, whose provenance the card quotes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError

DEFAULT_LICENCE = ("Apache-2.0 (weights trained by the depth_node project on its own synthetic drives; no third-party "
                   "data or weights)")


@dataclass
class PackResult:
    model: Path  # the compact model file
    onnx_dir: Path
    card: Path
    sizes: dict[str, int]  # file (relative to the output folder) → bytes
    drift: dict[str, float]  # storage drift (`storage_drift`)


def pack_model(model: Path, out: Path, name: str = "model", storage: str = "int8", metrics: Path | None = None,
               licence: str = DEFAULT_LICENCE) -> PackResult:
    """OUT/NAME.pt, OUT/NAME_onnx/{depth,pose}.onnx and OUT/NAME.md from the trained `model`; `metrics`: a
    held-out metrics JSON (eval-bag / demo) to quote in the card."""
    from depth_node.checkpoints.model_file import load_model, save_model
    from depth_node.export.onnx_export import export_model

    held_out = _metrics(metrics) if metrics else None  # before anything is written: no half-packed folder
    ref = load_model(model)
    if ref.arch not in ("monodepth2", "depth_pro"):
        raise DepthNodeError(f"pack handles monodepth2 and depth_pro models; {model} is {ref.arch}")
    out.mkdir(parents=True, exist_ok=True)
    pt = save_model(out / f"{name}.pt", ref, storage=storage)
    packed = load_model(pt)
    res = export_model(packed, out / f"{name}_onnx", weights="fp16")
    drift = storage_drift(ref, packed)
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in (pt, *res.files().values())}
    card = out / f"{name}.md"
    card.write_text(model_card(name, packed, sizes, drift, storage, held_out, licence))
    return PackResult(pt, out / f"{name}_onnx", card, sizes, drift)


def _metrics(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DepthNodeError(f"--metrics {path}: cannot read a metrics JSON ({exc}); give the --json of eval-bag or "
                             "demo") from exc
    if not isinstance(data, dict):
        raise DepthNodeError(f"--metrics {path}: expected a JSON object (eval-bag's or demo's --json)")
    return data


def storage_drift(ref, packed, seed: int = 9001, frames: int = 8) -> dict[str, float]:
    """Relative depth change caused by the compact storage, on held-out synthetic frames at the model's size."""
    import torch

    from depth_node.checkpoints.model_file import build_depth_net
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive

    cfg = DriveConfig(seed=seed, frames=frames * 5)
    cfg.camera.width, cfg.camera.height = ref.width, ref.height
    drive = Drive(cfg)
    x = torch.from_numpy(np.stack([drive.frame(k * 5).rgb for k in range(frames)])).permute(0, 3, 1, 2).float() / 255
    if ref.arch == "depth_pro":
        from depth_node.networks.depth_pro import network_input

        x = network_input(x)
    nets = [build_depth_net(m).eval() for m in (ref, packed)]
    with torch.no_grad():
        outs = [net(x) for net in nets]
    key = next(iter(outs[0])) if isinstance(outs[0], dict) else 0
    a, b = outs[0][key], outs[1][key]  # disparity at full resolution (Depth Pro: canonical inverse depth)
    rel = ((a - b).abs() / a.abs().clamp_min(1e-6)).flatten()
    sample = rel[:: max(1, rel.numel() // 100000)]  # torch.quantile has an input size limit
    return {"mean_rel": float(rel.mean()), "p99_rel": float(torch.quantile(sample, 0.99)), "frames": frames,
            "seed": seed}


def model_card(name: str, mf, sizes: dict[str, int], drift: dict, storage: str, metrics: dict | None,
               licence: str) -> str:
    prov = mf.meta.get("provenance") or {}
    cfg = prov.get("config") or {}
    synth = cfg.get("synth") or {}
    lines = [f"# Model card: {name}", ""]
    output = "canonical inverse depth" if mf.arch == "depth_pro" else "disparity"
    if mf.arch == "depth_pro":
        c = mf.config
        arch = (f"- Architecture: Depth Pro-style metric ViT, preset `{c.get('preset')}` (ViT {c['embed_dim']}/"
                f"{c['depth']}/{c['num_heads']} on {c['img_size']} px windows of {c['patch_size']} px patches, "
                f"decoder {c['decoder_features']}), input {mf.width}×{mf.height} RGB; outputs canonical inverse "
                "depth and the horizontal FOV.")
        scale = ("- Scale: metric — depth = 1 / (output · W / f_px), f_px from camera_info (else the FOV head).")
    else:
        arch = (f"- Architecture: Monodepth2 ResNet-{mf.config.get('num_layers')} depth + ResNet-"
                f"{mf.config.get('pose_num_layers')} pose, input {mf.width}×{mf.height} RGB.")
        scale = (f"- Scale: {json.dumps(mf.meta.get('scale'))} — depth × factor is metres (stereo baseline of the "
                 "training rig).")
    lines += [arch,
              f"- Training: `depth-node train`, mode {prov.get('mode')}, seed {prov.get('seed')}, "
              f"{prov.get('steps')} steps in {prov.get('train_seconds')} s, best epoch {prov.get('best_epoch')}.",
              scale,
              f"- Weight storage: {storage} (loads as fp32); storage drift on held-out frames: mean "
              f"{100 * drift['mean_rel']:.3f} %, p99 {100 * drift['p99_rel']:.3f} % of {output}.",
              "- Files: " + ", ".join(f"`{k}` {v / 1e6:.1f} MB" for k, v in sizes.items()) + ".",
              f"- Licence: {licence}.", ""]
    lines += ["## Data", ""]
    if synth:
        tr, va = synth.get("train") or {}, synth.get("val") or {}
        lines += [f"Synthetic drives rendered by `depth_node.sim` (no external data): training seeds "
                  f"{tr.get('seeds')} ({tr.get('frames')} frames each), validation seeds {va.get('seeds')} "
                  f"({va.get('frames')} frames each); {prov.get('data', {}).get('train_samples')} training samples.",
                  ""]
    else:
        lines += [f"Training data: {prov.get('data')}", ""]
    val = prov.get("metrics")
    if val:
        lines += ["## Validation (held-out seeds, during training)", "",
                  "| " + " | ".join(val) + " |", "|" + "---|" * len(val),
                  "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in val.values()) + " |", ""]
    if metrics:
        h = metrics.get("headline", {})
        lines += ["## Held-out drive through the node (`make demo` / `eval-bag`)", ""]
        lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in h.items()]
        s = metrics.get("settings", {})
        lines += [f"- depth scored {metrics.get('depth', {}).get('mode', '?')} against exact GT up to "
                  f"{s.get('max_depth')} m; odometry ATE after SE(3) alignment.", ""]
    lines += ["## Training config", "", "```yaml", _yaml(cfg).rstrip(), "```", ""]
    lines += ["## Limits", "", "Trained on synthetic street scenes only: expect a domain gap on real cameras "
              "(train on your own footage with `depth-node train`, starting from this model with "
              "`model.init`). The depth is metric only for the training rig's intrinsics class; other "
              "cameras need `scale_source` set accordingly.", ""]
    return "\n".join(lines)


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)
