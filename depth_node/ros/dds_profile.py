"""Which Fast DDS profile the node's process starts with: the package's large-message shared-memory profile
unless the user configured Fast DDS, chose another middleware, or opted out.

Why the node picks one at all: Fast DDS's built-in shared-memory segment is 512 KB, so a point cloud (1 MB at
320×96 with rgb, 3.9 MB at 640×192) leaves by UDP in 64 KB fragments; the 208 KB default socket buffer drops
some and the reliable repair waits for a heartbeat, so clouds stall for up to seconds (measured here: median
18 ms added, p90 2.5 s). A large segment on the *publisher* side fixes delivery to every same-host
subscriber, RViz with stock settings included, and changes nothing else: the same two transports (shared
memory, UDPv4), the same discovery (ROS_AUTOMATIC_DISCOVERY_RANGE and ROS_DOMAIN_ID still apply).

`DEPTH_NODE_DDS_PROFILE`: unset or `auto` (the rule above), `none` (Fast DDS defaults), or a profile path.
The choice has to be made before rclpy.init creates the participant, so it is an environment variable, not a
ROS parameter (the launch file's `dds_profile` argument sets it).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

ENV = "DEPTH_NODE_DDS_PROFILE"
FASTDDS_ENV = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_NAME = "fastdds_shm_large.xml"
SEGMENT_BYTES = 32 * 1024 * 1024  # the profile's segment_size
SHM_DIR = "/dev/shm"


def _shm_free_bytes(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def choose_profile(env: MutableMapping[str, str], shipped: Path | None, shm_dir: str = SHM_DIR
                   ) -> tuple[Path | None, str]:
    """(profile to use or None, a sentence for the log saying why)."""
    choice = env.get(ENV, "auto").strip()
    if choice.lower() == "none":
        return None, f"Fast DDS defaults ({ENV}=none)"
    if choice and choice.lower() != "auto":
        path = Path(choice).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{ENV}={choice}: no such profile file (use auto, none or a Fast DDS XML path)")
        return path, f"Fast DDS profile {path} ({ENV})"
    set_by_user = next((k for k in FASTDDS_ENV if env.get(k)), None)
    if set_by_user:
        return None, f"the Fast DDS profile in {set_by_user}={env[set_by_user]}"
    rmw = env.get("RMW_IMPLEMENTATION", "")
    if rmw and not rmw.startswith("rmw_fastrtps"):
        return None, f"{rmw}'s own configuration (the shipped profile is for Fast DDS)"
    if shipped is None or not shipped.is_file():
        return None, f"Fast DDS defaults ({PROFILE_NAME} is not installed)"
    free = _shm_free_bytes(shm_dir)
    if free is not None and free < 2 * SEGMENT_BYTES:
        return None, (f"Fast DDS defaults: {shm_dir} has {free / 2**20:.0f} MB free, less than twice the "
                      f"{SEGMENT_BYTES >> 20} MB segment of {PROFILE_NAME} (docker: --shm-size=256m)")
    return shipped, (f"large-message shared-memory profile {shipped} ({ENV}=none keeps Fast DDS defaults; "
                     "clouds over 512 KB otherwise leave by fragmented UDP and can stall)")


def apply(env: MutableMapping[str, str] | None = None) -> str:
    """Set the chosen profile in the environment (before rclpy.init); returns the log sentence."""
    from depth_node.paths import config_file

    env = os.environ if env is None else env
    try:
        shipped = config_file(PROFILE_NAME)
    except Exception:  # an install without the config folder: keep the defaults
        shipped = None
    path, why = choose_profile(env, shipped)
    if path is not None:
        set_profile(env, path)
    return why


FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")  # Fast DDS 2.x: reads FASTRTPS_DEFAULT_PROFILES_FILE


def set_profile(env: MutableMapping[str, str], path: Path) -> None:
    """Point Fast DDS at `path` under the variable this ROS 2 distribution's Fast DDS reads (3.x warns that
    the 2.x name is deprecated; 2.x does not know the 3.x name). No ROS_DISTRO: the PyPI Kilted wheels."""
    key = FASTDDS_ENV[1] if env.get("ROS_DISTRO", "").lower() in FAST_DDS_2_DISTROS else FASTDDS_ENV[0]
    env[key] = str(path)
