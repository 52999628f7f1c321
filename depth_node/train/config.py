"""Training configuration: one dataclass tree, loaded from YAML, overridden by `section.key=value` strings,
validated before any data is touched so a typo fails in a second with a message that names the key.

Every key is documented in `config/train_mono.yaml`; this module holds the defaults (Monodepth2's M recipe at
640×192) and the checks. Values of overrides are parsed as YAML (`optim.lr=5e-5`, `data.train=[a, b]`).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depth_node.errors import DepthNodeError
from depth_node.evaluate.depth_metrics import EVAL_MAX_DEPTH, EVAL_MIN_DEPTH
from depth_node.geometry.depth import MAX_DEPTH, MIN_DEPTH

MODES = ("M", "S", "MS", "metric")


class ConfigError(DepthNodeError):
    """A training config that cannot be used; the message names the key and what is wrong."""


@dataclass
class ModelConfig:
    num_layers: int = 18  # depth encoder ResNet depth: 18, 34, 50, 101, 152
    pose_num_layers: int = 18  # pose encoder (two stacked frames): 18 or 50
    scales: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    min_depth: float = MIN_DEPTH
    max_depth: float = MAX_DEPTH
    init: str | None = None  # model file to start from (depth and, when present, pose weights)
    # mode M from a metric (stereo-trained) model.init: the written model keeps the init's metric factor, so a
    # monocular fine-tune (scale-free loss, small LR) stays metric; false: a relative-scale model as usual
    keep_init_scale: bool = True
    # mode M: after training, set the metric factor so that the ground plane fitted in the predicted depth of
    # training frames lies this many metres below the camera (the robot's known camera height); None: off
    scale_camera_height_m: float | None = None
    # BatchNorm keeps its running statistics (scale/shift still train): for tiny per-process batches, and so that
    # N DDP processes × batch b train exactly like one process with batch N·b (CPU has no SyncBatchNorm)
    freeze_bn: bool = False


@dataclass
class BagConfig:
    image_topic: str | None = None  # None: the only sensor_msgs/Image (or CompressedImage) topic of the bag
    camera_info_topic: str | None = None  # None: the CameraInfo topic next to the image topic
    right_image_topic: str | None = None  # stereo partner (S/MS); its CameraInfo P gives the baseline
    right_camera_info_topic: str | None = None
    max_sync_dt: float = 0.005  # s: left/right stamps further apart than this are not a stereo pair


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)  # KITTI-like folders, frame folders, bags, videos
    val: list[str] = field(default_factory=list)  # held-out data with depth ground truth
    width: int = 640
    height: int = 192
    frame_stride: int = 1  # source frames are t − stride and t + stride
    both_sides: bool = True  # stereo data: use right images as targets too (partner = left)
    filter_static: bool = True  # drop triplets whose frames barely differ (camera standing still)
    static_threshold: float = 0.01  # mean abs difference (0..1 intensities, 1/8 resolution) counted as static
    cache: str = "memory"  # "memory": frames decoded + resized once into RAM; "disk": .npy memmaps; "none"
    cache_dir: str | None = None  # None: <out>/cache
    num_workers: int = 2
    intrinsics: str | None = None  # intrinsics file (pixels) for frame folders, videos and bags (replaces CameraInfo)
    stereo_baseline_m: float | None = None  # None: from the data (calibration / CameraInfo)
    video_every_nth: int = 1  # keep every n-th video frame (KITTI runs at 10 Hz; subsample 30 Hz video)
    val_max_frames: int = 200  # validation frames per epoch (evenly spread), 0 = all
    eval_min_depth: float = EVAL_MIN_DEPTH  # GT depth range used by the metrics (m)
    eval_max_depth: float = EVAL_MAX_DEPTH
    bag: BagConfig = field(default_factory=BagConfig)


@dataclass
class AugmentConfig:
    color_jitter_p: float = 0.5  # one jitter draw per sample, network inputs only
    brightness: float = 0.2  # factor in [1 − b, 1 + b]
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1  # shift in [−h, h] of a full turn
    flip_p: float = 0.5


@dataclass
class LossConfig:
    ssim_weight: float = 0.85
    smoothness: float = 1e-3
    automask: bool = True
    min_reprojection: bool = True
    seg_weight: float = 0.0  # segmentation-aware planarity term (needs masks); 0 disables


@dataclass
class OptimConfig:
    lr: float = 1e-4
    batch_size: int = 12
    epochs: int = 20
    scheduler_step_size: int = 15  # epochs at lr before multiplying by gamma (stepped after each epoch)
    scheduler_gamma: float = 0.1
    weight_decay: float = 0.0
    max_steps: int | None = None  # stop after this many optimiser steps (short runs)
    max_minutes: float | None = None  # stop after this much training time (validation/export follow)


@dataclass
class SystemConfig:
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:N"
    amp: str = "auto"  # "auto" (fp16 on CUDA; bf16 on CPUs with native bf16, else off), "off", "bf16", "fp16"
    channels_last: str = "auto"  # "auto" (on for CUDA), "on", "off"
    threads: int | None = None  # torch intra-op threads; None = torch's default
    checkpoint_every: int = 500  # optimiser steps between checkpoints (also at each epoch end)
    log_every: int = 50  # steps between TensorBoard scalars
    image_every: int = 500  # steps between TensorBoard images
    progress: bool = True  # tqdm bar


@dataclass
class OutputConfig:
    export_onnx: bool = True
    report: bool = True
    report_samples: int = 4  # depth images in the report
    # validation abs_rel (best epoch) the report's summary card judges PASS/FAIL against; None: no verdict
    max_abs_rel: float | None = None


@dataclass
class MetricConfig:
    """mode: metric — supervised training of the Depth Pro-style metric ViT on ground-truth depth."""

    preset: str = "small"  # depth_node.networks.depth_pro preset (small, fast, tiny, full)
    network: dict[str, Any] = field(default_factory=dict)  # preset keys to change, e.g. {embed_dim: 192, depth: 6}
    stage2_epoch: int = 1  # first epoch of curriculum stage 2 (MAE + MAGE/MSGE/MALE); before it: MAE only
    trim: float = 0.0  # stage 1: drop each image's worst fraction of pixels (0.2 for noisy real ground truth)
    weights: dict[str, float] = field(default_factory=lambda: {"mae": 1.0, "mage": 1.0, "msge": 1.0, "male": 1.0})
    loss_scales: int = 4  # pyramid levels of the derivative losses
    zoom_p: float = 0.5  # probability of a random crop-and-zoom (changes the field of view the network sees)
    zoom_min: float = 0.7  # smallest crop side, as a fraction of the frame
    fov_steps: int = 200  # FOV-head steps after the depth stages, on frozen depth features (0: no FOV training)
    fov_lr: float = 1.0e-4


@dataclass
class CameraRandomization:
    """A random camera and scene kind per synthetic drive, drawn from the drive's seed (the same seed gives the
    same camera; `depth_node.train.synth_data.randomized_overrides`). Empty = that setting is not randomised.
    Ranges are [low, high], uniform except `height_m` (log-uniform: 0.2–0.4 m is as likely as 1.25–2.5 m)."""

    kinds: list[str] = field(default_factory=list)  # scene kinds, one drawn per drive: street, sidewalk, indoor
    hfov_deg: list[float] = field(default_factory=list)  # horizontal field of view
    aspects: list[str] = field(default_factory=list)  # image aspect ratios, e.g. ["10:3", "16:9", "4:3", "1:1"]
    cx_offset: list[float] = field(default_factory=list)  # principal point offset, fraction of the width
    cy_offset: list[float] = field(default_factory=list)  # fraction of the height
    height_m: list[float] = field(default_factory=list)  # camera height above the ground it moves on
    pitch_deg: list[float] = field(default_factory=list)  # > 0 looks down
    roll_deg: list[float] = field(default_factory=list)


@dataclass
class SynthSplit:
    seeds: list[int] = field(default_factory=list)
    frames: int = 200
    overrides: dict[str, Any] = field(default_factory=dict)  # DriveConfig fields, e.g. {traffic: {lead_cars: 2}}
    randomize: CameraRandomization = field(default_factory=CameraRandomization)


@dataclass
class SynthConfig:
    """Drives rendered with depth_node.sim into <out>/cache when no --data is given."""

    train: SynthSplit = field(default_factory=SynthSplit)
    val: SynthSplit = field(default_factory=SynthSplit)
    stereo: bool | None = None  # None: stereo for S/MS, mono for M
    width: int | None = None  # render size; None = the training size
    height: int | None = None
    workers: int = 2  # rendering processes


@dataclass
class TrainConfig:
    mode: str = "M"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    metric: MetricConfig = field(default_factory=MetricConfig)
    synth: SynthConfig | None = None

    @property
    def use_stereo(self) -> bool:
        return self.mode in ("S", "MS")

    @property
    def use_temporal(self) -> bool:
        return self.mode in ("M", "MS")

    @property
    def is_metric(self) -> bool:
        """Supervised metric ViT (Depth Pro-style) instead of self-supervised Monodepth2."""
        return self.mode == "metric"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "config") -> TrainConfig:
        cfg = cls()
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{where} must be a mapping of keys, got {type(data).__name__}")
        for key, value in (data or {}).items():
            _set(cfg, str(key), value, str(key))
        validate(cfg)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
        cfg = cls.from_dict(data, str(path))
        return cfg.with_overrides(overrides or [])

    def with_overrides(self, overrides: list[str]) -> TrainConfig:
        cfg = TrainConfig.from_dict_unchecked(self.to_dict())
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like section.key=value (e.g. optim.lr=5e-5)")
            key, raw = item.split("=", 1)
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
            _set_dotted(cfg, key.strip(), value)
        validate(cfg)
        return cfg

    @classmethod
    def from_dict_unchecked(cls, data: dict[str, Any]) -> TrainConfig:
        cfg = cls()
        for key, value in data.items():
            _set(cfg, key, value, key)
        return cfg


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown(path: str, name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown config key {path!r}{hint}; known here: {', '.join(sorted(known))}")


def _set_dotted(cfg: Any, key: str, value: Any) -> None:
    parts = key.split(".")
    target = cfg
    for i, part in enumerate(parts[:-1]):
        names = [f.name for f in dataclasses.fields(target)]
        if part not in names:
            raise _unknown(".".join(parts[: i + 1]), part, names)
        sub = getattr(target, part)
        if sub is None:  # optional section (synth): create it on first use
            sub = _hints(type(target))[part]
            sub = _optional_inner(sub)()
            setattr(target, part, sub)
        if not dataclasses.is_dataclass(sub):
            raise ConfigError(f"config key {'.'.join(parts[: i + 1])!r} is a value, not a section")
        target = sub
    _set(target, parts[-1], value, key)


def _optional_inner(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _set(target: Any, name: str, value: Any, path: str) -> None:
    names = [f.name for f in dataclasses.fields(target)]
    if name not in names:
        raise _unknown(path, name, names)
    tp = _hints(type(target))[name]
    setattr(target, name, _coerce(getattr(target, name), tp, value, path))


def _type_name(tp: Any) -> str:
    if tp in (int, float, str, bool):
        return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[tp]
    return str(tp).replace("typing.", "")


def _coerce(current: Any, tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = _optional_inner(tp)
        if dataclasses.is_dataclass(inner) and current is None:
            current = inner()
        return _coerce(current, inner, value, path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {path!r} is a section: give a mapping, got {value!r}")
        sub = current if current is not None else tp()
        for k, v in value.items():
            _set(sub, str(k), v, f"{path}.{k}")
        return sub
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, str) and inner is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {path!r} must be a list of {_type_name(inner)}s, got {value!r}")
        return [_coerce(None, inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {path!r} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    bad = ConfigError(f"config key {path!r} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
            return "on" if value else "off"
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            raise bad
        return value
    return value


MIN_INPUT_SIZE = 64  # smallest network input side: the 1/32 feature map must be ≥ 2 px for reflect padding


def nearest_input_size(v: int) -> int:
    """The valid input side (multiple of 32, ≥ MIN_INPUT_SIZE) nearest to `v`."""
    return max(MIN_INPUT_SIZE, round(v / 32) * 32)


def validate(cfg: TrainConfig) -> None:
    """Range and consistency checks; raises ConfigError naming the key."""

    def need(ok: bool, key: str, msg: str) -> None:
        if not ok:
            raise ConfigError(f"config key {key!r}: {msg}")

    need(cfg.mode in MODES, "mode", f"must be one of {', '.join(MODES)} (M = monocular video, S = stereo pairs, "
         f"MS = both, metric = supervised metric ViT on ground-truth depth), got {cfg.mode!r}")
    d, m, o, s, a = cfg.data, cfg.model, cfg.optim, cfg.system, cfg.augment
    for key, v in (("data.width", d.width), ("data.height", d.height)):
        need(v >= MIN_INPUT_SIZE and v % 32 == 0, key,
             f"must be a multiple of 32 and at least {MIN_INPUT_SIZE} (the encoder downsamples 32× and its reflect "
             f"padding needs a feature map of ≥ 2 px), got {v}; nearest: {nearest_input_size(v)}")
    need(m.num_layers in (18, 34, 50, 101, 152), "model.num_layers",
         f"must be 18, 34, 50, 101 or 152, got {m.num_layers}")
    need(m.pose_num_layers in (18, 50), "model.pose_num_layers", f"must be 18 or 50, got {m.pose_num_layers}")
    need(len(m.scales) > 0 and all(sc in (0, 1, 2, 3) for sc in m.scales) and len(set(m.scales)) == len(m.scales),
         "model.scales", f"must be distinct values from 0..3, got {m.scales}")
    need(0 < m.min_depth < m.max_depth, "model.min_depth", f"need 0 < min_depth < max_depth, got {m.min_depth}, "
         f"{m.max_depth}")
    need(m.scale_camera_height_m is None or m.scale_camera_height_m > 0, "model.scale_camera_height_m",
         f"must be > 0 metres or null, got {m.scale_camera_height_m}")
    need(m.scale_camera_height_m is None or cfg.mode == "M", "model.scale_camera_height_m",
         "sets the scale of monocular (mode M) models only; S/MS models take it from the stereo baseline")
    need(d.frame_stride >= 1, "data.frame_stride", f"must be ≥ 1, got {d.frame_stride}")
    need(d.cache in ("memory", "disk", "none"), "data.cache", f"must be memory, disk or none, got {d.cache!r}")
    need(d.num_workers >= 0, "data.num_workers", f"must be ≥ 0, got {d.num_workers}")
    need(d.video_every_nth >= 1, "data.video_every_nth", f"must be ≥ 1, got {d.video_every_nth}")
    need(d.static_threshold >= 0, "data.static_threshold", "must be ≥ 0")
    need(d.stereo_baseline_m is None or d.stereo_baseline_m > 0, "data.stereo_baseline_m", "must be > 0 metres")
    for key in ("color_jitter_p", "flip_p"):
        need(0 <= getattr(a, key) <= 1, f"augment.{key}", f"is a probability, got {getattr(a, key)}")
    for key in ("brightness", "contrast", "saturation"):
        need(0 <= getattr(a, key) < 1, f"augment.{key}", f"must be in [0, 1), got {getattr(a, key)}")
    need(0 <= a.hue <= 0.5, "augment.hue", f"must be in [0, 0.5], got {a.hue}")
    need(0 <= cfg.loss.ssim_weight <= 1, "loss.ssim_weight", "must be in [0, 1]")
    need(cfg.loss.smoothness >= 0 and cfg.loss.seg_weight >= 0, "loss.smoothness", "weights must be ≥ 0")
    need(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
    need(o.batch_size >= 1, "optim.batch_size", f"must be ≥ 1, got {o.batch_size}")
    need(o.epochs >= 1, "optim.epochs", f"must be ≥ 1, got {o.epochs}")
    need(o.scheduler_step_size >= 1, "optim.scheduler_step_size", "must be ≥ 1")
    need(0 < o.scheduler_gamma <= 1, "optim.scheduler_gamma", "must be in (0, 1]")
    need(o.max_steps is None or o.max_steps >= 1, "optim.max_steps", "must be ≥ 1 or null")
    need(o.max_minutes is None or o.max_minutes > 0, "optim.max_minutes", "must be > 0 or null")
    need(s.device == "auto" or s.device == "cpu" or s.device.startswith("cuda"), "system.device",
         f"must be auto, cpu, cuda or cuda:N, got {s.device!r}")
    need(s.amp in ("auto", "off", "bf16", "fp16"), "system.amp", f"must be auto, off, bf16 or fp16, got {s.amp!r}")
    need(s.channels_last in ("auto", "on", "off"), "system.channels_last", "must be auto, on or off")
    need(s.threads is None or s.threads >= 1, "system.threads", "must be ≥ 1 or null")
    need(cfg.output.max_abs_rel is None or cfg.output.max_abs_rel > 0, "output.max_abs_rel",
         f"must be > 0 or null, got {cfg.output.max_abs_rel}")
    for key in ("checkpoint_every", "log_every", "image_every"):
        need(getattr(s, key) >= 1, f"system.{key}", "must be ≥ 1")
    if cfg.is_metric:
        from depth_node.networks.depth_pro import PRESETS

        mc = cfg.metric
        need(mc.preset in PRESETS, "metric.preset", f"must be one of {', '.join(PRESETS)}, got {mc.preset!r}")
        if mc.preset in PRESETS:
            from depth_node.networks.depth_pro import DepthProConfigError, resolve_config

            try:
                resolve_config({**PRESETS[mc.preset], **mc.network, "preset": mc.preset if not mc.network
                                else f"{mc.preset}+custom"})
            except DepthProConfigError as exc:
                need(False, "metric.network", str(exc))
        need(mc.stage2_epoch >= 0, "metric.stage2_epoch", "must be ≥ 0")
        need(0 <= mc.trim < 1, "metric.trim", f"must be in [0, 1), got {mc.trim}")
        unknown = sorted(set(mc.weights) - {"mae", "mage", "msge", "male", "log"})
        need(not unknown, "metric.weights", f"unknown loss names {unknown}; known: mae, mage, msge, male, log")
        need(all(v >= 0 for v in mc.weights.values()), "metric.weights", "weights must be ≥ 0")
        need(mc.loss_scales >= 1, "metric.loss_scales", "must be ≥ 1")
        need(0 <= mc.zoom_p <= 1, "metric.zoom_p", f"is a probability, got {mc.zoom_p}")
        need(0.2 <= mc.zoom_min <= 1, "metric.zoom_min", f"must be in [0.2, 1], got {mc.zoom_min}")
        need(mc.fov_steps >= 0, "metric.fov_steps", "must be ≥ 0")
        need(mc.fov_lr > 0, "metric.fov_lr", "must be > 0")
    if cfg.synth is not None:
        for split in ("train", "val"):
            sp = getattr(cfg.synth, split)
            _validate_randomization(sp.randomize, f"synth.{split}.randomize")
            need(sp.frames >= 3, f"synth.{split}.frames", "must be ≥ 3 (a triplet)")
        for key in ("width", "height"):
            v = getattr(cfg.synth, key)
            need(v is None or v >= 32, f"synth.{key}", "must be ≥ 32 or null")


RANDOM_RANGES = {"hfov_deg": (10.0, 170.0), "cx_offset": (-0.45, 0.45), "cy_offset": (-0.45, 0.45),
                 "height_m": (0.05, 10.0), "pitch_deg": (-45.0, 45.0), "roll_deg": (-45.0, 45.0)}


def _validate_randomization(r: CameraRandomization, where: str) -> None:
    """Ranges are [low, high] inside what the renderer takes; kinds and aspects are ones it knows."""
    from depth_node.sim.config import ASPECTS, SCENE_KINDS

    for key, (lo, hi) in RANDOM_RANGES.items():
        v = getattr(r, key)
        if v and not (len(v) == 2 and lo <= v[0] <= v[1] <= hi):
            raise ConfigError(f"config key {where}.{key!r}: must be [low, high] with {lo} ≤ low ≤ high ≤ {hi} "
                              f"(or [] for no randomisation), got {v}")
    bad = [k for k in r.kinds if k not in SCENE_KINDS]
    if bad:
        raise ConfigError(f"config key {where}.kinds: unknown scene kinds {bad}; known: {', '.join(SCENE_KINDS)}")
    bad = [a for a in r.aspects if a not in ASPECTS]
    if bad:
        raise ConfigError(f"config key {where}.aspects: unknown aspect ratios {bad}; known: {', '.join(ASPECTS)}")


# ============================================================================================== resume

# Settings a checkpoint is tied to: the weights, the optimiser state and the cached frames were made for them, so a
# resumed run must keep them (`resume_conflicts`). Everything else (budget, LR schedule length, data, logging...)
# may change on --resume.
RESUME_FIXED_KEYS = ("mode", "data.width", "data.height", "model.num_layers", "model.pose_num_layers")
# mode metric: the ViT comes from metric.preset/network, or from the model.init file when one is given
RESUME_FIXED_KEYS_METRIC = ("mode", "data.width", "data.height", "metric.preset", "metric.network", "model.init")


def _dotted(d: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def resume_conflicts(saved: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for each checkpoint-bound setting (`RESUME_FIXED_KEYS`) that `new` changes;
    both are `TrainConfig.to_dict()` mappings (the saved one may come from a checkpoint)."""
    keys = RESUME_FIXED_KEYS_METRIC if "metric" in (saved.get("mode"), new.get("mode")) else RESUME_FIXED_KEYS
    return [(k, _dotted(saved, k), _dotted(new, k)) for k in keys if _dotted(saved, k) != _dotted(new, k)]


def check_resume_compatible(saved: dict[str, Any], new: dict[str, Any], *, run: str, source: str) -> None:
    """Raise one ConfigError naming every checkpoint-bound key `new` changes, with the run's value and the new one.
    `run` names the saved run (e.g. its config.yaml), `source` where the new values come from."""
    bad = resume_conflicts(saved, new)
    if not bad:
        return
    fmt = ", ".join
    raise ConfigError(
        f"--resume: {source} sets {fmt(f'{k}={_show(n)}' for k, _, n in bad)}, but the run was trained with "
        f"{fmt(f'{k}={_show(s)}' for k, s, _ in bad)} ({run}); its checkpoint continues only with the input size, "
        "networks and mode it was trained with. To continue, keep them as the run has them (--resume needs no "
        "--config: the run's own config is used); to change them, start a new run in another --out "
        "(--init <out>/model.pt starts from this run's weights)")


def _show(v: Any) -> str:
    return "null" if v is None else str(v)

