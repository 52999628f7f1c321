"""Shared ROS 2 test utilities: isolated environments, a tiny model, and three processes talking real ROS 2:
the node, a publisher of frames (and of bad input), and a recorder of everything the node publishes.

The helper processes are this file run as a script (`python test/ros_helpers.py publish|record ...`), so
the tests assert on plain NumPy data the recorder pickles, and every process gets the same isolated
environment: loopback-only discovery and a per-test domain id (the node itself never sets either).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
sys.path.insert(0, str(ROOT))
FIXTURES = Path(os.environ.get("DEPTH_NODE_SHARED", ROOT.parent / "shared")) / "fixtures"
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures")


# ----------------------------------------------------------------------------------------- environment
def ros_env(domain: int) -> dict[str, str]:
    """Environment for a ROS 2 process of a test: loopback discovery, its own domain, unbuffered output."""
    env = dict(os.environ)
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_DOMAIN_ID=str(domain),
        RMW_IMPLEMENTATION=env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
    )
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


ROS_ENV_KEYS = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "RMW_IMPLEMENTATION")


def set_ros_env(domain: int) -> dict[str, str | None]:
    """Same, for the pytest process itself (tests that create an rclpy context in-process). Returns the previous
    values for `restore_env`, so later tests in the session see the environment they started with."""
    old = {k: os.environ.get(k) for k in ROS_ENV_KEYS}
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def rclpy_available() -> bool:
    try:
        import rclpy  # noqa: F401
        import sensor_msgs.msg  # noqa: F401

        return True
    except Exception:
        return False


def trained_model() -> Path | None:
    p = ROOT / "models" / "default.pt"
    return p if p.is_file() else None


# ------------------------------------------------------------------------------------------------ model
def make_model(path: Path, height: int = 96, width: int = 320, scale: dict | None = None, pose: bool = True) -> Path:
    """A ResNet-18 Monodepth2 model with deterministic (untrained) weights: right shapes, plausible ranges."""
    sys.path.insert(0, str(FIXTURES / "monodepth2"))
    from weights_recipe import fill_state_dict  # type: ignore[import-not-found]

    from depth_node.checkpoints.model_file import ModelFile, save_model
    from depth_node.networks.monodepth2 import DepthNet, PoseNet

    m = ModelFile(
        arch="monodepth2",
        config={"num_layers": 18},
        height=height,
        width=width,
        depth_state=fill_state_dict(DepthNet(18).state_dict()),
        pose_state=fill_state_dict(PoseNet(18).state_dict()) if pose else None,
        meta={"min_depth": 0.1, "max_depth": 100.0, "scale": scale or {"kind": "relative", "factor": 1.0}},
    )
    return save_model(path, m)


# ----------------------------------------------------------------------------------------------- frames
def render_frames(path: Path, n: int = 12, width: int = 400, height: int = 120, seed: int = 1,
                  fps: float = 10.0) -> Path:
    """Frames with exact ground truth to an .npz: the sim renderer when present, else a procedural road."""
    try:
        from depth_node.sim.config import DriveConfig
        from depth_node.sim.drive import Drive

        cfg = DriveConfig(seed=seed, frames=n)
        cfg.camera.width, cfg.camera.height = width, height
        cfg.trajectory.fps = fps
        drive = Drive(cfg)
        frames = [drive.frame(k) for k in range(n)]
        rgb = np.stack([f.rgb for f in frames])
        depth = np.stack([f.depth for f in frames])
        poses = np.stack([f.pose for f in frames])
        stamps = np.array([f.stamp_ns for f in frames], dtype=np.int64)
        intr = frames[0].intrinsics
        K = np.array([intr.fx, intr.fy, intr.cx, intr.cy])
        source = "sim"
    except ImportError:
        rgb, depth, poses, stamps, K = _procedural(n, width, height, fps)
        source = "procedural"
    np.savez(path, rgb=rgb, depth=depth, poses=poses, stamps=stamps, K=K, source=source)
    return path


def _procedural(n: int, w: int, h: int, fps: float):
    """Textured road plane 1.65 m below a camera driving forward 1 m per frame; sky above the horizon."""
    fx = fy = 0.58 * w * 1.6
    cx, cy = w / 2, h / 2
    v = (np.arange(h) - cy) / fy
    u = (np.arange(w) - cx) / fx
    rgb, depth, poses = [], [], []
    for k in range(n):
        with np.errstate(divide="ignore"):
            z = np.where(v[:, None] > 1e-3, 1.65 / np.maximum(v[:, None], 1e-3), np.inf) * np.ones((1, w))
        X = u[None, :] * z
        Z = z + k
        tex = ((np.floor(X * 2) + np.floor(Z * 2)) % 2).astype(np.float32)
        img = np.where(np.isfinite(z)[..., None], (60 + 120 * tex)[..., None] * [1.0, 0.9, 0.8], [120, 170, 230])
        rgb.append(img.astype(np.uint8))
        depth.append(z.astype(np.float32))
        T = np.eye(4)
        T[2, 3] = float(k)
        poses.append(T)
    stamps = (1_700_000_000 * 10**9 + np.arange(n) * int(1e9 / fps)).astype(np.int64)
    return np.stack(rgb), np.stack(depth), np.stack(poses), stamps, np.array([fx, fy, cx, cy])


# --------------------------------------------------------------------------------------------- processes
class Proc:
    """A child process with its output in a log file; stopped with SIGINT, then SIGKILL."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log_path = log
        self._log = open(log, "wb")
        self.p = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(ROOT))

    @property
    def pid(self) -> int:
        return self.p.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for(self, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log():
                return True
            if self.p.poll() is not None:
                return text in self.log()
            time.sleep(0.1)
        return False

    def wait(self, timeout: float) -> int | None:
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        self._log.close()
        return self.p.returncode


def write_params(path: Path, overrides: dict[str, Any]) -> Path:
    """config/mono_depth.yaml with overrides (dotted names allowed), as a params file for any node name."""
    import yaml

    from depth_node.ros.params import flatten, nested, params_from_yaml

    base = params_from_yaml(yaml.safe_load((ROOT / "config" / "mono_depth.yaml").read_text()))
    base.update(flatten(overrides) if any(isinstance(v, dict) for v in overrides.values()) else overrides)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": nested(base)}}, sort_keys=False))
    return path


def start_node(tmp: Path, domain: int, params: dict[str, Any], remaps: list[str] = (), tag: str = "node",
               pythonpath_first: Path | None = None) -> Proc:
    """The node as its own process; `pythonpath_first`: a folder put before everything on its PYTHONPATH."""
    pfile = write_params(tmp / f"{tag}_params.yaml", params)
    args = [PY, "-m", "depth_node.cli", "node", "--ros-args", "--params-file", str(pfile)]
    for r in remaps:
        args += ["-r", r]
    env = ros_env(domain)
    if pythonpath_first is not None:
        env["PYTHONPATH"] = str(pythonpath_first) + os.pathsep + env["PYTHONPATH"]
    return Proc(args, env, tmp / f"{tag}.log")


def start_recorder(tmp: Path, domain: int, out: Path, ns: str = "", until_stamp: int = 0,
                   duration: float = 60.0, topics: str = "depth,depth_info,colored,points,odom,diagnostics",
                   keep_arrays: bool = True) -> Proc:
    args = [PY, str(Path(__file__)), "record", "--out", str(out), "--ns", ns, "--until-stamp", str(until_stamp),
            "--duration", str(duration), "--topics", topics]
    if not keep_arrays:
        args.append("--no-arrays")
    return Proc(args, ros_env(domain), tmp / f"recorder_{out.stem}.log")


def start_publisher(tmp: Path, domain: int, frames: Path, mode: str = "frames", rate: float = 10.0,
                    ns: str = "", extra: list[str] = (), tag: str = "publisher") -> Proc:
    args = [PY, str(Path(__file__)), "publish", "--frames", str(frames), "--mode", mode, "--rate", str(rate),
            "--ns", ns, *extra]
    return Proc(args, ros_env(domain), tmp / f"{tag}.log")


def load_record(path: Path) -> dict[str, list[dict[str, Any]]]:
    with open(path, "rb") as f:
        return pickle.load(f)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def cloud_array(rec: dict[str, Any]) -> np.ndarray:
    """A recorded PointCloud2 as sensor_msgs_py.point_cloud2.read_points builds it: dtype from fields."""
    dt = np.dtype({"names": [f[0] for f in rec["fields"]], "formats": ["<f4"] * len(rec["fields"]),
                   "offsets": [f[1] for f in rec["fields"]], "itemsize": rec["point_step"]})
    return np.frombuffer(rec["data"], dtype=dt).reshape(rec["height"], rec["width"])


def diag_values(rec: dict[str, Any]) -> dict[str, str]:
    return rec["values"]


# ------------------------------------------------------------------------------------ the node in-process
class LiveNode:
    """The real node and a peer node in this process (one rclpy context, real DDS between them), spun on a
    background thread: for tests that poke the node's parameters, lifecycle or internals."""

    KINDS: ClassVar[dict[str, tuple[str, str, str]]] = {
        "depth": ("sensor_msgs.msg", "Image", "depth/image_rect"),
        "info": ("sensor_msgs.msg", "CameraInfo", "depth/camera_info"),
        "points": ("sensor_msgs.msg", "PointCloud2", "points"),
        "odom": ("nav_msgs.msg", "Odometry", "odom"),
    }

    def __init__(self, domain: int, params: dict[str, Any], activate: bool = True):
        import importlib
        import threading

        self._old_env = set_ros_env(domain)
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        from depth_node.ros.node import create_node

        self._importlib = importlib
        self.Parameter = Parameter
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        overrides = [Parameter(k, value=v) for k, v in {"autostart": False, **params}.items()]
        self.node = create_node(context=self.ctx, parameter_overrides=overrides)
        self.peer = rclpy.create_node("live_peer", context=self.ctx)
        self.got: dict[str, list] = {k: [] for k in self.KINDS}
        self.subs: dict[str, Any] = {}
        self.img_pub = self.peer.create_publisher(Image, "image", qos_profile_sensor_data)
        self.info_pub = self.peer.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.peer)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        if activate:
            from rclpy.lifecycle import TransitionCallbackReturn

            assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def _spin(self) -> None:
        while not self._stop.is_set() and self.ctx.ok():
            self.ex.spin_once(timeout_sec=0.05)

    def subscribe(self, kind: str) -> None:
        mod, typ, topic = self.KINDS[kind]
        msg_type = getattr(self._importlib.import_module(mod), typ)
        self.subs[kind] = self.peer.create_subscription(msg_type, topic, lambda m: self.got[kind].append(m), 50)

    def unsubscribe(self, kind: str) -> None:
        self.peer.destroy_subscription(self.subs.pop(kind))

    def send(self, rgb: np.ndarray, stamp_ns: int, K=None, wait_for: str | None = "depth",
             timeout: float = 15.0, retry_step: int = 0):
        """Publish a frame (and camera_info when K is given); return the `wait_for` output it produced.
        With retry_step, re-sends with stamp + retry_step while discovery settles; returns (msg, stamp)."""
        end = time.monotonic() + timeout
        stamp = stamp_ns
        while True:
            n0 = len(self.got[wait_for]) if wait_for else 0
            h, w = rgb.shape[:2]
            if K is not None:
                self.info_pub.publish(_info_msg(K, w, h, stamp))
            self.img_pub.publish(_image_msg(rgb, stamp))
            if wait_for is None:
                time.sleep(0.5)
                return None, stamp
            t1 = min(end, time.monotonic() + (2.0 if retry_step else timeout))
            while time.monotonic() < t1:
                for m in self.got[wait_for][n0:]:
                    if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp:
                        return m, stamp
                time.sleep(0.01)
            if not retry_step or time.monotonic() >= end:
                raise AssertionError(f"no {wait_for} output for stamp {stamp} within {timeout} s")
            stamp += retry_step

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join(timeout=5)
        self.node._stop_worker()
        self.node._release()
        self.node.destroy_node()
        self.peer.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        restore_env(self._old_env)


