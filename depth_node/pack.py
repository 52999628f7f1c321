"""Making a trained model ready to ship (`depth-node pack`): a compact model file (int8 or fp16 weight storage,
loads as fp32), its ONNX (fp16 weight storage, fp32 arithmetic, parity-checked) and a model card that says what
it was trained on, how, what compact storage changed (depth drift on held-out synthetic frames) and its licence.

The card is written from the model file's own record: the scale wording from `meta.scale` (stereo baseline,
ground-plane fit to the camera height, the init model's, metric), the data and limits from `meta.provenance`
(the project's synthetic drives, or the user's own recordings that `--preset adapt` fine-tuned on), and the
licence claims the project's only for weights the project trained on its own synthetic drives.

A storage drift above `DRIFT_WARN_REL` is warned about loudly (log and card), with `--storage fp16` recommended.
The usual cause is a short fine-tune of an int8-stored base model (models/default.pt): the fine-tune moves most
weights by less than half an int8 step, so int8 storage rounds them back onto the base model's values and undoes
much of the adaptation (fp16 keeps it).

It renders held-out synthetic frames, so it sits above `sim` (beside `train`, whose provenance the card quotes)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.errors import DepthNodeError

log = logging.getLogger(__name__)

PROJECT_LICENCE = ("Apache-2.0 (weights trained by the depth_node project on its own synthetic drives; no third-party "
                   "data or weights)")
# No fixed default: `pack_model` picks the licence line from the model's provenance (`default_licence`), so weights
# trained on a user's data never claim the project's licence. (`commands/pack.py` passes `--licence or this`.)
DEFAULT_LICENCE: str | None = None
DRIFT_WARN_REL = 0.01  # mean relative change of the network output above which compact storage is warned about


@dataclass
class PackResult:
    model: Path  # the compact model file
    onnx_dir: Path
    card: Path
    sizes: dict[str, int]  # file (relative to the output folder) → bytes
    drift: dict[str, float]  # storage drift (`storage_drift`)
    warnings: list[str] = field(default_factory=list)  # also logged and in the card


def pack_model(model: Path, out: Path, name: str = "model", storage: str = "int8", metrics: Path | None = None,
               licence: str | None = DEFAULT_LICENCE) -> PackResult:
    """OUT/NAME.pt, OUT/NAME_onnx/{depth,pose}.onnx and OUT/NAME.md from the trained `model`; `metrics`: a
    held-out metrics JSON (eval-bag / demo) to quote in the card; `licence`: the card's licence line (None: from
    the provenance, `default_licence`)."""
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
    warnings = []
    if storage != "fp32" and drift["mean_rel"] > DRIFT_WARN_REL:
        warnings.append(drift_warning(ref, storage, drift))
        log.warning("STORAGE DRIFT: %s", warnings[-1])
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in (pt, *res.files().values())}
    card = out / f"{name}.md"
    card.write_text(model_card(name, packed, sizes, drift, storage, held_out, licence, warnings=warnings))
    return PackResult(pt, out / f"{name}_onnx", card, sizes, drift, warnings)


def drift_warning(ref, storage: str, drift: dict) -> str:
    """What a storage drift above `DRIFT_WARN_REL` means and what to do: the drift of the next finer storage, and
    for int8 the share of weights that int8 rounds back onto the init model's own int8 values (`snapped_back`)."""
    import torch

    finer = "fp16" if storage == "int8" else "fp32"
    msg = (f"{storage} weight storage changed the network output by {100 * drift['mean_rel']:.2f} % on average "
           f"(p99 {100 * drift['p99_rel']:.1f} %) on held-out frames, above the {100 * DRIFT_WARN_REL:g} % "
           f"threshold; re-pack with `--storage {finer}`")
    if finer == "fp16":
        half = {k: v.half().float() if torch.is_floating_point(v) else v for k, v in ref.depth_state.items()}
        d16 = storage_drift(ref, dataclasses.replace(ref, depth_state=half))
        msg += f" (its drift: {100 * d16['mean_rel']:.3f} %)"
        snap = snapped_back(ref)
        if snap is not None:
            share, init = snap
            msg += (f". Cause: {100 * share:.0f} % of the int8 weights are exactly the init model's own int8 values "
                    f"({init}): the fine-tune moved most weights by less than half an int8 step, so int8 storage "
                    "rounds them back and undoes much of the adaptation")
    return msg + "."


