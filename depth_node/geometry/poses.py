"""Rigid-motion conventions, implemented once.

Monodepth2's pose network, given frames (I_a, I_b) in temporal order, returns (axisangle, translation) whose
`transformation_from_parameters` M maps points in camera a's coordinates into camera b's: p_b = M p_a.
The camera motion from a to b (pose of camera b expressed in camera a) is therefore inv(M); that is what the
node chains into odometry. All poses here are 4×4 homogeneous matrices in the optical convention unless named
otherwise. REP 103 body axes (x forward, y left, z up) relate to the optical axes through OPTICAL_TO_BODY.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Rotation taking optical-frame coordinates (x right, y down, z forward) to body-frame coordinates
# (x forward, y left, z up): p_body = OPTICAL_TO_BODY @ p_optical.
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _homogeneous_row(batch: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 1, 4) rows [0, 0, 0, 1], made on `like`'s device: a host-made constant would be a host→device copy,
    which CUDA-graph capture (the torch backend on CUDA) refuses."""
    import torch  # lazily: the node's ONNX/OpenVINO/TensorRT path runs without torch
    zeros = torch.zeros(batch, 1, 3, dtype=like.dtype, device=like.device)
    return torch.cat([zeros, torch.ones(batch, 1, 1, dtype=like.dtype, device=like.device)], dim=2)


def rot_from_axisangle(vec: torch.Tensor) -> torch.Tensor:
    """(B, 1, 3) axis-angle → (B, 4, 4) rotation (Rodrigues), numerically as the reference implementation."""
    import torch  # lazily: the node's ONNX/OpenVINO/TensorRT path runs without torch
    angle = torch.norm(vec, 2, 2, True)
    axis = vec / (angle + 1e-7)
    ca, sa = torch.cos(angle), torch.sin(angle)
    C = 1 - ca
    x, y, z = axis[..., 0:1], axis[..., 1:2], axis[..., 2:3]
    xs, ys, zs = x * sa, y * sa, z * sa
    xC, yC, zC = x * C, y * C, z * C
    xyC, yzC, zxC = x * yC, y * zC, z * xC
    row0 = torch.cat([x * xC + ca, xyC - zs, zxC + ys], dim=2)
    row1 = torch.cat([xyC + zs, y * yC + ca, yzC - xs], dim=2)
    row2 = torch.cat([zxC - ys, yzC + xs, z * zC + ca], dim=2)
    R3 = torch.cat([row0, row1, row2], dim=1)  # (B, 3, 3)
    B = vec.shape[0]
    top = torch.cat([R3, torch.zeros(B, 3, 1, dtype=vec.dtype, device=vec.device)], dim=2)
    return torch.cat([top, _homogeneous_row(B, vec)], dim=1)


def get_translation_matrix(t: torch.Tensor) -> torch.Tensor:
    """(B, 1, 3) or (B, 3) translation → (B, 4, 4)."""
    import torch  # lazily: the node's ONNX/OpenVINO/TensorRT path runs without torch
    t = t.reshape(-1, 3)
    B = t.shape[0]
    eye = torch.eye(3, dtype=t.dtype, device=t.device).expand(B, 3, 3)
    top = torch.cat([eye, t.unsqueeze(-1)], dim=2)
    bottom = _homogeneous_row(B, t)
    return torch.cat([top, bottom], dim=1)


def transformation_from_parameters(axisangle: torch.Tensor, translation: torch.Tensor, invert: bool = False):
    """M = T(t) R(axisangle); with invert, R^T T(-t), the exact inverse (reference semantics)."""
    import torch  # lazily: the node's ONNX/OpenVINO/TensorRT path runs without torch
    R = rot_from_axisangle(axisangle)
    t = translation.clone()
    if invert:
        R = R.transpose(1, 2)
        t = t * -1
    T = get_translation_matrix(t)
    return torch.matmul(R, T) if invert else torch.matmul(T, R)


def invert_se3(T: np.ndarray) -> np.ndarray:
    """Inverse of a (..., 4, 4) rigid transform without a general matrix inverse."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def camera_motion_from_pose_net(M: np.ndarray) -> np.ndarray:
    """Pose of the later camera in the earlier camera's frame, from the pose net's M (earlier → later)."""
    return invert_se3(np.asarray(M, dtype=np.float64))


def optical_to_body_transform(T_optical: np.ndarray, R_body_optical: np.ndarray = OPTICAL_TO_BODY) -> np.ndarray:
    """Re-express a motion of the optical frame in body axes (same rigid body, camera at the body origin)."""
    A = np.eye(4)
    A[:3, :3] = R_body_optical
    return A @ T_optical @ invert_se3(A)


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """3×3 rotation → unit quaternion (x, y, z, w), as geometry_msgs orders it."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        w, x, y, z = (R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        w, x, y, z = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        w, x, y, z = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    return q / np.linalg.norm(q)


def matrix_from_quaternion(q) -> np.ndarray:
    """Unit quaternion (x, y, z, w) → 3×3 rotation."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
