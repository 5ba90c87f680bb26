"""Vegetation and terrain: trees and lawns."""
from __future__ import annotations

import numpy as np

from .canvas import Part
from .palette import BARK, FOLIAGE, GRASS, LABEL
from .shapes import cutout, ellipse, ground, rect
from .street import Street


def tree(street: Street, x, y, z) -> None:
    rng = street.rng
    height = rng.uniform(4, 10)
    crown_base = height * rng.uniform(0.3, 0.5)
    trunk = rng.uniform(0.2, 0.4)
    parts = [Part([cutout(x, y, z, rect(-trunk / 2, trunk / 2, 0, crown_base + 0.5))], LABEL["vegetation"],
                  street.colour(BARK))]
    leaves = street.colour(FOLIAGE)
    radius = (height - crown_base) / 2
    for _ in range(rng.integers(5, 10)):
        s, t = rng.normal(0, radius * 0.5), crown_base + radius + rng.normal(0, radius * 0.4)
        r = radius * rng.uniform(0.4, 0.8)
        parts.append(Part([cutout(x, y, z, ellipse(r, r * rng.uniform(0.8, 1.1), s, t))],
                          LABEL["vegetation"], np.clip(leaves * rng.uniform(0.8, 1.2), 0, 255)))
    street.add_thing(x, y, parts)
    if not street.overcast:
        centre = np.array([x, y]) + street.shadow_offset(crown_base + radius)
        blob = np.column_stack([centre + ellipse(radius, radius), np.full(14, z)])
        street.shadows.append(blob)


def lawn(street: Street, side, d0, d1) -> None:
    for a, b in street.spans(street.x_near, street.x_far):
        street.ground.append(Part([ground(a, b, street.y_at(side, d0), street.y_at(side, d1), street.kerb_height)],
                                  LABEL["terrain"], street.colour(GRASS)))
