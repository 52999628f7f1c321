"""Training checkpoints: everything needed to continue a run bit-for-bit, written so a crash never leaves a
half-written file under the checkpoint's name.

Contents: network, optimiser, scheduler and AMP-scaler states, epoch / step / batch position in the epoch,
training seconds used, best validation so far, history, and the RNG states (python, numpy, torch, CUDA).
Everything is stored as tensors and plain containers so `torch.load(weights_only=True)` reads it (a checkpoint
cannot run code). The write goes to a temporary file in the same folder, is flushed and fsync'ed, then
`os.replace`d over the target: readers see the old file or the new one, never a partial one.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_node.checkpoints.model_file import load_torch_file
from depth_node.errors import DepthNodeError

FORMAT = "depth_node.train_checkpoint"
VERSION = 1


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _py_state_to_plain(random.getstate()),
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_plain_to_py_state(state["python"]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _py_state_to_plain(s: tuple) -> list:
    version, internal, gauss = s
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def _plain_to_py_state(s: list) -> tuple:
    version, internal, gauss = s
    return (version, tuple(int(x) for x in internal.tolist()), gauss)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    return atomic_torch_save({"format": FORMAT, "version": VERSION, **state, "rng": rng_state()}, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    d = load_torch_file(path, "training checkpoint")
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise DepthNodeError(f"{path} is not a depth_node training checkpoint")
    if int(d.get("version", 0)) > VERSION:
        raise DepthNodeError(f"{path}: checkpoint version {d['version']} is newer than this depth_node reads")
    return d
