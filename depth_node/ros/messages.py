"""NumPy → ROS messages, each in one place and each following the REPs the consumers expect.

Speed matters for the big ones: rclpy's generated setter for `uint8[] data` copies whatever it is given
into a new `array.array('B')`, element by element for anything but a buffer (a memoryview of a 4 MB cloud:
~300 ms). So data goes in as an `array.array` (filled with one `frombytes`, or the cloud builder's own
buffer) stored without the setter's extra copy (`set_data`).
"""

from __future__ import annotations

import array
from collections.abc import Iterable
from typing import Any

import numpy as np

from depth_node.geometry.camera import Intrinsics
from depth_node.geometry.odometry import VisualOdometry
from depth_node.geometry.poses import quaternion_from_matrix


def as_data(arr: np.ndarray) -> array.array:
    """A C-contiguous NumPy array's bytes as the array.array('B') rclpy takes without a per-element walk."""
    a = np.ascontiguousarray(arr)
    out = array.array("B")
    out.frombytes(memoryview(a.reshape(-1).view(np.uint8)))
    return out


def set_data(msg: Any, data: array.array) -> None:
    """Give `msg` this array.array('B') as its uint8[] `data` without another copy.

    The generated setter stores an array.array as is only when field checks are on; otherwise it runs
    `array.array('B', value)`, a second full copy (0.2-0.4 ms for a 4 MB cloud). Storing it in the setter's
    own slot is exactly what the checked path does."""
    if isinstance(data, array.array) and data.typecode == "B" and hasattr(msg, "_data"):
        msg._data = data
    else:
        msg.data = data


def empty_header():
    """A std_msgs/Header with a zero stamp and no frame_id."""
    from std_msgs.msg import Header

    return Header()


def copy_header(src: Any, frame_id: str | None = None):
    """A new std_msgs/Header with src's stamp and frame_id (or the given frame_id)."""
    from std_msgs.msg import Header

    h = Header()
    h.stamp.sec, h.stamp.nanosec = int(src.stamp.sec), int(src.stamp.nanosec)
    h.frame_id = src.frame_id if frame_id is None else frame_id
    return h


def image_msg(arr: np.ndarray, encoding: str, header: Any):
    """sensor_msgs/Image through the project's codec (colour arrays are RGB; the codec orders bgr8)."""
    from sensor_msgs.msg import Image

    from depth_node.io.image_codec import encode_image

    enc = encode_image(arr, encoding)
    msg = Image()
    msg.header = header
    msg.height, msg.width, msg.encoding = enc.height, enc.width, enc.encoding
    msg.is_bigendian, msg.step = enc.is_bigendian, enc.step
    set_data(msg, as_data(enc.data))
    return msg


def depth_msg(depth: np.ndarray, header: Any):
    """REP 118: 32FC1 metres along the optical axis, NaN where invalid (REP 117)."""
    return image_msg(np.asarray(depth, dtype=np.float32), "32FC1", header)


def colored_msg(rgb: np.ndarray, header: Any):
    """A colour-mapped depth image for people, published as bgr8 (what image viewers expect)."""
    return image_msg(np.asarray(rgb, dtype=np.uint8), "bgr8", header)


def camera_info_msg(intr: Intrinsics, header: Any):
    """camera_info for an already rectified, resized image: K = P[:3,:3], no distortion, R = I."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(intr.width), int(intr.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [intr.fx, 0.0, intr.cx, 0.0, intr.fy, intr.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def pointcloud_msg(cloud: np.ndarray, header: Any, payload: array.array | None = None):
    """Organized PointCloud2 from a structured (H, W) array (see depth_node.geometry.pointcloud). `payload`: the
    builder's array.array holding exactly these bytes, used as `data` without a copy."""
    from sensor_msgs.msg import PointCloud2, PointField

    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = int(cloud.shape[0]), int(cloud.shape[1])
    fields = []
    for name in cloud.dtype.names:
        dt, off = cloud.dtype.fields[name][:2]
        if dt != np.dtype("<f4"):
            raise ValueError(f"cloud field {name} is {dt}; only float32 fields are produced")
        fields.append(PointField(name=name, offset=int(off), datatype=PointField.FLOAT32, count=1))
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step = int(cloud.dtype.itemsize)
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = False  # organized with NaN holes, as depth_image_proc publishes
    if (payload is not None and len(payload) == cloud.nbytes and cloud.flags.c_contiguous
            and cloud.__array_interface__["data"][0] == payload.buffer_info()[0]):
        set_data(msg, payload)  # the cloud *is* this buffer: no copy
    else:
        set_data(msg, as_data(cloud))
    return msg


def _pose_fields(T: np.ndarray, pose: Any) -> None:
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    q = quaternion_from_matrix(T[:3, :3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)


def odometry_msg(vo: VisualOdometry, stamp: Any, odom_frame: str, base_frame: str):
    """REP 105: pose of base_frame in odom_frame; twist in base_frame; 6×6 row-major covariances."""
    from nav_msgs.msg import Odometry

    msg = Odometry()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp.sec), int(stamp.nanosec)
    msg.header.frame_id = odom_frame
    msg.child_frame_id = base_frame
    _pose_fields(vo.pose, msg.pose.pose)
    msg.pose.covariance = [float(v) for v in vo.covariance.reshape(-1)]
    tw = msg.twist.twist
    tw.linear.x, tw.linear.y, tw.linear.z = (float(v) for v in vo.twist[:3])
    tw.angular.x, tw.angular.y, tw.angular.z = (float(v) for v in vo.twist[3:])
    msg.twist.covariance = [float(v) for v in vo.twist_covariance.reshape(-1)]
    return msg


def transform_msg(T: np.ndarray, stamp: Any, parent: str, child: str):
    """geometry_msgs/TransformStamped for the odom → base TF."""
    from geometry_msgs.msg import TransformStamped

    msg = TransformStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp.sec), int(stamp.nanosec)
    msg.header.frame_id = parent
    msg.child_frame_id = child
    tr = msg.transform
    tr.translation.x, tr.translation.y, tr.translation.z = (float(v) for v in T[:3, 3])
    q = quaternion_from_matrix(T[:3, :3])
    tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w = (float(v) for v in q)
    return msg


# diagnostic_msgs/DiagnosticStatus levels
OK, WARN, ERROR, STALE = 0, 1, 2, 3


def diagnostic_status(name: str, hardware_id: str, level: int, message: str, values: dict[str, Any]):
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    st = DiagnosticStatus()
    st.level = bytes([level])
    st.name = name
    st.hardware_id = hardware_id
    st.message = message
    st.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return st


def diagnostics_msg(stamp: Any, statuses: Iterable[Any]):
    from diagnostic_msgs.msg import DiagnosticArray

    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = list(statuses)
    return msg


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
