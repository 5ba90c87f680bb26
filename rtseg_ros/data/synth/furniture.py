"""Street furniture: poles, street lamps, traffic signs and lights, bins, parked bicycles."""
from __future__ import annotations

import numpy as np

from .canvas import Part
from .palette import BIN, LABEL, METAL
from .people import bicycle, rider
from .shapes import cutout, ellipse, rect, regular
from .street import LEFT, RIGHT, Street
from .vegetation import tree


def pole(street: Street, x, y, z, height, width, colour, arm=0.0) -> list[Part]:
    """A pole, optionally with an arm over the road (a street lamp or a mast for signals)."""
    polys = [cutout(x, y, z, rect(-width / 2, width / 2, 0, height))]
    if arm:
        reach = -np.sign(y - street.camera.y) * arm  # towards the road centre, in image-right units
        polys.append(cutout(x, y, z, rect(min(0, reach), max(0, reach), height - 0.15, height)))
    return [Part(polys, LABEL["pole"], street.lit(colour, (-1, 0, 0)))]


def sign(street: Street, x, y, z) -> list[Part]:
    """A traffic sign plate seen from the front (or, sometimes, its grey back) centred at height z."""
    rng = street.rng
    size = rng.uniform(0.55, 0.9)
    kind = rng.choice(["prohibitory", "mandatory", "warning", "info", "stop", "priority", "back"])
    outline = {"prohibitory": regular(16, size / 2), "mandatory": regular(16, size / 2),
               "warning": regular(3, size * 0.6, np.pi / 2), "stop": regular(8, size / 2, np.pi / 8),
               "priority": regular(4, size / 2), "info": rect(-size / 2, size / 2, -size / 3, size / 3),
               "back": regular(16, size / 2)}[kind]
    white, red, blue = (235, 235, 230), (200, 30, 35), (30, 75, 165)
    layers = {"prohibitory": [(red, 1.0), (white, 0.75)], "mandatory": [(blue, 1.0), (white, 0.0)],
              "warning": [(red, 1.0), (white, 0.7)], "stop": [(red, 1.0)],
              "priority": [(white, 1.0), ((235, 190, 30), 0.75)],
              "info": [(white, 1.0), (blue if rng.random() < 0.5 else (30, 120, 60), 0.85)],
              "back": [((165, 168, 170), 1.0)]}[kind]
    shade = rng.uniform(0.75, 1.05)
    parts = [Part([cutout(x, y, z, outline * scale)], LABEL["traffic sign"], np.array(c, float) * shade)
             for c, scale in layers if scale]
    if kind in ("mandatory", "stop", "warning"):  # a symbol: arrow shaft or bar
        symbol = rect(-size * 0.06, size * 0.06, -size * 0.22, size * 0.22) if kind != "stop" else \
            rect(-size * 0.3, size * 0.3, -size * 0.06, size * 0.06)
        parts.append(Part([cutout(x, y, z, symbol)], LABEL["traffic sign"],
                          np.array(white if kind != "warning" else (20, 20, 20), float) * shade))
    return parts


def signal(street: Street, x, y, z) -> list[Part]:
    """A three-lamp traffic light housing (bottom at height z) facing the camera."""
    rng = street.rng
    w, h = rng.uniform(0.3, 0.4), rng.uniform(0.85, 1.05)
    housing = np.array((190, 160, 40) if rng.random() < 0.25 else (30, 32, 30), float) * rng.uniform(0.8, 1.2)
    parts = [Part([cutout(x, y, z, rect(-w / 2, w / 2, 0, h))], LABEL["traffic light"], housing)]
    if rng.random() < 0.4:  # back plate with a white border
        parts.insert(0, Part([cutout(x, y, z, rect(-w, w, -0.1, h + 0.1))], LABEL["traffic light"],
                             np.array((225, 225, 220), float)))
    lit = rng.integers(3)
    for i, colour in enumerate(((60, 235, 150), (255, 175, 30), (255, 45, 35))):  # bottom to top
        c = np.array(colour, float) if i == lit else np.array((45, 45, 40), float)
        parts.append(Part([cutout(x, y, z, ellipse(w * 0.3, w * 0.3, 0, h * (i + 0.5) / 3, 10))],
                          LABEL["traffic light"], c))
    return parts


