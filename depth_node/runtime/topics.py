"""The node's topic names, relative to its namespace, written once (node, runners, scorer, bench, tests).

Outputs follow depth_image_proc / image_transport naming so consumers pair them unchanged: the depth image is
`depth/image_rect` (rectified, REP 118 32FC1 metres) with its `depth/camera_info` beside it, which is what
image_transport's CameraSubscriber, depth_image_proc (`depth/image_rect` + `depth/camera_info`), RViz's
DepthCloud and Foxglove look for. Until issue 17 the depth image was published on `depth`; remap back with
`-r depth/image_rect:=depth`.
"""

from __future__ import annotations

IMAGE = "image"  # base topic; transport compressed reads IMAGE + "/compressed" (image_transport)
CAMERA_INFO = "camera_info"
DEPTH_IMAGE = "depth/image_rect"
DEPTH_INFO = "depth/camera_info"  # next to DEPTH_IMAGE: image_transport's camera_info pairing
DEPTH_COLORED = "depth/colored"
POINTS = "points"
ODOM = "odom"



CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def camera_info_topic(image: str, infos: list[str]) -> str | None:
    """The CameraInfo topic (one of `infos`) that belongs to an image topic, as image_transport pairs them:
    `<ns>/camera_info` beside the base topic (`<ns>/image_raw`; a transport suffix such as `/compressed` dropped),
    then one namespace up (`<ns>/rect/image` layouts), else the only CameraInfo there is; None when none fits.
    One rule for eval-bag, its report and the training bag source."""
    base = image.removesuffix("/compressed").rstrip("/")
    ns = base.rsplit("/", 1)[0]
    for cand in (f"{ns}/camera_info", f"{ns.rsplit('/', 1)[0]}/camera_info"):
        if cand in infos:
            return cand
    return infos[0] if len(infos) == 1 else None


def is_rectified_topic(topic: str) -> bool:
    """True for image_pipeline's rectified image topics (`image_rect`, `image_rect_color`, also under a transport
    such as `/compressed`): their camera_info is the camera's own, still carrying the raw image's D, and consumers
    take P and ignore D (image_proc, depth_image_proc), so `rectify: auto` must not undistort them again."""
    parts = [p for p in topic.split("/") if p]
    if parts and parts[-1] in ("compressed", "theora", "zstd"):
        parts = parts[:-1]
    return bool(parts) and parts[-1].startswith("image_rect")


# short keys (node publishers, bench probe, tests) → topic
OUTPUT_TOPICS = {"depth": DEPTH_IMAGE, "depth_info": DEPTH_INFO, "colored": DEPTH_COLORED, "points": POINTS,
                 "odom": ODOM}
