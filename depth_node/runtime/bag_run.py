"""What a run of the node over a bag leaves for the scorer: the outputs bag's topics and a `RunResult`.

Shared by the runners (`depth_node.ros.bag_runner`, online and offline) and the scorer
(`depth_node.evaluate.bag_score`), which must not depend on ROS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_node.runtime.topics import DEPTH_IMAGE, DEPTH_INFO, ODOM, POINTS

NAMESPACE = "/depth_node"
OUTPUTS = {
    DEPTH_IMAGE: "sensor_msgs/msg/Image",
    DEPTH_INFO: "sensor_msgs/msg/CameraInfo",
    ODOM: "nav_msgs/msg/Odometry",
    POINTS: "sensor_msgs/msg/PointCloud2",
}
DIAGNOSTICS = "/diagnostics"


def output_topic(name: str) -> str:
    return f"{NAMESPACE}/{name}"


@dataclass
class RunResult:
    outputs_bag: Path
    mode: str  # "online" | "offline"
    images_in: int  # images offered to the node (published / read)
    model: str = ""
    arrivals: Any = None  # online: recorder.Arrivals (input image + outputs receive times)
    frame_seconds: list[float] = field(default_factory=list)  # offline: core time per processed frame
    node_log: Path | None = None
    wall_s: float = 0.0
