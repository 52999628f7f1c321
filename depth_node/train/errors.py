"""Errors of the training package that several of its modules raise (kept apart so that readers of training
data, e.g. `sources.py` and `bag_frames.py`, need not import each other for them)."""

from __future__ import annotations

from depth_node.errors import DepthNodeError


class DataError(DepthNodeError):
    """Training data that cannot be read as given; the message says what was expected."""
