"""The road: asphalt, the cross street, patches and lane markings."""
from __future__ import annotations

import numpy as np

from .canvas import Part
from .palette import ASPHALT, FACADE, GRASS, LABEL
from .shapes import ground, upright
from .street import LEFT, RIGHT, Street


def road_surface(street: Street) -> None:
    rng, x0, x1 = street.rng, street.x_near, street.x_far
    street.ground.append(Part([ground(x0, 4000, -4000, 4000)], LABEL["terrain"], street.colour(GRASS)))
    road = street.colour(ASPHALT)
    street.ground.append(Part([ground(x0, x1, street.edge[RIGHT], street.edge[LEFT])], LABEL["road"], road))
    if street.crossing:
        street.ground.append(Part([ground(*street.crossing, -400, 400)], LABEL["road"], road))
        # the cross street ends at a row of buildings
        for side in (LEFT, RIGHT):
            a, b, y = street.crossing[0] - 25, street.crossing[1] + 25, side * rng.uniform(45, 80)
            parts = [Part([upright(a, y, b, y, 0, rng.uniform(8, 25))], LABEL["building"],
                          street.lit(street.colour(FACADE), (0, -side, 0)))]
            street.backdrop.append((street.distance(sum(street.crossing) / 2, y), parts))
    # patched asphalt
    for _ in range(rng.integers(0, 4)):
        px, py = rng.uniform(x0 + 3, 60), rng.uniform(street.edge[RIGHT], street.edge[LEFT] - 1)
        street.ground.append(Part([ground(px, px + rng.uniform(1, 8), py, py + rng.uniform(0.5, 2.5))],
                                  LABEL["road"], road * rng.uniform(0.75, 1.2)))
    markings(street)


def markings(street: Street) -> None:
    rng = street.rng
    paint = np.array((230, 230, 225)) if rng.random() < 0.85 else np.array((225, 190, 70))
    paint = paint * rng.uniform(0.75, 1.0)
    polys = []
    x_end = min(street.x_far, 150)
    dash, gap = rng.uniform(2, 4), rng.uniform(4, 9)
    for i in range(1, street.lanes):
        y = street.lane_edge[RIGHT] + i * street.lane_width
        if i == street.own_lanes and rng.random() < 0.5:  # solid line between the two directions
            segments = [(street.x_near, x_end)]
        else:
            starts = np.arange(street.x_near - rng.uniform(0, dash + gap), x_end, dash + gap)
            segments = [(max(x, street.x_near), min(x + dash, x_end)) for x in starts if x + dash > street.x_near]
        polys += [ground(a, b, y - 0.07, y + 0.07) for x0, x1 in segments for a, b in street.spans(x0, x1)]
    for side in (LEFT, RIGHT):
        if rng.random() < 0.6:  # edge line between lanes and parking / kerb
            y = street.lane_edge[side] - side * 0.2
            polys += [ground(a, b, y - 0.06, y + 0.06) for a, b in street.spans(street.x_near, x_end)]
    if street.crossing:
        c0 = street.crossing[0]
        polys.append(ground(c0 - 4.6, c0 - 4.2, street.lane_edge[RIGHT], street.lane_edge[RIGHT]
                            + street.own_lanes * street.lane_width))  # stop line
        if rng.random() < 0.7:  # zebra crossing
            for y in np.arange(street.edge[RIGHT] + 0.3, street.edge[LEFT] - 0.5, 1.0):
                polys.append(ground(c0 - 3.6, c0 - 0.6, y, y + 0.5))
    for poly in polys:
        street.ground.append(Part([poly], LABEL["road"], paint * rng.uniform(0.85, 1.05)))
