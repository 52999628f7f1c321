"""`depth-node bench --node` end to end on a small model: the JSON has the figures the README quotes. It runs as
the acceptance command does (transports `auto`: the node on its own choice of Fast DDS profile, this side on
Fast DDS defaults), so the node's shared-memory profile is checked to carry depth and clouds to a default
subscriber in another process."""

from __future__ import annotations

import json
import subprocess

import pytest
import ros_helpers as H

from depth_node.ros import dds_profile as D

pytestmark = [pytest.mark.ros, pytest.mark.slow,
              pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")]


@pytest.mark.timeout(300)
def test_node_bench_smoke(tmp_path) -> None:
    model = H.make_model(tmp_path / "model.pt")
    out = tmp_path / "node_bench.json"
    r = subprocess.run([H.PY, "-m", "depth_node.bench.node_bench", "--model", str(model), "--backends", "torch",
                        "--precisions", "fp32", "--node-device", "cpu", "--node-input-size", "320x96",
                        "--node-frames", "4", "--node-domain", "57", "--json", str(out)],
                       env=H.ros_env(57), cwd=H.ROOT, capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["backend"] == "torch" and res["precision"] == "fp32" and res["resolution"] == "320x96"
    env = H.ros_env(57)
    user = next((env[k] for k in D.FASTDDS_ENV if env.get(k)), None)
    assert res["dds_profile"]["subscriber"] == (user or "Fast DDS defaults")
    assert res["dds_profile"]["node"] == D.choose_profile(env, H.ROOT / "config" / D.PROFILE_NAME)[1]
    for key in ("node_overhead_ms", "node_over_inference_ratio", "pointcloud_ms_640x192", "node_overhead_with_odom_ms"):
        assert isinstance(res[key], float), key
    assert all(res["end_to_end_ms"][k]["n"] >= 2 for k in ("depth", "depth_points", "depth_points_odom"))
    assert res["raw_inference_ms"]["median_ms"] > 0
    assert res["node_breakdown_ms"]["depth_points"]["inference_ms"] > 0
    assert 0 < res["pointcloud_ms_640x192"] < 50
    assert "node overhead" in r.stdout
