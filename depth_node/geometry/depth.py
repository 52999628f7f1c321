"""Depth-output conventions of the Monodepth2 family, implemented once.

`disp_to_depth` maps the sigmoid disparity to depth in [min_depth, max_depth] (0.1, 100 by default).
Models trained with stereo pairs (S, MS) learned a nominal baseline of 0.1, so metres = depth × baseline/0.1
(5.4 on KITTI's 0.54 m rig); mono (M) models are up to an unknown scale that the node recovers at run time.
"""

from __future__ import annotations

NOMINAL_STEREO_BASELINE = 0.1
MIN_DEPTH, MAX_DEPTH = 0.1, 100.0  # the network's output range (the reference's), in its own units


def disp_to_depth(disp, min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH):
    """Works on torch tensors and NumPy arrays alike; returns (scaled_disp, depth)."""
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    scaled_disp = min_disp + (max_disp - min_disp) * disp
    return scaled_disp, 1.0 / scaled_disp


def stereo_scale(baseline_m: float) -> float:
    """Factor turning a stereo-trained model's depth into metres for a rig of the given baseline."""
    return float(baseline_m) / NOMINAL_STEREO_BASELINE
