"""The node's parameters: one table (name, default, meaning, runtime-changeable or not), validated as a whole.

The table is the single source for declaration (`depth_node.ros.params`), validation, the typed `NodeConfig`
(generated from it), config/mono_depth.yaml (`yaml_text`) and the README's parameter table (`docs_table`);
tests check the shipped files are exactly what these generate. Everything here is plain Python, so it runs,
and is tested, without ROS.

Numeric parameters are declared with dynamic typing and coerced here, so `stride: 2.0` or
`camera_to_base: [0, 0, 0, ...]` (integers in YAML) work instead of failing with a type error deep in rclpy.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field, fields, is_dataclass, make_dataclass
from typing import Any

from depth_node.errors import DepthNodeError
from depth_node.geometry import scale
from depth_node.inference import names
from depth_node.inference.names import AUTO
from depth_node.paths import bundled_metric_model

QOS_CHOICES = ("sensor_data", "reliable", "best_effort", "system_default")
BACKENDS = (AUTO, *names.BACKENDS)
PRECISIONS = (AUTO, *names.PRECISIONS)
SCALE_SOURCES = (AUTO, *scale.SCALE_SOURCES)
RESOLUTIONS = ("network", "input")
COLORMAPS = ("turbo", "gray")
TRANSPORTS = ("raw", "compressed")
RECTIFY_CHOICES = ("auto", "true", "false")
MOTION_PRIORS = ("constant_velocity", "pose_net")


class ParamError(DepthNodeError):
    """Parameter values the node cannot start (or continue) with; the message lists every problem."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    runtime: bool  # may change while the node runs; False: needs a reload (cleanup → configure) or restart
    choices: tuple[str, ...] = ()


# Camera pose in the body: REP 103 optical → body rotation (quaternion x, y, z, w), camera at the body origin.
OPTICAL_QUATERNION = [-0.5, 0.5, -0.5, 0.5]

