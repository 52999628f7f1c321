"""Reading an exported graph's `metadata_props` (sizes, model kind, normalisation) without torch and without the
`onnx` package: the node loads ONNX models on robots that may have neither, and `onnx.load` would read the whole
file (every weight, ~30 MB for the default model) and keep the package (~17 MB) in the node's memory just to get a
few strings. The ModelProto's top-level fields are walked in the protobuf wire format, seeking over the graph."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from depth_node.errors import DepthNodeError

METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {1: key, 2: value}
VARINT, I64, LEN, I32 = 0, 1, 2, 5


def _varint(read) -> int | None:
    """One base-128 varint from `read(1)`; None at a clean end of input."""
    value = shift = 0
    while True:
        b = read(1)
        if not b:
            if shift:
                raise ValueError("truncated varint")
            return None
        value |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _entry(data: bytes) -> tuple[str, str]:
    """A StringStringEntryProto's key and value."""
    pos, fields = 0, {1: b"", 2: b""}

    def read(n: int) -> bytes:
        nonlocal pos
        pos += n
        return data[pos - n:pos]

    while pos < len(data):
        tag = _varint(read)
        if tag is None or tag & 7 != LEN:
            raise ValueError("bad metadata entry")
        n = _varint(read) or 0
        fields[tag >> 3] = read(n)
    return fields[1].decode(), fields[2].decode()


def _skip(f: BinaryIO, wire: int) -> None:
    if wire == VARINT:
        _varint(f.read)
    elif wire in (I64, I32):
        f.seek(8 if wire == I64 else 4, 1)
    elif wire == LEN:
        f.seek(_varint(f.read) or 0, 1)
    else:
        raise ValueError(f"unsupported wire type {wire}")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The model's metadata_props as a dict (later entries win, as with onnx.load)."""
    out: dict[str, str] = {}
    size = Path(path).stat().st_size
    try:
        with open(path, "rb") as f:
            while (tag := _varint(f.read)) is not None:
                if tag >> 3 == METADATA_PROPS and tag & 7 == LEN:
                    key, value = _entry(f.read(_varint(f.read) or 0))
                    out[key] = value
                else:
                    _skip(f, tag & 7)
                if f.tell() > size:
                    raise ValueError("a field runs past the end of the file")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DepthNodeError(f"{path} is not a readable ONNX file ({exc}); re-export it with `depth-node export`") \
            from exc
    return out
