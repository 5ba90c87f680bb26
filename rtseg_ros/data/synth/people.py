"""People: pedestrians on the sidewalks and the crossing, cyclists and their bicycles."""
from __future__ import annotations

import numpy as np

from .canvas import Part
from .palette import CAR_PAINT, CLOTHES, LABEL, SKIN
from .shapes import cutout, ellipse, limb, rect
from .street import LEFT, RIGHT, Street


def bicycle(street: Street, x, y, z, facing) -> list[Part]:
    """Side view of a bicycle in the plane x = const, heading to the image right if facing > 0."""
    f, r = facing, street.rng.uniform(0.31, 0.36)
    rear, front, crank = (-0.52 * f, r), (0.52 * f, r), (0.0, r)
    seat, bar = (-0.18 * f, r + 0.6), (0.42 * f, r + 0.65)
    ring = ellipse(r, r, n=20)
    ring = np.vstack([ring, ring[:1]])  # closed, as an open polyline
    wheels = [cutout(x, y, z, ring + hub) for hub in (rear, front)]
    frame = [cutout(x, y, z, np.array(p)) for p in ((rear, seat, crank, rear), (seat, bar, front), (crank, bar))]
    return [Part(wheels, LABEL["bicycle"], np.array((25, 25, 25), float), line_width=0.045),
            Part(frame, LABEL["bicycle"], street.colour(CAR_PAINT), line_width=0.035)]


def rider(street: Street, x, y, facing) -> list[Part]:
    """Someone riding the bicycle drawn by ``bicycle`` at the same place."""
    f = facing
    hip, shoulder, head = (-0.15 * f, 0.98), (0.1 * f, 1.5), (0.17 * f, 1.68)
    hand, knee, pedal = (0.42 * f, 1.0), (0.12 * f, 0.62), (0.02 * f, 0.2)
    legs = [limb(*hip, *knee, 0.16, 0.12), limb(*knee, *pedal, 0.12, 0.1)]
    upper = [limb(*hip, *shoulder, 0.3, 0.38), limb(*shoulder, *hand, 0.1, 0.08)]
    head_colour = street.colour(SKIN, noise=4) if street.rng.random() < 0.5 else street.colour(CLOTHES)  # or a helmet
    return [Part([cutout(x, y, 0, p) for p in legs], LABEL["rider"], street.colour(CLOTHES)),
            Part([cutout(x, y, 0, p) for p in upper], LABEL["rider"], street.colour(CLOTHES)),
            Part([cutout(x, y, 0, ellipse(0.1, 0.12, *head))], LABEL["rider"], head_colour)]


def person(street: Street, x, y, z) -> None:
    """A pedestrian seen from the front or back; outlines in units of body height."""
    rng = street.rng
    h = rng.uniform(1.55, 1.95) if rng.random() < 0.9 else rng.uniform(1.0, 1.4)  # adults, children
    stride, swing = rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1)
    legs = [limb(-0.07, 0.52, -0.07 + stride, 0.0, 0.1, 0.07), limb(0.07, 0.52, 0.07 - stride, 0.0, 0.1, 0.07)]
    torso_and_arms = [np.array([[-0.1, 0.47], [0.1, 0.47], [0.12, 0.82], [-0.12, 0.82]]),
                      limb(-0.12, 0.82, -0.15 + swing, 0.44, 0.06, 0.045),
                      limb(0.12, 0.82, 0.15 - swing, 0.44, 0.06, 0.045)]
    neck_and_face = [rect(-0.025, 0.025, 0.81, 0.87), ellipse(0.055, 0.068, 0, 0.925)]
    hair = [ellipse(0.058, 0.035, 0, 0.965)]
    hair_colour = street.colour(((30, 25, 20), (90, 60, 35), (160, 130, 80), (120, 120, 120)))
    parts = [Part([cutout(x, y, z, o * h) for o in outlines], LABEL["person"], colour)
             for outlines, colour in ((legs, street.colour(CLOTHES)), (torso_and_arms, street.colour(CLOTHES)),
                                      (neck_and_face, street.colour(SKIN, noise=4)), (hair, hair_colour))]
    street.add_thing(x, y, parts)
    if not street.overcast:  # a thin dark quad from the feet away from the sun
        foot = np.array([x, y])
        tip = foot + street.shadow_offset(h)
        along = tip - foot
        across = np.array([-along[1], along[0]]) / max(np.hypot(*along), 1e-6) * 0.2
        quad = np.array([foot - across, foot + across, tip + across, tip - across])
        street.shadows.append(np.column_stack([quad, np.full(4, z)]))


def pedestrians(street: Street) -> None:
    rng = street.rng
    for side in (LEFT, RIGHT):
        for _ in range(rng.integers(0, 7)):
            x = rng.uniform(street.x_near + 3, 70)
            if not street.in_crossing(x, 0.5):
                person(street, x, street.y_at(side, rng.uniform(0.4, street.sidewalk[side] - 0.3)), street.kerb_height)
    if street.crossing:
        for _ in range(rng.integers(0, 4)):  # on the zebra crossing
            x = street.crossing[0] - rng.uniform(0.8, 3.4)
            person(street, x, rng.uniform(street.edge[RIGHT], street.edge[LEFT]), 0.0)
