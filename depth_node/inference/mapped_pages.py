"""Dropping a read-only file mapping's pages from the process's resident memory once they have been read.

OpenVINO imports a cached compiled model by mapping its blob (fp32 weights); the CPU plugin then reorders every
convolution's weights into its blocked layout, in memory of its own, and the kernels read only that copy. The
mapped originals stay resident (counted in the node's RSS, ~100 MB for the default depth + pose networks) though
nothing reads them again. `madvise(MADV_DONTNEED)` on a mapping that cannot have been written (no write
permission, no private copied-on-write pages) only unmaps its pages from this process: the file and the page
cache keep the data, and a later read faults the page back in, unchanged. Linux only; elsewhere a no-op."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = 4  # Linux, every architecture


@functools.lru_cache(maxsize=1)
def _madvise():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return fn


def file_mappings(folder: str | os.PathLike, smaps: str = "/proc/self/smaps") -> list[dict]:
    """This process's mappings of files under `folder`: start, end, perms, path and the kB fields of smaps
    (Rss, Anonymous, ...); [] where /proc is not there."""
    root = os.path.join(str(Path(folder).resolve()), "")  # with one trailing separator, "/" included
    out: list[dict] = []
    current: dict | None = None
    try:
        with open(smaps) as f:
            for line in f:
                head, _, rest = line.partition(" ")
                if "-" in head and not head.endswith(":"):  # a mapping's first line: range perms offset dev inode path
                    fields = rest.split(None, 4)
                    path = fields[4].strip() if len(fields) > 4 else ""
                    start, end = (int(v, 16) for v in head.split("-"))
                    current = {"start": start, "end": end, "perms": fields[0], "path": path}
                    if path.startswith(root):
                        out.append(current)
                elif current is not None and head.endswith(":") and rest.split() and rest.split()[0].isdigit():
                    current[head[:-1]] = int(rest.split()[0])
    except (OSError, ValueError):
        return []
    return out


def release_mapped(folder: str | os.PathLike) -> int:
    """Unmap the resident pages of this process's read-only, unmodified mappings of files under `folder`;
    returns the kB released. Writable or copied-on-write mappings are left alone (their pages are not the file's)."""
    madvise = _madvise()
    if madvise is None:
        return 0
    released = 0
    for m in file_mappings(folder):
        if "w" in m["perms"] or m.get("Anonymous", 0) or not m.get("Rss", 0):
            continue
        if madvise(m["start"], m["end"] - m["start"], MADV_DONTNEED) == 0:
            released += m["Rss"]
        else:
            log.debug("madvise on %s failed: errno %d", m["path"], ctypes.get_errno())
    return released
