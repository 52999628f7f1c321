"""The camera a model was trained for, as its model file records it (`meta["camera"]`).

A monocular network reads depth from apparent size, so its output is tied to the focal length it saw in
training: the CANONICAL camera. The record holds what the runtime needs to correct for another camera
(`depth_node.inference.canonical`) and which input sizes the network accepts:

    meta["camera"] = {
      "canonical": {"fx": 185.9, "fy": 184.7, "width": 320, "height": 96,   # network-input pixels, training size
                    "mount_height_m": 1.65, "source": "training_config"},    # or None for f_px models (Depth Pro)
      "input": {"budget_px": 30720, "stride": 32, "aspects": ["10:3", "16:9", "4:3", "1:1"],
                "sizes": [[96, 320], [128, 224], [160, 224], [160, 160]]},   # (h, w), training size first
    }

`input.sizes` lists the shapes the network was trained for: the runtime feeds each camera at the size nearest
its aspect ratio. A model trained on one shape (every shipped model so far: 320×96) lists that one size, and
other cameras are resized to it (with the focal correction for the resulting fx, fy).

Files written before the record existed get it derived from their stored training config
(`meta.provenance.config`: the training input size and the synthetic camera the drives used), or, failing that,
the documented default (`DEFAULT_CAMERA`: the KITTI-like synthetic camera every shipped model was trained on).
"""

from __future__ import annotations

import math
from typing import Any

# The synthetic drives' default camera: KITTI raw P_rect_02 at 1242 × 375, 1.65 m above the road
# (the same numbers as depth_node.sim.config.KITTI_INTRINSICS; test_canonical checks they agree).
DEFAULT_CAMERA = {"fx": 721.5377, "fy": 721.5377, "width": 1242, "height": 375, "mount_height_m": 1.65}
ASPECTS: dict[str, tuple[int, int]] = {"10:3": (10, 3), "16:9": (16, 9), "4:3": (4, 3), "1:1": (1, 1)}
RESNET_STRIDE = 32  # Monodepth2's encoder downsamples 5×: inputs must be multiples of 32


def aspect_name(height: int, width: int) -> str:
    """The named aspect within 5 % of width/height, or "W:H" as given."""
    for name, (a, b) in ASPECTS.items():
        if abs(math.log((a / b) / (width / height))) < 0.05:
            return name
    return f"{width}:{height}"


def aspect_sizes(budget_px: int, stride: int, aspects: list[str], base: tuple[int, int]) -> list[list[int]]:
    """(h, w) per aspect: multiples of `stride` whose area is about `budget_px`, the training size `base` first
    (it serves the aspect nearest to it, so the training camera keeps exactly its training input)."""
    sizes = [[int(base[0]), int(base[1])]]
    base_aspect = base[1] / base[0]
    for name in aspects:
        a, b = ASPECTS[name]
        ratio = a / b
        if abs(math.log(ratio / base_aspect)) < 0.05:  # the training aspect (10:3 for 320×96) is served by base
            continue
        h = max(stride, round(math.sqrt(budget_px / ratio) / stride) * stride)
        w = max(stride, round(h * ratio / stride) * stride)
        if [h, w] not in sizes:
            sizes.append([h, w])
    return sizes


def input_record(height: int, width: int, aspects: list[str] | None = None) -> dict[str, Any]:
    """The `input` section for a Monodepth2 model trained at height × width on the given aspects (None: the
    training aspect only — a network trained on one shape reads depth partly from image rows, and fed a taller
    input it does worse than fed its training shape, even with the focal correction; see README)."""
    budget = height * width
    names = [aspect_name(height, width)] + [a for a in (aspects or []) if a != aspect_name(height, width)]
    sizes = aspect_sizes(budget, RESNET_STRIDE, [a for a in names if a in ASPECTS], (height, width))
    return {"budget_px": budget, "stride": RESNET_STRIDE, "aspects": names, "sizes": sizes}


