"""depth_node: monocular depth, point clouds and visual odometry for ROS 2."""

__version__ = "0.1.0"
