"""Reading the node's published depth back from an outputs bag for scoring, a frame at a time."""

from __future__ import annotations

import numpy as np

from depth_node.evaluate.published_depth import PublishedDepth
from depth_node.io.bags import BagWriter, header, typestore
from depth_node.io.image_codec import encode_image

TOPIC = "/depth_node/depth/image_rect"
STAMPS = [1_000_000_000 + k * 100_000_000 for k in range(8)]  # 10 Hz


def _image(value: float):
    enc = encode_image(np.full((4, 6), value, np.float32), "32FC1")
    return typestore().types["sensor_msgs/msg/Image"](
        header=None, height=enc.height, width=enc.width, encoding=enc.encoding, is_bigendian=0, step=enc.step,
        data=enc.data)


def _bag(path, order):
    """Frame k carries the value k; written in `order` (the record order a recorder may give)."""
    with BagWriter(path) as w:
        w.add_topic(TOPIC, "sensor_msgs/msg/Image")
        for i, k in enumerate(order):
            msg = _image(float(k))
            msg.header = header(STAMPS[k], "camera")
            w.write(TOPIC, STAMPS[0] + i, msg)
    return path


def test_in_stamp_order_one_pass_and_each_frame_right(tmp_path):
    with PublishedDepth(_bag(tmp_path / "a.mcap", range(8)), TOPIC) as pd:
        assert pd.stamps.tolist() == STAMPS and len(pd) == 8
        for k in range(0, 8, 2):  # ground truth at every other frame, as a slower GT sensor gives it
            d = pd.get(STAMPS[k], floor=STAMPS[k] - 10_000_000)
            assert d.dtype == np.float32 and d.shape == (4, 6) and np.all(d == k)
        assert pd.passes == 1
        assert pd.read([STAMPS[1], STAMPS[6]]).keys() == {STAMPS[1], STAMPS[6]}
        assert np.all(pd.read([STAMPS[6]])[STAMPS[6]] == 6)


def test_a_frame_asked_for_again_after_the_floor_passed_it_is_read_again(tmp_path):
    """Ground truth out of stamp order: the reader has dropped the frame and reads the bag again, right."""
    with PublishedDepth(_bag(tmp_path / "b.mcap", [0, 2, 1, 3, 4, 5, 7, 6]), TOPIC) as pd:
        assert pd.stamps.tolist() == STAMPS  # sorted, whatever the record order
        for k in (0, 1, 2, 3, 6, 7):
            assert np.all(pd.get(STAMPS[k], floor=STAMPS[k]) == k)
        assert pd.passes == 1  # frames recorded out of order but asked for in stamp order: still one pass
        assert np.all(pd.get(STAMPS[2], floor=STAMPS[2]) == 2) and pd.passes == 2
