"""`depth-node bag-info`: what a rosbag2 bag holds, read to its last message (so truncation shows)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text + " (MCAP or sqlite3; bag folder or file).")
    p.add_argument("bag", help="bag directory (with metadata.yaml) or a .mcap/.db3 file")
    p.add_argument("--json", metavar="PATH", help="also write the summary as JSON ('-' for stdout only)")
    p.set_defaults(func=run)


def _stamp(ns: int) -> str:
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return f"{sec}.{nsec:09d} s"


def format_summary(info: dict) -> str:
    lines = [
        f"bag:       {info['path']} ({info['storage']})",
        f"messages:  {info['messages']}",
        f"duration:  {info['duration_s']:.3f} s",
        f"start:     {_stamp(info['start_ns'])}",
        f"end:       {_stamp(info['end_ns'])}",
        "topics:",
    ]
    width = max([len(t["topic"]) for t in info["topics"]] + [5])
    twidth = max([len(t["type"]) for t in info["topics"]] + [4])
    for t in info["topics"]:
        rate = f"{t['rate_hz']:.2f} Hz" if t["rate_hz"] else "-"
        lines.append(f"  {t['topic']:<{width}}  {t['type']:<{twidth}}  {t['count']:>7}  {rate:>10}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from depth_node.io.bags import summarize

    info = summarize(args.bag)
    if args.json == "-":
        print(json.dumps(info, indent=2))
        return 0
    print(format_summary(info))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(info, indent=2) + "\n")
    return 0
