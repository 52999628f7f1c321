"""Synthetic driving scenes with exact ground truth (depth, pose, semantics, instances), rendered on the CPU.

    from depth_node.sim import DriveConfig, render_drive
    for frame in render_drive(DriveConfig(seed=1, frames=50)): ...

See `drive` for the frame conventions, `writers` (and `depth_node.io.kitti_folder`) for the on-disk formats.
"""

from depth_node.sim.config import DriveConfig
from depth_node.sim.drive import Drive, Frame, render_drive

__all__ = ["Drive", "DriveConfig", "Frame", "render_drive"]
