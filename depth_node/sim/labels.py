"""Semantic class ids of the synthetic drives (uint16 per pixel), with their Cityscapes train ids.

Our own compact ids rather than Cityscapes' because every class here is present and none is "ignore"; the
mapping lets a Cityscapes-trained segmenter be compared with the ground truth. Instance ids (also uint16)
are 0 for "stuff" (sky, road, sidewalk, terrain) and unique per object within any frame's view.
"""

from __future__ import annotations

from enum import IntEnum


class SemanticClass(IntEnum):
    SKY = 0
    ROAD = 1
    SIDEWALK = 2
    TERRAIN = 3
    BUILDING = 4
    POLE = 5
    TRAFFIC_SIGN = 6
    VEGETATION = 7
    CAR = 8
    OBJECT = 9  # crates, bins, kiosks, cartons
    FLOOR = 10  # indoor floors
    WALL = 11  # indoor walls, doors, windows, skirting
    CEILING = 12  # indoor ceilings and their lights
    FURNITURE = 13  # shelving, desks, chairs, cabinets
    PERSON = 14  # people-sized obstacles


CITYSCAPES_TRAIN_ID: dict[SemanticClass, int] = {
    SemanticClass.SKY: 10,
    SemanticClass.ROAD: 0,
    SemanticClass.SIDEWALK: 1,
    SemanticClass.TERRAIN: 9,
    SemanticClass.BUILDING: 2,
    SemanticClass.POLE: 5,
    SemanticClass.TRAFFIC_SIGN: 7,
    SemanticClass.VEGETATION: 8,
    SemanticClass.CAR: 13,
    SemanticClass.OBJECT: 4,  # closest: fence
    SemanticClass.FLOOR: 0,  # the drivable surface, as road
    SemanticClass.WALL: 3,
    SemanticClass.CEILING: 2,  # closest: building
    SemanticClass.FURNITURE: 4,  # closest: fence
    SemanticClass.PERSON: 11,
}

# Classes whose instances can move in a drive (the lead and oncoming cars); static classes never do.
DYNAMIC_CLASSES = frozenset({SemanticClass.CAR})


def class_names() -> dict[int, str]:
    return {int(c): c.name.lower() for c in SemanticClass}
