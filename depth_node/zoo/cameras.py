"""The zoo's cameras: one table, each row a held-out drive (seed ≥ 3001: training drives use seeds 1–48 and
validation 1001–1003) with the scene kind and camera it is rendered with. The ranges are the ones the issue's
acceptance names (FOV 45°–100°, mounting height 0.3–2.0 m, aspect 10:3, 16:9, 4:3, street / sidewalk / indoor),
checked when a row is made, so a zoo can never quietly score a camera outside what it claims to cover."""

from __future__ import annotations

from dataclasses import dataclass

from depth_node.errors import DepthNodeError

HELD_OUT_MIN_SEED = 3001
HFOV_RANGE = (45.0, 100.0)
HEIGHT_RANGE = (0.3, 2.0)
ASPECTS = ("10:3", "16:9", "4:3")
KINDS = ("street", "sidewalk", "indoor")
TRAINING = "training"  # the reference row: the synthetic KITTI-like training camera on a held-out street drive
TRAINING_HFOV_DEG = 81.4  # what the renderer's 10:3 pinhole uses when no FOV is set (KITTI_HFOV_DEG)


@dataclass(frozen=True)
class ZooCamera:
    name: str
    seed: int
    kind: str  # scene.kind
    hfov_deg: float
    aspect: str
    height_m: float
    pitch_deg: float = 0.0
    layout: str = ""  # indoor.layout (indoor only)

    def __post_init__(self) -> None:
        problems = []
        if self.seed < HELD_OUT_MIN_SEED:
            problems.append(f"seed {self.seed} < {HELD_OUT_MIN_SEED} (training and validation drives use lower "
                            "seeds; a zoo drive must be held out)")
        if not HFOV_RANGE[0] <= self.hfov_deg <= HFOV_RANGE[1]:
            problems.append(f"horizontal FOV {self.hfov_deg}° outside {HFOV_RANGE[0]:g}°–{HFOV_RANGE[1]:g}°")
        if not HEIGHT_RANGE[0] <= self.height_m <= HEIGHT_RANGE[1]:
            problems.append(f"mounting height {self.height_m} m outside {HEIGHT_RANGE[0]:g}–{HEIGHT_RANGE[1]:g} m")
        if self.aspect not in ASPECTS:
            problems.append(f"aspect {self.aspect!r} is not one of {', '.join(ASPECTS)}")
        if self.kind not in KINDS:
            problems.append(f"scene kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.layout and self.kind != "indoor":
            problems.append("indoor.layout is for indoor scenes only")
        if problems:
            raise DepthNodeError(f"zoo camera {self.name!r}: " + "; ".join(problems) +
                                 ". Pick settings inside the zoo's ranges (depth_node/zoo/cameras.py).")

    def overrides(self, width: int) -> list[str]:
        """`--set` strings for `DriveConfig.with_overrides` (the same keys `depth-node synth --set` takes)."""
        out = [f"scene.kind={self.kind}", f"camera.width={width}", f"camera.aspect={self.aspect}",
               f"camera.hfov_deg={self.hfov_deg}", f"camera.height_m={self.height_m}",
               f"camera.pitch_deg={self.pitch_deg}"]
        return out + ([f"indoor.layout={self.layout}"] if self.layout else [])

    def describe(self) -> str:
        where = f"{self.kind}" + (f" {self.layout}" if self.layout else "")
        pitch = f", pitch {self.pitch_deg:g}°" if self.pitch_deg else ""
        return f"{where}, {self.hfov_deg:g}° HFOV, {self.height_m:g} m, {self.aspect}{pitch}"


ZOO: tuple[ZooCamera, ...] = (
    ZooCamera(TRAINING, 3001, "street", TRAINING_HFOV_DEG, "10:3", 1.65),
    ZooCamera("street_wide_low", 3002, "street", 100.0, "16:9", 1.0),
    ZooCamera("street_narrow_high", 3003, "street", 45.0, "4:3", 2.0),
    ZooCamera("street_pitched", 3004, "street", 60.0, "10:3", 1.3, pitch_deg=5.0),
    ZooCamera("sidewalk_low", 3005, "sidewalk", 90.0, "16:9", 0.3),
    ZooCamera("sidewalk_robot", 3006, "sidewalk", 70.0, "4:3", 0.6),
    ZooCamera("indoor_corridor", 3007, "indoor", 70.0, "4:3", 0.5, layout="corridor"),
    ZooCamera("indoor_warehouse", 3008, "indoor", 100.0, "16:9", 1.2, layout="warehouse"),
    ZooCamera("indoor_office", 3009, "indoor", 55.0, "10:3", 1.0, layout="office"),
)


def select(names: list[str] | None) -> list[ZooCamera]:
    """The zoo rows named (all when None), always with the training camera first: every row is judged against it."""
    by_name = {c.name: c for c in ZOO}
    wanted = list(names or by_name)
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise DepthNodeError(f"unknown zoo camera(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[TRAINING]] + [by_name[n] for n in dict.fromkeys(wanted) if n != TRAINING]
