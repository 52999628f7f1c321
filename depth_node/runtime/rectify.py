"""Undistortion of raw camera images (camera_info with a non-zero D), with the maps cached per camera.

The model sees what a pinhole camera would: OpenCV's `initUndistortRectifyMap` (plumb_bob,
rational_polynomial) or `fisheye.initUndistortRectifyMap` (equidistant) maps the image onto the grid of P
(or K), as image_proc's rectify does. Building the maps costs tens of milliseconds, so they are kept for the
last few camera models (one per camera_info that differs) and reused for every frame.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from depth_node.io.image_codec import opencv as _cv2
from depth_node.runtime.intrinsics import CameraModel


class Rectifier:
    """Cached undistortion maps keyed by the camera model and image size; not thread-safe (one per core)."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.maps: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.built = 0  # maps built so far (for tests and "logged once")

    def _maps(self, cam: CameraModel, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        key = (cam.distortion_model, cam.K, cam.D, cam.R, cam.new_K, w, h)
        hit = self.maps.get(key)
        if hit is not None:
            self.maps.move_to_end(key)
            return hit
        cv2 = _cv2()
        K, R, new_K = (np.array(v, np.float64).reshape(3, 3) for v in (cam.K, cam.R, cam.new_K))
        D = np.array(cam.D, np.float64)
        if cam.distortion_model == "equidistant":
            m = cv2.fisheye.initUndistortRectifyMap(K, D[:4], R, new_K, (w, h), cv2.CV_32FC1)
        else:
            m = cv2.initUndistortRectifyMap(K, D, R, new_K, (w, h), cv2.CV_32FC1)
        self.maps[key] = m
        self.built += 1
        while len(self.maps) > self.keep:
            self.maps.popitem(last=False)
        return m

    def is_new(self, cam: CameraModel, w: int, h: int) -> bool:
        return (cam.distortion_model, cam.K, cam.D, cam.R, cam.new_K, w, h) not in self.maps

    def __call__(self, rgb: np.ndarray, cam: CameraModel) -> np.ndarray:
        """The image on the rectified grid (bilinear, borders replicated so the model sees no black rim)."""
        h, w = rgb.shape[:2]
        mx, my = self._maps(cam, w, h)
        cv2: Any = _cv2()
        return cv2.remap(np.ascontiguousarray(rgb), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
