"""The node's choice of Fast DDS profile: the shipped large-message shared-memory profile unless the user
configured Fast DDS, runs another middleware, opted out, or /dev/shm is too small; and, in a real node
process, that the choice reaches Fast DDS (the 32 MB segment is mapped, or not)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ros_helpers as H

from depth_node.ros import dds_profile as D

SHIPPED = H.ROOT / "config" / D.PROFILE_NAME


def test_auto_uses_the_shipped_profile_on_a_plain_machine() -> None:
    env: dict[str, str] = {}
    assert D.choose_profile(env, SHIPPED)[0] == SHIPPED
    assert D.apply(env).startswith("large-message shared-memory profile")
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": str(SHIPPED)}  # Kilted's name; no deprecation warning


def test_fast_dds_2_distributions_get_the_old_variable() -> None:
    env = {"ROS_DISTRO": "humble"}
    D.apply(env)
    assert env.get("FASTRTPS_DEFAULT_PROFILES_FILE") == str(SHIPPED) and "FASTDDS_DEFAULT_PROFILES_FILE" not in env


@pytest.mark.parametrize("env,why", [
    ({"FASTDDS_DEFAULT_PROFILES_FILE": "/robot/dds.xml"}, "FASTDDS_DEFAULT_PROFILES_FILE=/robot/dds.xml"),
    ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/robot/dds.xml"}, "FASTRTPS_DEFAULT_PROFILES_FILE"),
    ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, "rmw_cyclonedds_cpp"),
    ({D.ENV: "none"}, "none"),
    ({D.ENV: "NONE", "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, "none"),
])
def test_the_users_configuration_wins(env: dict[str, str], why: str) -> None:
    before = dict(env)
    path, reason = D.choose_profile(env, SHIPPED)
    assert path is None and why in reason
    D.apply(env)
    assert env == before  # nothing set, nothing overwritten


def test_an_explicit_profile_path(tmp_path: Path) -> None:
    mine = tmp_path / "mine.xml"
    mine.write_text("<profiles/>")
    assert D.choose_profile({D.ENV: str(mine)}, SHIPPED)[0] == mine
    with pytest.raises(FileNotFoundError, match="no such profile file"):
        D.choose_profile({D.ENV: str(tmp_path / "missing.xml")}, SHIPPED)


def test_a_small_dev_shm_keeps_the_defaults(monkeypatch) -> None:
    monkeypatch.setattr(D, "_shm_free_bytes", lambda path: 60 * 2**20)  # docker's default 64 MB /dev/shm
    path, why = D.choose_profile({}, SHIPPED)
    assert path is None and "--shm-size" in why
    assert D.choose_profile({}, None)[0] is None  # an installation without the file


def _large_segments(pid: int) -> list[str]:
    """Fast DDS shared-memory segments of at least the shipped profile's size mapped by process `pid`."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if path.startswith("/dev/shm/fastdds_") and os.path.exists(path) and \
                os.path.getsize(path) >= D.SEGMENT_BYTES:
            found.add(path)
    return sorted(found)


@pytest.mark.ros
@pytest.mark.skipif(not H.rclpy_available(), reason="rclpy not importable")
@pytest.mark.skipif(not Path("/proc/self/maps").exists() or D.choose_profile({}, SHIPPED)[0] is None,
                    reason="needs /proc and a /dev/shm with room for the profile's segment")
@pytest.mark.parametrize("choice", ["auto", "none"])
def test_the_node_process_starts_with_its_choice(tmp_path: Path, choice: str) -> None:
    model = H.make_model(tmp_path / "model.pt")
    pfile = H.write_params(tmp_path / "params.yaml", {"model": str(model), "backend": "torch", "device": "cpu"})
    env = H.ros_env(61)
    for key in D.FASTDDS_ENV:
        env.pop(key, None)
    env[D.ENV] = choice
    proc = H.Proc([H.PY, "-m", "depth_node.cli", "node", "--ros-args", "--params-file", str(pfile)], env,
                  tmp_path / "node.log")
    try:
        assert proc.wait_for("active", 120), proc.log()[-3000:]
        segments = _large_segments(proc.pid)
        if choice == "auto":
            assert "DDS transports: large-message shared-memory profile" in proc.log()
            assert segments, "the node does not map a 32 MB Fast DDS segment: the profile was not loaded"
        else:
            assert "DDS transports: Fast DDS defaults" in proc.log()
            assert not segments
    finally:
        assert proc.stop() == 0, proc.log()[-3000:]