SPECS: tuple[ParamSpec, ...] = (
    # model and backend
    ParamSpec("model", "", "model file (.pt) or exported depth.onnx; empty = the package's models/default.pt "
              "(its shipped ONNX export where torch is not installed)", False),
    ParamSpec("backend", "auto", "inference backend (auto: TensorRT on NVIDIA GPUs, else OpenVINO, ONNX Runtime)",
              False, BACKENDS),
    ParamSpec("precision", "auto", "numeric precision; auto picks the backend's best (fp16 on GPU)", False, PRECISIONS),
    ParamSpec("device", "auto", "cpu, cuda, cuda:N or auto", False),
    ParamSpec("cache_dir", "", "where ONNX exports, ONNX Runtime's optimized graphs and TensorRT engines are cached; "
              "empty = default cache", False),
    # input
    ParamSpec("transport", "raw", "image transport of the camera: raw (sensor_msgs/Image on image) or compressed "
              "(sensor_msgs/CompressedImage JPEG/PNG on image/compressed, image_transport naming)", False, TRANSPORTS),
    ParamSpec("rectify", "auto", "undistort the camera image with camera_info's D (auto: when D is non-zero, the "
              "model is plumb_bob, rational_polynomial or equidistant and the image topic is not an image_rect* one; "
              "false: use the image as it is)", True,
              RECTIFY_CHOICES),
    ParamSpec("image_qos", "sensor_data", "QoS of the image subscription (REP 2003: sensor_data)", False, QOS_CHOICES),
    ParamSpec("image_qos_depth", 1, "history depth of the image subscription; 1 = latest frame only", False),
    ParamSpec("sync_slop", 0.02, "largest stamp difference (s) between an image and the camera_info that belongs to it",
              True),
    ParamSpec("intrinsics", [0.58, 1.92, 0.5, 0.5],
              "fallback [fx, fy, cx, cy] when no camera_info matches (KITTI-like default, normalised)", True),
    ParamSpec("intrinsics_normalized", True, "intrinsics are divided by image width/height (true) or pixels (false)",
              True),
    ParamSpec("camera_frame", "camera_optical_frame", "frame_id of the outputs when an image's header has none (a "
              "warning says so); images with a frame_id keep theirs", True),
    # outputs
    ParamSpec("output_resolution", "network", "depth/cloud at the network's resolution or the input image's", True,
              RESOLUTIONS),
    ParamSpec("output_qos", "reliable", "QoS of the outputs (reliable matches both reliable and best-effort readers)",
              False, QOS_CHOICES),
    ParamSpec("output_qos_depth", 5, "history depth of the outputs", False),
    ParamSpec("stride", 1, "point-cloud decimation: every stride-th pixel in each direction", True),
    ParamSpec("cloud_rgb", True, "add packed rgb to the cloud (point_step 32 as depth_image_proc; xyz only: 16)", True),
    ParamSpec("cloud_max_range", 0.0, "cloud points farther than this (m, along z) become NaN; 0 = no limit", True),
    ParamSpec("colormap", "turbo", "colour map of depth/colored", True, COLORMAPS),
    ParamSpec("colored_min_depth", 0.0, "depth/colored near end of the colour range (m); 0 = from each frame", True),
    ParamSpec("colored_max_depth", 0.0, "depth/colored far end of the colour range (m); 0 = from each frame", True),
    # scale
    ParamSpec("scale_source", "auto",
              "auto (stereo models: stereo, metric: fixed, mono: ground_plane), fixed, stereo, ground_plane, "
              "metric_model", False, SCALE_SOURCES),
    ParamSpec("scale_factor", 1.0, "metres per model unit for scale_source fixed", True),
    ParamSpec("wait_for_scale", False, "publish nothing (depth, cloud, odom) until the scale source has its first "
              "estimate (ground_plane, metric_model); false: publish at its initial_scale meanwhile (/diagnostics "
              "WARN)", True),
    ParamSpec("stereo_baseline", 0.0, "stereo: this rig's baseline (m); 0 = the baseline the model was trained on",
              False),
    ParamSpec("ground_plane.camera_height", 1.65, "ground_plane: optical centre above the road (m)", True),
    ParamSpec("ground_plane.roi_top", 0.7, "ground_plane: road region starts at this fraction of the image height",
              True),
    ParamSpec("ground_plane.inlier_threshold", 0.04, "ground_plane: inlier distance as a fraction of camera height",
              True),
    ParamSpec("ground_plane.max_tilt_deg", 20.0, "ground_plane: max angle between road normal and body up", True),
    ParamSpec("ground_plane.smoothing", 0.15, "ground_plane: weight of a new measurement (0..1] in the running mean",
              True),
    ParamSpec("ground_plane.initial_scale", 1.0, "ground_plane: scale used until the first road fit", True),
    ParamSpec("metric_model.model", "", "metric_model: the metric depth model file (Depth Pro-style) that fixes "
              "the scale; \"\" = the package's models/metric_small.pt", False),
    ParamSpec("metric_model.period", 1.0, "metric_model: seconds (image time) between metric-model runs; it runs "
              "beside the main model in its own thread", True),
    ParamSpec("metric_model.smoothing", 0.3, "metric_model: weight of a new ratio (0..1] in the running mean", True),
    ParamSpec("metric_model.initial_scale", 1.0, "metric_model: scale used until the first metric-model result",
              True),
    # odometry
    ParamSpec("odom_frame", "odom", "header.frame_id of odom (REP 105)", True),
    ParamSpec("base_frame", "base_link", "child_frame_id of odom and the TF child", True),
    ParamSpec("publish_tf", False, "broadcast odom → base_frame (only one odometry source should; needs tf2_ros)",
              True),
    ParamSpec("camera_to_base", [0.0, 0.0, 0.0, *OPTICAL_QUATERNION],
              "camera optical frame pose in base_frame: [x, y, z, qx, qy, qz, qw]", False),
    ParamSpec("odom.continuous", True, "once someone reads odom (or TF is broadcast), integrate every frame until "
              "deactivation, read or not, so odom has no gaps (REP 105); false: only while someone reads it (less "
              "CPU; a reader that comes back gets a chain restarted from the last pose, its first twist unknown)",
              True),
    ParamSpec("odom.max_gap", 1.0, "a gap (s) in the received image stamps larger than this restarts odometry; "
              "a smaller step back is dropped as out of order", True),
    ParamSpec("odom.refine", True, "refine the pose network's motion by direct image alignment on the depth "
              "(fixes rotation a weak pose net misses; ~15 ms per frame on a CPU)", True),
    ParamSpec("odom.motion_prior", "constant_velocity", "where the refinement starts: constant_velocity (the last "
              "step; the pose network only when that is rejected, at a chain's start or after a gap) or pose_net "
              "(every frame; for jerky motion)", True, MOTION_PRIORS),
    ParamSpec("odom.planar", False, "ground robots on flat ground: keep odometry on the odom x-y plane (yaw and x, y "
              "only; roll, pitch and height dropped; needs body z up in camera_to_base)", False),
    ParamSpec("odom.translation_noise", 0.05, "odometry σ per metre travelled (relative)", True),
    ParamSpec("odom.rotation_noise", 0.05, "odometry σ per radian turned (relative)", True),
    ParamSpec("odom.translation_noise_floor", 0.002, "odometry σ per frame when stationary (m)", True),
    ParamSpec("odom.rotation_noise_floor", 0.001, "odometry σ per frame when stationary (rad)", True),
    # node
    ParamSpec("autostart", True, "configure and activate at start (false: wait for lifecycle transitions)", False),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", False),
    ParamSpec("log_throttle", 5.0, "seconds between repeats of the same input error in the log", True),
)

