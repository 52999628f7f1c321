"""Running the node over a bag and recording what it publishes, for `eval-bag` and `make demo`.

Online: the real node as its own process, the bag replayed over ROS 2 with its timing, and a recorder writing
the node's outputs into an MCAP bag. Offline: the node's own frame core (`depth_node.runtime.core.FrameCore`,
the same rules and model path), fed every image of the bag in order (no transport, no dropping), its outputs
converted by the same message builders into the same topics of the same kind of bag. Either way the scorer
(`depth_node.evaluate.bag_score`) reads one outputs bag.

Isolation: these runs publish the bag's camera topics, which must not leak into a robot's graph; the commands
that call them (`eval-bag`, `demo`) set ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_DOMAIN_ID for their own process
tree. Nothing under depth_node/ros/ (the node) ever sets them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from depth_node.errors import DepthNodeError
from depth_node.io.bags import BagReader, BagWriter
from depth_node.ros.node_process import NodeProcess
from depth_node.runtime.bag_run import DIAGNOSTICS, NAMESPACE, OUTPUTS, RunResult, output_topic
from depth_node.runtime.topics import CAMERA_INFO_TYPE, DEPTH_IMAGE, DEPTH_INFO, ODOM, POINTS, camera_info_topic

__all__ = ["DIAGNOSTICS", "NAMESPACE", "OUTPUTS", "RunResult", "output_topic", "run_offline", "run_online"]


CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def base_topic(image: str, msgtype: str) -> str:
    """image_transport's base topic: `/cam/image_raw/compressed` (CompressedImage) → `/cam/image_raw`."""
    if msgtype == "sensor_msgs/msg/CompressedImage" and image.endswith("/compressed"):
        return image[: -len("/compressed")]
    return image


def image_topics(bag: BagReader, image: str, camera_info: str | None) -> tuple[str, str | None]:
    """Check the camera topics (raw Image or image_transport CompressedImage); camera_info None → the bag's
    CameraInfo topic that belongs to the image (`runtime.topics.camera_info_topic`), if any."""
    topics = bag.topics
    if image not in topics:
        cams = [t for t, s in topics.items() if s.msgtype in CAMERA_TYPES]
        raise DepthNodeError(f"{bag.path} has no topic {image}; image topics: {', '.join(cams) or 'none'}")
    msgtype = topics[image].msgtype
    if msgtype not in CAMERA_TYPES:
        raise DepthNodeError(f"{image} is {msgtype}, not sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage")
    if camera_info is None:
        return image, camera_info_topic(image, [t for t, s in topics.items() if s.msgtype == CAMERA_INFO_TYPE])
    if camera_info not in topics:
        raise DepthNodeError(f"{bag.path} has no topic {camera_info}")
    return image, camera_info


def default_model_path(params: dict[str, Any]) -> str:
    """The model file the node loads for these parameters (`model` empty: the package's default), as the node
    resolves it; "" when it cannot be resolved here (the node then says why)."""
    from depth_node.runtime.pipeline import resolve_model_path

    try:
        return str(resolve_model_path(str(params.get("model", "")), str(params.get("backend", "auto"))))
    except (DepthNodeError, OSError):
        return ""


def run_online(bag_path: str | Path, out_bag: str | Path, *, image: str, camera_info: str | None,
               params: dict[str, Any], rate: float = 1.0, startup_timeout: float = 180.0,
               log_path: str | Path | None = None, progress: bool = True, prog: str = "eval-bag") -> RunResult:
    """Node process + replay + recorder. Raises DepthNodeError with the node's last log lines if it fails.
    With `progress`, says (prefixed `prog`) when the node starts and is up, and counts the replay on stderr."""
    from depth_node.ros.bag_player import play_bag
    from depth_node.ros.recorder import TopicRecorder, header_stamp_ns

    t0 = time.monotonic()
    out_bag = Path(out_bag)
    with BagReader(bag_path) as bag:
        image, camera_info = image_topics(bag, image, camera_info)
        n_images = bag.topics[image].count
        base = base_topic(image, bag.topics[image].msgtype)
    if base != image:  # a compressed camera: the node subscribes <base>/compressed, as image_transport does
        params = {**params, "transport": "compressed"}
    log_path = Path(log_path) if log_path else out_bag.parent / "node.log"
    remaps = [f"__ns:={NAMESPACE}", f"image:={base}"] + ([f"camera_info:={camera_info}"] if camera_info else [])
    topics = {output_topic(k): v for k, v in OUTPUTS.items()}
    topics[DIAGNOSTICS] = "diagnostic_msgs/msg/DiagnosticArray"
    recorder = TopicRecorder(out_bag, topics, overwrite=True)
    with NodeProcess(params, log_path, remaps) as node:
        try:
            recorder.start()
            if progress:
                print(f"{prog}: starting the node and loading its model (log: {log_path})", flush=True)
            depth_topic = output_topic(DEPTH_IMAGE)
            up_s = node.wait_until(lambda: recorder.publishers(depth_topic) > 0, startup_timeout)
            if progress:
                print(f"{prog}: node up after {up_s:.1f} s; replaying {n_images} images at "
                      f"{rate:g}× the bag's speed", flush=True)
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
            back = recorder.wait_quiet(depth_topic, quiet_s=2.0, timeout_s=30.0)
            if progress:  # the final count, once the node's last outputs are in (the line above was mid-flight)
                print(f"\rreplayed: {done['n']}/{n_images} images, {back} depth images back".ljust(60),
                      file=sys.stderr, flush=True)
            node.check_alive("during the replay")
        finally:
            node.stop()
            recorder.stop()
    return RunResult(out_bag, "online", res.published.get(image, 0), default_model_path(params),
                     recorder.arrivals, node_log=log_path, wall_s=time.monotonic() - t0)


