"""rosbag2 reading and writing for the whole project, through `rosbags` only (no rclpy, no ROS installation).

Reads MCAP and sqlite3 bags (a bag directory with metadata.yaml, or a bare .mcap/.db3 file), yielding raw
CDR bytes with their topic, type and timestamp; deserialisation happens only when asked, so tools that just
forward bytes (`depth-node play`) never pay for it. Types unknown to the typestore are registered from the
definitions stored in the bag. Every failure to read — missing path, not a bag, truncated or corrupt file —
becomes a `BagError` that says which bag and what is wrong.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_node.errors import DepthNodeError

# The one place that picks the message definitions: ROS 2 Kilted, the distribution the project targets.
TYPESTORE_NAME = "ros2_kilted"


class BagError(DepthNodeError):
    """A bag that cannot be opened, read or written, or that lacks what was asked of it."""


@functools.lru_cache(maxsize=1)
def typestore():
    """The shared rosbags typestore (message classes: `typestore().types['sensor_msgs/msg/Image']`)."""
    from rosbags.typesys import Stores, get_typestore

    store = Stores(TYPESTORE_NAME) if TYPESTORE_NAME in {s.value for s in Stores} else Stores.LATEST
    return get_typestore(store)


def msg_class(msgtype: str):
    """rosbags dataclass of a message type of the shared typestore, e.g. 'sensor_msgs/msg/Image'."""
    try:
        return typestore().types[msgtype]
    except KeyError:
        raise BagError(f"unknown message type {msgtype!r} (not in the {TYPESTORE_NAME} typestore)") from None


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    stamp_ns: int  # bag (receive) timestamp
    raw: bytes | memoryview  # CDR bytes, as stored
    _reader: BagReader | None = field(default=None, repr=False)
    _msg: Any = field(default=None, repr=False)

    @property
    def msg(self) -> Any:
        """The deserialised message (rosbags dataclass), decoded on first access."""
        if self._msg is None:
            store = self._reader.store if self._reader is not None else typestore()
            self._msg = _deserialize(store, self.raw, self.msgtype, self.topic)
        return self._msg


@dataclass(frozen=True)
class TopicSummary:
    topic: str
    msgtype: str
    count: int


def _deserialize(store, raw, msgtype: str, topic: str):
    try:
        return store.deserialize_cdr(raw, msgtype)
    except KeyError:
        raise BagError(f"unknown message type {msgtype!r} on {topic}: no definition in the bag or typestore") from None
    except Exception as exc:  # rosbags raises assorted errors on malformed CDR
        raise BagError(f"cannot deserialise a {msgtype} message on {topic}: {type(exc).__name__}: {exc}") from exc


class BagReader:
    """An open bag. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            found = sorted([*self.path.glob("*.mcap"), *self.path.glob("*.db3")])
            if len(found) == 1:
                self.path = found[0]  # a directory holding one bare storage file
            else:
                raise BagError(f"{self.path} is not a rosbag2 bag: no metadata.yaml (and not exactly one .mcap/.db3)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:
            raise BagError(
                f"cannot open bag {self.path}: {_describe(exc)} (truncated, corrupt, or not a rosbag2 bag)"
            ) from exc
        self.store = self._store_with_bag_types()

    def _store_with_bag_types(self):
        """The shared typestore, plus any type the bag defines that it lacks (custom messages)."""
        base = typestore()
        missing = [c for c in self._reader.connections if c.msgtype not in base.fielddefs]
        if not missing:
            return base
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

        store = get_typestore(Stores(TYPESTORE_NAME))
        for conn in missing:
            try:
                if conn.msgdef.format == MessageDefinitionFormat.MSG:
                    store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
                elif conn.msgdef.format == MessageDefinitionFormat.IDL:
                    store.register(get_types_from_idl(conn.msgdef.data))
            except Exception:  # undecodable definition: the type stays unknown, reported on deserialisation
                continue
        return store

    # ----------------------------------------------------------------------------------------- metadata
    @property
    def topics(self) -> dict[str, TopicSummary]:
        out: dict[str, TopicSummary] = {}
        for name, info in sorted(self._reader.topics.items()):
            out[name] = TopicSummary(name, info.msgtype or "?", int(info.msgcount))
        return out

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time) if self.message_count else 0

    @property
    def end_ns(self) -> int:
        """Timestamp of the last message (rosbags' end_time is one past it)."""
        return int(self._reader.end_time) - 1 if self.message_count else 0

    @property
    def storage(self) -> str:
        suffix = self.path.suffix if self.path.is_file() else ""
        if suffix:
            return {".mcap": "mcap", ".db3": "sqlite3"}.get(suffix, suffix)
        return "mcap" if any(self.path.glob("*.mcap")) else "sqlite3"

    def check_topics(self, topics: Iterable[str]) -> list[str]:
        wanted = list(topics)
        missing = [t for t in wanted if t not in self.topics]
        if missing:
            raise BagError(
                f"topic(s) {', '.join(missing)} not in bag {self.path}; it has: {', '.join(self.topics) or 'none'}"
            )
        return wanted

    # ----------------------------------------------------------------------------------------- messages
    def messages(
        self, topics: Iterable[str] | None = None, start_ns: int | None = None, stop_ns: int | None = None
    ) -> Iterator[BagMessage]:
        """Messages in timestamp order; `topics` must all exist in the bag."""
        conns = []
        if topics is not None:
            wanted = set(self.check_topics(topics))
            conns = [c for c in self._reader.connections if c.topic in wanted]
        try:
            for conn, stamp, raw in self._reader.messages(conns, start=start_ns, stop=stop_ns):
                yield BagMessage(conn.topic, conn.msgtype, int(stamp), raw, self)
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"bag {self.path} is corrupt or truncated: {_describe(exc)}") from exc

    def deserialize(self, raw, msgtype: str, topic: str = "?"):
        return _deserialize(self.store, raw, msgtype, topic)

    def close(self) -> None:
        if getattr(self, "_reader", None) is not None:
            try:
                self._reader.close()
            except Exception:
                pass
            self._reader = None

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def open_bag(path: str | Path) -> BagReader:
    return BagReader(path)


