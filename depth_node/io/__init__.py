"""Pure data formats: rosbag2/MCAP reading and writing, image encodings, raw CDR image parsing, the KITTI-raw
folder layout (synthetic drives and real KITTI).

Nothing here imports rclpy: the node, the offline tools, the renderer and the trainer all read and write
these formats through this package, so it sits below every one of them.
"""
