"""Loopback isolation for the offline tools that start ROS 2 (eval-bag/demo online, the node benchmark): their
replayed camera topics must not leak into a robot's graph. Outside depth_node/ros on purpose: the node itself
never sets discovery or the domain (robots need their normal discovery; test_node_params checks it)."""

from __future__ import annotations

import os
import random


def isolate(domain_id: int | None = None) -> int:
    """Loopback-only discovery in `domain_id` (a random one of 150..229 when None) for this process's ROS 2
    traffic and its children's; returns it."""
    domain = random.randint(150, 229) if domain_id is None else int(domain_id)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    return domain
