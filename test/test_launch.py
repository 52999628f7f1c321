"""launch/mono_depth.launch.py run by the real `launch`/`launch_ros` (their unmodified Jazzy Python packages in
../shared/vendor/ros2_launch, not on PyPI) from a colcon-built workspace, as `ros2 launch` runs it:
`launch_a_launch_file` in its own process, the node found through the ament index. Checked from outside over
ROS 2: the node's name and namespace, its remapped inputs, its parameters (a user's parameter file is not
overridden by launch defaults; `use_sim_time` only when given), its lifecycle state (`autostart`), and a
clean Ctrl-C (SIGINT to the launch process: exit 0, the node gone)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import ros_helpers as H
from colcon_ws import MISSING, colcon_build, colcon_missing
from conftest import require_shared

DOMAIN = 53
# SIGINT as in a terminal: a suite started in the background (`make test &`, nohup) hands its children SIGINT
# ignored, and launch only hears signals through Python's handler (signal.set_wakeup_fd), so Ctrl-C would be lost.
RUN_LAUNCH = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
              "from ros2launch.api import launch_a_launch_file\n"
              "sys.exit(launch_a_launch_file(launch_file_path=sys.argv[1], launch_file_arguments=sys.argv[2:],"
              " noninteractive=True))")

pytestmark = [
    pytest.mark.ros,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:lark.*"),
    pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable"),
    pytest.mark.skipif(colcon_missing(), reason=MISSING),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    """colcon-built install of this checkout (without the model files: the tests bring a small model) and the
    environment that `source install/setup.sh` plus the vendored launch packages give."""
    vendor = require_shared("vendor/ros2_launch")
    prefix, env = colcon_build(tmp_path_factory.mktemp("launch_ws"), models=False)
    site = next((prefix / "lib").glob("python3*/site-packages"))
    ament = os.pathsep.join(filter(None, [str(prefix), os.environ.get("AMENT_PREFIX_PATH")]))
    return {"AMENT_PREFIX_PATH": ament, "PATH": env["PATH"],
            "PYTHONPATH": os.pathsep.join([str(site), str(vendor), str(vendor / "stubs")]),
            "launch_file": str(prefix / "share" / "depth_node" / "launch" / "mono_depth.launch.py")}


def _start(ws: dict[str, str], tmp: Path, args: list[str], tag: str) -> H.Proc:
    env = H.ros_env(DOMAIN)
    env.update(AMENT_PREFIX_PATH=ws["AMENT_PREFIX_PATH"], PYTHONPATH=ws["PYTHONPATH"], PATH=ws["PATH"])
    return H.Proc([H.PY, "-c", RUN_LAUNCH, ws["launch_file"], *args], env, tmp / f"{tag}.log")


class Probe:
    """An rclpy node of the test on the launch's domain: lifecycle state, parameters and graph of the node."""

    def __init__(self):
        import rclpy

        self._old = H.set_ros_env(DOMAIN)
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("launch_probe", context=self.ctx)
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)

    def _call(self, srv_type, name: str, request, timeout: float):
        client = self.node.create_client(srv_type, name)
        try:
            end = time.monotonic() + timeout
            while not client.wait_for_service(timeout_sec=0.5):
                if time.monotonic() > end:
                    return None
            future = client.call_async(request)
            self.executor.spin_until_future_complete(future, timeout_sec=max(1.0, end - time.monotonic()))
            return future.result()
        finally:
            self.node.destroy_client(client)

    def state(self, fqn: str, want: str, timeout: float) -> str:
        """The node's lifecycle state label, polled until it is `want` or `timeout` passes."""
        from lifecycle_msgs.srv import GetState

        end, label = time.monotonic() + timeout, ""
        while time.monotonic() < end:
            res = self._call(GetState, f"{fqn}/get_state", GetState.Request(), max(1.0, end - time.monotonic()))
            label = res.current_state.label if res is not None else ""
            if label == want:
                break
            time.sleep(0.5)
        return label

    def params(self, fqn: str, names: list[str]) -> dict:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        res = self._call(GetParameters, f"{fqn}/get_parameters", GetParameters.Request(names=names), 30)
        assert res is not None, f"{fqn}/get_parameters did not answer"
        return {n: parameter_value_to_python(v) for n, v in zip(names, res.values)}

    def subscriptions(self, name: str, ns: str, timeout: float = 30) -> set[str]:
        """Topics the node subscribes to, once discovery has shown the node to this one."""
        end = time.monotonic() + timeout
        while (name, ns) not in self.node.get_node_names_and_namespaces() and time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.2)
        return {topic for topic, _ in self.node.get_subscriber_names_and_types_by_node(name, ns)}

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        H.restore_env(self._old)