def run_offline(bag_path: str | Path, out_bag: str | Path, *, image: str, camera_info: str | None,
                params: dict[str, Any], progress: bool = True) -> RunResult:
    """Every image of the bag through the node's frame core, outputs into an MCAP bag (bag time = stamp).

    Messages are read in log order, as a replay delivers them: each camera_info goes into the core's cache as
    it comes, and an image is processed once the next image is read (a camera_info logged a hair after its
    image is then in), so the frame sees what the node would have seen."""
    from tqdm import tqdm

    from depth_node.runtime.core import FrameCore, Wants
    from depth_node.runtime.params import params_from_yaml, validate
    from depth_node.runtime.topics import is_rectified_topic

    t0 = time.monotonic()
    with BagReader(bag_path) as bag:  # bad topics fail before the model loads
        image, camera_info = image_topics(bag, image, camera_info)
        total = bag.topics[image].count
    cfg = validate(params_from_yaml({"/**": {"ros__parameters": params}}))
    core = FrameCore.open(cfg)
    core.rectified_input = is_rectified_topic(image)
    wants = Wants(depth=True, depth_info=True, points=True, colored=False, odom=core.pipe.has_pose)
    seconds: list[float] = []
    out_bag = Path(out_bag)
    try:
        with BagReader(bag_path) as bag, BagWriter(out_bag, overwrite=True) as writer:
            for k, v in OUTPUTS.items():
                writer.add_topic(output_topic(k), v)
            writer.add_topic(DIAGNOSTICS, "diagnostic_msgs/msg/DiagnosticArray")
            topics = [image] + ([camera_info] if camera_info else [])
            frames = _images_after_their_infos(bag.messages(topics), image, core)
            last_ns = 0
            for msg, prev_ns in tqdm(frames, total=total, desc="frames", disable=not progress, unit="img"):
                out = core.process(msg, wants, prev_ns)
                if out.status == "ok":
                    _write_outputs(writer, out, msg.header, cfg)
                    seconds.append(out.infer_s + out.odom_s)
                    last_ns = out.stamp_ns
            _write_core_status(writer, core, len(seconds), total, last_ns)
    finally:
        core.close()
    return RunResult(out_bag, "offline", total, str(core.model_path), frame_seconds=seconds,
                     wall_s=time.monotonic() - t0)


def _write_core_status(writer: BagWriter, core: Any, published: int, received: int, stamp_ns: int) -> None:
    """The offline core's final state as the node's /diagnostics reports it (same keys: model, backend,
    precision, device, scale and odometry state; no rates or latencies, there is no transport), so the scorer
    reads what the run used from the outputs bag, online or offline."""
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message

    from depth_node.ros import messages as M
    from depth_node.ros.node_stats import core_values

    values = {"state": "offline", "model": str(core.model_path), **core_values(core),
              "frames_received": received, "frames_published": published}
    status = M.diagnostic_status(f"{NAMESPACE}/mono_depth: depth (offline frame core)", "depth_node", M.OK,
                                 "offline run: the frame core's final state", values)
    sec, nsec = divmod(int(stamp_ns), 10**9)
    msg = M.diagnostics_msg(Time(sec=sec, nanosec=nsec), [status])
    writer.write_raw(DIAGNOSTICS, int(stamp_ns), serialize_message(msg))


def _images_after_their_infos(messages: Any, image: str, core: Any) -> Any:
    """(image message, stamp of the image before it) in log order, each yielded after the camera_info
    messages logged before the next image went into the core."""
    from depth_node.io.bags import stamp_to_ns

    pending, prev_ns, before = None, None, None
    for m in messages:
        if m.topic != image:
            core.add_camera_info(m.msg)
            continue
        if pending is not None:
            yield pending, before
        pending, before, prev_ns = m.msg, prev_ns, stamp_to_ns(m.msg.header.stamp)
    if pending is not None:
        yield pending, before


def _write_outputs(writer: BagWriter, out: Any, in_header: Any, cfg: Any) -> None:
    """The frame's depth, depth/camera_info, points and odom as the node publishes them (same builders)."""
    from rclpy.serialization import serialize_message

    from depth_node.ros import messages as M

    header = M.copy_header(in_header, out.frame_id)
    msgs = {DEPTH_IMAGE: M.depth_msg(out.depth, header), DEPTH_INFO: M.camera_info_msg(out.intrinsics, header),
            POINTS: M.pointcloud_msg(out.cloud, header, out.cloud_payload)}
    if out.odometry is not None:
        msgs[ODOM] = M.odometry_msg(out.odometry, header.stamp, cfg.odom_frame, cfg.base_frame)
    for name, msg in msgs.items():
        writer.write_raw(output_topic(name), out.stamp_ns, serialize_message(msg))
