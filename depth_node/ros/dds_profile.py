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
import sys
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
    """Set the chosen profile in the environment (before rclpy.init); returns why it was chosen. What the log
    may claim is `confirm(why)`'s, once the node exists."""
    from depth_node.paths import config_file

    env = os.environ if env is None else env
    try:
        shipped = config_file(PROFILE_NAME)
    except Exception:  # an install without the config folder: keep the defaults
        shipped = None
    path, why = choose_profile(env, shipped)
    if env is os.environ:
        _applied.clear()
    if path is not None:
        names = set_profile(env, path)
        if env is os.environ and path == shipped:  # only the shipped profile's segment size is known
            # segments that exist already are other processes' (another instance of the node on this host): this
            # process may map them too, so they cannot show that its own participant took the profile
            _applied.update(path=str(path), variable="/".join(names), before="\n".join(existing_segments()))
    return why


# The variable each Fast DDS major version reads. 3.x still reads the 2.x name but logs a deprecation
# warning; 2.x does not know the 3.x name. So set the one variable the installed version reads.
PROFILE_VARIABLE = {2: "FASTRTPS_DEFAULT_PROFILES_FILE", 3: "FASTDDS_DEFAULT_PROFILES_FILE"}
_LIBRARY = {2: "libfastrtps.so", 3: "libfastdds.so"}  # 2.x ships libfastrtps, 3.x libfastdds
SEGMENT_PREFIXES = ("fastrtps_", "fastdds_")  # shared-memory segment names of Fast DDS 2.x and 3.x
_applied: dict[str, str] = {}  # what apply() set in this process: {"path": ..., "variable": ...}


def _library_dirs(env: MutableMapping[str, str]) -> list[Path]:
    """Where Fast DDS can be: the ROS installations on AMENT_PREFIX_PATH (apt, colcon), LD_LIBRARY_PATH, and
    this interpreter's prefix (PyPI's ros-* wheels put their libraries in <venv>/lib)."""
    dirs = [Path(p) / "lib" for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs += [Path(p) for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(sys.prefix) / "lib")
    return dirs


def fast_dds_major(env: MutableMapping[str, str], dirs: list[Path] | None = None) -> int | None:
    """The installed Fast DDS major version (2 or 3), from its library's name in the first directory that holds
    one; None when none is found. Not from ROS_DISTRO: the PyPI wheels do not set it."""
    for d in _library_dirs(env) if dirs is None else dirs:
        found = [major for major, lib in _LIBRARY.items() if any(d.glob(lib + "*"))]
        if found:
            return max(found)
    return None


def set_profile(env: MutableMapping[str, str], path: Path, major: int | None = None) -> list[str]:
    """Point Fast DDS at `path` under the variable the installed version reads; both names when the version is
    unknown (2.x reads its own, 3.x reads its own first). Returns the variables set."""
    major = fast_dds_major(env) if major is None else major
    names = [PROFILE_VARIABLE[major]] if major in PROFILE_VARIABLE else [PROFILE_VARIABLE[3], PROFILE_VARIABLE[2]]
    for name in names:
        env[name] = str(path)
    return names


def existing_segments() -> list[str]:
    """Every Fast DDS shared-memory segment file in /dev/shm now."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return []
    return sorted(f"{SHM_DIR}/{n}" for n in names if n.startswith(SEGMENT_PREFIXES))


def mapped_segments(pid: int | str = "self", min_bytes: int = SEGMENT_BYTES) -> list[str]:
    """Fast DDS shared-memory segments (2.x or 3.x names) of at least `min_bytes` that process `pid` maps."""
    found = set()
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        path = parts[-1] if len(parts) >= 6 else ""
        if path.startswith(SHM_DIR + "/") and Path(path).name.startswith(SEGMENT_PREFIXES):
            try:
                if os.path.getsize(path) >= min_bytes:
                    found.add(path)
            except OSError:
                continue
    return sorted(found)


def confirm(why: str) -> tuple[bool, str]:
    """After the participant exists (the node is created): (True, a sentence claiming only what was checked) or
    (False, a warning) when the profile apply() set is not in effect, i.e. no large segment is mapped."""
    if not _applied:
        return True, why
    if not Path("/proc/self/maps").exists():
        return True, f"{why} (set in {_applied['variable']}; not verified: no /proc on this system)"
    before = set(_applied.get("before", "").split("\n"))
    segments = [s for s in mapped_segments() if s not in before]  # this participant's own, not another node's
    if segments:
        return True, f"{why}; verified: Fast DDS mapped its {SEGMENT_BYTES >> 20} MB segment {segments[0]}"
    return False, (f"the Fast DDS profile {_applied['path']} was set in {_applied['variable']} but no "
                   f"{SEGMENT_BYTES >> 20} MB shared-memory segment is mapped: the profile is NOT in effect and "
                   f"Fast DDS runs with its defaults (does this Fast DDS read {_applied['variable']}? set "
                   f"{' or '.join(PROFILE_VARIABLE.values())} yourself, or {ENV}=none to silence this)")
