"""From camera frames to depth in metres (or relative units) and camera motion, on any backend.

This is where model-specific output conventions are applied, once: Monodepth2's `depth` output already carries
the model's fixed factor (stereo baseline/0.1, or 1 for mono models); Depth Pro's canonical inverse depth
becomes metric with the camera's focal length (from camera_info when known, the FOV head otherwise); the pose
net's M (earlier → later camera coordinates) becomes the camera motion inv(M), its translation in the same
units as depth.

Camera awareness (`depth_node.inference.canonical`): `prepare` feeds each camera at the supported input size
nearest its aspect ratio, and Monodepth2-family depth and pose translation are multiplied by f_in / f_c, the
real camera's focal length at the network input over the model's canonical one, whenever intrinsics are
known. The factor is applied here, after the backend, so every backend runs the same camera-independent graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.poses import camera_motion_from_pose_net
from depth_node.inference.base import Backend, BackendError
from depth_node.inference.canonical import camera_factor, network_intrinsics, pick_input_size
from depth_node.inference.preprocess import output_intrinsics, resize_depth, stack_pair, to_network_input
from depth_node.networks.canonical_depth import depth_from_inverse, focal_from_hfov, inverse_depth_from_canonical


@dataclass
class DepthResult:
    depth: np.ndarray  # (h, w) float32; NaN where invalid
    intrinsics: Intrinsics | None  # of the depth map's pixel grid
    metric: bool  # metres (True) or the model's relative units
    focal_source: str = ""  # depth_pro: "camera_info" or "fov_head"
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    camera_factor: float = 1.0  # f_in / f_c applied to this depth (1: f_px model, or no intrinsics)


class DepthEstimator:
    def __init__(self, backend: Backend, camera_aware: bool = True, sizes: list[tuple[int, int]] | None = None):
        """`camera_aware` False: the pre-camera-aware behaviour (one input size, no focal correction), for
        comparisons. `sizes`: input sizes (h, w) to choose from instead of the model's (experiments; the backend
        must run them: torch runs any, ONNX backends those of a dynamic export)."""
        self.backend = backend
        self.info = backend.info
        self.height, self.width = backend.info.height, backend.info.width  # the training input size
        self.camera_aware = camera_aware
        self.sizes = [tuple(s) for s in sizes] if sizes else backend.info.sizes
        if not camera_aware:
            self.sizes = [(self.height, self.width)]
        self.canonical = backend.info.canonical if camera_aware else None
        f = float(self.info.scale.get("factor", 1.0))
        self.depth_factor = f
        self.metric = self.info.scale_kind in ("stereo", "metric")
        lo, hi = self.info.min_depth, self.info.max_depth
        self.depth_range = (lo * f, hi * f) if self.info.arch == "monodepth2" else (lo, hi)
        self._last_camera: Intrinsics | None = None  # of the latest depth() call, for motion() without intrinsics

    def input_size(self, image_height: int, image_width: int) -> tuple[int, int]:
        """The network input (h, w) for frames of this size: the supported size nearest their aspect ratio."""
        return pick_input_size(self.sizes, image_height, image_width)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB of any size → the network input (float32 [1,3,h,w]) at `input_size`."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
        return to_network_input(rgb, *self.input_size(rgb.shape[0], rgb.shape[1]))

    def camera_factor(self, intrinsics: Intrinsics | None, height: int, width: int) -> float:
        """f_in / f_c for frames of this camera fed at height × width (1 for f_px models or no intrinsics)."""
        return camera_factor(self.canonical, intrinsics, height, width)

    def depth(
        self,
        frame: np.ndarray,
        intrinsics: Intrinsics | None = None,
        out_size: tuple[int, int] | None = None,
    ) -> DepthResult:
        """`frame`: an RGB image or an already `prepare`d input (a resize of the whole frame); `intrinsics`: of the
        frame as captured (any size). `out_size` (h, w): None = network size."""
        x = frame if frame.ndim == 4 else self.prepare(frame)
        nh, nw = int(x.shape[2]), int(x.shape[3])
        outs = self.backend.run_depth(x)
        focal_source, factor = "", 1.0
        if self.info.arch == "depth_pro":
            depth, focal_source = self._depth_pro_depth(outs, intrinsics, nh, nw)
        else:
            depth = np.asarray(outs["depth"], dtype=np.float32).reshape(nh, nw)
            factor = self.camera_factor(intrinsics, nh, nw)
            if factor != 1.0:
                depth = depth * np.float32(factor)
        if intrinsics is not None and intrinsics.is_valid():
            self._last_camera = intrinsics
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)
        if out_size is not None and tuple(out_size) != depth.shape:
            depth = resize_depth(depth, int(out_size[0]), int(out_size[1]))
        h, w = depth.shape
        intr = None if intrinsics is None else output_intrinsics(intrinsics, h, w)
        return DepthResult(depth, intr, self.metric, focal_source, outs, factor)

    def _depth_pro_depth(
        self, outs: dict[str, np.ndarray], intrinsics: Intrinsics | None, nh: int, nw: int
    ) -> tuple[np.ndarray, str]:
        """Canonical inverse depth at the network size → metric depth, with the camera's focal length (else the
        FOV head's): NumPy, so ONNX metric models run without torch."""
        cid = np.asarray(outs["canonical_inverse_depth"], dtype=np.float32).reshape(nh, nw)
        if intrinsics is not None and intrinsics.is_valid():  # f_px: the real focal length at the network input
            f_px, source = network_intrinsics(intrinsics, nh, nw).fx, "camera_info"
        elif "fov_deg" in outs:
            f_px, source = focal_from_hfov(float(np.asarray(outs["fov_deg"]).reshape(-1)[0]), nw), "fov_head"
        else:
            raise BackendError("metric depth needs a focal length: no camera_info reached the node and the model "
                               "has no FOV head; publish CameraInfo beside the image")
        depth = depth_from_inverse(inverse_depth_from_canonical(cid, nw, np.float32(f_px)))
        return depth.astype(np.float32), source

    @property
    def has_pose(self) -> bool:
        return self.backend.has_pose

    def motion(self, earlier: np.ndarray, later: np.ndarray, intrinsics: Intrinsics | None = None) -> np.ndarray:
        """Pose of the later camera in the earlier camera's optical frame (4×4), translation in depth units
        (scaled by the camera factor like depth; `intrinsics` None: the camera of the latest `depth` call)."""
        a = earlier if earlier.ndim == 4 else self.prepare(earlier)
        b = later if later.ndim == 4 else self.prepare(later)
        outs = self.backend.run_pose(stack_pair(a, b))
        motion = camera_motion_from_pose_net(np.asarray(outs["T"], dtype=np.float64).reshape(4, 4))
        camera = intrinsics if intrinsics is not None else self._last_camera
        motion[:3, 3] *= self.depth_factor * self.camera_factor(camera, int(a.shape[2]), int(a.shape[3]))
        return motion
