"""One street's layout in vehicle coordinates, and the layers its scene elements are collected in."""
from __future__ import annotations

import numpy as np

from .camera import Camera
from .canvas import Part
from .shapes import ground, upright

LEFT, RIGHT = 1, -1  # road sides, as the sign of y


class Street:
    """Lays out one street in vehicle coordinates and collects what to draw, in four layers: the ground
    and the backdrop (each in order), then buildings and then street objects (each sorted far to near).
    Layer entries carry their distance from the camera, which also sets their haze."""

    def __init__(self, rng: np.random.Generator, camera: Camera):
        self.rng = rng
        self.camera = camera
        self.ground: list[Part] = []
        self.shadows: list[np.ndarray] = []  # ground polygons out of the sun
        self.backdrop: list[tuple[float, list[Part]]] = []
        self.buildings: list[tuple[float, list[Part]]] = []
        self.things: list[tuple[float, list[Part]]] = []
        self._layout()

    # -- helpers
    def colour(self, palette, spread=0.12, noise=8.0) -> np.ndarray:
        """A palette colour with this object's own brightness and cast."""
        base = np.asarray(palette[self.rng.integers(len(palette))], np.float32)
        return np.clip(base * self.rng.uniform(1 - spread, 1 + spread) + self.rng.normal(0, noise, 3), 0, 255)

    def lit(self, colour, normal) -> np.ndarray:
        """Lambert shading of a face with this outward normal under the scene's sun and sky."""
        light = self.ambient + (1 - self.ambient) * max(0.0, float(np.dot(normal, self.sun)))
        return np.clip(np.asarray(colour) * light, 0, 255)

    def distance(self, x, y) -> float:
        return float(np.hypot(x - self.camera.x, y - self.camera.y))

    def add_thing(self, x, y, parts: list[Part]) -> None:
        self.things.append((self.distance(x, y), parts))

    def y_at(self, side, d) -> float:
        """Lateral position d metres outwards from the road edge on ``side``."""
        return self.edge[side] + side * d

    def in_crossing(self, x, margin=0.0) -> bool:
        return self.crossing is not None and self.crossing[0] - margin < x < self.crossing[1] + margin

    def spans(self, x0, x1):
        """[x0, x1] with the crossing cut out."""
        if self.crossing is None or x1 <= self.crossing[0] or x0 >= self.crossing[1]:
            return [(x0, x1)]
        return [(a, b) for a, b in ((x0, self.crossing[0]), (self.crossing[1], x1)) if b - a > 0.1]

    # -- layout
    def _layout(self) -> None:
        rng, cam = self.rng, self.camera
        self.lane_width = rng.uniform(2.8, 3.6)
        self.lanes = int(rng.integers(2, 5))
        self.own_lanes = (self.lanes + 1) // 2  # right-hand traffic: ours are the right-most lanes
        ego_lane = int(rng.integers(self.own_lanes))
        lanes_right = cam.y - (ego_lane + 0.5) * self.lane_width + rng.normal(0, 0.25)
        self.lane_centres = lanes_right + self.lane_width * (np.arange(self.lanes) + 0.5)
        self.parking = {side: rng.random() < 0.45 for side in (LEFT, RIGHT)}
        self.lane_edge = {RIGHT: lanes_right, LEFT: lanes_right + self.lanes * self.lane_width}
        self.edge = {side: self.lane_edge[side] + side * 2.2 * self.parking[side] for side in (LEFT, RIGHT)}
        self.sidewalk = {side: rng.uniform(1.8, 5.0) for side in (LEFT, RIGHT)}
        self.kerb_height = rng.uniform(0.08, 0.16)
        self.x_near = cam.x + 0.8
        self.x_far = rng.uniform(120, 350)
        start = rng.uniform(14, 55)
        self.crossing = (start, start + rng.uniform(8, 16)) if rng.random() < 0.6 else None
        self.side_kind = {side: rng.choice(["city", "park", "wall"], p=[0.55, 0.3, 0.15]) for side in (LEFT, RIGHT)}
        self.overcast = rng.random() < 0.35
        if self.overcast:
            self.sun, self.ambient = np.array([0.0, 0.0, 1.0]), 0.8
        else:
            azimuth, elevation = rng.uniform(-np.pi, np.pi), rng.uniform(0.35, 1.0)
            self.sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                 np.sin(elevation)])
            self.ambient = rng.uniform(0.45, 0.6)

    def shadow_offset(self, height) -> np.ndarray:
        """Ground displacement of the shadow of a point ``height`` metres up."""
        return -self.sun[:2] / max(self.sun[2], 0.2) * height

    # -- boxes (vehicles, bins)
    def box(self, x0, x1, y0, y1, z0, z1) -> list[tuple[tuple, np.ndarray]]:
        """(outward normal, face) for the faces of a box that look at the camera (they never overlap)."""
        cx, cy, cz = self.camera.position
        faces = []
        if cx < x0:
            faces.append(((-1, 0, 0), upright(x0, y1, x0, y0, z0, z1)))
        if cx > x1:
            faces.append(((1, 0, 0), upright(x1, y0, x1, y1, z0, z1)))
        if cy < y0:
            faces.append(((0, -1, 0), upright(x0, y0, x1, y0, z0, z1)))
        if cy > y1:
            faces.append(((0, 1, 0), upright(x0, y1, x1, y1, z0, z1)))
        if cz > z1:
            faces.append(((0, 0, 1), ground(x0, x1, y0, y1, z1)))
        return faces

    def box_parts(self, label, colour, x0, x1, y0, y1, z0, z1) -> list[Part]:
        return [Part([face], label, self.lit(colour, normal)) for normal, face in self.box(x0, x1, y0, y1, z0, z1)]
