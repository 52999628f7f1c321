"""The node in a process of its own, for the tools that drive it from outside: `eval-bag`/`demo` online (a bag
replayed to it) and the node benchmark. Written once: its parameter file, its command line, its log, and how it
stops (SIGINT, as Ctrl-C or `ros2 launch` stop it, so it shuts down cleanly; killed if it hangs).

Isolation is the caller's (`runtime.tool_isolation.isolate`): nothing under ros/ sets discovery or the domain,
since robots need their normal discovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from depth_node.errors import DepthNodeError
from depth_node.runtime.params import params_file_text

STOP_TIMEOUT_S = 15.0


class NodeProcess:
    """`with NodeProcess(params, log_path, remaps) as node:` the node runs (its parameters in a file beside the
    log), `node.wait_until(ready)` waits for it, and leaving the block stops it."""

    def __init__(self, params: dict[str, Any], log_path: str | Path, remaps: list[str] | None = None):
        self.log_path = Path(log_path)
        self.params_path = self.log_path.with_name("node_params.yaml")
        self.params, self.remaps = params, list(remaps or [])
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> NodeProcess:
        return self.start()

    def start(self) -> NodeProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.params_path.write_text(params_file_text(self.params))
        args = [sys.executable, "-m", "depth_node.ros.node", "--ros-args", "--params-file", str(self.params_path)]
        for r in self.remaps:
            args += ["-r", r]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log,
                                         stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 20) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def check_alive(self, during: str) -> None:
        """DepthNodeError with the log's last lines if the node has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise DepthNodeError(f"the node exited with status {self.proc.returncode} {during}; its log "
                                 f"({self.log_path}):\n{self.tail()}")

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str = "come up") -> float:
        """Seconds until `ready()` held; DepthNodeError (with the log's tail) if the node exits or the time ends."""
        t0 = time.monotonic()
        while not ready():
            self.check_alive(f"before it could {what}")
            if time.monotonic() - t0 > timeout_s:
                raise DepthNodeError(f"the node did not {what} within {timeout_s:.0f} s; its log "
                                     f"({self.log_path}):\n{self.tail()}")
            time.sleep(0.1)
        return time.monotonic() - t0

    def stop(self) -> int | None:
        """SIGINT (a clean shutdown), SIGKILL if it has not exited within STOP_TIMEOUT_S; its exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode
