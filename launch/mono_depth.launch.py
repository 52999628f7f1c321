"""Launch mono_depth_node (a lifecycle node) with config/mono_depth.yaml and the usual knobs as launch arguments.

    ros2 launch depth_node mono_depth.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info \
        model:=/path/to/model.pt backend:=tensorrt namespace:=front use_sim_time:=true

Outputs (relative to the namespace): depth/image_rect + depth/camera_info (depth_image_proc naming),
depth/colored, points, odom. To keep the old depth topic name add ("depth/image_rect", "depth") to remappings.

Parameters not exposed here go in your own copy of the YAML (params_file:=...). Launch arguments left empty
keep the YAML's value: they are resolved at launch time (OpaqueFunction), so an empty `backend` or
`use_sim_time` never overrides the file. `autostart:=false` leaves the node unconfigured for a lifecycle
manager (nav2_lifecycle_manager, `ros2 lifecycle set`); the node is started with launch_ros's LifecycleNode
action, so launch's ChangeState events reach it too. Works with the launch_ros of Humble, Jazzy and Kilted.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

# (name, default, description)
ARGUMENTS = [
    ("image", "image", "camera image topic (sensor_msgs/Image; encodings: README, 'ROS 2 node'); with "
     "transport:=compressed the base topic: the node reads <image>/compressed"),
    ("transport", "", "raw or compressed (image_transport naming); empty = the parameter file's value"),
    ("camera_info", "camera_info", "camera_info topic of that camera"),
    ("namespace", "", "namespace of the node and its outputs"),
    ("node_name", "mono_depth_node", "node name"),
    ("params_file", "", "parameter file; empty = the package's config/mono_depth.yaml"),
    ("model", "", "model file (.pt) or depth.onnx; empty = the parameter file's value"),
    ("backend", "", "auto, torch, onnxruntime, openvino or tensorrt; empty = the parameter file's value"),
    ("precision", "", "auto, fp32, fp16, bf16 or int8; empty = the parameter file's value"),
    ("device", "", "auto, cpu, cuda or cuda:N; empty = the parameter file's value"),
    ("publish_tf", "", "true or false: broadcast odom → base_frame; empty = the parameter file's value"),
    ("autostart", "true", "true: the node configures and activates itself; false: it waits unconfigured for a "
     "lifecycle manager (overrides the parameter file's autostart)"),
    ("use_sim_time", "", "true when replaying a bag with --clock; empty = the parameter file's value"),
    ("log_level", "info", "node log level (debug, info, warn, error)"),
    ("dds_profile", "auto", "Fast DDS transports of the node: auto = the package's shared-memory profile for large "
     "clouds unless FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE is set or another RMW is used; none = Fast DDS defaults; "
     "or a Fast DDS XML path"),
]
STRING_OVERRIDES = ("model", "backend", "precision", "device", "transport")
BOOL_OVERRIDES = ("publish_tf", "use_sim_time")


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"launch argument {name}:={text!r}: use true or false")
    return value == "true"


def _node(context, *args, **kwargs) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    params_file = arg("params_file")
    if not params_file:
        params_file = FindPackageShare("depth_node").perform(context) + "/config/mono_depth.yaml"
    overrides: dict = {"autostart": _flag("autostart", arg("autostart") or "true")}
    for name in STRING_OVERRIDES:
        if arg(name):
            overrides[name] = arg(name)
    for name in BOOL_OVERRIDES:
        if arg(name):
            overrides[name] = _flag(name, arg(name))
    return [
        LifecycleNode(
            package="depth_node",
            executable="mono_depth_node",
            name=arg("node_name"),
            namespace=arg("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=[params_file, overrides],
            remappings=[("image", arg("image")), ("camera_info", arg("camera_info"))],
            arguments=["--ros-args", "--log-level", arg("log_level")],
            # read by the node before rclpy.init (depth_node/ros/dds_profile.py); discovery is untouched
            additional_env={"DEPTH_NODE_DDS_PROFILE": arg("dds_profile") or "auto"},
        )
    ]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=_node)])
