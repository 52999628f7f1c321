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


def _installed_major() -> int:
    """Fast DDS major version of this environment's ROS, from the installed distribution's metadata (apt: the
    ROS_DISTRO), independently of the library-file detection under test."""
    from importlib import metadata

    for dist, major in (("ros-fastdds", 3), ("ros-fastrtps", 2)):
        try:
            metadata.version(dist)
            return major
        except metadata.PackageNotFoundError:
            continue
    distro = os.environ.get("ROS_DISTRO", "")
    if distro:
        return 2 if distro in ("humble", "iron", "jazzy") else 3
    pytest.skip("no Fast DDS installation found")


def test_auto_uses_the_shipped_profile_under_the_variable_this_fast_dds_reads() -> None:
    env: dict[str, str] = {}
    assert D.choose_profile(env, SHIPPED)[0] == SHIPPED
    assert D.apply(env).startswith("large-message shared-memory profile")
    # Fast DDS 2.x (Humble, Jazzy) reads only FASTRTPS_*; 3.x (Kilted) reads FASTDDS_* and warns on the old name
    want = "FASTRTPS_DEFAULT_PROFILES_FILE" if _installed_major() == 2 else "FASTDDS_DEFAULT_PROFILES_FILE"
    assert env == {want: str(SHIPPED)}


def test_version_comes_from_the_library_not_ros_distro(tmp_path: Path) -> None:
    old, new, empty = tmp_path / "jazzy" / "lib", tmp_path / "kilted" / "lib", tmp_path / "none" / "lib"
    for d, lib in ((old, "libfastrtps.so.2.14.5"), (new, "libfastdds.so.3.2.2"), (empty, "libother.so")):
        d.mkdir(parents=True)
        (d / lib).write_bytes(b"")
    assert D.fast_dds_major({}, [empty, old, new]) == 2  # the first ROS installation that has one wins
    assert D.fast_dds_major({}, [new, old]) == 3
    assert D.fast_dds_major({}, [empty]) is None
    env = {"AMENT_PREFIX_PATH": str(tmp_path / "jazzy"), "ROS_DISTRO": "kilted"}
    assert D.fast_dds_major(env) == 2
    assert D.set_profile(env, SHIPPED) == ["FASTRTPS_DEFAULT_PROFILES_FILE"]
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in env
    env = {}
    assert D.set_profile(env, SHIPPED, major=3) == ["FASTDDS_DEFAULT_PROFILES_FILE"]
    both: dict[str, str] = {}
    D.set_profile(both, SHIPPED, major=0)  # unknown version: each reads its own name
    assert both == {"FASTDDS_DEFAULT_PROFILES_FILE": str(SHIPPED), "FASTRTPS_DEFAULT_PROFILES_FILE": str(SHIPPED)}


def test_confirm_warns_when_the_profile_is_not_in_effect(monkeypatch) -> None:
    """This test process has no Fast DDS participant, so no segment is mapped: a profile recorded as set must
    not be claimed as in use."""
    monkeypatch.setattr(D, "_applied", {"path": str(SHIPPED), "variable": "FASTDDS_DEFAULT_PROFILES_FILE"})
    ok, text = D.confirm("large-message shared-memory profile")
    assert not ok and "NOT in effect" in text and "FASTRTPS_DEFAULT_PROFILES_FILE" in text
    monkeypatch.setattr(D, "_applied", {})
    assert D.confirm("Fast DDS defaults (DEPTH_NODE_DDS_PROFILE=none)") == \
        (True, "Fast DDS defaults (DEPTH_NODE_DDS_PROFILE=none)")


@pytest.mark.skipif(not Path("/proc/self/maps").exists() or not Path("/dev/shm").is_dir(),
                    reason="needs /proc and /dev/shm")
def test_confirm_does_not_take_another_nodes_segment_for_its_own(monkeypatch) -> None:
    """Several instances on one host: a large segment that existed before this process set the profile is another
    participant's (this process maps it to talk to that node) and proves nothing about its own profile."""
    import mmap

    path = Path(f"/dev/shm/fastdds_depth_node_test_{os.getpid()}")
    try:
        with open(path, "wb") as fh:
            fh.truncate(D.SEGMENT_BYTES)  # sparse: no memory used
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), D.SEGMENT_BYTES, prot=mmap.PROT_READ):
            assert str(path) in D.mapped_segments()
            applied = {"path": str(SHIPPED), "variable": "FASTDDS_DEFAULT_PROFILES_FILE"}
            monkeypatch.setattr(D, "_applied", {**applied, "before": "\n".join(D.existing_segments())})
            ok, text = D.confirm("large-message shared-memory profile")
            assert not ok and "NOT in effect" in text
            monkeypatch.setattr(D, "_applied", {**applied, "before": ""})  # made after the profile was set: ours
            ok, text = D.confirm("large-message shared-memory profile")
            assert ok and str(path) in text
    finally:
        path.unlink(missing_ok=True)


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
    """Fast DDS shared-memory segments of at least the shipped profile's size mapped by process `pid` (2.x
    names them /dev/shm/fastrtps_*, 3.x /dev/shm/fastdds_*)."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        name = os.path.basename(path)
        if path.startswith("/dev/shm/") and name.startswith(("fastrtps_", "fastdds_")) and os.path.exists(path) and \
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
            assert "verified: Fast DDS mapped its 32 MB segment" in proc.log()
            assert "NOT in effect" not in proc.log() and "deprecated" not in proc.log()
        else:
            assert "DDS transports: Fast DDS defaults" in proc.log()
            assert not segments
    finally:
        assert proc.stop() == 0, proc.log()[-3000:]
