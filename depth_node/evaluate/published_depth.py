"""The node's published depth images in an outputs bag, read as scoring asks for them rather than all at once.

Why: a long bag's predictions do not fit in memory (ten minutes at 10 Hz of depth published at a 1280×720
input's resolution is 22 GB of float32). Scoring pairs each ground-truth frame with the prediction nearest in
stamp, in stamp order, so a reader that goes forward through the bag and keeps only what it read ahead of the
next pairing holds a few frames at a time. A request for a prediction it already dropped (a bag whose ground
truth is not in stamp order) reads the bag again from the start: slower, never wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from depth_node.io.bags import BagReader, stamp_to_ns
from depth_node.io.image_codec import decode_image


def _depth(msg: Any) -> np.ndarray:
    return np.array(decode_image(msg), dtype=np.float32)


class PublishedDepth:
    """Depth images of `topic` in `outputs_bag` by header stamp: `stamps` (sorted) up front, the images on
    request (`get` in stamp order, `read` for a few chosen ones). A context manager: it keeps the bag open
    between requests."""

    def __init__(self, outputs_bag: str | Path, topic: str) -> None:
        self.path, self.topic = Path(outputs_bag), topic
        with BagReader(self.path) as bag:
            found = [stamp_to_ns(m.msg.header.stamp) for m in bag.messages([topic])] if topic in bag.topics else []
        self.stamps = np.array(sorted(found), dtype=np.int64)
        self._bag: BagReader | None = None
        self._it: Iterator[Any] | None = None
        self._ahead: dict[int, np.ndarray] = {}  # read, not yet asked for, not below the last floor
        self.passes = 0  # times the bag was read from its start by `get` (1 for ground truth in stamp order)

    def __len__(self) -> int:
        return int(self.stamps.size)

    def get(self, stamp: int, floor: int) -> np.ndarray:
        """The depth published with header stamp `stamp` (one of `stamps`). `floor` (≤ stamp): the caller asks
        for nothing stamped before it from now on, unless it starts again lower (which costs a re-read)."""
        for t in [t for t in self._ahead if t < floor]:
            del self._ahead[t]
        restarted = False
        while stamp not in self._ahead:
            m = next(self._it, None) if self._it is not None else None
            if m is None:
                if restarted:
                    raise KeyError(f"no depth image stamped {stamp} in {self.path}")
                self._restart()
                restarted = True
                continue
            t = stamp_to_ns(m.msg.header.stamp)
            if t >= floor:
                self._ahead[t] = _depth(m.msg)
        return self._ahead[stamp]

    def read(self, wanted: Iterable[int]) -> dict[int, np.ndarray]:
        """The depths of a few chosen stamps (sample figures), in one pass of their own."""
        want = set(int(s) for s in wanted)
        out: dict[int, np.ndarray] = {}
        if want:
            with BagReader(self.path) as bag:
                for m in bag.messages([self.topic]):
                    if (t := stamp_to_ns(m.msg.header.stamp)) in want:
                        out[t] = _depth(m.msg)
        return out

    def _restart(self) -> None:
        self.close()
        self._bag = BagReader(self.path)
        self._it = self._bag.messages([self.topic])
        self.passes += 1

    def close(self) -> None:
        if self._bag is not None:
            self._bag.close()
        self._bag, self._it = None, None

    def __enter__(self) -> PublishedDepth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
