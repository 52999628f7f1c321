"""Model loading without a lasting memory peak (glibc's malloc; elsewhere a no-op).

Loading a graph makes large short-lived copies (ONNX Runtime: the file's fp16 weights, their fp32 constant
folding, the NCHWc-reordered copy; OpenVINO: the read model and its compiled form). glibc serves a block above its
mmap threshold with its own mapping, returned on free, but raises that threshold to the size of each such block
freed (up to 32 MiB): after the first few copies the rest come from the heap, whose freed middle stays resident, so
the node's peak resident memory sat ~50 MB above what it holds afterwards. While a model loads the threshold is
pinned at glibc's default (128 KiB), so every large copy goes back to the system when freed; afterwards it is
pinned at the dynamic ceiling (32 MiB, trim at 64 MiB) so per-frame buffers are reused from the heap as before,
with no mmap/munmap and page faults per frame, and the freed heap is trimmed once."""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
LOADING_MMAP_THRESHOLD = 128 * 1024  # glibc's starting value
RUNNING_MMAP_THRESHOLD = 32 * 2**20  # glibc's dynamic ceiling on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
RUNNING_TRIM_THRESHOLD = 2 * RUNNING_MMAP_THRESHOLD  # what the dynamic rule sets beside it


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):  # the running libc (musl has none)
            return None
    except (AttributeError, ValueError, OSError):  # no confstr (Windows) or no such name (macOS)
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname on every Linux architecture it supports
        libc.mallopt.argtypes, libc.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


@contextmanager
def large_copies_returned() -> Iterator[None]:
    """Within: large allocations are mapped and unmapped one by one (see the module docstring)."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, LOADING_MMAP_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, RUNNING_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, RUNNING_TRIM_THRESHOLD)
        libc.malloc_trim(0)
