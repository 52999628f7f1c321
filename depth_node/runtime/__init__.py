"""The node's frame core without ROS: typed parameters, the per-frame rules and the model pipeline.

The ROS node (`depth_node.ros.node`) and the offline bag runner (`depth_node.ros.bag_runner`) are thin
adapters over `FrameCore`: they convert messages in and out; every decision about a frame is made here once.
"""
