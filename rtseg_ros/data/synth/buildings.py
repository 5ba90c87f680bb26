"""Buildings: the skyline at the far end of the street and the rows of blocks along its sides."""
from __future__ import annotations

import numpy as np

from .canvas import Part
from .palette import FACADE, FOLIAGE, GLASS, LABEL
from .shapes import cutout, upright
from .street import Street


def skyline(street: Street) -> None:
    """A continuous row of distant blocks and tree lines at the far end of the street."""
    x, width = street.x_far, street.x_far * 1.2
    y = -width
    while y < width:
        w = street.rng.uniform(8, 40)
        if street.rng.random() < 0.7:
            part = Part([upright(x, y + w, x, y, 0, street.rng.uniform(5, 45))], LABEL["building"],
                        street.lit(street.colour(FACADE, noise=5), (-1, 0, 0)))
        else:
            crown = [[0, 0], *(np.column_stack([np.linspace(0, w, 7), street.rng.uniform(6, 15, 7)])), [w, 0]]
            part = Part([cutout(x, y + w, 0, crown)], LABEL["vegetation"], street.colour(FOLIAGE))
        street.backdrop.append((street.distance(x, y + w / 2), [part]))
        y += w


def buildings(street: Street, side, d) -> None:
    """A row of blocks along the street, with windows, from behind the camera to the far end."""
    rng = street.rng
    x = street.camera.x - rng.uniform(0, 10)
    while x < street.x_far:
        length = rng.uniform(6, 30)
        for a, b in street.spans(x, min(x + length, street.x_far)):
            block(street, side, a, b, street.y_at(side, d + rng.uniform(0, 1.5) * (rng.random() < 0.4)))
        x += length


def block(street: Street, side, x0, x1, y) -> None:
    rng = street.rng
    height, depth = rng.uniform(6, 28), 15.0
    wall = street.colour(FACADE)
    parts = [Part([upright(x0, y, x1, y, 0, height)], LABEL["building"], street.lit(wall, (0, -side, 0)))]
    if x0 > street.camera.x:  # the end wall facing us
        parts.append(Part([upright(x0, y + side * depth, x0, y, 0, height)], LABEL["building"],
                          street.lit(wall, (-1, 0, 0))))
    # windows: a grid on the facade, a little off the wall plane so they stay in front of it
    floor, pitch = rng.uniform(2.8, 3.6), rng.uniform(2.0, 3.5)
    win_w, win_h = pitch * rng.uniform(0.35, 0.65), floor * rng.uniform(0.4, 0.6)
    cols = np.arange(x0 + pitch * 0.5, x1 - win_w, pitch)
    rows = np.arange(floor * (1 + rng.uniform(0.15, 0.3)), height - win_h - 0.5, floor)
    glass = [street.colour(GLASS, noise=10) for _ in range(3)]
    panes = [[] for _ in glass]
    yw = y - side * 0.02
    for row in rows:
        for col in cols:
            panes[rng.integers(len(glass))].append(upright(col, yw, col + win_w, yw, row, row + win_h))
    if rng.random() < 0.5:  # shop fronts
        panes[0] += [upright(c, yw, c + pitch * 0.85, yw, 0.4, floor * 0.8)
                     for c in np.arange(x0 + 0.3, x1 - pitch, pitch)]
    parts += [Part(p, LABEL["building"], street.lit(g, (0, -side, 0))) for g, p in zip(glass, panes) if p]
    street.buildings.append((street.distance(max(x0, street.camera.x), y), parts))
    if not street.overcast:
        offset = street.shadow_offset(height)
        if offset[1] * side < 0:  # the shadow falls towards the street
            street.shadows.append(np.array([[x0, y, 0], [x1, y, 0], [x1 + offset[0], y + offset[1], 0],
                                            [x0 + offset[0], y + offset[1], 0]]))