@pytest.fixture
def probe():
    p = Probe()
    yield p
    p.close()


def _stop_cleanly(proc: H.Proc) -> None:
    """Ctrl-C as a terminal sends it: SIGINT to the launch process, which stops the node and exits 0."""
    node_pids = _children(proc.pid)
    assert node_pids, "the launch process started no node process"
    proc.p.send_signal(signal.SIGINT)
    code = proc.wait(60)
    assert code == 0, f"launch exited with {code} after SIGINT:\n{proc.log()[-3000:]}"
    for pid in node_pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), \
            f"node process {pid} outlived the launch"
    assert "process has finished cleanly" in proc.log() and "process has died" not in proc.log(), \
        proc.log()[-3000:]  # launch's words for the node's exit status 0


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.timeout(420)
def test_namespace_remaps_and_a_users_parameter_file(workspace, probe, tmp_path: Path) -> None:
    """A user's params file that sets use_sim_time: true keeps it (no launch default overrides it); namespace
    and remaps reach the node; autostart (default) makes it active; Ctrl-C stops everything cleanly."""
    model = H.make_model(tmp_path / "model.pt")
    pfile = H.write_params(tmp_path / "mine.yaml", {"model": str(model), "backend": "torch", "device": "cpu",
                                                    "use_sim_time": True, "image_qos_depth": 2})
    proc = _start(workspace, tmp_path, ["namespace:=front", "node_name:=depth", "image:=/cam/image_raw",
                                        "camera_info:=/cam/camera_info", f"params_file:={pfile}",
                                        "dds_profile:=none"], "launch_user_file")
    try:
        state = probe.state("/front/depth", "active", 240)
        assert state == "active", proc.log()[-4000:]
        subs = probe.subscriptions("depth", "/front")
        assert {"/cam/image_raw", "/cam/camera_info"} <= subs, subs
        values = probe.params("/front/depth", ["use_sim_time", "model", "backend", "image_qos_depth", "autostart"])
        assert values == {"use_sim_time": True, "model": str(model), "backend": "torch", "image_qos_depth": 2,
                          "autostart": True}
        _stop_cleanly(proc)
    finally:
        proc.stop()


@pytest.mark.timeout(420)
def test_use_sim_time_and_autostart_false_when_given(workspace, probe, tmp_path: Path) -> None:
    """use_sim_time:=true overrides a file that says false; autostart:=false leaves the node unconfigured for
    a lifecycle manager (its parameters are declared, its inputs not yet subscribed)."""
    model = H.make_model(tmp_path / "model.pt")
    pfile = H.write_params(tmp_path / "mine.yaml", {"model": str(model), "backend": "torch", "device": "cpu",
                                                    "use_sim_time": False})
    proc = _start(workspace, tmp_path, [f"params_file:={pfile}", "use_sim_time:=true", "autostart:=false",
                                        "dds_profile:=none"], "launch_sim_time")
    try:
        assert probe.state("/mono_depth_node", "unconfigured", 240) == "unconfigured", proc.log()[-4000:]
        values = probe.params("/mono_depth_node", ["use_sim_time", "autostart", "model"])
        assert values == {"use_sim_time": True, "autostart": False, "model": str(model)}
        assert not probe.subscriptions("mono_depth_node", "/") & {"/image", "/camera_info"}
        time.sleep(2)  # it stays unconfigured: nothing configures it behind a lifecycle manager's back
        assert probe.state("/mono_depth_node", "unconfigured", 10) == "unconfigured"
        _stop_cleanly(proc)
    finally:
        proc.stop()