# ----------------------------------------------------------------------------- helper processes (scripts)
def _topic(ns: str, name: str) -> str:
    return f"{ns.rstrip('/')}/{name}" if ns else name


def _image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera_optical", encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    from depth_node.ros.messages import as_data

    m = Image()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    m.header.frame_id = frame_id
    m.height, m.width = int(rgb.shape[0]), int(rgb.shape[1])
    m.encoding = encoding
    m.step = int(rgb.shape[1] * (rgb.shape[2] if rgb.ndim == 3 else 1) * rgb.dtype.itemsize)
    m.data = as_data(rgb)
    return m


def _info_msg(K: np.ndarray, w: int, h: int, stamp_ns: int, frame_id: str = "camera_optical"):
    from sensor_msgs.msg import CameraInfo

    c = CameraInfo()
    c.header.stamp.sec, c.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    c.header.frame_id = frame_id
    c.width, c.height = int(w), int(h)
    fx, fy, cx, cy = (float(v) for v in K)
    c.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    c.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    c.r = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    c.distortion_model = "plumb_bob"
    c.d = [0.0] * 5
    return c


STEP_NS = 100_000_000


def bad_inputs(rgb: np.ndarray) -> list[tuple[str, Any, bool]]:
    """(name, make(t) -> (image, camera_info or None, stamp), expect_published), in order. `t` is the stamp of
    the last good frame; each case is followed by a good probe frame in `_publish_bad`."""
    from depth_node.ros.messages import as_data

    h, w = rgb.shape[:2]
    step = STEP_NS

    def img(arr, st, enc="rgb8"):
        return _image_msg(arr, st, encoding=enc)

    def unsupported(t):
        m = img(rgb, t + step)
        m.encoding = "yuv422_weird"
        return m, None, t + step

    def zero_size(t):
        m = img(rgb, t + step)
        m.height = m.width = m.step = 0
        m.data = as_data(np.zeros(0, np.uint8))
        return m, None, t + step

    def wrong_step(t):
        m = img(rgb, t + step)
        m.step = w * 3 - 7
        return m, None, t + step

    def truncated(t):
        m = img(rgb, t + step)
        m.data = as_data(rgb.reshape(-1)[: rgb.size // 2])
        return m, None, t + step

    def nan_float(t):
        f = rgb.astype(np.float32) / 255.0
        f[3, 5, :] = np.nan
        f[4, 6, :] = np.inf
        return img(np.ascontiguousarray(f[..., 0]), t + step, "32FC1"), None, t + step

    def odd(t):
        hh, ww = h - 3 if (h - 3) % 2 else h - 4, w - 5 if (w - 5) % 2 else w - 6
        return img(np.ascontiguousarray(rgb[:hh, :ww]), t + step), None, t + step

    def zero_k(t):
        return img(rgb, t + step), _info_msg(np.zeros(4), w, h, t + step), t + step

    def duplicate(t):
        return img(rgb, t), None, t

    def out_of_order(t):
        return img(rgb, t - step // 4), None, t - step // 4

    def resolution(t):
        big = np.ascontiguousarray(np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)[: h + 40, : w + 64])
        return img(big, t + step), None, t + step

    def jump_back(t):
        return img(rgb, t - 100 * 10**9), None, t - 100 * 10**9

    def mono(t):
        return img(np.ascontiguousarray(rgb[..., 1]), t + step, "mono8"), None, t + step

    def bayer(t):  # RGGB mosaic of the frame
        m = np.empty((h, w), np.uint8)
        m[0::2, 0::2], m[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
        m[1::2, 0::2], m[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
        return img(m, t + step, "bayer_rggb8"), None, t + step

    def yuv(t):  # UYVY: chroma neutral (128), luma = green
        p = np.empty((h, w, 2), np.uint8)
        p[..., 0], p[..., 1] = 128, rgb[..., 1]
        return img(p, t + step, "yuv422"), None, t + step

    def mono16(t):
        return img(np.ascontiguousarray(rgb[..., 1].astype(np.uint16) * 257), t + step, "mono16"), None, t + step

    def bgra(t):
        a = np.concatenate([rgb[..., ::-1], np.full((h, w, 1), 255, np.uint8)], axis=2)
        return img(np.ascontiguousarray(a), t + step, "bgra8"), None, t + step

    return [
        ("unsupported_encoding", unsupported, False),
        ("zero_size", zero_size, False),
        ("wrong_step", wrong_step, False),
        ("truncated_data", truncated, False),
        ("nan_pixels_float", nan_float, False),
        ("odd_size", odd, True),
        ("camera_info_zero_k", zero_k, True),
        ("duplicate_stamp", duplicate, False),
        ("out_of_order_stamp", out_of_order, False),
        ("resolution_change", resolution, True),
        ("time_jump_back", jump_back, True),
        ("mono8", mono, True),
        ("bgra8", bgra, True),
        ("bayer_rggb8", bayer, True),
        ("yuv422", yuv, True),
        ("mono16", mono16, True),
    ]


def _wait_matched(pub, deadline: float, node) -> None:
    import rclpy

    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)


def _publish(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    data = np.load(args.frames)
    rgb, stamps, K = data["rgb"], data["stamps"], data["K"]
    rclpy.init()
    node = rclpy.create_node("test_frame_publisher")
    pub = node.create_publisher(Image, _topic(args.ns, "image"), qos_profile_sensor_data)
    ipub = node.create_publisher(CameraInfo, _topic(args.ns, "camera_info"), qos_profile_sensor_data)
    _wait_matched(pub, time.monotonic() + args.wait, node)
    if pub.get_subscription_count() == 0:
        print("publisher: no subscriber on image", flush=True)
        return 3
    time.sleep(args.settle)  # let the recorder's subscriptions reach the node's publishers
    print("publisher: matched", flush=True)
    for k in range(args.warmup, 0, -1):  # the first samples after discovery can be lost: warm the path up
        st = int(stamps[0]) - k * STEP_NS
        ipub.publish(_info_msg(K, rgb[0].shape[1], rgb[0].shape[0], st))
        pub.publish(_image_msg(rgb[0], st))
        time.sleep(0.3)
    try:
        if args.mode == "bad":
            return _publish_bad(node, pub, ipub, rgb, stamps, K, args)
        got: list[int] = []
        if args.lockstep:
            node.create_subscription(Image, _topic(args.ns, "depth/image_rect"), lambda m: got.append(
                m.header.stamp.sec * 10**9 + m.header.stamp.nanosec), 10)
        n = len(rgb)
        total = args.count or n
        period = 1.0 / args.rate if args.rate > 0 else 0.0
        t_next = time.monotonic()
        end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
        k = 0
        while k < total and time.monotonic() < end:
            i = k % n
            st = time.time_ns() if args.wall_stamps else int(stamps[i]) + (k // n) * int(args.loop_offset * 1e9)
            h, w = rgb[i].shape[:2]
            if not args.no_info:
                ipub.publish(_info_msg(K, w, h, st))
            pub.publish(_image_msg(rgb[i], st))
            k += 1
            if args.lockstep:  # wait for this frame's depth: no frame is dropped as stale
                wait_end = time.monotonic() + args.lockstep
                while st not in got and time.monotonic() < wait_end:
                    rclpy.spin_once(node, timeout_sec=0.01)
                if st not in got:
                    print(f"publisher: no depth for stamp {st} within {args.lockstep} s", flush=True)
            t_next += period
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:  # fell behind: do not try to catch up with a burst
                t_next = time.monotonic()
        print(f"publisher: sent {k}", flush=True)
        time.sleep(args.linger)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _publish_bad(node, pub, ipub, rgb, stamps, K, args) -> int:
    """Each bad case, then a good probe frame whose depth must come out (the node kept running)."""
    import rclpy
    from sensor_msgs.msg import Image

    got: list[int] = []
    node.create_subscription(Image, _topic(args.ns, "depth/image_rect"), lambda m: got.append(
        m.header.stamp.sec * 10**9 + m.header.stamp.nanosec), 10)
    frame = rgb[0]
    h, w = frame.shape[:2]

    def send(msg, info, stamp: int, timeout: float) -> bool:
        n0 = len(got)
        ipub.publish(info if info is not None else _info_msg(K, msg.width or w, msg.height or h, stamp))
        time.sleep(0.02)  # camera_info first, as cameras do; the node waits briefly for it anyway
        pub.publish(msg)
        end = time.monotonic() + timeout
        while stamp not in got[n0:] and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.02)
        return stamp in got[n0:]

    t = int(stamps[0])
    ok = False
    for _ in range(10):  # a first good frame (also lets our depth subscription match)
        t += STEP_NS
        if send(_image_msg(frame, t), None, t, 3.0):
            ok = True
            break
    if not ok:
        print("publisher: the first good frame never came back", flush=True)
        return 4
    results = {}
    for name, make, expect in bad_inputs(frame):
        msg, info, st = make(t)
        came = send(msg, info, st, 10.0 if expect else 1.0)
        if came:
            t = st
        t += STEP_NS
        probe_ok = send(_image_msg(frame, t), None, t, 10.0)
        results[name] = {"published": came, "expected": expect, "probe_published": probe_ok}
        print(f"publisher: case {name}: published={came} probe={probe_ok}", flush=True)
    with open(args.result, "wb") as f:
        pickle.dump(results, f)
    time.sleep(args.linger)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _record(args: argparse.Namespace) -> int:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    rclpy.init()
    node = rclpy.create_node("test_recorder")
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("depth", "depth_info", "colored", "points", "odom",
                                                          "diagnostics")}
    wanted = set(args.topics.split(","))
    done = {"flag": False}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def stamp(h) -> int:
        return h.stamp.sec * 10**9 + h.stamp.nanosec

    def on_image(key):
        def cb(m):
            rec = {"stamp": stamp(m.header), "frame_id": m.header.frame_id, "encoding": m.encoding,
                   "height": m.height, "width": m.width, "step": m.step, "is_bigendian": m.is_bigendian,
                   "t_recv": time.time_ns()}
            if args.arrays:
                dt = np.float32 if m.encoding == "32FC1" else np.uint8
                rec["array"] = np.frombuffer(bytes(m.data), dtype=dt).reshape(m.height, -1).copy()
            out[key].append(rec)
            if key == "depth" and args.until_stamp and rec["stamp"] >= args.until_stamp:
                done["flag"] = True
        return cb

    def on_info(m):
        out["depth_info"].append({"stamp": stamp(m.header), "frame_id": m.header.frame_id, "width": m.width,
                                  "height": m.height, "k": list(m.k), "p": list(m.p), "d": list(m.d),
                                  "distortion_model": m.distortion_model})

    def on_points(m):
        rec = {"stamp": stamp(m.header), "frame_id": m.header.frame_id, "height": m.height, "width": m.width,
               "point_step": m.point_step, "row_step": m.row_step, "is_dense": m.is_dense,
               "is_bigendian": m.is_bigendian, "t_recv": time.time_ns(),
               "fields": [(f.name, f.offset, f.datatype, f.count) for f in m.fields]}
        if args.arrays:
            rec["data"] = bytes(m.data)
        out["points"].append(rec)

    def on_odom(m):
        p, q = m.pose.pose.position, m.pose.pose.orientation
        t = m.twist.twist
        out["odom"].append({"stamp": stamp(m.header), "frame_id": m.header.frame_id,
                            "child_frame_id": m.child_frame_id, "t_recv": time.time_ns(),
                            "position": [p.x, p.y, p.z], "orientation": [q.x, q.y, q.z, q.w],
                            "pose_cov": list(m.pose.covariance), "twist": [t.linear.x, t.linear.y, t.linear.z,
                                                                          t.angular.x, t.angular.y, t.angular.z],
                            "twist_cov": list(m.twist.covariance)})

    def on_diag(m):
        for st in m.status:
            out["diagnostics"].append({"name": st.name, "level": st.level[0] if isinstance(st.level, bytes)
                                       else int(st.level), "message": st.message,
                                       "values": {kv.key: kv.value for kv in st.values}, "t_recv": time.time_ns()})

    subs = []
    if "depth" in wanted:
        subs.append(node.create_subscription(Image, _topic(args.ns, "depth/image_rect"), on_image("depth"), qos))
    if "depth_info" in wanted:
        subs.append(node.create_subscription(CameraInfo, _topic(args.ns, "depth/camera_info"), on_info, qos))
    if "colored" in wanted:
        subs.append(node.create_subscription(Image, _topic(args.ns, "depth/colored"), on_image("colored"), qos))
    if "points" in wanted:
        subs.append(node.create_subscription(PointCloud2, _topic(args.ns, "points"), on_points, qos))
    if "odom" in wanted:
        subs.append(node.create_subscription(Odometry, _topic(args.ns, "odom"), on_odom, qos))
    if "diagnostics" in wanted:
        subs.append(node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50))
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__("flag", True))
    deadline = time.monotonic() + args.match_timeout
    while time.monotonic() < deadline and not all(s.get_publisher_count() > 0 for s in subs):
        rclpy.spin_once(node, timeout_sec=0.05)
    print("recorder: ready", flush=True)
    end = time.monotonic() + args.duration
    linger_until = None
    try:
        while time.monotonic() < end and not stop["flag"]:
            rclpy.spin_once(node, timeout_sec=0.05)
            if done["flag"] and linger_until is None:
                linger_until = time.monotonic() + 1.5  # the rest of that frame's outputs (odom, cloud)
            if linger_until is not None and time.monotonic() > linger_until:
                break
    except KeyboardInterrupt:
        pass
    finally:
        with open(args.out, "wb") as f:
            pickle.dump(out, f)
        print(f"recorder: saved {', '.join(f'{k}={len(v)}' for k, v in out.items())}", flush=True)
        with contextlib.suppress(Exception):
            node.destroy_node()
            rclpy.try_shutdown()
    return 0


def _main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish")
    p.add_argument("--frames", required=True)
    p.add_argument("--mode", choices=("frames", "bad"), default="frames")
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--count", type=int, default=0, help="frames to send (loops the file); 0 = the file once")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = no limit)")
    p.add_argument("--loop-offset", type=float, default=0.0, help="seconds added to stamps on each loop")
    p.add_argument("--wall-stamps", action="store_true", help="stamp with the wall clock (latency checks)")
    p.add_argument("--no-info", action="store_true", help="publish no camera_info")
    p.add_argument("--lockstep", type=float, default=0.0,
                   help="wait up to this many seconds for each frame's depth before the next (0 = off)")
    p.add_argument("--ns", default="")
    p.add_argument("--warmup", type=int, default=0, help="frames sent before the sequence (stamps before it)")
    p.add_argument("--wait", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--linger", type=float, default=1.0)
    p.add_argument("--result", default="")
    r = sub.add_parser("record")
    r.add_argument("--out", required=True)
    r.add_argument("--ns", default="")
    r.add_argument("--until-stamp", type=int, default=0)
    r.add_argument("--duration", type=float, default=60.0)
    r.add_argument("--topics", default="depth,depth_info,colored,points,odom,diagnostics")
    r.add_argument("--no-arrays", dest="arrays", action="store_false")
    r.add_argument("--match-timeout", type=float, default=30.0, help="wait this long for the node's publishers")
    args = ap.parse_args()
    return _publish(args) if args.cmd == "publish" else _record(args)


if __name__ == "__main__":
    sys.exit(_main())
