"""`depth-node train --config FILE | --preset NAME [--data DIR_OR_BAG] [--out DIR] [key=value ...]`,
`depth-node train --out DIR --resume [--max-steps N] [key=value ...]`.

Trains a Monodepth2 model (M, S or MS) or the metric ViT (mode metric) and writes the best epoch as a model
file plus ONNX and a report. `--preset adapt --data my.mcap --camera-height H` fine-tunes the bundled model
on a robot's own recording (config/train_adapt.yaml).
Runs under `torchrun --nproc_per_node=N` for multi-process (DDP) training unchanged.

`--resume` continues the run in --out as it was configured: its saved <out>/config.yaml (data included) is the
base, and only what this command line gives explicitly (key=value, --data, --max-steps, ...) changes it. Changes
of the input size, the networks or the mode are refused (the checkpoint was trained with them). --config /
--preset are optional then; when given they are only checked against the run on those keys (refused if they
differ); on other keys the run's saved values stay (a warning names the keys where the file differs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _split(values: list[str] | None) -> list[str]:
    """--data / --val-data items (repeatable, comma-separated) as absolute paths: the run's config.yaml records
    them, and a --resume from another working directory must find the same data."""
    out: list[str] = []
    for v in values or []:
        out += [str(Path(p.strip()).expanduser().absolute()) for p in v.split(",") if p.strip()]
    return out


def _passive_openmp() -> None:
    """OpenMP threads that sleep at barriers instead of spinning. On a CPU shared with other jobs, spinning
    threads burn the time slices the working threads need: training steps measured 3–9× slower with the default
    policy than with PASSIVE while other processes ran; on an idle machine the difference is within noise.
    Only effective before torch loads (this module imports it lazily); an explicit OMP_WAIT_POLICY wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1].strip())
    p.add_argument("--config", type=Path, help="training YAML (see config/train_mono.yaml); optional with --resume")
    p.add_argument("--preset", metavar="NAME",
                   help="a bundled config by name: config/train_NAME.yaml, e.g. adapt, mono, default_ms")
    p.add_argument("--init", metavar="MODEL",
                   help="model file to start from (model.init; a bare name is looked up in the bundled models/); "
                        "the training size follows its input size unless data.width/height are given. "
                        "--preset adapt: default models/default.pt")
    p.add_argument("--image-topic", help="bags: camera topic, raw or <topic>/compressed (data.bag.image_topic)")
    p.add_argument("--camera-info-topic", help="bags: CameraInfo topic (default: the one beside the image topic)")
    p.add_argument("--camera-height", type=float, metavar="M",
                   help="mode M: metres from the camera to the floor; sets the model's metric scale from the "
                        "ground plane after training (model.scale_camera_height_m)")
    p.add_argument("--data", action="append", metavar="DIR_OR_BAG",
                   help="training data: KITTI raw drive/day folder, synthetic drive folder, folder of frames with "
                        "intrinsics.yaml, rosbag2 bag, video; repeat or comma-separate for several")
    p.add_argument("--val-data", action="append", metavar="DIR_OR_BAG",
                   help="held-out data with GT depth for validation each epoch (repeatable)")
    p.add_argument("--out", type=Path, default=Path("out/train"), help="output folder (default out/train)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from checkpoints/last.pt with its saved <out>/config.yaml (data "
                        "included); only key=value and options given here change it, input size / networks / mode "
                        "cannot change. --config/--preset are optional and only checked against the run")
    p.add_argument("--max-steps", type=int, help="shortcut for optim.max_steps=N")
    p.add_argument("--max-minutes", "--budget-min", type=float, dest="max_minutes",
                   help="training-time budget in minutes (optim.max_minutes); export follows")
    p.add_argument("--no-export", action="store_true", help="skip ONNX export and the report at the end")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. optim.lr=5e-5 data.width=416 (values parsed as YAML)")
    p.set_defaults(func=run)
    if "torch" not in sys.modules:
        _passive_openmp()


def run(args: argparse.Namespace) -> int:
    from depth_node.train.run import train_from_files

    return train_from_files(config_path(args), overrides(args), args.out, resume=args.resume)


def config_path(args: argparse.Namespace) -> Path | None:
    """--config, or the bundled config/train_<preset>.yaml; None with --resume when neither is given (the run's
    saved config is used)."""
    from depth_node.errors import DepthNodeError
    from depth_node.paths import config_file

    if args.config is not None and args.preset is not None:
        raise DepthNodeError("give only one of --config FILE or --preset NAME")
    if args.config is None and args.preset is None:
        if getattr(args, "resume", False):
            return None
        raise DepthNodeError("give exactly one of --config FILE or --preset NAME (e.g. --preset adapt)")
    if args.config is not None:
        return args.config
    path = config_file(f"train_{args.preset}.yaml")
    if not path.is_file():
        known = sorted(p.stem.removeprefix("train_") for p in path.parent.glob("train_*.yaml"))
        raise DepthNodeError(f"no preset {args.preset!r}; known: {', '.join(known)}")
    return path


def init_model(args: argparse.Namespace) -> str | None:
    """The --init model file (bare names from the bundled models/; --preset adapt: models/default.pt)."""
    from depth_node.errors import DepthNodeError
    from depth_node.paths import models_dir

    name = args.init or ("default.pt" if args.preset == "adapt" else None)
    if name is None:
        return None
    path = Path(name).expanduser()
    if not path.is_file() and (models_dir() / name).is_file():
        path = models_dir() / name
    if not path.is_file():
        raise DepthNodeError(f"--init: model file not found: {name}")
    return str(path)


def _init_overrides(path: str) -> list[str]:
    """model.init and the init model's input size (the user's data.width/height overrides come later)."""
    from depth_node.checkpoints.model_file import load_model

    mf = load_model(path)
    return [f"model.init={_quote(path)}", f"data.width={mf.width}", f"data.height={mf.height}"]


def overrides(args: argparse.Namespace) -> list[str]:
    """The command's shortcuts (--data, --max-steps, ...) as config overrides; the user's key=value ones win over
    --init's input size."""
    init = init_model(args)
    out = (_init_overrides(init) if init else []) + list(args.overrides)
    if args.image_topic:
        out.append(f"data.bag.image_topic={_quote(args.image_topic)}")
    if args.camera_info_topic:
        out.append(f"data.bag.camera_info_topic={_quote(args.camera_info_topic)}")
    if args.camera_height is not None:
        out.append(f"model.scale_camera_height_m={args.camera_height}")
    data, val = _split(args.data), _split(args.val_data)
    if data:
        out.append(f"data.train=[{', '.join(_quote(d) for d in data)}]")
    if val:
        out.append(f"data.val=[{', '.join(_quote(d) for d in val)}]")
    if args.max_steps is not None:
        out.append(f"optim.max_steps={args.max_steps}")
    if args.max_minutes is not None:
        out.append(f"optim.max_minutes={args.max_minutes}")
    if args.no_export:
        out += ["output.export_onnx=false", "output.report=false"]
    return out


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
