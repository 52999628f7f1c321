"""Bag I/O through rosbags: round trips (MCAP and sqlite3), summaries, and clear errors for bad bags."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from depth_node.cli import main as cli_main
from depth_node.errors import DepthNodeError
from depth_node.io.bags import BagError, BagReader, BagWriter, header, read_messages, summarize, typestore
from depth_node.io.image_codec import decode_image, encode_image

T0 = 1_700_000_000_000_000_000


def write_small_bag(path: Path, storage: str = "mcap", n: int = 5) -> Path:
    ts = typestore().types
    with BagWriter(path, storage=storage) as bag:
        for k in range(n):
            stamp = T0 + k * 100_000_000
            img = np.full((4, 6), k, dtype=np.uint16)
            enc = encode_image(img, "mono16")
            bag.write("/img", stamp, ts["sensor_msgs/msg/Image"](
                header=header(stamp, "cam"), height=enc.height, width=enc.width, encoding=enc.encoding,
                is_bigendian=0, step=enc.step, data=enc.data))
            if k % 2 == 0:
                bag.write("/chatter", stamp + 1, ts["std_msgs/msg/String"](data=f"hello {k}"))
    return path


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory) -> Path:
    return write_small_bag(tmp_path_factory.mktemp("bags") / "good")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip(tmp_path, storage):
    path = write_small_bag(tmp_path / "bag", storage)
    with BagReader(path) as bag:
        assert bag.storage == storage
        assert {t: (s.msgtype, s.count) for t, s in bag.topics.items()} == {
            "/chatter": ("std_msgs/msg/String", 3),
            "/img": ("sensor_msgs/msg/Image", 5),
        }
        msgs = list(bag.messages(["/img"]))
    assert [m.stamp_ns for m in msgs] == [T0 + k * 100_000_000 for k in range(5)]
    for k, m in enumerate(msgs):
        assert isinstance(m.raw, (bytes, memoryview)) and m.msgtype == "sensor_msgs/msg/Image"
        np.testing.assert_array_equal(decode_image(m.msg), np.full((4, 6), k, dtype=np.uint16))
    texts = [m.msg.data for m in read_messages(path, ["/chatter"])]
    assert texts == ["hello 0", "hello 2", "hello 4"]


def test_summary_counts_rates_and_duration(mcap_bag):
    info = summarize(mcap_bag)
    assert info["messages"] == 8 and info["storage"] == "mcap"
    assert info["duration_s"] == pytest.approx(0.4, abs=1e-6)
    topics = {t["topic"]: t for t in info["topics"]}
    assert topics["/img"]["count"] == 5 and topics["/img"]["rate_hz"] == pytest.approx(10.0)
    assert topics["/chatter"]["rate_hz"] == pytest.approx(5.0, rel=1e-6)
    assert topics["/img"]["type"] == "sensor_msgs/msg/Image"


def test_bare_mcap_file_opens_too(mcap_bag):
    mcap = next(mcap_bag.glob("*.mcap"))
    assert summarize(mcap)["messages"] == 8


def test_bag_info_cli(mcap_bag, tmp_path, capsys):
    out_json = tmp_path / "info.json"
    assert cli_main(["bag-info", str(mcap_bag), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "/img" in text and "sensor_msgs/msg/Image" in text and "10.00 Hz" in text
    assert '"messages": 8' in out_json.read_text()


def truncated_copy(src: Path, dst: Path, fraction: float) -> Path:
    shutil.copytree(src, dst)
    f = next(dst.glob("*.mcap"))
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("fraction", [0.3, 0.97])
def test_truncated_bag_is_a_clear_error(mcap_bag, tmp_path, fraction, capsys):
    bad = truncated_copy(mcap_bag, tmp_path / "trunc", fraction)
    with pytest.raises(BagError, match="truncated, corrupt, or not a rosbag2 bag"):
        summarize(bad)
    assert cli_main(["bag-info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("depth-node bag-info: error: cannot open bag") and "Traceback" not in err


def test_random_bytes_are_a_clear_error(tmp_path, capsys):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(BagError, match=r"junk\.mcap"):
        BagReader(junk)
    assert cli_main(["bag-info", str(junk)]) == 2
    assert "error: cannot open bag" in capsys.readouterr().err
    # a bag folder whose metadata is garbage
    d = tmp_path / "dir_bag"
    d.mkdir()
    (d / "metadata.yaml").write_bytes(np.random.default_rng(2).bytes(512))
    with pytest.raises(BagError, match="cannot open bag"):
        BagReader(d)
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "missing")
    (tmp_path / "not_a_bag").mkdir()
    with pytest.raises(BagError, match=r"no metadata\.yaml"):
        BagReader(tmp_path / "not_a_bag")


def test_missing_topics_and_unknown_types(mcap_bag):
    with BagReader(mcap_bag) as bag:
        with pytest.raises(BagError, match=r"/nope not in bag .*it has: /chatter, /img"):
            list(bag.messages(["/img", "/nope"]))
        raw = next(iter(bag.messages(["/chatter"]))).raw
        with pytest.raises(BagError, match="unknown message type 'nope_msgs/msg/Thing'"):
            bag.deserialize(raw, "nope_msgs/msg/Thing")
    assert issubclass(BagError, DepthNodeError)


def test_custom_types_are_registered_from_the_bag(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("int32 a\nstring b\n", "my_pkg/msg/Thing"))
    Thing = store.types["my_pkg/msg/Thing"]
    path = tmp_path / "custom"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/thing", "my_pkg/msg/Thing", typestore=store)
        w.write(conn, T0, store.serialize_cdr(Thing(a=7, b="x"), "my_pkg/msg/Thing"))
    with BagReader(path) as bag:
        (m,) = list(bag.messages())
        assert m.msgtype == "my_pkg/msg/Thing" and (m.msg.a, m.msg.b) == (7, "x")


def test_writer_refuses_to_clobber_and_cleans_up_on_error(mcap_bag, tmp_path):
    with pytest.raises(BagError, match="exists already"):
        BagWriter(mcap_bag)
    partial = tmp_path / "partial"
    with pytest.raises(RuntimeError, match="boom"), BagWriter(partial) as bag:
        bag.write("/chatter", T0, typestore().types["std_msgs/msg/String"](data="x"))
        raise RuntimeError("boom")
    assert not partial.exists()
    with pytest.raises(BagError, match="unknown bag storage"):
        BagWriter(tmp_path / "x", storage="rosbag1")
