"""`scale_source: metric_model`: a metric depth model (Depth Pro-style) fixes the fast model's scale.

The metric model is slow (seconds per frame for the full ViT on a Jetson), so it never sits in the frame path:
every `period` seconds of image time the current frame is handed to a worker thread; when the metric depth comes
back, the scale is the median over valid pixels of metric / fast depth *of that same frame*, gated against
outliers and smoothed in log space. Until the first result the node runs at `initial_scale` and reports
"waiting". The spread (MAD of the per-pixel log ratio) feeds /diagnostics and the odometry covariance.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from depth_node.geometry.scale import ScaleError, ScaleEstimator, ScaleInput


@dataclass
class MetricModelConfig:
    model: str = ""
    period: float = 1.0  # s of image time between metric-model runs
    smoothing: float = 0.3  # EMA weight of a new measurement in log space
    initial_scale: float = 1.0
    gate: float = 0.5  # |log(new/current)| above this is an outlier (after the first measurement)
    reacquire_after: int = 5  # consecutive outliers before re-initialising
    min_valid: float = 0.05  # fraction of pixels valid in both maps for a measurement


def ratio_measurement(metric: np.ndarray, fast: np.ndarray, depth_range: tuple[float, float] = (0.5, 80.0)
                      ) -> tuple[float, float, float] | None:
    """(median ratio metric/fast, spread = 1.4826·MAD of log ratio, valid fraction) or None without support."""
    m = np.asarray(metric, np.float64)
    f = np.asarray(fast, np.float64)
    ok = np.isfinite(m) & np.isfinite(f) & (f > 0) & (m > depth_range[0]) & (m < depth_range[1])
    frac = float(ok.mean()) if ok.size else 0.0
    if ok.sum() < 50:
        return None
    lr = np.log(m[ok] / f[ok])
    med = float(np.median(lr))
    spread = 1.4826 * float(np.median(np.abs(lr - med)))
    return math.exp(med), spread, frac


class MetricModelScale(ScaleEstimator):
    source = "metric_model"

    def __init__(self, teacher, cfg: MetricModelConfig):
        """`teacher`: a DepthEstimator of a metric model (depth(frame, intrinsics, out_size) in metres)."""
        super().__init__(cfg.initial_scale)
        self.teacher = teacher
        self.cfg = cfg
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metric_model")
        self._job: Future | None = None
        self._job_fast: np.ndarray | None = None
        self._last_submit: float | None = None
        self._lock = threading.Lock()
        self._log_s: float | None = None
        self._spread = 0.0
        self._misses = 0
        self.runs = 0
        self.accepted = 0
        self.rejected = 0
        self.failed = 0
        self.last: dict[str, Any] = {}

    # the frame path: cheap, never waits for the metric model
    def update(self, frame: ScaleInput) -> float:
        self._collect()
        due = self._last_submit is None or frame.stamp - self._last_submit >= self.cfg.period \
            or frame.stamp < self._last_submit  # bag loop / time reset
        if self._job is None and due and frame.image is not None:
            self._last_submit = frame.stamp
            self._job_fast = frame.depth.copy()
            self._job = self._pool.submit(self._run_teacher, frame.image, frame.intrinsics, frame.depth.shape)
        return self.factor

    def _run_teacher(self, image: np.ndarray, intrinsics, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
        t0 = time.monotonic()
        res = self.teacher.depth(image, intrinsics, shape)
        return res.depth, time.monotonic() - t0

    def _collect(self) -> None:
        job = self._job
        if job is None or not job.done():
            return
        self._job = None
        fast, self._job_fast = self._job_fast, None
        self.runs += 1
        try:
            metric, seconds = job.result()
        except Exception as exc:  # a failing teacher must not stop the node: keep the last scale, report it
            self.failed += 1
            self.last = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            return
        meas = ratio_measurement(metric, fast)  # fast: the model's units, before any scale
        self.last = {"metric_model_s": round(seconds, 3)}
        if meas is None or meas[2] < self.cfg.min_valid:
            self.rejected += 1
            self.last["rejected"] = "too few pixels valid in both depth maps"
            return
        ratio, spread, frac = meas
        self.last.update(ratio=round(ratio, 5), spread=round(spread, 4), valid=round(frac, 3))
        lr = math.log(ratio)
        with self._lock:
            if self._log_s is None:
                self._log_s, self._spread = lr, spread
            elif abs(lr - self._log_s) > self.cfg.gate:
                self.rejected += 1
                self._misses += 1
                if self._misses >= self.cfg.reacquire_after:
                    self._log_s, self._misses = lr, 0
                    self.factor = math.exp(lr)
                return
            else:
                a = self.cfg.smoothing
                self._log_s = (1 - a) * self._log_s + a * lr
                self._spread = (1 - a) * self._spread + a * spread
                self._misses = 0
            self.accepted += 1
            self.factor = math.exp(self._log_s)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until a running metric-model job finished and was folded in (tests, bag evaluation)."""
        job = self._job
        if job is not None:
            with contextlib.suppress(Exception):  # a failure is folded in (and counted) by _collect
                job.result(timeout=timeout)
        self._collect()

    @property
    def ready(self) -> bool:
        return self._log_s is not None

    @property
    def rel_std(self) -> float:
        return self._spread if self._log_s is not None else 0.5

    def state(self) -> dict[str, Any]:
        st = "waiting for the first metric-model result" if self._log_s is None else (
            f"holding ({self._misses} outlier results)" if self._misses else "tracking")
        out = {"source": self.source, "scale": round(self.scale, 6), "state": st, "spread": round(self._spread, 4),
               "runs": self.runs, "accepted": self.accepted, "rejected": self.rejected, "failed": self.failed,
               "period_s": self.cfg.period}
        out.update({f"last_{k}": v for k, v in self.last.items()})
        return out

    def configure(self, **params: Any) -> None:
        for k in ("period", "smoothing", "initial_scale"):
            if k in params:
                setattr(self.cfg, k, float(params[k]))
        with self._lock:
            if self._log_s is None:  # still waiting for the first result: the new initial scale applies now
                self.factor = self.cfg.initial_scale

    def reset(self) -> None:
        with self._lock:
            self._last_submit = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.teacher.backend.close()


def open_metric_model_scale(cfg: MetricModelConfig, backend: str = "auto", precision: str = "auto",
                            device: str = "auto", cache_dir: str | None = None) -> MetricModelScale:
    """The metric_model scale source with its teacher loaded (`cfg.model` "" = the bundled metric model).
    ScaleError when there is no model or it is not a metric one."""
    from depth_node.inference.estimator import DepthEstimator
    from depth_node.inference.factory import create_backend
    from depth_node.paths import BUNDLED_METRIC_MODEL, bundled_metric_model

    path = cfg.model or bundled_metric_model()
    if not path:
        raise ScaleError("scale_source metric_model needs metric_model.model (a metric depth model file); this "
                         f"installation has no bundled {BUNDLED_METRIC_MODEL}")
    teacher = create_backend(path, backend, precision, device, cache_dir=cache_dir or None)
    if teacher.info.scale_kind != "metric":
        teacher.close()
        raise ScaleError(f"metric_model.model {path} is not a metric model (its scale is "
                         f"{teacher.info.scale_kind!r}); import a Depth Pro-style checkpoint with "
                         "`depth-node import depth-pro`")
    return MetricModelScale(DepthEstimator(teacher), replace(cfg, model=str(path)))
