"""The node's counters and per-period timings for /diagnostics (thread-safe, bounded memory), and the
key/values and level a /diagnostics status reports."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, NamedTuple

import numpy as np

from depth_node.ros import messages as M


class Counts(NamedTuple):
    """What one diagnostics period saw."""

    images_in: int
    frames_out: int
    errors: int


class Stats:
    """Counters and per-period timings for /diagnostics; thread-safe, bounded memory."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0
        self.published = 0
        self.skipped_idle = 0
        self.waiting_for_scale = 0  # frames withheld until the scale source's first estimate (wait_for_scale)
        self.lost = 0  # gaps in publishers' sequence numbers: overwritten in the QoS queue before reaching us
        self.errors: dict[str, int] = {}
        self.last_error = ""
        self.intrinsics_source = "none yet"
        self.camera_info_fallbacks = 0
        self.period: list[tuple[float, float, float, float, float]] = []
        self.period_received = 0
        self.period_published = 0
        self.period_errors = 0
        self.latency_window: deque[float] = deque(maxlen=1000)

    def error(self, kind: str, text: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.period_errors += 1
            self.last_error = f"{kind}: {text}"

    def got_image(self) -> None:
        with self.lock:
            self.received += 1
            self.period_received += 1

    def done(self, latency: float, wait: float, infer: float, publish: float, odometry: float = 0.0) -> None:
        """One published frame: receive → outputs (latency), receive → worker start (wait), pre-processing +
        inference + post-processing + scale (infer), depth/cloud message building and publishing (publish), the
        odometry step that follows them (odometry: 0 where it did not run)."""
        with self.lock:
            self.published += 1
            self.period_published += 1
            self.period.append((latency, wait, infer, publish, odometry))
            self.latency_window.append(latency)
            if len(self.period) > 10000:  # diagnostics stopped being read: keep memory flat
                del self.period[:5000]

    def take_period(self) -> tuple[Counts, np.ndarray]:
        """(images received, frames published, input errors; (n, 5) timings in seconds) since the last call."""
        with self.lock:
            out = (Counts(self.period_received, self.period_published, self.period_errors),
                   np.asarray(self.period, dtype=np.float64))
            self.period_received = self.period_published = self.period_errors = 0
            self.period = []
            return out


def period_values(st: Stats, period_s: float, dropped: int) -> tuple[dict[str, Any], Counts]:
    """Rates, latencies and counters of the period just ended, and its counts."""
    counts, per = st.take_period()
    n_in, n_out = counts.images_in, counts.frames_out

    def ms(col: int, fn) -> float:
        return 1e3 * float(fn(per[:, col])) if per.size else 0.0

    values: dict[str, Any] = {
        "input_rate_hz": n_in / period_s,
        "output_rate_hz": n_out / period_s,
        "latency_mean_ms": ms(0, np.mean),
        "latency_max_ms": ms(0, np.max),
        "latency_p50_ms_last_1000": 1e3 * float(np.median(st.latency_window)) if st.latency_window else 0.0,
        "wait_mean_ms": ms(1, np.mean),
        "inference_mean_ms": ms(2, np.mean),
        "publish_mean_ms": ms(3, np.mean),
        "odometry_mean_ms": ms(4, np.mean),
        "frames_received": st.received,
        "frames_published": st.published,
        "frames_dropped": dropped,
        "frames_lost_before_node": st.lost,
        "frames_skipped_no_subscribers": st.skipped_idle,
        "frames_waiting_for_scale": st.waiting_for_scale,
        "input_errors": sum(st.errors.values()),
        "last_error": st.last_error or "none",
        "intrinsics_source": st.intrinsics_source,
        "camera_info_fallbacks": st.camera_info_fallbacks,
    }
    values.update({f"errors.{k}": v for k, v in sorted(st.errors.items())})
    return values, counts


def core_values(core: Any) -> dict[str, Any]:
    """Backend, scale source and odometry state of a loaded frame core."""
    if core is None:
        return {}
    pipe = core.pipe
    backend, scale, vo = pipe.backend, pipe.scale, pipe.vo
    values: dict[str, Any] = dict(backend=backend.name, precision=backend.precision, device=backend.device,
                                  model_digest=backend.info.digest)
    values.update({f"scale.{k}": v for k, v in scale.state().items()})
    values.update({"odom.steps": vo.steps, "odom.restarts": vo.restarts, "odom.distance_m": vo.distance})
    values.update({f"odom.refine_{k}": v for k, v in pipe.refine_stats.items()})
    return values


def level_and_text(state: str, error: str, counts: Counts, dropped: int, scale: Any, last_error: str = "",
                   guessed_intrinsics: bool = False) -> tuple[int, str]:
    """The status level and message: configuration and activity first, then what the outputs rest on (camera
    intrinsics, the scale source). Unconfigured is ERROR only with a reason (bad parameters, a failed configure);
    a node waiting for its lifecycle manager is WARN "waiting for configure". Images arriving while none is
    published and errors are counted is ERROR: every frame is refused or fails (the last error says why).
    `guessed_intrinsics`: the outputs use the `intrinsics` parameter's default, not the camera's (no usable
    camera_info and none configured): WARN, since depth scale and cloud geometry then rest on a guess."""
    level, text = M.OK, "ok"
    n_in, n_out = counts.images_in, counts.frames_out
    if state == "unconfigured":
        level, text = (M.ERROR, error) if error else (M.WARN, "waiting for configure")
    elif state in ("inactive", "finalized"):
        level, text = M.WARN, state
    elif n_in == 0:
        level, text = M.WARN, "no images"
    elif n_out == 0 and counts.errors:
        level, text = M.ERROR, f"images arrive but none is published; last error: {last_error or 'unknown'}"
    elif 0 < n_out < 0.5 * n_in and dropped:
        text = "dropping stale frames (input faster than inference)"
    if state == "active" and guessed_intrinsics:
        level = max(level, M.WARN)
        text = f"{text}; no usable camera_info: default intrinsics (a guess; remap camera_info or set intrinsics)"
    if state not in ("unconfigured", "finalized") and scale is not None and not scale.ready:
        level, text = max(level, M.WARN), f"{text}; scale: {scale.state().get('state')}"
    return level, text