def read_messages(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """All messages (optionally of some topics) of a bag, opening and closing it around the iteration."""
    with BagReader(path) as bag:
        yield from bag.messages(topics)


def summarize(path: str | Path) -> dict[str, Any]:
    """Topics, types, counts, duration and per-topic rates, read by scanning every message (which also proves
    the bag is readable to its end; metadata alone can promise messages a truncated file no longer has)."""
    with BagReader(path) as bag:
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        counts: dict[str, int] = {}
        types = {name: t.msgtype for name, t in bag.topics.items()}
        for m in bag.messages():
            counts[m.topic] = counts.get(m.topic, 0) + 1
            first.setdefault(m.topic, m.stamp_ns)
            last[m.topic] = m.stamp_ns
        declared = {name: t.count for name, t in bag.topics.items()}
        for name, n in declared.items():
            if counts.get(name, 0) < n:
                raise BagError(
                    f"bag {bag.path} is truncated: {name} declares {n} messages but only {counts.get(name, 0)} "
                    "could be read"
                )
        topics = []
        for name in sorted(types):
            n = counts.get(name, 0)
            span = (last[name] - first[name]) * 1e-9 if n else 0.0
            topics.append(
                {
                    "topic": name,
                    "type": types[name],
                    "count": n,
                    "first_ns": first.get(name),
                    "last_ns": last.get(name),
                    "rate_hz": (n - 1) / span if n > 1 and span > 0 else None,
                }
            )
        total = sum(counts.values())
        start = min(first.values()) if first else 0
        end = max(last.values()) if last else 0
        return {
            "path": str(bag.path),
            "storage": bag.storage,
            "messages": total,
            "start_ns": start,
            "end_ns": end,
            "duration_s": (end - start) * 1e-9,
            "topics": topics,
        }


class BagWriter:
    """Writes a rosbag2 bag (MCAP by default) with the shared typestore. Use as a context manager: on an
    exception the partial bag is removed rather than left half-written."""

    def __init__(self, path: str | Path, storage: str = "mcap", overwrite: bool = False) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            if overwrite:
                shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
            elif self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()  # rosbags creates the directory itself
            else:
                raise BagError(f"{self.path} exists already; choose another path or overwrite")
        plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
        if plugin is None:
            raise BagError(f"unknown bag storage {storage!r}; expected mcap or sqlite3")
        self.store = typestore()
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=plugin)
            self._writer.open()
        except Exception as exc:
            raise BagError(f"cannot create bag {self.path}: {_describe(exc)}") from exc
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._conns:
            return
        msg_class(msgtype)
        self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        self.counts[topic] = 0

    def write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """Serialise a rosbags message (its type fixes the topic's type on first use) and write it."""
        if topic not in self._conns:
            self.add_topic(topic, msg.__msgtype__)
        raw = self.store.serialize_cdr(msg, self._conns[topic].msgtype)
        self.write_raw(topic, stamp_ns, raw)

    def write_raw(self, topic: str, stamp_ns: int, raw: bytes | memoryview) -> None:
        if topic not in self._conns:
            raise BagError(f"topic {topic} was not added to bag {self.path}")
        self._writer.write(self._conns[topic], int(stamp_ns), raw)
        self.counts[topic] += 1

    def close(self) -> None:
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None

    def abort(self) -> None:
        writer, self._writer = getattr(self, "_writer", None), None
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ------------------------------------------------------------------------------------- message builders


def header(stamp_ns: int, frame_id: str):
    ts = typestore().types
    return ts["std_msgs/msg/Header"](
        stamp=ts["builtin_interfaces/msg/Time"](
            sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)
        ),
        frame_id=frame_id,
    )


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rosbags or rclpy) → integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