def snapped_back(ref) -> tuple[float, str] | None:
    """(share of the int8-stored depth weights whose int8 value equals the init model's, init path) for a model
    fine-tuned from `model.init`; None without a readable init of the same shapes."""
    init = ((((ref.meta.get("provenance") or {}).get("config") or {}).get("model")) or {}).get("init")
    if not init:
        return None
    from depth_node.checkpoints.model_file import int8_codes, int8_stored, load_model

    try:
        base = load_model(init)
    except Exception:  # moved, deleted or another format: no cause to name
        return None
    same = total = 0
    for k, w in ref.depth_state.items():
        b = base.depth_state.get(k)
        if b is None or b.shape != w.shape or not int8_stored(w):
            continue
        same += int((int8_codes(w)[0] == int8_codes(b)[0]).sum())
        total += w.numel()
    return (same / total, str(init)) if total else None


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


def training_data(mf) -> dict[str, Any]:
    """Where the weights come from, from `meta.provenance`: kind "synthetic" (the project's rendered drives),
    "user" (the user's recordings: `data.train` of the config, e.g. `--preset adapt --data`) or "unknown" (not
    recorded); the sources, validation data, sample count and the init (base) model."""
    prov = mf.meta.get("provenance") or {}
    cfg = prov.get("config") or {}
    data = prov.get("data") if isinstance(prov.get("data"), dict) else {}
    sources = list((cfg.get("data") or {}).get("train") or [])
    synth = cfg.get("synth") or {}
    if sources:
        kind = "user"
    elif (synth.get("train") or {}).get("seeds"):
        kind = "synthetic"
    else:
        kind = "unknown"
    return {"kind": kind, "sources": sources or list(data.get("train") or []),
            "names": list(data.get("train") or []), "val": list(data.get("val") or []),
            "samples": data.get("train_samples"), "init": (cfg.get("model") or {}).get("init"),
            "steps": prov.get("steps"), "synth": synth}


def _is_project_model(path: str | None) -> bool:
    """A model shipped in the package's models/ folder (the project's own weights)."""
    if not path:
        return False
    from depth_node.paths import models_dir

    try:
        return Path(path).resolve().parent == models_dir().resolve()
    except OSError:
        return False


def _listing(items: list[str], most: int = 4) -> str:
    shown = ", ".join(f"`{x}`" for x in items[:most])
    return shown + (f" … ({len(items)} in all)" if len(items) > most else "") if items else "(not recorded)"


def default_licence(mf) -> str:
    """The licence line when `--licence` is not given: the licence recorded with imported weights; the project's
    Apache-2.0 for weights it trained on its own synthetic drives (from scratch or from its own models); otherwise
    no claim: weights fine-tuned on a user's data derive from that data and the base model, so their licence is
    the user's to set."""
    if mf.meta.get("licence"):
        return str(mf.meta["licence"])
    d = training_data(mf)
    if d["kind"] == "synthetic" and (not d["init"] or _is_project_model(d["init"])):
        return PROJECT_LICENCE
    set_it = "set it with `depth-node pack --licence TEXT`"
    if d["kind"] == "user":
        base = ""
        if d["init"]:
            own = " (the depth_node project's, Apache-2.0)" if _is_project_model(d["init"]) else ""
            base = f" and the base model `{d['init']}`{own}, whose licence still applies to what is kept of it"
        return (f"not set — the weights derive from the user's own data ({_listing(d['sources'], 3)}){base}; the "
                f"licence is the data owner's to choose: {set_it}")
    return f"not recorded — the training data of these weights is not recorded in the model file; {set_it}"


def scale_text(mf) -> str:
    """How the model's depth becomes metres and where that factor came from, from `meta.scale`."""
    sc = mf.meta.get("scale") or {}
    kind, factor, src = sc.get("kind"), sc.get("factor"), str(sc.get("from") or "")
    f = f"×{factor:.4g}" if isinstance(factor, (int, float)) else "×?"
    if kind == "stereo":
        b = sc.get("baseline_m")
        return (f"metric from the stereo baseline of the training rig ({b} m): depth {f} is metres (baseline / "
                "0.1).")
    if kind == "metric" and "ground plane" in src:
        h = (((mf.meta.get("provenance") or {}).get("config") or {}).get("model") or {}).get("scale_camera_height_m")
        if h is None:
            m = re.search(r"camera height ([0-9.eE+-]+) m", src)
            h = m.group(1) if m else "?"
        fitted = f"; {sc['frames_fitted']} training frames fitted" if sc.get("frames_fitted") else ""
        return (f"metric from a ground-plane fit: the factor {f} puts the floor fitted in the predicted depth {h} m "
                f"below the camera (the camera height given in training{fitted}); depth {f} is metres for a camera "
                "mounted at that height.")
    if kind == "metric" and "init" in src:
        init = sc.get("init_scale") or {}
        how = (f"its stereo baseline {init.get('baseline_m')} m" if init.get("kind") == "stereo"
               else f"its {init.get('kind', 'metric')} scale")
        return (f"metric scale inherited from the init (base) model ({how}): depth {f} is metres as far as the "
                "monocular fine-tune kept the base model's scale; it was not measured on the new camera.")
    if kind == "metric":
        return f"metric — the network's depth {f} is metres{f' ({src})' if src else ''}."
    if kind == "relative":
        return ("relative — no metric scale; the node recovers it at run time (`scale_source`, e.g. the ground "
                "plane or a metric model).")
    return f"not recorded in the model file ({json.dumps(sc)})."


