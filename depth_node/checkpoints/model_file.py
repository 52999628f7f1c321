"""The project's one self-describing model file: weights plus everything needed to use them.

Every command takes this file. It is a `torch.save`d dict of plain containers and tensors (loaded with
`weights_only=True`, so a model file cannot run code):

    format: "depth_node.model", version: 1
    arch: "monodepth2" | "depth_pro"
    config: architecture parameters (monodepth2: num_layers; depth_pro: the preset dict)
    input: {"height": H, "width": W}  network input size; RGB in [0, 1], normalisation happens inside
    depth: state_dict of the depth network module (built by `build_depth_net`)
    pose: state_dict of the pose network module, or None
    meta: {"min_depth", "max_depth", "scale": {...}, "camera": {...}, "provenance": {...}, ...}

Storage (`save_model(..., storage=)`): "fp32" (default), "fp16", or "int8" — symmetric per-output-channel
int8 for weight tensors (≥ 2-D), fp16 for the rest, scales in `storage_scales` — so a shipped model with its
pose network fits in ~30 MB. Loading always yields fp32 tensors; such files carry version 2.

`meta.scale` says how the depth output becomes metres: {"kind": "stereo", "baseline_m": B, "factor": B/0.1}
for models trained with stereo pairs, {"kind": "relative", "factor": 1.0} for mono models (scale recovered at
run time), {"kind": "metric"} for models that predict metres themselves.

`meta.camera` records the canonical camera (the focal length the network learned depth for) and the input sizes
it accepts (`depth_node.checkpoints.camera_record`); `load_model` derives it for files written without one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depth_node.checkpoints.camera_record import check_camera_record, derive_camera_record
from depth_node.errors import DepthNodeError

log = logging.getLogger(__name__)

FORMAT = "depth_node.model"
VERSION = 2  # 2: compact storage (fp16/int8); plain fp32 files are still written as version 1
STORAGES = ("fp32", "fp16", "int8")
ARCHS = ("monodepth2", "depth_pro")


class ModelFileError(DepthNodeError):
    """A model file or checkpoint that cannot be used as it is."""


@dataclass
class ModelFile:
    arch: str
    config: dict[str, Any]
    height: int
    width: int
    depth_state: dict[str, torch.Tensor]
    pose_state: dict[str, torch.Tensor] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def has_pose(self) -> bool:
        return self.pose_state is not None

    @property
    def depth_scale(self) -> float:
        """Factor from the network's depth output to metres (1 when unknown or already metric)."""
        return float(self.meta.get("scale", {}).get("factor", 1.0))

    @property
    def scale_kind(self) -> str:
        return str(self.meta.get("scale", {}).get("kind", "relative"))

    @property
    def camera(self) -> dict[str, Any]:
        """The canonical-camera record (meta.camera), derived from the training config when the file has none."""
        rec = self.meta.get("camera")
        return rec if rec else derive_camera_record(self.arch, self.height, self.width, self.meta)[0]

    @property
    def input_sizes(self) -> list[tuple[int, int]]:
        """(h, w) input sizes the network accepts, the training size first."""
        return [(int(h), int(w)) for h, w in self.camera["input"]["sizes"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "arch": self.arch,
            "config": self.config,
            "input": {"height": self.height, "width": self.width},
            "depth": self.depth_state,
            "pose": self.pose_state,
            "meta": self.meta,
        }

    def digest(self) -> str:
        """Content hash of the weights and settings (engine caches key on it)."""
        h = hashlib.sha256()
        h.update(repr((self.arch, sorted(self.config.items()), self.height, self.width)).encode())
        for part in (self.depth_state, self.pose_state or {}):
            for k in sorted(part):
                h.update(k.encode())
                h.update(part[k].detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def int8_stored(v: torch.Tensor) -> bool:
    """Whether int8 storage keeps this tensor as int8: float weights of 2+ dimensions and at least 256 values (the
    rest, biases and norms, in fp16)."""
    return torch.is_floating_point(v) and v.dim() >= 2 and v.numel() >= 256


def int8_codes(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values as float, scale per output channel) of symmetric per-output-channel int8 storage; an
    int8-stored tensor, loaded as fp32, gives its own stored values back."""
    w = v.detach().float()
    scale = w.abs().reshape(w.shape[0], -1).amax(dim=1).clamp_min(1e-12) / 127.0
    return torch.round(w / scale.reshape(-1, *([1] * (w.dim() - 1)))).clamp(-127, 127), scale


def _compact(state: dict[str, torch.Tensor] | None, storage: str) -> tuple[dict | None, dict]:
    """State dict in the storage dtype, plus int8 scales (per output channel)."""
    if state is None or storage == "fp32":
        return state, {}
    out, scales = {}, {}
    for k, v in state.items():
        if not torch.is_floating_point(v):
            out[k] = v
        elif storage == "int8" and int8_stored(v):
            q, scales[k] = int8_codes(v)
            out[k] = q.to(torch.int8)
        else:
            out[k] = v.detach().to(torch.float16)
    return out, scales


def _expand(state: dict[str, torch.Tensor] | None, scales: dict[str, torch.Tensor]) -> dict | None:
    if state is None:
        return None
    out = {}
    for k, v in state.items():
        if k in scales:
            out[k] = v.float() * scales[k].float().reshape(-1, *([1] * (v.dim() - 1)))
        elif v.dtype in (torch.float16, torch.bfloat16):
            out[k] = v.float()
        else:
            out[k] = v
    return out


def save_model(path: str | os.PathLike, model: ModelFile, storage: str = "fp32") -> Path:
    """Atomic write (temp file + rename): a crash never leaves a half-written model behind. `storage` trades
    size for a tiny weight rounding (fp16: ½, int8: ¼ of the fp32 size); check the drift before shipping."""
    if storage not in STORAGES:
        raise ModelFileError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = model.to_dict()
    if storage != "fp32":
        d["depth"], depth_scales = _compact(model.depth_state, storage)
        d["pose"], pose_scales = _compact(model.pose_state, storage)
        d["version"] = 2
        d["storage"] = {"dtype": storage, "depth_scales": depth_scales, "pose_scales": pose_scales}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(d, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is data others read (installs, services)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_torch_file(path: str | os.PathLike, what: str = "file") -> Any:
    """torch.load with safe unpickling and errors that say what went wrong."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{what} {path} is a folder; give the .pt file (a folder of Monodepth2 weights is "
                             "imported once with `depth-node import monodepth2`)")
    if not path.is_file():
        raise ModelFileError(f"{what} not found: {path}")
    try:
        data = path.read_bytes()
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/truncated pickles and zips
        hint = ("an ONNX graph, not a PyTorch file: give the .pt model file it was exported from"
                if path.suffix.lower() == ".onnx" else "truncated or corrupt download? re-copy the file")
        raise ModelFileError(
            f"cannot read {what} {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]} ({hint})"
        ) from exc


def load_model(path: str | os.PathLike) -> ModelFile:
    d = load_torch_file(path, "model file")
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        hint = ""
        if isinstance(d, dict) and any(str(k).startswith("encoder.") for k in d):
            hint = " It looks like a Monodepth2 encoder.pth: run `depth-node import monodepth2 DIR -o model.pt`."
        raise ModelFileError(f"{path} is not a depth_node model file (no format tag).{hint}")
    if int(d.get("version", 0)) > VERSION:
        raise ModelFileError(f"{path} has model-file version {d['version']}; this depth_node reads ≤ {VERSION}")
    if d.get("arch") not in ARCHS:
        raise ModelFileError(f"{path}: unknown architecture {d.get('arch')!r}; known: {', '.join(ARCHS)}")
    inp = d.get("input") or {}
    st = d.get("storage") or {}
    meta = dict(d.get("meta") or {})
    height, width = int(inp.get("height", 0)), int(inp.get("width", 0))
    if meta.get("camera") is None:
        meta["camera"], warning = derive_camera_record(d["arch"], height, width, meta)
        if warning:
            log.warning("%s: %s", path, warning)
    elif problem := check_camera_record(meta["camera"]):
        raise ModelFileError(f"{path}: {problem} (re-pack it with `depth-node pack`)")
    return ModelFile(
        arch=d["arch"],
        config=dict(d.get("config") or {}),
        height=height,
        width=width,
        depth_state=_expand(d["depth"], st.get("depth_scales") or {}),
        pose_state=_expand(d.get("pose"), st.get("pose_scales") or {}),
        meta=meta,
    )


def _optional(key: str) -> bool:
    """Entries a checkpoint may lack: BatchNorm bookkeeping, and the unused classifier of a torchvision ResNet
    (released Monodepth2 encoders carry it; our model files drop it)."""
    return key.endswith("num_batches_tracked") or "encoder.fc." in key


def check_state_dict(module: nn.Module, state: dict[str, Any], what: str) -> None:
    """Strict key and shape check with a message listing what is missing, unexpected, or mis-shaped."""
    expected = module.state_dict()
    given = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing = [k for k in expected if k not in given and not _optional(k)]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: file {tuple(given[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:5])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches ({'; '.join(shapes[:5])})")
        raise ModelFileError(f"{what} does not fit the network: " + "; ".join(parts))


def load_into(module: nn.Module, state: dict[str, Any], what: str) -> nn.Module:
    check_state_dict(module, state, what)
    module.load_state_dict({k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, strict=False)
    return module


def build_depth_net(model: ModelFile) -> nn.Module:
    """The depth network of a model file, weights loaded, in eval mode (float32, CPU)."""
    if model.arch == "monodepth2":
        from depth_node.networks.monodepth2 import DepthNet

        net = DepthNet(int(model.config.get("num_layers", 18)))
    elif model.arch == "depth_pro":
        from depth_node.networks.depth_pro import build_depth_pro

        net = build_depth_pro(model.config)
    else:  # load_model already rejects these
        raise ModelFileError(f"unknown architecture {model.arch}")
    return load_into(net, model.depth_state, "depth weights").eval()


def build_pose_net(model: ModelFile) -> nn.Module | None:
    if model.pose_state is None:
        return None
    from depth_node.networks.monodepth2 import PoseNet

    net = PoseNet(int(model.config.get("pose_num_layers", model.config.get("num_layers", 18))))
    return load_into(net, model.pose_state, "pose weights").eval()
