"""Building the scale source a node config asks for, explicitly, one branch per source.

The sources themselves live below (`geometry.scale` for the NumPy ones, `inference.metric_scale` for the one
that runs a second network); this is the one place that picks and constructs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_node.geometry.scale import (
    GroundPlaneScale,
    ScaleError,
    ScaleEstimator,
    StereoScale,
    ground_plane_config,
    resolve_source,
)


def build_scale_source(cfg: Any, model_scale: dict[str, Any], camera_to_base: np.ndarray) -> ScaleEstimator:
    """The scale source of `cfg.scale_source` ('auto' resolved from the model's scale kind) for a model whose
    scale metadata is `model_scale`. ScaleError: the settings do not fit this model."""
    source = resolve_source(cfg.scale_source, model_scale)
    if source == "fixed":
        return ScaleEstimator(cfg.scale_factor)
    if source == "stereo":
        return StereoScale(model_scale, cfg.stereo_baseline)
    if source == "ground_plane":
        gp = cfg.ground_plane
        return GroundPlaneScale(ground_plane_config(group_values(gp)), camera_to_base)
    if source == "metric_model":
        from depth_node.inference.metric_scale import MetricModelConfig, open_metric_model_scale

        mm = cfg.metric_model
        mcfg = MetricModelConfig(mm.model, period=mm.period, smoothing=mm.smoothing, initial_scale=mm.initial_scale)
        return open_metric_model_scale(mcfg, cfg.backend, cfg.precision, cfg.device, cfg.cache_dir or None)
    raise ScaleError(f"scale source {source!r} has no builder")  # resolve_source names every source


def group_values(group: Any) -> dict[str, Any]:
    """A parameter group (`cfg.ground_plane`) as {field: value}, for a source's `configure(**values)`."""
    from dataclasses import asdict

    return asdict(group)
