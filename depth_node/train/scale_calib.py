"""The metric scale of a monocular (mode M) fine-tune: inherited from a metric model.init, or measured from the
robot's known camera height.

A monocular photometric loss is blind to scale: starting from a stereo-trained (metric) model, a fine-tune keeps
the init's scale except for slow drift, so the written model keeps the init's factor (`model.keep_init_scale`).
Where the camera height above the floor is known, `model.scale_camera_height_m` measures the scale instead: the
ground plane is fitted (the node's robust `GroundPlaneScale` fit) in the predicted depth of training frames and
the factor is set so that the plane lies that far below the camera — the median over frames whose fit succeeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.scale import GroundPlaneConfig, GroundPlaneScale
from depth_node.train.errors import DataError

METRIC_KINDS = ("stereo", "metric")


def inherited_scale(init_scale: dict[str, Any] | None) -> dict[str, Any] | None:
    """The scale a monocular fine-tune of a model with `init_scale` keeps: metric or stereo ones only."""
    if not init_scale or str(init_scale.get("kind")) not in METRIC_KINDS:
        return None
    return dict(init_scale)


def plane_distances(depths: Sequence[np.ndarray], intrinsics: Sequence[Intrinsics], camera_height_m: float,
                    seed: int = 0) -> list[float]:
    """The ground plane's distance (network units) in each frame where one is found (lower 40 % of the image,
    at most 20° from level)."""
    est = GroundPlaneScale(GroundPlaneConfig(camera_height=camera_height_m, roi_top=0.6), seed=seed)
    heights = []
    for depth, intr in zip(depths, intrinsics):
        fit = est.fit(est.points(depth, intr))
        if fit is not None:
            heights.append(fit[1])
    return heights


def camera_height_factor(depths: Sequence[np.ndarray], intrinsics: Sequence[Intrinsics], camera_height_m: float,
                         min_fits: int = 5, seed: int = 0) -> tuple[float, int]:
    """(factor from network depth to metres, frames fitted): camera height / median plane distance.

    `depths` are in network units at the grid of `intrinsics`. The ground region is the lower 40 % of the
    image (a robot's camera sees the floor there); fits tilted more than 20° from level are rejected."""
    heights = plane_distances(depths, intrinsics, camera_height_m, seed)
    if len(heights) < min_fits:
        raise DataError(
            f"model.scale_camera_height_m: a ground plane was found in {len(heights)} of {len(depths)} training "
            f"frames (need {min_fits}); the floor must fill the lower part of the image — unset the key to keep "
            "the init model's scale")
    return camera_height_m / float(np.median(heights)), len(heights)