SPEC_BY_NAME: dict[str, ParamSpec] = {s.name: s for s in SPECS}


def defaults() -> dict[str, Any]:
    return {s.name: s.default for s in SPECS}


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """Flat dotted names → the nested mapping a ROS params YAML holds."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        d = out
        parts = k.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


def params_file_text(values: dict[str, Any]) -> str:
    """A ROS 2 parameter file for every node (`/**: ros__parameters:`), `values` (dotted names) nested."""
    import yaml

    return yaml.safe_dump({"/**": {"ros__parameters": nested(values)}}, sort_keys=True)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def params_from_yaml(data: Any) -> dict[str, Any]:
    """The node's parameters out of a ROS params file ({node or /**: {ros__parameters: {...}}}). A file without
    any such section is refused rather than read as "no parameters": its settings would be silently ignored."""
    sections = [s["ros__parameters"] for s in data.values() if isinstance(s, dict)
                and isinstance(s.get("ros__parameters"), dict)] if isinstance(data, dict) else []
    if not sections:
        raise ParamError("not a ROS 2 parameter file: it needs a node section with ros__parameters, e.g. "
                         "`/**: {ros__parameters: {scale_source: fixed}}` (see config/mono_depth.yaml)")
    found: dict[str, Any] = {}
    for section in sections:
        found.update(flatten(section))
    return found


def params_from_cli(items: list[str], option: str = "-p") -> dict[str, Any]:
    """`NAME:=VALUE` items (ROS's -p form; VALUE read as YAML, so `2`, `true`, `[0, 1]` get their types)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if ":=" not in item:
            raise DepthNodeError(f"{option} takes NAME:=VALUE, got {item!r}")
        k, v = item.split(":=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError as exc:
            raise DepthNodeError(f"{option} {item!r}: the value is not valid YAML ({exc})") from exc
    return out


def _as_float(name: str, v: Any, errors: list[str]) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        errors.append(f"{name} must be a finite number, got {v!r}")
        return float("nan")
    return float(v)


def _as_int(name: str, v: Any, errors: list[str]) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or float(v) != int(v):
        errors.append(f"{name} must be a whole number, got {v!r}")
        return 0
    return int(v)


def _field_type(default: Any) -> type:
    if isinstance(default, list):
        return tuple
    return type(default)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _ros_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _flat_values(self: Any) -> dict[str, Any]:
    """{dotted name: value} with ROS parameter types (lists, not tuples): what validate() and YAML take."""
    out: dict[str, Any] = {}
    for f in fields(self):
        v = getattr(self, f.name)
        if is_dataclass(v):
            out.update({f"{f.name}.{g.name}": _ros_value(getattr(v, g.name)) for g in fields(v)})
        else:
            out[f.name] = _ros_value(v)
    return out


def _get(self: Any, name: str) -> Any:
    """Generic access by dotted parameter name (for code driven by the table); code that names a parameter
    uses the typed attribute (`cfg.odom.max_gap`)."""
    value: Any = self
    for part in name.split("."):
        value = getattr(value, part)
    return _ros_value(value)


def _make_config_class() -> type:
    """The frozen `NodeConfig` dataclass generated from SPECS: a dotted name `odom.max_gap` becomes the field
    `max_gap` of a frozen group dataclass in the field `odom`; lists become tuples."""
    top: list[tuple[str, type, Any]] = []
    groups: dict[str, list[tuple[str, type, Any]]] = {}
    for s in SPECS:
        group, _, leaf = s.name.rpartition(".")
        item = (leaf, _field_type(s.default), field(default=_frozen(s.default)))
        (groups.setdefault(group, []) if group else top).append(item)
    for group, items in groups.items():
        cls_name = "".join(p.title() for p in group.split("_")) + "Params"
        cls = make_dataclass(cls_name, items, frozen=True, namespace={"__module__": __name__})
        GROUPS[group] = cls
        top.append((group, cls, field(default_factory=cls)))
    return make_dataclass("NodeConfig", top, frozen=True, namespace={
        "__module__": __name__, "__getitem__": _get, "values": _flat_values,
        "__doc__": "Validated, typed, frozen parameter values generated from SPECS: `cfg.odom.max_gap`."})


GROUPS: dict[str, type] = {}
NodeConfig = _make_config_class()


def config_from_values(values: dict[str, Any]) -> Any:
    """A NodeConfig from {dotted name: already validated value} (every name of SPECS)."""
    top: dict[str, Any] = {}
    grouped: dict[str, dict[str, Any]] = {}
    for name, v in values.items():
        group, _, leaf = name.rpartition(".")
        (grouped.setdefault(group, {}) if group else top)[leaf] = _frozen(v)
    top.update({g: GROUPS[g](**kv) for g, kv in grouped.items()})
    return NodeConfig(**top)


def validate(raw: dict[str, Any]) -> NodeConfig:
    """Type-coerce and check every parameter; raise ParamError listing all problems at once."""
    errors = [_unknown(k) for k in raw if k not in SPEC_BY_NAME and not _ros_own(k)]
    vals = defaults()
    vals.update({k: v for k, v in raw.items() if k in SPEC_BY_NAME})
    out = _coerced(vals, errors)
    _check_ranges(out, errors)
    if errors:
        raise ParamError("invalid parameters: " + "; ".join(errors))
    return config_from_values(out)


def _ros_own(name: str) -> bool:
    """Parameters every ROS 2 node has (rclpy declares them), valid in a params file beside the node's own."""
    return name in ("use_sim_time", "start_type_description_service") or name.startswith("qos_overrides.")


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(SPEC_BY_NAME), n=1)
    return f"unknown parameter {name!r}" + (f" (did you mean {close[0]}?)" if close else "")


def _coerced(vals: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    """Every value as its spec's type (numbers from YAML integers, lists of floats), choices checked."""
    out: dict[str, Any] = {}
    for spec in SPECS:
        v = vals[spec.name]
        d = spec.default
        if isinstance(d, bool):
            if not isinstance(v, bool):
                errors.append(f"{spec.name} must be true or false, got {v!r}")
            out[spec.name] = bool(v)
        elif isinstance(d, int):
            out[spec.name] = _as_int(spec.name, v, errors)
        elif isinstance(d, float):
            out[spec.name] = _as_float(spec.name, v, errors)
        elif isinstance(d, list):
            if not isinstance(v, list | tuple):
                errors.append(f"{spec.name} must be a list of numbers, got {v!r}")
                v = d
            out[spec.name] = [_as_float(spec.name, x, errors) for x in v]
        else:
            if isinstance(v, bool) and "true" in spec.choices:  # `-p rectify:=true` arrives as a boolean
                v = "true" if v else "false"
            if not isinstance(v, str):
                errors.append(f"{spec.name} must be a string, got {v!r}")
                v = str(v)
            out[spec.name] = v
        if spec.choices and out[spec.name] not in spec.choices:
            errors.append(f"{spec.name} must be one of {', '.join(spec.choices)}; got {out[spec.name]!r}")
    return out


def _check_ranges(o: dict[str, Any], errors: list[str]) -> None:
    """Ranges and cross-parameter rules, each failure as a sentence that says what is allowed."""

    def check(cond: bool, msg: str) -> None:
        if not cond:
            errors.append(msg)

    check(1 <= o["image_qos_depth"] <= 100, "image_qos_depth must be in 1..100 (1 = latest frame only)")
    check(1 <= o["output_qos_depth"] <= 100, "output_qos_depth must be in 1..100")
    check(0 <= o["sync_slop"] <= 1.0, "sync_slop must be in [0, 1] seconds")
    check(len(o["intrinsics"]) == 4, "intrinsics must be [fx, fy, cx, cy]")
    if len(o["intrinsics"]) == 4:
        check(o["intrinsics"][0] > 0 and o["intrinsics"][1] > 0, "intrinsics fx and fy must be > 0")
    check(1 <= o["stride"] <= 64, "stride must be in 1..64")
    check(o["cloud_max_range"] >= 0, "cloud_max_range must be ≥ 0 (0 = no limit)")
    check(o["colored_min_depth"] >= 0 and o["colored_max_depth"] >= 0, "colored_min/max_depth must be ≥ 0")
    if o["colored_max_depth"] > 0 and o["colored_min_depth"] > 0:  # each alone may be set (0: from the frame)
        check(o["colored_min_depth"] < o["colored_max_depth"], "colored_min_depth must be < colored_max_depth")
    check(o["scale_factor"] > 0, "scale_factor must be > 0")
    check(o["stereo_baseline"] >= 0, "stereo_baseline must be ≥ 0 (0 = the model's)")
    check(o["ground_plane.camera_height"] > 0, "ground_plane.camera_height must be > 0 (metres above the road)")
    check(0 <= o["ground_plane.roi_top"] < 1, "ground_plane.roi_top must be in [0, 1)")
    check(0 < o["ground_plane.inlier_threshold"] < 0.5, "ground_plane.inlier_threshold must be in (0, 0.5)")
    check(0 < o["ground_plane.max_tilt_deg"] < 90, "ground_plane.max_tilt_deg must be in (0, 90)")
    check(0 < o["ground_plane.smoothing"] <= 1, "ground_plane.smoothing must be in (0, 1]")
    check(o["ground_plane.initial_scale"] > 0, "ground_plane.initial_scale must be > 0")
    check(bool(o["camera_frame"]), "camera_frame must not be empty (the outputs' frame when an image has none)")
    check(bool(o["odom_frame"]) and bool(o["base_frame"]) and o["odom_frame"] != o["base_frame"],
          "odom_frame and base_frame must be non-empty and different")
    c2b = o["camera_to_base"]
    if len(c2b) != 7:
        errors.append("camera_to_base must be [x, y, z, qx, qy, qz, qw] (7 numbers)")
    elif all(math.isfinite(x) for x in c2b) and math.sqrt(sum(q * q for q in c2b[3:])) < 1e-6:
        errors.append("camera_to_base quaternion must be non-zero")
    check(o["odom.max_gap"] > 0, "odom.max_gap must be > 0 seconds")
    for k in ("odom.translation_noise", "odom.rotation_noise", "odom.translation_noise_floor",
              "odom.rotation_noise_floor"):
        check(o[k] >= 0, f"{k} must be ≥ 0")
    check(o["odom.translation_noise_floor"] > 0 or o["odom.rotation_noise_floor"] > 0,
          "odom noise floors cannot both be 0 (the covariance would be singular while stationary)")
    check(0.05 <= o["diagnostics_period"] <= 60, "diagnostics_period must be in [0.05, 60] seconds")
    check(o["log_throttle"] >= 0, "log_throttle must be ≥ 0")
    check(o["metric_model.period"] >= 0, "metric_model.period must be ≥ 0 seconds (0 = as often as it can)")
    check(0 < o["metric_model.smoothing"] <= 1, "metric_model.smoothing must be in (0, 1]")
    check(o["metric_model.initial_scale"] > 0, "metric_model.initial_scale must be > 0")
    if o["scale_source"] == "metric_model":
        check(bool(o["metric_model.model"] or bundled_metric_model()), "scale_source metric_model needs "
              "metric_model.model (a metric depth model file, e.g. from `depth-node import depth-pro`); this "
              "installation has no bundled models/metric_small.pt")


def check_change(current: Any, changes: dict[str, Any], configured: bool) -> tuple[Any | None, str]:
    """Validate a runtime change. Returns (new config, '') or (None, reason)."""
    if configured:
        frozen = [k for k in changes if k in SPEC_BY_NAME and not SPEC_BY_NAME[k].runtime
                  and changes[k] != current[k]]
        if frozen:
            return None, (f"{', '.join(frozen)} cannot change while the node is configured: it needs a reload "
                          "(lifecycle deactivate → cleanup → set → configure → activate, or restart the node)")
    merged = current.values()
    merged.update({k: v for k, v in changes.items() if k in SPEC_BY_NAME})
    try:
        return validate(merged), ""
    except ParamError as exc:
        return None, str(exc)


def docs_table() -> str:
    """The README's parameter table rows, from SPECS (a test checks the README holds exactly these)."""
    rows = ["| parameter | default | runtime | meaning |", "|---|---|---|---|"]
    for s in SPECS:
        choices = f" ({' / '.join(s.choices)})" if s.choices else ""
        rows.append(f"| `{s.name}` | `{json.dumps(s.default)}` | {'yes' if s.runtime else 'reload'} | "
                    f"{s.description}{choices} |")
    return "\n".join(rows)


# config/mono_depth.yaml: a heading before the parameter that opens each section
YAML_SECTIONS = {"model": "model and inference", "image_qos": "input", "output_resolution": "outputs",
                 "scale_source": "scale (one factor for depth, cloud and odometry)", "odom_frame": "odometry",
                 "autostart": "node"}
YAML_HEAD = """\
# mono_depth_node parameters (every one the node declares; defaults shown).
# Use: depth-node node --ros-args --params-file config/mono_depth.yaml -r image:=/camera/image_raw
#  or: ros2 launch depth_node mono_depth.launch.py
# [reload] = cannot change while the node is configured (lifecycle cleanup → configure, or restart);
# the others can be changed at run time (ros2 param set).
/**:
  ros__parameters:
"""


def yaml_text() -> str:
    """config/mono_depth.yaml from SPECS: every parameter with its description above it (a test checks the
    shipped file is exactly this; regenerate it with `python -m depth_node.runtime.params`)."""
    lines = [YAML_HEAD.rstrip("\n")]
    group = ""
    for s in SPECS:
        if s.name in YAML_SECTIONS:
            lines += ["", f"    # --- {YAML_SECTIONS[s.name]}"]
        g, _, leaf = s.name.rpartition(".")
        if g and g != group:
            lines.append(f"    {g}:")
        group = g
        indent = "      " if g else "    "
        note = ("" if s.runtime else " [reload]") + (f" ({' | '.join(s.choices)})" if s.choices else "")
        lines += [f"{indent}# {s.description}{note}", f"{indent}{leaf}: {json.dumps(s.default, ensure_ascii=False)}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(yaml_text(), end="")
