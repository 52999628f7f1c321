"""`depth-node bench`: inference latency and accuracy drift of every available backend/precision (default), as a
table and JSON. Other benchmark modes (node pipeline, training) plug in as flags that pick another module of
`depth_node.bench`; each mode module exposes `add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib

# flag → module under depth_node.bench; the first entry is the default mode
MODES: dict[str, str] = {"inference": "inference", "node": "node_bench", "train": "train_bench",
                         "depth-pro": "depth_pro_bench"}


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Default: depth and pose nets at 640x192 and 1024x320 on every CPU backend "
        "(and GPU ones when there is a GPU), against PyTorch eager fp32 in the same run.",
    )
    for module in dict.fromkeys(MODES.values()):
        importlib.import_module(f"depth_node.bench.{module}").add_arguments(p)
    for flag in MODES:
        if flag != "inference":
            p.add_argument(f"--{flag}", action="store_true", help=f"run the {flag} benchmark instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mode = next((flag for flag in MODES if flag != "inference" and getattr(args, flag.replace("-", "_"), False)),
                "inference")
    return int(importlib.import_module(f"depth_node.bench.{MODES[mode]}").run(args) or 0)
