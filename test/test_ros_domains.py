"""The suite's ROS files run beside each other on two workers (test/conftest.py): no ROS_DOMAIN_ID may be used by
two files, or their nodes would see each other's topics."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

# every way a test file names a domain: a DOMAIN constant, ros_env/set_ros_env/LiveNode(N), an env literal, a CLI flag
DOMAIN_USES = re.compile(r'DOMAIN = (\d+)|(?:ros_env|LiveNode)\((\d+)|ROS_DOMAIN_ID="(\d+)"|-domain(?:-id)?", "(\d+)"')


def test_domains_are_unique() -> None:
    users: dict[int, set[str]] = defaultdict(set)
    for path in Path(__file__).parent.glob("test_*.py"):
        for match in DOMAIN_USES.finditer(path.read_text()):
            users[int(next(g for g in match.groups() if g))].add(path.name)
    assert len(users) >= 15, "the pattern no longer finds the suite's domains"
    shared = {d: sorted(files) for d, files in users.items() if len(files) > 1}
    assert not shared, f"domain IDs used by more than one test file: {shared}"
