"""The one backend interface used by the node and the tools.

A backend runs the exported graphs (see `depth_node.export.wrappers`) and nothing else: inputs are float32
NCHW RGB in [0, 1] at the network size; outputs are the graph's named arrays. Everything model-specific
(turning outputs into metres, pose conventions, resizing) lives in `DepthEstimator`, so every backend behaves
identically and can be checked against the others output by output."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from depth_node.checkpoints.camera_record import derive_camera_record
from depth_node.errors import BackendError
from depth_node.geometry.depth import MAX_DEPTH, MIN_DEPTH

__all__ = ["Backend", "BackendError", "GraphRunner", "ModelInfo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What a backend must know about the model it runs; from a model file or an ONNX file's metadata_props."""

    arch: str
    height: int
    width: int
    min_depth: float = MIN_DEPTH
    max_depth: float = MAX_DEPTH
    scale: dict[str, Any] = field(default_factory=lambda: {"kind": "relative", "factor": 1.0})
    digest: str = ""
    has_pose: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    camera: dict[str, Any] = field(default_factory=dict)  # the model file's canonical-camera record (meta.camera)

    @property
    def scale_kind(self) -> str:
        return str(self.scale.get("kind", "relative"))

    @property
    def canonical(self) -> dict[str, Any] | None:
        """The training camera (fx, fy at the training input size), or None for models that take f_px."""
        return self.camera.get("canonical") if self.camera else None

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """Input sizes (h, w) this model, as the backend runs it, accepts; the training size first."""
        sizes = (self.camera.get("input") or {}).get("sizes") if self.camera else None
        return [(int(h), int(w)) for h, w in sizes] if sizes else [(self.height, self.width)]

    def with_sizes(self, sizes: list[tuple[int, int]]) -> ModelInfo:
        """This info limited to `sizes` (a static-shape ONNX runs only the size it was exported at)."""
        cam = dict(self.camera)
        cam["input"] = {**(cam.get("input") or {}), "sizes": [list(s) for s in sizes]}
        return replace(self, camera=cam)

    @classmethod
    def from_model_file(cls, model) -> ModelInfo:
        return cls(
            arch=model.arch,
            height=model.height,
            width=model.width,
            min_depth=float(model.meta.get("min_depth", 0.1)),
            max_depth=float(model.meta.get("max_depth", 100.0)),
            scale=dict(model.meta.get("scale", {"kind": "relative", "factor": 1.0})),
            digest=model.digest(),
            has_pose=model.has_pose,
            config=dict(model.config),
            camera=dict(model.camera),
        )

    @classmethod
    def from_onnx_metadata(cls, meta: dict[str, str], has_pose: bool = False) -> ModelInfo:
        if "depth_node.arch" not in meta:
            raise BackendError("ONNX file carries no depth_node metadata: export it with `depth-node export`")
        arch, height, width = meta["depth_node.arch"], int(meta["depth_node.height"]), int(meta["depth_node.width"])
        camera = json.loads(meta.get("depth_node.camera", "null"))
        if camera is None:  # exported before the record existed: the documented default camera, this one size
            camera, _ = derive_camera_record(arch, height, width, {})
            camera["input"]["sizes"] = [[height, width]]
            if arch == "monodepth2":
                log.warning("ONNX file has no canonical-camera record (exported before it existed): assuming the "
                            "default KITTI-like synthetic camera (81.4° HFOV); re-export it with `depth-node export`")
        return cls(
            arch=arch,
            height=height,
            width=width,
            min_depth=float(meta.get("depth_node.min_depth", 0.1)),
            max_depth=float(meta.get("depth_node.max_depth", 100.0)),
            scale=json.loads(meta.get("depth_node.scale", "{}")) or {"kind": "relative", "factor": 1.0},
            digest=meta.get("depth_node.model_digest", ""),
            has_pose=has_pose,
            config=json.loads(meta.get("depth_node.config", "{}")),
            camera=camera,
        )


GraphRunner = Callable[[np.ndarray], dict[str, np.ndarray]]


class Backend:
    """Runs the depth graph (and the pose graph when the model has one).

    A backend's constructor prepares one runner per graph — a callable from the input array to the graph's
    named outputs — and stores them in `_depth` and `_pose`; everything else is shared here."""

    name: str = "?"

    def __init__(self, info: ModelInfo, precision: str, device: str):
        self.info = info
        self.precision = precision
        self.device = device
        self._depth: GraphRunner | None = None
        self._pose: GraphRunner | None = None

    @property
    def has_pose(self) -> bool:
        return self._pose is not None

    def run_depth(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """image: float32 [1, 3, H, W] in [0, 1] → named outputs (float32)."""
        if self._depth is None:
            raise BackendError(f"{self.describe()} is closed")
        return self._depth(image)

    def run_pose(self, pair: np.ndarray) -> dict[str, np.ndarray]:
        """pair: float32 [1, 6, H, W], earlier frame first → axisangle, translation, T."""
        if self._pose is None:
            raise BackendError(f"{self.describe()} has no pose network (the model file holds none)")
        return self._pose(pair)

    def describe(self) -> str:
        return f"{self.name}/{self.precision}/{self.device}"

    def close(self) -> None:
        """Release device resources (GPU memory, sessions)."""
        self._depth = self._pose = None
