"""The scene composer: lay out a street, draw its elements far to near, then finish the image."""
from __future__ import annotations

import cv2
import numpy as np

from .appearance import finish
from .buildings import skyline
from .camera import Camera
from .canvas import Canvas
from .furniture import crossing_furniture
from .palette import LABEL
from .people import pedestrians
from .road import road_surface
from .roadside import roadside
from .street import LEFT, RIGHT, Street
from .vehicles import traffic


def lay_out_street(rng: np.random.Generator, camera: Camera) -> Street:
    """A street and everything on it. The order is part of the output: each element draws from ``rng``."""
    street = Street(rng, camera)
    skyline(street)
    road_surface(street)
    for side in (LEFT, RIGHT):
        roadside(street, side)
    crossing_furniture(street)
    traffic(street)
    pedestrians(street)
    return street


def hood(canvas: Canvas, rng: np.random.Generator) -> None:
    """The bonnet of the recording car along the bottom edge (Cityscapes "ego vehicle", ignored)."""
    height, width = canvas.label.shape
    top, bulge = rng.uniform(0.05, 0.12) * height, rng.uniform(0.5, 1.0)
    xs = np.linspace(-0.1, 1.1, 40) * width
    ys = height - top * (1 - bulge * ((xs / width - rng.uniform(0.45, 0.55)) * 2) ** 2)
    outline = np.vstack([np.column_stack([xs, ys]), [[1.1 * width, 1.1 * height], [-0.1 * width, 1.1 * height]]])
    pixels = [np.round(outline * (1 << Canvas.SHIFT)).astype(np.int32)]
    colour = tuple(float(c) for c in rng.uniform(15, 70) + rng.normal(0, 5, 3))
    cv2.fillPoly(canvas.label, pixels, LABEL["ego vehicle"], cv2.LINE_8, Canvas.SHIFT)
    cv2.fillPoly(canvas.rgb, pixels, colour, cv2.LINE_8, Canvas.SHIFT)


def generate_scene(rng: np.random.Generator, height: int, width: int,
                   camera: Camera | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one street scene: ``(rgb uint8 H×W×3, Cityscapes label ids uint8 H×W)``.

    ``camera`` defaults to one sampled from ``rng`` (``Camera.sample``); pass it to know the calibration.
    """
    camera = camera or Camera.sample(rng, height, width)
    street = lay_out_street(rng, camera)
    canvas = Canvas(camera, height, width)
    for part in street.ground:
        canvas.draw(part)
    # shadows darken only the ground: everything drawn later stands on top of them
    shade = np.ones((height, width), np.float32)
    for pixels in canvas.pixel_polygons(street.shadows):
        cv2.fillPoly(shade, [pixels], street.ambient, cv2.LINE_8, Canvas.SHIFT)
    canvas.rgb *= shade[..., None]
    for layer in (street.backdrop, sorted(street.buildings, key=lambda item: -item[0]),
                  sorted(street.things, key=lambda item: -item[0])):
        for distance, parts in layer:
            for part in parts:
                canvas.draw(part, distance)
    hood(canvas, rng)
    return finish(canvas, rng, street), canvas.label
