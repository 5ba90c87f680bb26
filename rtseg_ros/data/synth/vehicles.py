"""Vehicles: parked cars and the traffic in each lane (cars, trucks, buses)."""
from __future__ import annotations

import numpy as np
import cv2

from .canvas import Part
from .palette import CAR_PAINT, GLASS, LABEL
from .shapes import upright
from .street import LEFT, RIGHT, Street


def traffic(street: Street) -> None:
    rng = street.rng
    for side in (LEFT, RIGHT):
        if not street.parking[side]:
            continue
        y = street.lane_edge[side] + side * 1.1
        x = street.camera.x + rng.uniform(1, 8)
        while x < 90:
            length = 5.0
            if rng.random() < 0.75 and not street.in_crossing(x, 5) and not street.in_crossing(x + length, 5):
                vehicle(street, x, y + rng.normal(0, 0.1), "car", oncoming=rng.random() < 0.5)
            x += length + rng.uniform(0.5, 6)
    for lane, y in enumerate(street.lane_centres):
        oncoming = lane >= street.own_lanes
        ego = abs(y - street.camera.y) < street.lane_width / 2
        x = street.camera.x + rng.uniform(9 if ego else 2, 30)
        while x < 160:
            kind = rng.choice(["car", "truck", "bus"], p=[0.8, 0.1, 0.1])
            if not street.in_crossing(x, -2):
                vehicle(street, x, y + rng.normal(0, 0.25), kind, oncoming)
            x += rng.uniform(15, 60)


def vehicle(street: Street, x0, y, kind, oncoming) -> None:
    """A car, truck or bus along the road, its end nearest to the camera at x0 (its front if
    ``oncoming``), centred on lateral position y."""
    rng, label = street.rng, LABEL[kind]
    length, width, height = {"car": (rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9), rng.uniform(1.35, 1.6)),
                             "truck": (rng.uniform(6, 9), 2.5, rng.uniform(3.0, 3.6)),
                             "bus": (rng.uniform(10, 12.5), 2.5, rng.uniform(2.9, 3.3))}[kind]
    x1, y0, y1 = x0 + length, y - width / 2, y + width / 2
    floor = 0.3 if kind == "car" else 0.45
    side = facing_side(street, y0, y1)
    tyre = np.array((22, 22, 22), float)
    axles = (x0 + 0.8, x1 - 0.8)
    # the near tyres show under the body; drawn first, the body covers the rest of them
    parts = [Part([upright(axles[0], y1 - 0.05, axles[0], y1 - 0.3, 0, floor + 0.05),
                   upright(axles[0], y0 + 0.3, axles[0], y0 + 0.05, 0, floor + 0.05)], label, tyre)]
    body = {"car": car, "truck": truck, "bus": bus}[kind]
    parts += body(street, x0, x1, y0, y1, floor, height, side, oncoming)
    if side is not None:
        r, s = (0.32 if kind == "car" else 0.5), side - np.sign(side - street.camera.y) * 0.03
        a = np.linspace(0, 2 * np.pi, 14, endpoint=False)
        parts += [Part([np.column_stack([ax + r * np.cos(a), np.full(14, s), r + r * np.sin(a)])], label, tyre)
                  for ax in axles]
    street.add_thing(x0, float(np.clip(street.camera.y, y0, y1)), parts)
    if not street.overcast:
        foot = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        hull = cv2.convexHull(np.vstack([foot, foot + street.shadow_offset(height / 2)]).astype(np.float32))[:, 0]
        street.shadows.append(np.column_stack([hull, np.zeros(len(hull))]))


def facing_side(street: Street, y0, y1) -> float | None:
    """Lateral position of a vehicle's side that faces the camera; None when we are right behind it."""
    if street.camera.y < y0:
        return y0
    if street.camera.y > y1:
        return y1
    return None


def car(street: Street, x0, x1, y0, y1, floor, height, side, oncoming) -> list[Part]:
    rng, label, length = street.rng, LABEL["car"], x1 - x0
    paint, glass = street.colour(CAR_PAINT), street.colour(GLASS[:2], noise=6)
    waist = height * rng.uniform(0.55, 0.65)  # bonnet and boot lid
    c0, c1 = x0 + length * (0.28 if oncoming else 0.22), x0 + length * (0.78 if oncoming else 0.72)  # cabin
    parts = street.box_parts(label, paint, x0, x1, y0, y1, floor, waist)
    parts += street.box_parts(label, paint, c0, c1, y0 + 0.08, y1 - 0.08, waist, height)
    windows = [upright(c0 - 0.01, y1 - 0.15, c0 - 0.01, y0 + 0.15, waist + 0.05, height - 0.08)]
    if side is not None:
        s = side - np.sign(side - street.camera.y) * 0.09
        windows.append(upright(c0 + 0.1, s, c1 - 0.1, s, waist + 0.05, height - 0.08))
    parts.append(Part(windows, label, glass))
    lamp = (waist - 0.25, waist - 0.1)
    parts.append(Part([upright(x0 - 0.01, y1 - 0.05, x0 - 0.01, y1 - 0.3, *lamp),
                       upright(x0 - 0.01, y0 + 0.3, x0 - 0.01, y0 + 0.05, *lamp)],
                      label, np.array((235, 235, 215) if oncoming else (200, 20, 20), float)))
    plate = upright(x0 - 0.01, (y0 + y1) / 2 + 0.26, x0 - 0.01, (y0 + y1) / 2 - 0.26, floor + 0.1, floor + 0.22)
    return parts + [Part([plate], label, np.array((225, 225, 225), float))]


def truck(street: Street, x0, x1, y0, y1, floor, height, side, oncoming) -> list[Part]:
    """A cab and a taller cargo box; the one farther from the camera is drawn first."""
    label = LABEL["truck"]
    cab, cargo = street.colour(CAR_PAINT), street.colour(((230, 230, 225), (60, 90, 140), (150, 40, 30)))
    if oncoming:
        boxes = [(x0 + 2.2, x1, height, cargo), (x0, x0 + 2.0, 2.8, cab)]
    else:
        boxes = [(x1 - 2.0, x1, 2.8, cab), (x0, x1 - 2.2, height, cargo)]
    return [p for a, b, top, colour in boxes for p in street.box_parts(label, colour, a, b, y0, y1, floor, top)]


def bus(street: Street, x0, x1, y0, y1, floor, height, side, oncoming) -> list[Part]:
    label = LABEL["bus"]
    paint = street.colour(((200, 40, 40), (230, 225, 210), (40, 90, 160), (230, 190, 40)))
    parts = street.box_parts(label, paint, x0, x1, y0, y1, floor, height)
    band = (1.3, height - 0.35)  # the window band, all round
    windows = [upright(x0 - 0.01, y1 - 0.15, x0 - 0.01, y0 + 0.15, *band)]
    if side is not None:
        s = side - np.sign(side - street.camera.y) * 0.02
        windows.append(upright(x0 + 0.5, s, x1 - 0.5, s, *band))
    return parts + [Part(windows, label, street.colour(GLASS[:2], noise=6))]
