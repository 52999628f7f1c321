"""`depth-node`: the one command for offline work. Each subcommand lives in `depth_node/commands/<name>.py`
and exposes `register(subparsers)`; modules are imported lazily so `depth-node --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from depth_node.errors import DepthNodeError

# (subcommand, module under depth_node.commands, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("import", "import_model", "import third-party checkpoints (monodepth2 folder, depth-pro .pt) into a model file"),
    ("export", "export", "export a model file to ONNX (depth.onnx, pose.onnx) and check parity with PyTorch"),
    ("pack", "pack", "make a trained model ready to ship: compact model file, ONNX and model card"),
    ("quantize", "quantize", "int8 Q/DQ ONNX from an fp32 export, calibrated on sample frames"),
    ("build-engine", "engine", "build a TensorRT engine from an ONNX file (needs tensorrt)"),
    ("verify-engine", "verify_engine", "run an engine and its ONNX on the same frames and compare"),
    ("check-fp16", "check_fp16", "is an ONNX safe in fp16? activation headroom, output ranges, fp16 drift"),
    ("infer", "infer", "run a model on images and write depth maps"),
    ("bench", "bench", "latency/throughput benchmark of every available backend (JSON + table)"),
    ("synth", "synth", "render synthetic drives with exact ground truth (KITTI-like folder or MCAP bag)"),
    ("bag-info", "bag_info", "topics, types, counts, duration and rates of a rosbag2 bag"),
    ("play", "play", "publish a bag over ROS 2 with its timing (and /clock)"),
    ("train", "train", "train a model from a YAML config"),
    ("eval-depth", "eval_depth", "depth metrics of a model on a folder with ground truth"),
    ("eval-real", "eval_real", "the real-data table: a model on every real set with depth GT"),
    ("eval-pose", "eval_pose", "ATE/RPE of a trajectory against ground truth"),
    ("eval-bag", "eval_bag", "run the node over a bag and score it"),
    ("eval-zoo", "eval_zoo", "the camera zoo: the node over held-out drives seen by unlike cameras, judged"),
    ("demo", "demo", "the node on a held-out synthetic drive, scored end to end (what `make demo` runs)"),
]

# Commands that hand their arguments to another parser untouched (ROS 2 arguments).
PASSTHROUGH = {"node": "depth_node.ros.node"}


def _load(module: str):
    return importlib.import_module(f"depth_node.commands.{module}")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depth-node", description=__doc__.split("\n")[0],
                                     epilog="depth-node node [--ros-args ...]: the ROS 2 node itself (as "
                                            "mono_depth_node; `ros2 launch depth_node mono_depth.launch.py` starts it "
                                            "with the package's parameter file)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module, help_text in COMMANDS:
        if wanted is not None and wanted != name:
            sub.add_parser(name, help=help_text)  # placeholder: only the chosen command is imported
            continue
        try:
            mod = _load(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("depth_node.commands"):
                continue  # command not part of this build
            raise
        mod.register(sub, name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((i for i, a in enumerate(argv) if a not in ("-v", "--verbose")), len(argv))
    if first < len(argv) and argv[first] in PASSTHROUGH:  # `depth-node [-v] node --ros-args ...`
        if first:
            logging.basicConfig(level=logging.DEBUG)
        return int(importlib.import_module(PASSTHROUGH[argv[first]]).main(argv[first + 1:]) or 0)
    parser = build_parser(argv if argv and argv[0] not in ("-h", "--help") else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except DepthNodeError as exc:
        print(f"depth-node {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path given on the command line: a file where a folder goes, no permission, disk full
        if args.verbose:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"depth-node {args.command}: error: {exc.strerror or exc}{where} (check the path and its permissions; "
              "-v shows where it happened)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
