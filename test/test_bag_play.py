"""`depth-node play` delivers every message of a bag over real ROS 2 to a subscriber in another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from depth_node.io.bags import summarize

pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

HERE = Path(__file__).parent
DEPTH_NODE = [sys.executable, "-m", "depth_node.cli"]


def ros_env(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="module")
def synth_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("play") / "bag"
    res = subprocess.run(
        [*DEPTH_NODE, "synth", "--out", str(out), "--frames", "6", "--seed", "4", "--format", "mcap", "--stereo",
         "--width", "160", "--height", "48", "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "fps" in res.stdout
    return out


def test_play_delivers_every_message(synth_bag):
    info = summarize(synth_bag)
    expected = {t["topic"]: [t["type"], t["count"]] for t in info["topics"]}
    expected["/clock"] = ["rosgraph_msgs/msg/Clock", 6]  # at least one per message time
    assert len(expected) == 9
    env = ros_env(43)
    sub = subprocess.Popen(
        [sys.executable, str(HERE / "bag_subscriber.py"), json.dumps(expected), "40"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert sub.stdout.readline().strip() == "READY"
        play = subprocess.run(
            [*DEPTH_NODE, "play", str(synth_bag), "--rate", "2", "--start-delay", "0.5",
             "--wait-for-subscribers", "30"],
            capture_output=True, text=True, timeout=60, env=env,
        )
        assert play.returncode == 0, play.stderr
        out, _err = sub.communicate(timeout=60)
    finally:
        if sub.poll() is None:
            sub.kill()
    counts = json.loads(out.strip().splitlines()[-1])
    for topic, (_, n) in expected.items():
        if topic == "/clock":
            assert counts[topic] >= n
        else:
            assert counts[topic] == n, (topic, counts, play.stdout)
    assert f"play: {info['messages']} messages" in play.stdout
    assert "/camera/image_raw" in play.stdout


def test_play_skips_types_without_python_class_and_reports_errors(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("int32 a\n", "no_such_pkg/msg/Thing"))
    path = tmp_path / "mixed"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c1 = w.add_connection("/thing", "no_such_pkg/msg/Thing", typestore=store)
        c2 = w.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        for k in range(3):
            w.write(c1, 1_700_000_000_000_000_000 + k * 10_000_000, store.serialize_cdr(
                store.types["no_such_pkg/msg/Thing"](a=k), "no_such_pkg/msg/Thing"))
            w.write(c2, 1_700_000_000_000_000_000 + k * 10_000_000, store.serialize_cdr(
                store.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"))
    env = ros_env(44)
    res = subprocess.run([*DEPTH_NODE, "play", str(path), "--no-clock"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    assert "no_such_pkg/msg/Thing" in res.stderr and "skipping /thing" in res.stderr
    assert "play: 3 messages" in res.stdout and "skipped (no Python class for no_such_pkg/msg/Thing)" in res.stdout
    # asking for it explicitly, or for a topic the bag lacks, is an error (exit 2, one line)
    res = subprocess.run([*DEPTH_NODE, "play", str(path), "--topics", "/thing"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert res.returncode == 2 and "depth-node play: error: cannot play /thing" in res.stderr
    res = subprocess.run([*DEPTH_NODE, "play", str(path), "--topics", "/missing"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert res.returncode == 2 and "/missing not in bag" in res.stderr
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(os.urandom(1000))
    res = subprocess.run([*DEPTH_NODE, "play", str(junk)], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 2 and "depth-node play: error: cannot open bag" in res.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_play_bag_as_a_library_stops_on_request(synth_bag):
    """The demo's use: play in a thread of its own process and stop it early."""
    import threading

    env_backup = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    os.environ.update(ROS_DOMAIN_ID="45", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    try:
        from depth_node.ros.bag_player import play_bag

        stop = threading.Event()
        seen: list[str] = []

        def on_message(m) -> None:
            seen.append(m.topic)
            if len(seen) == 10:
                stop.set()

        res = play_bag(synth_bag, rate=5.0, loop=True, stop_event=stop, on_message=on_message)
        assert res.interrupted and sum(res.published.values()) == 10
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
