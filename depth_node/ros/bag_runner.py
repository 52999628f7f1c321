"""Running the node over a bag and recording what it publishes, for `eval-bag` and `make demo`.

Online: the real node as its own process, the bag replayed over ROS 2 with its timing, and a recorder writing
the node's outputs into an MCAP bag. Offline: the same `FramePipeline` the node runs, fed every image of the
bag in order (no transport, no dropping), writing the same topics into the same kind of bag. Either way the
scorer (`depth_node.evaluate.bag_score`) reads one outputs bag.

Isolation: these runs publish the bag's camera topics, which must not leak into a robot's graph; the commands
that call them (`eval-bag`, `demo`) set ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_DOMAIN_ID for their own process
tree. Nothing under depth_node/ros/ (the node) ever sets them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depth_node.errors import DepthNodeError
from depth_node.io.bags import BagReader, BagWriter, stamp_to_ns

NAMESPACE = "/depth_node"
OUTPUTS = {
    "depth": "sensor_msgs/msg/Image",
    "depth/camera_info": "sensor_msgs/msg/CameraInfo",
    "odom": "nav_msgs/msg/Odometry",
    "points": "sensor_msgs/msg/PointCloud2",
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
    frame_seconds: list[float] = field(default_factory=list)  # offline: pipeline time per frame
    node_log: Path | None = None
    wall_s: float = 0.0


def image_topics(bag: BagReader, image: str, camera_info: str | None) -> tuple[str, str | None]:
    """Check the camera topics; camera_info None → `<image ns>/camera_info` when the bag has it."""
    topics = bag.topics
    if image not in topics:
        cams = [t for t, s in topics.items() if s.msgtype in ("sensor_msgs/msg/Image",)]
        raise DepthNodeError(f"{bag.path} has no topic {image}; image topics: {', '.join(cams) or 'none'}")
    if topics[image].msgtype != "sensor_msgs/msg/Image":
        raise DepthNodeError(f"{image} is {topics[image].msgtype}, not sensor_msgs/msg/Image")
    if camera_info is None:
        guess = image.rsplit("/", 1)[0] + "/camera_info"
        return image, guess if guess in topics else None
    if camera_info not in topics:
        raise DepthNodeError(f"{bag.path} has no topic {camera_info}")
    return image, camera_info


def write_params_file(path: Path, values: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}, sort_keys=True))
    return path


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_online(bag_path: str | Path, out_bag: str | Path, *, image: str, camera_info: str | None,
               params: dict[str, Any], rate: float = 1.0, startup_timeout: float = 180.0,
               log_path: str | Path | None = None, progress: bool = True) -> RunResult:
    """Node process + replay + recorder. Raises DepthNodeError with the node's last log lines if it fails."""
    from depth_node.ros.bag_player import play_bag
    from depth_node.ros.recorder import TopicRecorder, header_stamp_ns

    t0 = time.monotonic()
    out_bag = Path(out_bag)
    with BagReader(bag_path) as bag:
        image, camera_info = image_topics(bag, image, camera_info)
        n_images = bag.topics[image].count
    log_path = Path(log_path) if log_path else out_bag.parent / "node.log"
    pfile = write_params_file(out_bag.parent / "node_params.yaml", params)
    args = [sys.executable, "-m", "depth_node.ros.node", "--ros-args", "--params-file", str(pfile),
            "-r", f"__ns:={NAMESPACE}", "-r", f"image:={image}"]
    if camera_info:
        args += ["-r", f"camera_info:={camera_info}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    topics = {output_topic(k): v for k, v in OUTPUTS.items()}
    topics[DIAGNOSTICS] = "diagnostic_msgs/msg/DiagnosticArray"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        recorder = TopicRecorder(out_bag, topics, overwrite=True)
        try:
            recorder.start()
            end = time.monotonic() + startup_timeout
            depth_topic = output_topic("depth")
            while recorder.publishers(depth_topic) == 0:
                if proc.poll() is not None:
                    raise DepthNodeError(f"the node exited with status {proc.returncode} before publishing; its "
                                         f"log ({log_path}):\n{_tail(log_path)}")
                if time.monotonic() > end:
                    raise DepthNodeError(f"the node did not come up within {startup_timeout:.0f} s; its log "
                                         f"({log_path}):\n{_tail(log_path)}")
                time.sleep(0.1)
            played = [image] + ([camera_info] if camera_info else [])
            done = {"n": 0}

            def on_message(m) -> None:
                if m.topic != image:
                    return
                # the latency reference: when the player sent the image, keyed by its header stamp
                recorder.mark(image, header_stamp_ns(m.raw))
                done["n"] += 1
                if progress and (done["n"] % 20 == 0 or done["n"] == n_images):
                    print(f"\rreplaying: {done['n']}/{n_images} images, {recorder.count(depth_topic)} depth "
                          "images back", end="", file=sys.stderr, flush=True)

            res = play_bag(bag_path, rate=rate, topics=played, clock=False, start_delay=0.5,
                           wait_for_subscribers=60.0, on_message=on_message)
            recorder.wait_quiet(depth_topic, quiet_s=2.0, timeout_s=30.0)
            if progress:
                print(file=sys.stderr)
            if proc.poll() is not None:
                raise DepthNodeError(f"the node exited with status {proc.returncode} during the replay; its log "
                                     f"({log_path}):\n{_tail(log_path)}")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            recorder.stop()
    return RunResult(out_bag, "online", res.published.get(image, 0), str(params.get("model", "")),
                     recorder.arrivals, node_log=log_path, wall_s=time.monotonic() - t0)


def run_offline(bag_path: str | Path, out_bag: str | Path, *, image: str, camera_info: str | None,
                params: dict[str, Any], progress: bool = True) -> RunResult:
    """Every image of the bag through the node's FramePipeline, outputs into an MCAP bag (bag time = stamp)."""
    from rclpy.serialization import serialize_message
    from tqdm import tqdm

    from depth_node.geometry.pointcloud import OrganizedCloudBuilder
    from depth_node.pipeline import FramePipeline, camera_info_intrinsics, configured_intrinsics
    from depth_node.ros import messages as M
    from depth_node.ros import params as P
    from depth_node.ros.node import decode_rgb, resolve_model_path
    from depth_node.ros.sync import CameraInfoCache

    t0 = time.monotonic()
    with BagReader(bag_path) as bag:  # bad topics fail before the model loads
        image, camera_info = image_topics(bag, image, camera_info)
    cfg = P.validate(P.params_from_yaml({"/**": {"ros__parameters": params}}))
    model = resolve_model_path(cfg["model"])
    pipe = FramePipeline(model, cfg)
    clouds = OrganizedCloudBuilder()
    infos = CameraInfoCache(maxlen=200)
    seconds: list[float] = []
    n = 0
    out_bag = Path(out_bag)
    try:
        with BagReader(bag_path) as bag, BagWriter(out_bag, overwrite=True) as writer:
            for k, v in OUTPUTS.items():
                writer.add_topic(output_topic(k), v)
            # camera_info first: in a bag it may be stamped a hair after its image
            if camera_info:
                for m in bag.messages([camera_info]):
                    infos.add(m.msg)
            total = bag.topics[image].count
            for m in tqdm(bag.messages([image]), total=total, desc="frames", disable=not progress, unit="img"):
                msg = m.msg
                n += 1
                rgb = decode_rgb(msg)
                h, w = rgb.shape[:2]
                stamp_ns = stamp_to_ns(msg.header.stamp)
                info, _ = infos.match(stamp_ns, float(cfg["sync_slop"]))
                intr = camera_info_intrinsics(info, w, h)[0] if info is not None else None
                if intr is None:
                    intr = configured_intrinsics(cfg, w, h)
                out_size = (h, w) if cfg["output_resolution"] == "input" else None
                frame = pipe.depth(rgb, intr, stamp_ns / 1e9, out_size)
                header = M.copy_header(msg.header, None if msg.header.frame_id else (cfg["camera_frame"] or None))

                def put(name: str, ros_msg: Any, stamp_ns: int = stamp_ns) -> None:
                    writer.write_raw(output_topic(name), stamp_ns, serialize_message(ros_msg))

                put("depth", M.depth_msg(frame.depth, header))
                put("depth/camera_info", M.camera_info_msg(frame.intrinsics, header))
                cloud = clouds.build(frame.depth, frame.intrinsics, int(cfg["stride"]), None,
                                     float(cfg["cloud_max_range"]))
                put("points", M.pointcloud_msg(cloud, header, clouds.payload))
                extra = 0.0
                if pipe.has_pose:
                    t2 = time.monotonic()
                    vo = pipe.odometry(frame, stamp_ns / 1e9)
                    extra = time.monotonic() - t2
                    put("odom", M.odometry_msg(vo, msg.header.stamp, cfg["odom_frame"], cfg["base_frame"]))
                seconds.append(frame.seconds + extra)
    finally:
        pipe.close()
    return RunResult(out_bag, "offline", n, str(model), frame_seconds=seconds, wall_s=time.monotonic() - t0)