def _synth_camera(prov_cfg: dict[str, Any]) -> tuple[dict[str, float] | None, str]:
    """The training drives' camera (at its render size) from a training config, or None with the reason."""
    if (prov_cfg.get("data") or {}).get("intrinsics"):
        return None, "trained with an intrinsics file the model file does not hold"
    synth = prov_cfg.get("synth") or {}
    if not synth:
        return None, "no synthetic-data section in the training config"
    overrides = dict((synth.get("train") or {}).get("overrides") or {})
    cam = dict(DEFAULT_CAMERA)
    for key, value in overrides.items():
        if key == "camera.hfov_deg" and float(value) > 0:  # pinhole: fx = fy = W / (2 tan(hfov/2))
            f = cam["width"] / (2.0 * math.tan(math.radians(float(value)) / 2.0))
            cam.update(fx=f, fy=f)
        elif key == "camera.height_m":
            cam["mount_height_m"] = float(value)
        elif key.startswith(("camera.", "scene.kind")):
            return None, f"training override {key} is not interpreted here"
    return cam, ""


def derive_camera_record(
    arch: str, height: int, width: int, meta: dict[str, Any], aspects: list[str] | None = None
) -> tuple[dict[str, Any], str]:
    """(record, warning) for a model file without one; warning is "" when derived from its training config.
    `aspects`: the aspect ratios the network was trained on besides its training shape's (None: only that)."""
    if arch != "monodepth2":  # Depth Pro family: metric through f_px, one fixed input size
        return {"canonical": None,
                "input": {"budget_px": height * width, "stride": 1, "aspects": [], "sizes": [[height, width]]}}, ""
    prov_cfg = (meta.get("provenance") or {}).get("config") or {}
    data = prov_cfg.get("data") or {}
    cam, why = _synth_camera(prov_cfg) if prov_cfg else (None, "no training config stored")
    source = "training_config"
    warning = ""
    if cam is None:
        cam, source = dict(DEFAULT_CAMERA), "default"
        warning = (f"model file has no canonical-camera record and its training camera is unknown ({why}): "
                   "assuming the default synthetic KITTI-like camera (81.4° horizontal FOV, 1.65 m high). If it was "
                   "trained on another camera, its depth on other cameras is scaled wrongly: `depth-node train` "
                   "records the training camera in the models it writes")
    # the training pipeline resizes every training frame to the network size: K scales with it
    tw, th = int(data.get("width") or width), int(data.get("height") or height)
    canonical = {
        "fx": cam["fx"] * tw / cam["width"], "fy": cam["fy"] * th / cam["height"], "width": tw, "height": th,
        "mount_height_m": cam["mount_height_m"], "source": source,
    }
    return {"canonical": canonical, "input": input_record(height, width, aspects)}, warning


def training_camera_record(cameras: list[tuple[float, float, int]], height: int, width: int,
                           mount_height_m: float | None) -> tuple[dict[str, Any], float]:
    """(record, relative fx spread) for a model trained on frames of these cameras: (fx, fy) in network-input
    pixels at height × width (the training pipeline resizes every frame to that size, K with it) and how many
    frames each gave. One camera (the usual case: a robot's own recording) is the canonical camera itself; for
    several, the frame-weighted median focal lengths (the spread says how far they are from one camera)."""
    order = sorted(cameras)
    total = sum(n for _, _, n in order)
    acc, fx, fy = 0, order[0][0], order[0][1]
    for f_x, f_y, n in order:  # weighted median by fx (fy goes with its camera)
        acc += n
        if acc * 2 >= total:
            fx, fy = f_x, f_y
            break
    spread = (max(c[0] for c in order) - min(c[0] for c in order)) / fx
    canonical = {"fx": float(fx), "fy": float(fy), "width": int(width), "height": int(height),
                 "mount_height_m": mount_height_m, "source": "training_data"}
    return {"canonical": canonical, "input": input_record(height, width)}, float(spread)


def check_camera_record(record: Any) -> str:
    """"" for a usable record, else what is wrong (so load_model can say it)."""
    if not isinstance(record, dict) or not isinstance(record.get("input"), dict):
        return "meta.camera must be a mapping with an 'input' section"
    sizes = record["input"].get("sizes")
    if not sizes or not all(isinstance(s, (list, tuple)) and len(s) == 2 and int(s[0]) > 0 and int(s[1]) > 0
                            for s in sizes):
        return "meta.camera.input.sizes must list (height, width) pairs"
    can = record.get("canonical")
    if can is not None and not (float(can.get("fx", 0)) > 0 and float(can.get("fy", 0)) > 0):
        return "meta.camera.canonical needs positive fx and fy"
    return ""
