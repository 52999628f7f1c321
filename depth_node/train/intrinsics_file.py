"""Camera intrinsics files a user gives the trainer (a frame folder's `intrinsics.yaml`, a video's `<video>.yaml`,
`data.intrinsics` for any source, bags included): their formats, and the check that the numbers are pixels of the
image size they belong to (a normalised K, as the node's `intrinsics` parameter holds it, is the usual mistake).
Its own module so the folder and bag sources (`sources`, `bag_frames`) both read it without importing each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from depth_node.geometry.camera import Intrinsics
from depth_node.train.errors import DataError


def read_intrinsics_file(
    path: Path, width: int | None = None, height: int | None = None
) -> tuple[Intrinsics, float | None]:
    """Intrinsics (and a stereo baseline if the file has one) from YAML/JSON/text.

    Accepted: {fx, fy, cx, cy[, width, height][, baseline]}; {K: 3×3 or 9 numbers, width, height}; a ROS
    camera_info YAML (camera_matrix.data, image_width, image_height; P[3] = −fx·baseline for a right camera);
    a text file of 4 (fx fy cx cy), 6 (+ width height) or 9 (K) numbers. Without a size, the images' size."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot read intrinsics file {path}: {exc}") from exc
    data: Any
    if path.suffix == ".txt":
        nums = [float(x) for x in text.replace(",", " ").split()]
        data = {4: lambda: dict(zip(("fx", "fy", "cx", "cy"), nums)),
                6: lambda: dict(zip(("fx", "fy", "cx", "cy", "width", "height"), nums)),
                9: lambda: {"K": nums}}.get(len(nums), lambda: None)()
        if data is None:
            raise DataError(f"{path}: expected 4 (fx fy cx cy), 6 (+ width height) or 9 (K) numbers, got {len(nums)}")
    else:
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise DataError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with fx, fy, cx, cy (or K, or a ROS camera_info)")
    baseline = data.get("baseline", data.get("baseline_m"))
    w = data.get("width", data.get("image_width", width))
    h = data.get("height", data.get("image_height", height))
    if "camera_matrix" in data:
        K = np.asarray(data["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        P = data.get("projection_matrix", {}).get("data")
        if P is not None and baseline is None and abs(float(P[3])) > 1e-9:
            baseline = abs(float(P[3]) / float(P[0]))
    elif "K" in data:
        K = np.asarray(data["K"], dtype=np.float64).reshape(3, 3)
    elif all(k in data for k in ("fx", "fy", "cx", "cy")):
        K = np.array([[data["fx"], 0, data["cx"]], [0, data["fy"], data["cy"]], [0, 0, 1]], dtype=np.float64)
    else:
        raise DataError(f"{path}: no intrinsics found (need fx, fy, cx, cy, or K, or camera_matrix)")
    if w is None or h is None:
        raise DataError(f"{path}: give width and height (the image size the intrinsics belong to)")
    intr = Intrinsics.from_K(K, int(w), int(h))
    if not intr.is_valid():
        raise DataError(f"{path}: invalid intrinsics {intr}")
    check_pixel_intrinsics(intr, str(path), sized=any(k in data for k in ("width", "image_width")))
    if width is not None and height is not None and (int(w), int(h)) != (width, height):
        intr = intr.scaled(width, height)  # calibrated at another size: same camera, resized images
    return intr, (float(baseline) if baseline is not None else None)


MIN_FOCAL_FRACTION = 0.05  # fx < 0.05·width is a horizontal field of view over 168°: not a pinhole camera


def check_pixel_intrinsics(intr: Intrinsics, what: str, sized: bool = True) -> None:
    """Refuse fx, fy, cx, cy that cannot be pixels of a width × height image: a focal length under 5 % of the
    image size, or a principal point outside the image. The usual cause is a normalised K (divided by the image
    size, as the node's `intrinsics` parameter and Monodepth2 hold it); the error gives the pixel values.
    `sized`: the size came from the file itself (else it is the images' size, the file having none)."""
    W, H = intr.width, intr.height
    focal_ok = intr.fx >= MIN_FOCAL_FRACTION * W and intr.fy >= MIN_FOCAL_FRACTION * H
    centre_ok = 0 <= intr.cx <= W and 0 <= intr.cy <= H
    if focal_ok and centre_ok:
        return
    vals = f"fx={intr.fx:g}, fy={intr.fy:g}, cx={intr.cx:g}, cy={intr.cy:g}"
    if not focal_ok and intr.cx <= 1.5 and intr.cy <= 1.5:  # principal point in the unit square: K / size
        raise DataError(
            f"{what}: {vals} cannot be pixels of a {W}×{H} image; these look normalised (divided by the image "
            f"size); give pixels: fx = {intr.fx:g} × width = {intr.fx * W:.2f}, fy = {intr.fy:g} × height = "
            f"{intr.fy * H:.2f}, cx = {intr.cx:g} × width = {intr.cx * W:.2f}, cy = {intr.cy:g} × height = "
            f"{intr.cy * H:.2f} (and width: {W}, height: {H})"
        )
    size_hint = ("check that width/height are the image size the file was calibrated at" if sized else
                 "the file gives no width/height, so it was taken as the images' size; add the calibration size")
    if not focal_ok:
        raise DataError(f"{what}: {vals} cannot be pixels of a {W}×{H} image (fx or fy under "
                        f"{MIN_FOCAL_FRACTION:g} × the image size, a field of view over 168°); give fx, fy, cx, cy "
                        f"in pixels; {size_hint}")
    raise DataError(f"{what}: {vals}: the principal point (cx, cy) lies outside the {W}×{H} image (expected about "
                    f"({W / 2:g}, {H / 2:g})); give fx, fy, cx, cy in pixels; {size_hint}")
