"""`depth-node play`: publish a bag over ROS 2 with its timing, /clock included (library: `play_bag`)."""

from __future__ import annotations

import argparse

from depth_node.errors import DepthNodeError


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Publishes the stored bytes with reliable QoS; uses the caller's ROS_DOMAIN_ID "
        "and discovery settings.",
    )
    p.add_argument("bag", help="bag directory (with metadata.yaml) or a .mcap/.db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    p.add_argument("--loop", action="store_true", help="start over at the end (until interrupted)")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these topics")
    p.add_argument("--clock", action=argparse.BooleanOptionalAction, default=True,
                   help="publish /clock with bag time for use_sim_time (default on)")
    p.add_argument("--clock-hz", type=float, default=50.0, help="/clock rate between messages (default 50)")
    p.add_argument("--start-delay", type=float, default=0.0, metavar="S",
                   help="seconds to wait after creating publishers, so subscribers can match (default 0)")
    p.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                   help="then wait up to S seconds until every topic has a subscriber (default 0)")
    p.add_argument("--qos-depth", type=int, default=10, help="publisher history depth (default 10)")
    p.add_argument("--best-effort", action="store_true", help="best-effort instead of reliable publishers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_node.ros.bag_player import play_bag

    if args.start_delay < 0:
        raise DepthNodeError(f"--start-delay must be ≥ 0, got {args.start_delay}")
    res = play_bag(
        args.bag,
        rate=args.rate,
        loop=args.loop,
        topics=args.topics,
        clock=args.clock,
        clock_hz=args.clock_hz,
        start_delay=args.start_delay,
        wait_for_subscribers=args.wait_for_subscribers,
        qos_depth=args.qos_depth,
        reliable=not args.best_effort,
    )
    width = max([len(t) for t in res.published] + [5])
    print(f"play: {sum(res.published.values())} messages in {res.wall_s:.2f} s ({res.loops} pass(es))")
    for topic, n in sorted(res.published.items()):
        print(f"  {topic:<{width}}  {n:>7}")
    for topic, msgtype in sorted(res.skipped.items()):
        print(f"  {topic:<{width}}  skipped (no Python class for {msgtype})")
    return 0
