"""`depth-node train --config FILE [--data DIR_OR_BAG] [--out DIR] [--resume] [key=value ...]`.

Trains a Monodepth2 model (M, S or MS) or the metric ViT (mode metric) and writes the best epoch as a model
file plus ONNX and a report.
Runs under `torchrun --nproc_per_node=N` for multi-process (DDP) training unchanged."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def _passive_openmp() -> None:
    """OpenMP threads that sleep at barriers instead of spinning. On a CPU shared with other jobs, spinning
    threads burn the time slices the working threads need: training steps measured 3–9× slower with the default
    policy than with PASSIVE while other processes ran; on an idle machine the difference is within noise.
    Only effective before torch loads (this module imports it lazily); an explicit OMP_WAIT_POLICY wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1].strip())
    p.add_argument("--config", type=Path, required=True, help="training YAML (see config/train_mono.yaml)")
    p.add_argument("--data", action="append", metavar="DIR_OR_BAG",
                   help="training data: KITTI raw drive/day folder, synthetic drive folder, folder of frames with "
                        "intrinsics.yaml, rosbag2 bag, video; repeat or comma-separate for several")
    p.add_argument("--val-data", action="append", metavar="DIR_OR_BAG",
                   help="held-out data with GT depth for validation each epoch (repeatable)")
    p.add_argument("--out", type=Path, default=Path("out/train"), help="output folder (default out/train)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--max-steps", type=int, help="shortcut for optim.max_steps=N")
    p.add_argument("--max-minutes", type=float, help="shortcut for optim.max_minutes=M")
    p.add_argument("--no-export", action="store_true", help="skip ONNX export and the report at the end")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. optim.lr=5e-5 data.width=416 (values parsed as YAML)")
    p.set_defaults(func=run)
    if "torch" not in sys.modules:
        _passive_openmp()


def run(args: argparse.Namespace) -> int:
    from depth_node.train.run import train_from_files

    return train_from_files(args.config, overrides(args), args.out, resume=args.resume)


def overrides(args: argparse.Namespace) -> list[str]:
    """The command's shortcuts (--data, --max-steps, ...) as config overrides, after the user's key=value ones."""
    out = list(args.overrides)
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
