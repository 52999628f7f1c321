"""How far one backend's outputs are from another's on the same inputs: the numbers that decide whether a faster
precision (bf16, fp16, int8) or an engine may replace the fp32 reference.

abs_rel is the depth metric's own definition (mean |d - d_ref| / d_ref), so a drift figure reads directly
against the model's abs_rel on a benchmark: 1 % drift on a model with 10 % abs_rel is visible, 0.01 % is not.
One definition for every figure called drift: the int8 search's budget (`export.sensitivity`), the benchmark's
and the parity checks' (it lives in export, below all of them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Drift:
    max_abs: float = 0.0
    mean_abs: float = 0.0
    abs_rel: float = 0.0  # mean |c - r| / r over pixels where the reference is finite and > 0
    count: int = 0  # values compared

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class DriftMeter:
    """Accumulates over frames; the means are over all values (not a mean of per-frame means)."""

    def __init__(self) -> None:
        self._max = 0.0
        self._sum_abs = 0.0
        self._n = 0
        self._sum_rel = 0.0
        self._n_rel = 0

    def add(self, candidate: np.ndarray, reference: np.ndarray) -> None:
        c = np.asarray(candidate, dtype=np.float64)
        r = np.asarray(reference, dtype=np.float64)
        if c.shape != r.shape:
            if c.size != r.size:
                raise ValueError(f"output shapes differ: {c.shape} vs reference {r.shape}")
            c = c.reshape(r.shape)
        both = np.isfinite(c) & np.isfinite(r)
        err = np.abs(c - r)
        # a non-finite candidate where the reference is finite is an infinite error, not a skipped pixel
        bad = np.isfinite(r) & ~np.isfinite(c)
        if bad.any():
            self._max = float("inf")
            if (bad & (r > 0)).any():
                self._sum_rel = float("inf")
        if both.any():
            self._max = max(self._max, float(err[both].max()))
            self._sum_abs += float(err[both].sum())
            self._n += int(both.sum())
        pos = both & (r > 0)
        if pos.any():
            self._sum_rel += float((err[pos] / r[pos]).sum())
            self._n_rel += int(pos.sum())

    def result(self) -> Drift:
        return Drift(
            max_abs=self._max,
            mean_abs=self._sum_abs / self._n if self._n else 0.0,
            abs_rel=self._sum_rel / self._n_rel if self._n_rel else 0.0,
            count=self._n,
        )


def drift(candidates, references) -> Drift:
    """Drift over paired lists (or a single pair) of arrays."""
    if isinstance(candidates, np.ndarray):
        candidates, references = [candidates], [references]
    meter = DriftMeter()
    for c, r in zip(candidates, references, strict=True):
        meter.add(c, r)
    return meter.result()
