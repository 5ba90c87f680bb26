"""Each side of the street: kerb, sidewalk, then a city, park or walled side behind it."""
from __future__ import annotations

import numpy as np

from .buildings import buildings
from .canvas import Part
from .furniture import sidewalk_furniture
from .palette import BARK, CONCRETE, FOLIAGE, LABEL, METAL, PAVING
from .shapes import ground, upright
from .street import Street
from .vegetation import lawn, tree


def roadside(street: Street, side: int) -> None:
    rng, z, kind = street.rng, street.kerb_height, street.side_kind[side]
    sw, edge = street.sidewalk[side], street.edge[side]
    paving = street.colour(PAVING)
    stone = np.clip(paving * rng.uniform(1.0, 1.25), 0, 255)  # kerb stones
    for a, b in street.spans(street.x_near, street.x_far):
        street.ground.append(Part([ground(a, b, edge, street.y_at(side, sw), z)], LABEL["sidewalk"], paving))
        street.ground.append(Part([upright(a, edge, b, edge, 0, z)], LABEL["sidewalk"],
                                  street.lit(stone, (0, -side, 0))))
    if street.crossing:  # the kerb facing us across the crossing
        c1 = street.crossing[1]
        street.ground.append(Part([upright(c1, edge, c1, street.y_at(side, sw + 40), 0, z)],
                                  LABEL["sidewalk"], street.lit(stone, (-1, 0, 0))))
    # slab joints
    joints = [ground(x, x + 0.04, edge, street.y_at(side, sw), z)
              for x in np.arange(street.x_near, 40, rng.uniform(1.0, 2.5)) if not street.in_crossing(x)]
    if joints:
        street.ground.append(Part(joints, LABEL["sidewalk"], paving * 0.8))

    if kind == "city":
        garden = rng.uniform(1.5, 5) if rng.random() < 0.3 else 0.0
        if garden:
            lawn(street, side, sw, sw + garden)
            boundary(street, side, sw, rng.choice(["fence", "hedge"]))
        buildings(street, side, sw + garden)
    elif kind == "park":
        depth = rng.uniform(15, 40)
        lawn(street, side, sw, sw + depth)
        if rng.random() < 0.7:
            boundary(street, side, sw, rng.choice(["fence", "hedge"]))
        for _ in range(rng.integers(6, 16)):
            x = rng.uniform(street.x_near + 3, 120)
            if not street.in_crossing(x, 2):
                tree(street, x, street.y_at(side, sw + rng.uniform(1.5, depth)), z)
        if rng.random() < 0.6:
            buildings(street, side, sw + depth)
    else:
        lawn(street, side, sw, sw + 20)
        boundary(street, side, sw, "wall")
        for x in np.arange(street.x_near + rng.uniform(0, 8), 90, rng.uniform(5, 10)):
            if not street.in_crossing(x, 2):
                tree(street, x, street.y_at(side, sw + rng.uniform(2, 6)), z)
        buildings(street, side, sw + rng.uniform(8, 20))
    sidewalk_furniture(street, side)


def boundary(street: Street, side, d, kind) -> None:
    """A fence, hedge or wall along the back of the sidewalk, in short segments so that objects on the
    sidewalk sort correctly against it."""
    rng, y, z = street.rng, street.y_at(side, d), street.kerb_height
    height = {"fence": rng.uniform(0.9, 2.0), "hedge": rng.uniform(0.7, 1.6), "wall": rng.uniform(0.8, 3.0)}[kind]
    colour = street.colour({"fence": METAL + BARK, "hedge": FOLIAGE, "wall": CONCRETE}[kind])
    label = LABEL[{"fence": "fence", "hedge": "vegetation", "wall": "wall"}[kind]]
    style = rng.choice(["boards", "bars"]) if kind == "fence" else kind
    bar_pitch = rng.uniform(0.1, 0.2)
    for a, b in street.spans(street.x_near - 1, min(street.x_far, 160)):
        for x in np.arange(a, b, 2.5):
            x1 = min(x + 2.5, b)
            parts = []
            if style == "bars":
                post_and_rails = [upright(x, y, x + 0.08, y, z, z + height),
                                  upright(x, y, x1, y, z + height - 0.08, z + height),
                                  upright(x, y, x1, y, z + 0.1, z + 0.16)]
                bars = [upright(s, y, s + 0.03, y, z, z + height) for s in np.arange(x, x1, bar_pitch)]
                parts.append(Part(post_and_rails + bars, label, street.lit(colour, (0, -side, 0))))
            else:
                face = upright(x, y, x1, y, z, z + height)
                parts.append(Part([face], label, street.lit(colour, (0, -side, 0))))
                if kind != "fence" and z + height < street.camera.z:  # below eye level we see its top
                    top = ground(x, x1, y, y + side * (0.3 if kind == "wall" else 0.8), z + height)
                    parts.append(Part([top], label, street.lit(colour, (0, 0, 1))))
            street.add_thing(x, y, parts)
