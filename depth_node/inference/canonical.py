"""Camera-aware depth: the one place that relates a real camera to the network's canonical camera.

A Monodepth2-family network learned "an object this many pixels tall is this far" on its training camera
(focal length f_c in network-input pixels). A real camera, after the resize to the network input, has focal
length f_in there; the network then predicts Z · f_c / f_in, so the metric depth is the prediction times
f_in / f_c (Metric3D's label-space de-canonical transform). The pose net's translation is inferred from the same
apparent motion and scales the same way. Depth Pro models take the focal length itself (f_px at the network
input width) and need no factor.

The factor is applied by `DepthEstimator` after the backend, so the exported graphs stay camera-independent
and every backend runs the identical graph. Focal lengths are combined as the geometric mean √(fx·fy): the
input sizes follow the camera's aspect, so fx and fy at the input differ only by the size's aspect rounding.

Limits: the factor fixes apparent size only. Cues from where objects meet the ground also depend on the
mounting height and pitch, which stay those of the training camera until a model is trained with varied cameras.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from depth_node.geometry.camera import Intrinsics


def network_intrinsics(intr: Intrinsics, height: int, width: int) -> Intrinsics:
    """The camera as the network sees it: preprocessing resizes the whole frame (no crop) to width × height,
    so fx, cx scale by width / W and fy, cy by height / H."""
    return intr if (intr.width, intr.height) == (width, height) else intr.scaled(width, height)


def mean_focal(fx: float, fy: float) -> float:
    return math.sqrt(float(fx) * float(fy))


def camera_factor(canonical: dict[str, Any] | None, intr: Intrinsics | None, height: int, width: int) -> float:
    """f_in / f_c for a frame of camera `intr` fed at height × width: multiply the network's depth (and the pose
    net's translation) by it. 1.0 when the model has no canonical camera (f_px models) or the camera is unknown."""
    if canonical is None or intr is None or not intr.is_valid():
        return 1.0
    k = network_intrinsics(intr, height, width)
    return mean_focal(k.fx, k.fy) / mean_focal(canonical["fx"], canonical["fy"])


def pick_input_size(sizes: Sequence[Sequence[int]], image_height: int, image_width: int) -> tuple[int, int]:
    """The supported (h, w) whose aspect is nearest (in log ratio) to the image's; the first on ties, so the
    training size wins for the training camera."""
    if not sizes:
        raise ValueError("no input sizes")
    target = math.log(image_width / image_height)
    best = min(sizes, key=lambda s: abs(math.log(s[1] / s[0]) - target))
    return int(best[0]), int(best[1])