def sidewalk_furniture(street: Street, side) -> None:
    rng, z, sw = street.rng, street.kerb_height, street.sidewalk[side]
    near_kerb = street.y_at(side, 0.5)
    metal = street.colour(METAL)
    for x in np.arange(street.x_near + rng.uniform(0, 20), street.x_far * 0.6, rng.uniform(20, 35)):
        if not street.in_crossing(x, 1):  # street lamps
            parts = pole(street, x, near_kerb, z, rng.uniform(6, 9), rng.uniform(0.14, 0.22), metal, arm=1.5)
            if rng.random() < 0.3:
                parts += sign(street, x, near_kerb, z + rng.uniform(2.3, 3.0))
            street.add_thing(x, near_kerb, parts)
    for _ in range(rng.integers(1, 4)):  # traffic signs on their own posts
        x = rng.uniform(street.x_near + 4, 80)
        if not street.in_crossing(x, 1):
            height = rng.uniform(2.0, 2.8)
            y = street.y_at(side, rng.uniform(0.3, 0.8))
            parts = pole(street, x, y, z, height, rng.uniform(0.06, 0.09), street.colour(METAL))
            street.add_thing(x, y, parts + sign(street, x, y, z + height))
    if street.side_kind[side] == "city" and rng.random() < 0.5:  # a row of street trees
        for x in np.arange(street.x_near + rng.uniform(0, 10), 100, rng.uniform(8, 14)):
            if not street.in_crossing(x, 2):
                tree(street, x, street.y_at(side, min(1.0, sw / 2)), z)
    for _ in range(rng.integers(0, 5)):  # bins, bollards, cabinets: Cityscapes "static", ignored
        x, y = rng.uniform(street.x_near + 2, 60), street.y_at(side, rng.uniform(0.3, sw - 0.3))
        if street.in_crossing(x, 1):
            continue
        w, h = rng.choice([(0.55, 1.0), (0.15, 0.9), (0.5, 1.3)], axis=0)
        faces = street.box(x, x + w, y - w / 2, y + w / 2, z, z + h)
        colour = street.colour(BIN)
        street.add_thing(x, y, [Part([f], LABEL["static"], street.lit(colour, n)) for n, f in faces])
    for _ in range(rng.integers(0, 3)):  # parked bicycles, across the sidewalk so we see them side-on
        x, y = rng.uniform(street.x_near + 4, 50), street.y_at(side, rng.uniform(0.5, sw - 0.2))
        if not street.in_crossing(x, 1):
            street.add_thing(x, y, bicycle(street, x, y, z, rng.choice([-1, 1])))


def crossing_furniture(street: Street) -> None:
    """Traffic lights at the corners (some on masts over the road) and cyclists crossing."""
    if not street.crossing:
        return
    rng = street.rng
    metal = street.colour(METAL)
    for side in (LEFT, RIGHT):
        for x in (street.crossing[0] - 1.0, street.crossing[1] + 1.0):
            if rng.random() < 0.2:
                continue
            y, z, width = street.y_at(side, 0.6), street.kerb_height, rng.uniform(0.12, 0.2)
            if rng.random() < 0.4:  # a mast with a second signal hanging over the lanes
                height, arm = rng.uniform(5.5, 6.5), rng.uniform(3, 6)
                parts = pole(street, x, y, z, height, width, metal, arm=arm)
                parts += signal(street, x, y - side * arm * 0.85, z + height - 1.2)
            else:
                height = rng.uniform(3.2, 4.0)
                parts = pole(street, x, y, z, height, width, metal)
            parts += signal(street, x, y, z + height - 1.1 if height < 5 else z + 2.2)
            street.add_thing(x, y, parts)
    for _ in range(rng.integers(0, 3)):
        x = rng.uniform(*street.crossing)
        y = rng.uniform(street.edge[RIGHT] + 1, street.edge[LEFT] - 1)
        facing = rng.choice([-1, 1])
        street.add_thing(x, y, bicycle(street, x, y, 0.0, facing) + rider(street, x, y, facing))