def _data_section(mf, d: dict[str, Any]) -> list[str]:
    if d["kind"] == "synthetic":
        tr, va = d["synth"].get("train") or {}, d["synth"].get("val") or {}
        return [f"Synthetic drives rendered by `depth_node.sim` (no external data): training seeds "
                f"{tr.get('seeds')} ({tr.get('frames')} frames each), validation seeds {va.get('seeds')} "
                f"({va.get('frames')} frames each); {d['samples']} training samples.", ""]
    if d["kind"] == "user":
        names = f" (sequences {_listing(d['names'])})" if d["names"] and d["names"] != d["sources"] else ""
        base = (f", fine-tuned from the base model `{d['init']}`" if d["init"] else ", trained from scratch")
        val = (f"validation on {_listing(d['val'])}" if d["val"] else
               "no validation data with ground truth (its accuracy on this data was not measured)")
        return [f"The user's own data, not the project's synthetic drives: training sources "
                f"{_listing(d['sources'])}{names}, {d['samples']} training samples{base}; {val}.", ""]
    return [f"Training data: not recorded ({(mf.meta.get('provenance') or {}).get('data')}).", ""]


def _limits(mf, d: dict[str, Any]) -> list[str]:
    if d["kind"] == "synthetic":
        return ["Trained on synthetic street scenes only: expect a domain gap on real cameras (train on your own "
                "footage with `depth-node train`, starting from this model with `model.init`). The depth is metric "
                "only for the training rig's intrinsics class; other cameras need `scale_source` set accordingly."]
    if d["kind"] != "user":
        return ["The training data is not recorded in the model file: what the model was trained on, and so where "
                "it works, is unknown."]
    sc = mf.meta.get("scale") or {}
    src = str(sc.get("from") or "")
    out = [f"Adapted to the user's data ({_listing(d['sources'], 3)}) in {d['steps']} steps: expect it to work for "
           "that camera and similar scenes; on other cameras and scenes expect no better than its base model."]
    if not d["val"]:
        out.append("It was not validated against ground truth during training: measure it on held-out frames with "
                   "depth (`depth-node eval-depth`) before relying on its accuracy.")
    if sc.get("kind") == "metric" and "ground plane" in src:
        out.append("The metric scale holds for a camera mounted as in training (the height above a flat floor that "
                   "the fit used); another mounting height or a camera that does not see the floor needs a new fit.")
    elif sc.get("kind") == "metric" and "init" in src:
        out.append("The metric scale is the base model's, carried over by a monocular fine-tune rather than measured "
                   "on this camera: check it against known distances, or fit it with `--camera-height`.")
    elif sc.get("kind") == "relative":
        out.append("No metric scale: the node must recover it at run time (`scale_source`).")
    return [" ".join(out)]


def model_card(name: str, mf, sizes: dict[str, int], drift: dict, storage: str, metrics: dict | None,
               licence: str | None = None, warnings: list[str] | None = None) -> str:
    """The card's Markdown; `licence` None: `default_licence`; `warnings`: shown under the weight storage line."""
    prov = mf.meta.get("provenance") or {}
    cfg = prov.get("config") or {}
    d = training_data(mf)
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
        scale = f"- Scale: {scale_text(mf)} (`{json.dumps(mf.meta.get('scale'))}`)"
    lines += [arch,
              f"- Training: `depth-node train`, mode {prov.get('mode')}, seed {prov.get('seed')}, "
              f"{prov.get('steps')} steps in {prov.get('train_seconds')} s, best epoch {prov.get('best_epoch')}.",
              scale,
              f"- Weight storage: {storage} (loads as fp32); storage drift on held-out frames: mean "
              f"{100 * drift['mean_rel']:.3f} %, p99 {100 * drift['p99_rel']:.3f} % of {output}."]
    lines += [f"- **Warning: {w}**" for w in warnings or ()]
    lines += ["- Files: " + ", ".join(f"`{k}` {v / 1e6:.1f} MB" for k, v in sizes.items()) + ".",
              f"- Licence: {licence or default_licence(mf)}.", ""]
    lines += ["## Data", "", *_data_section(mf, d)]
    val = prov.get("metrics")
    if val:
        held = "held-out seeds" if d["kind"] == "synthetic" else f"held-out data: {_listing(d['val'])}"
        lines += [f"## Validation ({held}, during training)", "",
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
    lines += ["## Limits", "", *_limits(mf, d), ""]
    return "\n".join(lines)


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)
