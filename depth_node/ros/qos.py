"""The QoS profiles behind the `image_qos` / `output_qos` parameter names (REP 2003 for sensor data)."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)


def qos_profile(name: str, depth: int) -> QoSProfile:
    """KEEP_LAST `depth` with the reliability (and durability) the name stands for."""
    if name == "sensor_data":
        base = qos_profile_sensor_data
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=base.reliability,
                          durability=base.durability)
    if name == "system_default":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                          reliability=qos_profile_system_default.reliability)
    rel = ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel,
                      durability=DurabilityPolicy.VOLATILE)
