"""The node on a robot without torch: with the default model (`model` empty) on ONNX Runtime, the node process
takes the shipped ONNX export (depth.onnx with its pose.onnx), runs with torch absent, and publishes depth,
points and odometry over real ROS 2. torch is made absent by a `sitecustomize` first on the node's PYTHONPATH
that hides it from every import finder: `import torch` raises ModuleNotFoundError and `find_spec("torch")` is
None, exactly as on a machine where it was never installed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import ros_helpers as H

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")]

DOMAIN = 71
N = 8
ONNX = H.ROOT / "models" / "default_onnx" / "depth.onnx"


HIDE_TORCH = """
import sys


class _WithoutTorch:
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            return None
        return self.inner.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


sys.meta_path[:] = [_WithoutTorch(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]
"""


def _torch_blocker(tmp: Path) -> Path:
    folder = tmp / "no_torch"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(HIDE_TORCH)
    return folder


@pytest.mark.skipif(not ONNX.is_file(), reason="the shipped ONNX model is not in models/")
def test_node_runs_an_onnx_model_with_torch_unimportable(tmp_path) -> None:
    blocker = _torch_blocker(tmp_path)
    env = H.ros_env(DOMAIN)
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    probe = subprocess.run([H.PY, "-c", "import importlib.util; assert importlib.util.find_spec('torch') is None; "
                            "import torch"], env=env, capture_output=True, text=True, timeout=60)
    assert "ModuleNotFoundError: No module named 'torch'" in probe.stderr, probe.stderr  # as if never installed
    frames = H.render_frames(tmp_path / "frames.npz", n=N, width=320, height=96)
    stamps = np.load(frames)["stamps"]
    node = H.start_node(tmp_path, DOMAIN, {"model": "", "backend": "onnxruntime", "scale_source": "fixed",
                                           "scale_factor": 1.0}, pythonpath_first=blocker)
    rec = pub = None
    try:
        assert node.wait_for("active:", 90), node.log()
        rec = H.start_recorder(tmp_path, DOMAIN, tmp_path / "rec.pkl", until_stamp=int(stamps[-1]), duration=90,
                               topics="depth,points,odom,diagnostics")
        assert rec.wait_for("recorder: ready", 40), rec.log()
        pub = H.start_publisher(tmp_path, DOMAIN, frames, rate=10.0, extra=["--warmup", "3", "--lockstep", "10"])
        assert pub.wait(90) == 0, pub.log()
        assert rec.wait(30) is not None, "recorder did not finish: " + rec.log()
        assert node.p.poll() is None, "node died: " + node.log()
        print(f"torch-free node RSS {H.rss_mb(node.pid):.0f} MB")
    finally:
        for p in (pub, rec):
            if p is not None:
                p.stop()
        code = node.stop()
    log = node.log()
    assert code in (0, -2, 130), f"node exit code {code}: {log[-3000:]}"
    assert "Traceback" not in log and "No module named 'torch'" not in log, log[-3000:]
    assert f"model {ONNX} " in log, log[-3000:]  # the default model, as its shipped ONNX export
    got = H.load_record(tmp_path / "rec.pkl")
    wanted = {int(s) for s in stamps}
    for key in ("depth", "points", "odom"):
        seen = {r["stamp"] for r in got[key]} & wanted
        assert len(seen) >= N - 2, f"{key}: {len(seen)} of {N} frames"
    depth = next(r for r in got["depth"] if r["stamp"] in wanted)["array"]
    assert depth.shape == (96, 320) and np.isfinite(depth).mean() > 0.9
    diag = [H.diag_values(d) for d in got["diagnostics"]]
    assert any(d.get("backend") == "onnxruntime" for d in diag), diag[-1:]
