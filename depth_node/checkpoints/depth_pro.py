"""Import of a released-format Depth Pro checkpoint (`depth_pro.pt`: a plain state_dict, fp16 in Apple's release)
into a depth_node model file.

The architecture is recognised from the tensor shapes by comparing against every preset (built on the meta
device, so nothing is allocated): a shape-only reading cannot recover the head count or hooked blocks, which
is why matching whole presets is safer than reconstructing a config from shapes. A file without any `fov.*`
tensors matches the preset with the FOV head switched off (the reference cannot load such a file at all).
When nothing matches, the error lists the missing, unexpected and mis-shaped keys against the closest preset.
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from depth_node.checkpoints.model_file import FORMAT, ModelFile, ModelFileError, check_state_dict, load_torch_file
from depth_node.networks.depth_pro import (
    INVERSE_DEPTH_CLAMP,
    PRESETS,
    DepthProConfigError,
    build_depth_pro,
    network_size,
    resolve_config,
)

# timm classification-head norm: present in some ViT exports, never used for dense features (the reference
# tolerates it missing); dropped on import rather than rejected.
IGNORED_KEY_PARTS = (".fc_norm.",)


def _candidates() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name, cfg in PRESETS.items():
        out.append((name, resolve_config(cfg)))
        if cfg.get("use_fov_head", True):
            out.append((f"{name} (no FOV head)", resolve_config({**copy.deepcopy(cfg), "use_fov_head": False})))
    return out


def _expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        net = build_depth_pro(config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _mismatches(expected: dict[str, tuple[int, ...]], given: dict[str, torch.Tensor]) -> int:
    missing = sum(k not in given for k in expected)
    unexpected = sum(k not in expected for k in given)
    shapes = sum(k in given and tuple(given[k].shape) != s for k, s in expected.items())
    return missing + unexpected + shapes


def infer_config(state: dict[str, torch.Tensor], what: str = "checkpoint") -> tuple[str, dict[str, Any]]:
    """(preset label, config) whose network has exactly the keys and shapes of `state`; `ModelFileError` naming
    the offending keys against the closest preset otherwise."""
    scored = []
    for label, cfg in _candidates():
        expected = _expected_shapes(cfg)
        scored.append((_mismatches(expected, state), label, cfg))
    exact = [(label, cfg) for n, label, cfg in scored if n == 0]
    if len(exact) > 1:
        raise ModelFileError(
            f"{what} fits several presets ({', '.join(label for label, _ in exact)}) that differ in settings the "
            "weights cannot tell apart (e.g. head count); pass the preset explicitly"
        )
    if exact:
        return exact[0]
    _, label, cfg = min(scored, key=lambda s: s[0])
    with torch.device("meta"):
        net = build_depth_pro(cfg)
    check_state_dict(net, state, f"{what} (compared with the closest preset, {label!r})")
    raise AssertionError("unreachable: check_state_dict accepted a state that was counted as mismatching")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def _unwrap(obj: Any, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise ModelFileError(f"{what} holds a {type(obj).__name__}, not a state_dict")
    if obj.get("format") == FORMAT:
        raise ModelFileError(f"{what} is already a depth_node model file; use it directly")
    # Training frameworks often nest the weights; the released file does not, but unwrapping costs nothing.
    for key in ("state_dict", "model"):
        if key in obj and isinstance(obj[key], dict) and len(obj) <= 3:
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not any(k.startswith("encoder.patch_encoder.") for k in tensors):
        hint = ""
        if any(k.startswith(("encoder.conv1", "encoder.layer1")) for k in tensors):
            hint = " It looks like a Monodepth2 encoder.pth: use `depth-node import monodepth2 DIR`."
        raise ModelFileError(
            f"{what} is not a Depth Pro checkpoint (no `encoder.patch_encoder.*` tensors among {len(tensors)}).{hint}"
        )
    return {k: v for k, v in tensors.items() if not any(p in k for p in IGNORED_KEY_PARTS)}


def import_depth_pro(
    path: str | os.PathLike,
    preset: str | dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> ModelFile:
    """Model file for a released-format `depth_pro.pt`.

    `preset` (a name or config dict) skips shape-based recognition, e.g. for a custom architecture. Floating
    tensors are stored as `dtype`: float32 by default, so the model file holds exactly what the float32 network
    computes with (the fp16 release doubles to ~3.8 GB); pass torch.float16 to keep the release's size.
    """
    path = Path(path)
    what = f"Depth Pro checkpoint {path.name}"
    state = _unwrap(load_torch_file(path, "Depth Pro checkpoint"), what)
    if preset is None:
        label, config = infer_config(state, what)
    else:
        try:
            config = resolve_config(PRESETS[preset] if isinstance(preset, str) else preset)
        except KeyError:
            raise ModelFileError(f"unknown Depth Pro preset {preset!r}; known: {', '.join(PRESETS)}") from None
        except DepthProConfigError as exc:
            raise ModelFileError(str(exc)) from exc
        label = config.get("preset", "custom")
        with torch.device("meta"):
            check_state_dict(build_depth_pro(config), state, what)

    depth_state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    provenance = {
        "source": "depth_pro.pt",
        "path": str(path.resolve()),
        "sha256": _sha256(path),
        "preset": label,
        "checkpoint_dtype": sorted({str(v.dtype) for v in state.values()}),
    }
    return depth_pro_model_file(config, depth_state, provenance,
                                "Apple's Depth Pro weights: Apple sample-code / ML research licence (check before use)")


def depth_pro_model_file(config: dict[str, Any], depth_state: dict[str, torch.Tensor], provenance: dict[str, Any],
                         licence: str | None = None) -> ModelFile:
    """The model file of a Depth Pro network (imported or trained here): config, weights and the metadata every
    backend needs to turn its outputs into metres."""
    size = network_size(config)
    meta: dict[str, Any] = {
        # infer()'s clamp: inverse depth in [1e-4, 1e4] → depth in [1e-4, 1e4] m
        "min_depth": 1.0 / INVERSE_DEPTH_CLAMP[1],
        "max_depth": 1.0 / INVERSE_DEPTH_CLAMP[0],
        "scale": {"kind": "metric", "factor": 1.0},
        "output": {
            "kind": "canonical_inverse_depth",
            "note": "inverse depth [1/m] = output · W / f_px (f_px at image width W; from CameraInfo, else "
            "from fov_deg); depth = 1 / clamp(inverse, 1e-4, 1e4)",
            "fov_head": bool(config["use_fov_head"]),
        },
        "provenance": provenance,
    }
    if licence:
        meta["licence"] = licence
    return ModelFile(arch="depth_pro", config=config, height=size, width=size, depth_state=depth_state,
                     pose_state=None, meta=meta)
