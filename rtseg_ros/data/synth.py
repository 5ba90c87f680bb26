"""Synthetic street scenes in Cityscapes layout (``rtseg-synth``): data for smoke runs, demos and tests.

A scene is laid out in Cityscapes' vehicle frame (ISO 8855: x forward, y left, z up, metres, origin on
the ground under the car) and projected through the pinhole camera written to ``camera/*.json``, so the
road narrows towards the vanishing point and everything shrinks with distance. Surfaces are painted far
to near; each one goes into the RGB image and the label image through the same ``cv2.fillPoly`` call on
the same pixel polygon (8-connected, no anti-aliasing), so the labels are exactly what was drawn.
Shadows, texture, haze, lighting, a slight optical blur and sensor noise are applied to the RGB image
afterwards: they change colours, never where a class is.

Every image gets its own generator seeded from ``(seed, split, index)``, so a larger ``--num`` adds
images without changing the earlier ones, and the same arguments give byte-identical files.
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import id2label, name2label
from tqdm import tqdm

from rtseg_ros.data.labels import IGNORE_INDEX, get_dataset_info
from rtseg_ros.fileio import write_bytes_atomic

CITYSCAPES = get_dataset_info("cityscapes")
# Fictitious cities; validation gets its own, as in Cityscapes.
CITIES = {"train": ("aldenmoor", "brackwater"), "val": ("corvale",)}
SPLIT_SEED = {"train": 0, "val": 1}
ANNOTATED_FRAME = 19  # Cityscapes annotates the 20th frame of each 30-frame snippet

# Label ids of everything the generator draws: 17 of the 19 training classes, plus two ignored ones.
LABEL = {name: name2label[name].id for name in (
    "ego vehicle", "static", "road", "sidewalk", "building", "wall", "fence", "pole",
    "traffic light", "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "bicycle")}
LEFT, RIGHT = 1, -1  # road sides, as the sign of y
NEAR_PLANE = 0.3  # metres in front of the camera; polygons are clipped there

# Base colours (RGB). Road, sidewalk, walls, poles, buildings and cars overlap on purpose: greys are
# everywhere in a street, so colour alone must not give the class away.
ASPHALT = ((92, 92, 96), (78, 79, 84), (112, 110, 108), (68, 70, 76), (125, 124, 126))
PAVING = ((138, 136, 133), (118, 118, 122), (158, 150, 140), (150, 122, 112), (105, 104, 106))
FACADE = ((160, 160, 160), (200, 190, 170), (150, 85, 65), (215, 205, 185), (120, 95, 80), (190, 190, 185),
          (210, 195, 140), (175, 140, 140), (140, 150, 160), (95, 95, 100), (110, 120, 100))
GLASS = ((35, 40, 50), (62, 72, 88), (92, 110, 130), (25, 25, 30), (120, 125, 125))
CONCRETE = ((150, 150, 145), (120, 118, 112), (175, 165, 150), (100, 100, 104), (140, 120, 100))
METAL = ((105, 108, 110), (150, 152, 155), (50, 55, 52), (40, 40, 44), (70, 90, 75))
FOLIAGE = ((70, 105, 40), (55, 85, 35), (95, 120, 50), (120, 125, 60), (45, 70, 40), (100, 110, 90))
BARK = ((85, 70, 55), (110, 100, 90), (70, 60, 50))
GRASS = ((105, 135, 65), (125, 140, 80), (150, 140, 100), (120, 105, 80), (90, 115, 70))
CAR_PAINT = ((225, 225, 225), (175, 178, 180), (110, 110, 115), (30, 30, 32), (40, 60, 120), (150, 25, 25),
             (40, 70, 50), (190, 175, 140), (90, 20, 25), (200, 160, 40))
SKIN = ((230, 195, 165), (200, 150, 115), (150, 100, 70), (95, 65, 45))
CLOTHES = ((30, 30, 35), (60, 60, 70), (35, 45, 90), (140, 30, 35), (200, 200, 195), (120, 100, 70),
           (70, 90, 60), (170, 150, 120), (90, 60, 110), (210, 120, 40))
BIN = ((50, 90, 60), (110, 110, 110), (210, 110, 40), (40, 60, 120), (60, 60, 60))
SKY_CLEAR = ((62, 118, 195), (170, 200, 230))  # zenith, horizon
SKY_OVERCAST = ((175, 180, 188), (210, 212, 215))

# Multiplicative texture strength per class: (per-pixel grain, blotches 1/128 and stains 1/20 of the width).
TEXTURE = {"road": (0.06, 0.05, 0.10), "sidewalk": (0.05, 0.07, 0.08), "building": (0.03, 0.05, 0.10),
           "wall": (0.05, 0.06, 0.12), "vegetation": (0.12, 0.25, 0.15), "terrain": (0.14, 0.22, 0.18),
           "fence": (0.04, 0.04, 0.05), "static": (0.03, 0.03, 0.05), "car": (0.02, 0.02, 0.05),
           "truck": (0.02, 0.03, 0.06), "bus": (0.02, 0.02, 0.05)}
# Additive hue drift along the blotch noise: leaves and grass are not one green.
TINT = {"vegetation": (16, 14, -6), "terrain": (14, 8, 2)}


# ---------------------------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class Camera:
    """Cityscapes camera model: pinhole intrinsics in pixels, extrinsics in the vehicle frame."""

    fx: float
    fy: float
    u0: float
    v0: float
    x: float
    y: float
    z: float
    yaw: float
    pitch: float  # > 0 looks down
    roll: float
    baseline: float

    @classmethod
    def sample(cls, rng: np.random.Generator, height: int, width: int) -> Camera:
        """Cityscapes' calibration (2048×1024) jittered a little, then scaled to ``height``×``width``."""
        sx, sy = width / 2048, height / 1024
        zoom = rng.uniform(0.9, 1.1)
        return cls(fx=2262.52 * zoom * sx, fy=2265.30 * zoom * sy,
                   u0=(1096.98 + rng.normal(0, 15)) * sx, v0=(513.14 + rng.normal(0, 10)) * sy,
                   x=rng.uniform(1.5, 1.9), y=rng.uniform(-0.1, 0.3), z=rng.uniform(1.1, 1.35),
                   yaw=rng.normal(0, 0.01), pitch=rng.uniform(0.02, 0.06), roll=rng.normal(0, 0.005),
                   baseline=rng.uniform(0.20, 0.22))

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    def rotation(self) -> np.ndarray:
        """Camera-to-vehicle rotation R = Rz(yaw) · Ry(pitch) · Rx(roll)."""
        cy, sy, cp, sp, cr, sr = (np.cos(self.yaw), np.sin(self.yaw), np.cos(self.pitch), np.sin(self.pitch),
                                  np.cos(self.roll), np.sin(self.roll))
        rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        return rz @ ry @ rx

    def to_json(self) -> dict:
        """The ``camera/*_camera.json`` content (Cityscapes keys and units)."""
        r = {k: round(float(v), 6) for k, v in asdict(self).items()}
        return {"extrinsic": {k: r[k] for k in ("baseline", "pitch", "roll", "x", "y", "yaw", "z")},
                "intrinsic": {k: r[k] for k in ("fx", "fy", "u0", "v0")}}


def _clip_to_near_plane(points: np.ndarray) -> np.ndarray:
    """Sutherland–Hodgman: the part of a camera-frame polygon with depth (x) ≥ NEAR_PLANE."""
    kept = []
    for a, b in zip(points, np.roll(points, -1, axis=0)):
        a_in, b_in = a[0] >= NEAR_PLANE, b[0] >= NEAR_PLANE
        if a_in:
            kept.append(a)
        if a_in != b_in:
            kept.append(a + (b - a) * (NEAR_PLANE - a[0]) / (b[0] - a[0]))
    return np.array(kept).reshape(-1, 3)


# ---------------------------------------------------------------------------------------------- canvas
@dataclass
class _Part:
    """Outlines in vehicle coordinates drawn with one label and colour (each outline filled on its own,
    so overlapping outlines add up instead of cancelling as they would in one even-odd fillPoly)."""

    polys: list
    label: int
    colour: np.ndarray
    line_width: float = 0.0  # > 0: draw the outlines as open polylines this many metres wide


class _Canvas:
    """RGB (float) and label images drawn together, plus the camera that maps metres to pixels."""

    SHIFT = 4  # fillPoly's fractional bits: sub-pixel vertices keep thin, far objects in place

    def __init__(self, camera: Camera, height: int, width: int):
        self.camera = camera
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), LABEL["sky"], np.uint8)  # whatever nothing covers is sky
        self._rotation = camera.rotation()
        self.distance = self._ground_distance(height, width)  # metres, for haze; objects overwrite it

    def _ground_distance(self, height: int, width: int) -> np.ndarray:
        """Distance along the ground plane to where each pixel's ray meets it (inf above the horizon)."""
        c = self.camera
        u, v = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        rays = np.stack([np.ones_like(u), (c.u0 - u) / c.fx, (c.v0 - v) / c.fy], axis=-1)  # camera frame
        rays = rays @ self._rotation.T.astype(np.float32)  # vehicle frame
        with np.errstate(divide="ignore"):
            scale = np.where(rays[..., 2] < 0, c.z / -rays[..., 2], np.inf)
        return (scale * np.hypot(rays[..., 0], rays[..., 1])).astype(np.float32)

    def _camera_frame(self, polys: list) -> list:
        if not polys:
            return []
        points = (np.concatenate(polys) - self.camera.position) @ self._rotation
        return np.split(points, np.cumsum([len(p) for p in polys])[:-1])

    def _pixels(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame points (x forward, y left, z up) → fixed-point pixel coordinates."""
        c = self.camera
        uv = np.column_stack([c.u0 - c.fx * points[:, 1] / points[:, 0], c.v0 - c.fy * points[:, 2] / points[:, 0]])
        return np.round(uv * (1 << self.SHIFT)).astype(np.int32)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Vehicle-frame points in front of the camera → pixel coordinates (float)."""
        return self._pixels(self._camera_frame([points])[0]) / (1 << self.SHIFT)

    def pixel_polygons(self, polys: list) -> list[np.ndarray]:
        """Vehicle-frame outlines → fixed-point pixel polygons, clipped at the near plane."""
        out = []
        for points in self._camera_frame(polys):
            if points[:, 0].min() < NEAR_PLANE:
                points = _clip_to_near_plane(points)
                if len(points) < 3:
                    continue
            out.append(self._pixels(points))
        return out

    def draw(self, part: _Part, distance: float | None = None) -> None:
        """Paint ``part`` into both images; an upright object also records its ``distance`` for haze."""
        colour = tuple(float(c) for c in part.colour)
        if part.line_width:
            self._stroke(part, colour)
            return
        for pixels in self.pixel_polygons(part.polys):
            cv2.fillPoly(self.label, [pixels], part.label, cv2.LINE_8, self.SHIFT)
            cv2.fillPoly(self.rgb, [pixels], colour, cv2.LINE_8, self.SHIFT)
            if distance is not None:
                cv2.fillPoly(self.distance, [pixels], distance, cv2.LINE_8, self.SHIFT)

    def _stroke(self, part: _Part, colour: tuple) -> None:
        """Open polylines, their width in metres turned into pixels at their mean depth."""
        for points in self._camera_frame(part.polys):
            if points[:, 0].min() < NEAR_PLANE:
                continue
            thickness = max(1, round(part.line_width * self.camera.fx / points[:, 0].mean()))
            pixels = [self._pixels(points)]
            cv2.polylines(self.label, pixels, False, part.label, thickness, cv2.LINE_8, self.SHIFT)
            cv2.polylines(self.rgb, pixels, False, colour, thickness, cv2.LINE_8, self.SHIFT)


# -------------------------------------------------------------------------------------------- geometry
def _ground(x0, x1, y0, y1, z=0.0) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float)


def _upright(x0, y0, x1, y1, z0, z1) -> np.ndarray:
    """Vertical rectangle standing on the segment (x0, y0)–(x1, y1)."""
    return np.array([[x0, y0, z0], [x1, y1, z0], [x1, y1, z1], [x0, y0, z1]], float)


def _facing(x, y, z, outline) -> np.ndarray:
    """A 2-D outline (s to the image right, t up, metres) in the plane x = const around (x, y, z)."""
    outline = np.asarray(outline, float)
    return np.column_stack([np.full(len(outline), x), y - outline[:, 0], z + outline[:, 1]])


def _ellipse(rs, rt, s=0.0, t=0.0, n=14) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([s + rs * np.cos(a), t + rt * np.sin(a)])


def _rect(s0, s1, t0, t1) -> np.ndarray:
    return np.array([[s0, t0], [s1, t0], [s1, t1], [s0, t1]], float)


def _limb(s0, t0, s1, t1, w0, w1) -> np.ndarray:
    """Tapered quad from (s0, t0) to (s1, t1), w0/w1 wide at its ends."""
    d = np.array([t1 - t0, s0 - s1]) / max(np.hypot(s1 - s0, t1 - t0), 1e-6)
    return np.array([[s0, t0] + d * w0 / 2, [s1, t1] + d * w1 / 2, [s1, t1] - d * w1 / 2, [s0, t0] - d * w0 / 2])


def _regular(n, r, rotation=0.0) -> np.ndarray:
    a = rotation + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([r * np.cos(a), r * np.sin(a)])


# --------------------------------------------------------------------------------------------- scene
class _Street:
    """Lays out one street in vehicle coordinates and collects what to draw, in four layers: the ground
    and the backdrop (each in order), then buildings and then street objects (each sorted far to near).
    Layer entries carry their distance from the camera, which also sets their haze."""

    def __init__(self, rng: np.random.Generator, camera: Camera):
        self.rng = rng
        self.camera = camera
        self.ground: list[_Part] = []
        self.shadows: list[np.ndarray] = []  # ground polygons out of the sun
        self.backdrop: list[tuple[float, list[_Part]]] = []
        self.buildings: list[tuple[float, list[_Part]]] = []
        self.things: list[tuple[float, list[_Part]]] = []
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

    def add_thing(self, x, y, parts: list[_Part]) -> None:
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

    def build(self) -> _Street:
        self._skyline()
        self._road_surface()
        for side in (LEFT, RIGHT):
            self._roadside(side)
        self._crossing_furniture()
        self._traffic()
        self._pedestrians()
        return self

    # -- far background
    def _skyline(self) -> None:
        """A continuous row of distant blocks and tree lines at the far end of the street."""
        x, width = self.x_far, self.x_far * 1.2
        y = -width
        while y < width:
            w = self.rng.uniform(8, 40)
            if self.rng.random() < 0.7:
                part = _Part([_upright(x, y + w, x, y, 0, self.rng.uniform(5, 45))], LABEL["building"],
                             self.lit(self.colour(FACADE, noise=5), (-1, 0, 0)))
            else:
                crown = [[0, 0], *(np.column_stack([np.linspace(0, w, 7), self.rng.uniform(6, 15, 7)])), [w, 0]]
                part = _Part([_facing(x, y + w, 0, crown)], LABEL["vegetation"], self.colour(FOLIAGE))
            self.backdrop.append((self.distance(x, y + w / 2), [part]))
            y += w

    def _road_surface(self) -> None:
        rng, x0, x1 = self.rng, self.x_near, self.x_far
        self.ground.append(_Part([_ground(x0, 4000, -4000, 4000)], LABEL["terrain"], self.colour(GRASS)))
        road = self.colour(ASPHALT)
        self.ground.append(_Part([_ground(x0, x1, self.edge[RIGHT], self.edge[LEFT])], LABEL["road"], road))
        if self.crossing:
            self.ground.append(_Part([_ground(*self.crossing, -400, 400)], LABEL["road"], road))
            # the cross street ends at a row of buildings
            for side in (LEFT, RIGHT):
                a, b, y = self.crossing[0] - 25, self.crossing[1] + 25, side * rng.uniform(45, 80)
                parts = [_Part([_upright(a, y, b, y, 0, rng.uniform(8, 25))], LABEL["building"],
                               self.lit(self.colour(FACADE), (0, -side, 0)))]
                self.backdrop.append((self.distance(sum(self.crossing) / 2, y), parts))
        # patched asphalt
        for _ in range(rng.integers(0, 4)):
            px, py = rng.uniform(x0 + 3, 60), rng.uniform(self.edge[RIGHT], self.edge[LEFT] - 1)
            self.ground.append(_Part([_ground(px, px + rng.uniform(1, 8), py, py + rng.uniform(0.5, 2.5))],
                                     LABEL["road"], road * rng.uniform(0.75, 1.2)))
        self._markings()

    def _markings(self) -> None:
        rng = self.rng
        paint = np.array((230, 230, 225)) if rng.random() < 0.85 else np.array((225, 190, 70))
        paint = paint * rng.uniform(0.75, 1.0)
        polys = []
        x_end = min(self.x_far, 150)
        dash, gap = rng.uniform(2, 4), rng.uniform(4, 9)
        for i in range(1, self.lanes):
            y = self.lane_edge[RIGHT] + i * self.lane_width
            if i == self.own_lanes and rng.random() < 0.5:  # solid line between the two directions
                segments = [(self.x_near, x_end)]
            else:
                starts = np.arange(self.x_near - rng.uniform(0, dash + gap), x_end, dash + gap)
                segments = [(max(x, self.x_near), min(x + dash, x_end)) for x in starts if x + dash > self.x_near]
            polys += [_ground(a, b, y - 0.07, y + 0.07) for x0, x1 in segments for a, b in self.spans(x0, x1)]
        for side in (LEFT, RIGHT):
            if rng.random() < 0.6:  # edge line between lanes and parking / kerb
                y = self.lane_edge[side] - side * 0.2
                polys += [_ground(a, b, y - 0.06, y + 0.06) for a, b in self.spans(self.x_near, x_end)]
        if self.crossing:
            c0 = self.crossing[0]
            polys.append(_ground(c0 - 4.6, c0 - 4.2, self.lane_edge[RIGHT], self.lane_edge[RIGHT]
                                 + self.own_lanes * self.lane_width))  # stop line
            if rng.random() < 0.7:  # zebra crossing
                for y in np.arange(self.edge[RIGHT] + 0.3, self.edge[LEFT] - 0.5, 1.0):
                    polys.append(_ground(c0 - 3.6, c0 - 0.6, y, y + 0.5))
        for poly in polys:
            self.ground.append(_Part([poly], LABEL["road"], paint * rng.uniform(0.85, 1.05)))

    # -- sides of the street
    def _roadside(self, side: int) -> None:
        rng, z, kind = self.rng, self.kerb_height, self.side_kind[side]
        sw, edge = self.sidewalk[side], self.edge[side]
        paving = self.colour(PAVING)
        stone = np.clip(paving * rng.uniform(1.0, 1.25), 0, 255)  # kerb stones
        for a, b in self.spans(self.x_near, self.x_far):
            self.ground.append(_Part([_ground(a, b, edge, self.y_at(side, sw), z)], LABEL["sidewalk"], paving))
            self.ground.append(_Part([_upright(a, edge, b, edge, 0, z)], LABEL["sidewalk"],
                                     self.lit(stone, (0, -side, 0))))
        if self.crossing:  # the kerb facing us across the crossing
            c1 = self.crossing[1]
            self.ground.append(_Part([_upright(c1, edge, c1, self.y_at(side, sw + 40), 0, z)],
                                     LABEL["sidewalk"], self.lit(stone, (-1, 0, 0))))
        # slab joints
        joints = [_ground(x, x + 0.04, edge, self.y_at(side, sw), z)
                  for x in np.arange(self.x_near, 40, rng.uniform(1.0, 2.5)) if not self.in_crossing(x)]
        if joints:
            self.ground.append(_Part(joints, LABEL["sidewalk"], paving * 0.8))

        if kind == "city":
            garden = rng.uniform(1.5, 5) if rng.random() < 0.3 else 0.0
            if garden:
                self._lawn(side, sw, sw + garden)
                self._boundary(side, sw, rng.choice(["fence", "hedge"]))
            self._buildings(side, sw + garden)
        elif kind == "park":
            depth = rng.uniform(15, 40)
            self._lawn(side, sw, sw + depth)
            if rng.random() < 0.7:
                self._boundary(side, sw, rng.choice(["fence", "hedge"]))
            for _ in range(rng.integers(6, 16)):
                x = rng.uniform(self.x_near + 3, 120)
                if not self.in_crossing(x, 2):
                    self._tree(x, self.y_at(side, sw + rng.uniform(1.5, depth)), z)
            if rng.random() < 0.6:
                self._buildings(side, sw + depth)
        else:
            self._lawn(side, sw, sw + 20)
            self._boundary(side, sw, "wall")
            for x in np.arange(self.x_near + rng.uniform(0, 8), 90, rng.uniform(5, 10)):
                if not self.in_crossing(x, 2):
                    self._tree(x, self.y_at(side, sw + rng.uniform(2, 6)), z)
            self._buildings(side, sw + rng.uniform(8, 20))
        self._sidewalk_furniture(side)

    def _lawn(self, side, d0, d1) -> None:
        for a, b in self.spans(self.x_near, self.x_far):
            self.ground.append(_Part([_ground(a, b, self.y_at(side, d0), self.y_at(side, d1), self.kerb_height)],
                                     LABEL["terrain"], self.colour(GRASS)))

    def _boundary(self, side, d, kind) -> None:
        """A fence, hedge or wall along the back of the sidewalk, in short segments so that objects on the
        sidewalk sort correctly against it."""
        rng, y, z = self.rng, self.y_at(side, d), self.kerb_height
        height = {"fence": rng.uniform(0.9, 2.0), "hedge": rng.uniform(0.7, 1.6), "wall": rng.uniform(0.8, 3.0)}[kind]
        colour = self.colour({"fence": METAL + BARK, "hedge": FOLIAGE, "wall": CONCRETE}[kind])
        label = LABEL[{"fence": "fence", "hedge": "vegetation", "wall": "wall"}[kind]]
        style = rng.choice(["boards", "bars"]) if kind == "fence" else kind
        bar_pitch = rng.uniform(0.1, 0.2)
        for a, b in self.spans(self.x_near - 1, min(self.x_far, 160)):
            for x in np.arange(a, b, 2.5):
                x1 = min(x + 2.5, b)
                parts = []
                if style == "bars":
                    post_and_rails = [_upright(x, y, x + 0.08, y, z, z + height),
                                      _upright(x, y, x1, y, z + height - 0.08, z + height),
                                      _upright(x, y, x1, y, z + 0.1, z + 0.16)]
                    bars = [_upright(s, y, s + 0.03, y, z, z + height) for s in np.arange(x, x1, bar_pitch)]
                    parts.append(_Part(post_and_rails + bars, label, self.lit(colour, (0, -side, 0))))
                else:
                    face = _upright(x, y, x1, y, z, z + height)
                    parts.append(_Part([face], label, self.lit(colour, (0, -side, 0))))
                    if kind != "fence" and z + height < self.camera.z:  # below eye level we see its top
                        top = _ground(x, x1, y, y + side * (0.3 if kind == "wall" else 0.8), z + height)
                        parts.append(_Part([top], label, self.lit(colour, (0, 0, 1))))
                self.add_thing(x, y, parts)

    def _buildings(self, side, d) -> None:
        """A row of blocks along the street, with windows, from behind the camera to the far end."""
        rng = self.rng
        x = self.camera.x - rng.uniform(0, 10)
        while x < self.x_far:
            length = rng.uniform(6, 30)
            for a, b in self.spans(x, min(x + length, self.x_far)):
                self._block(side, a, b, self.y_at(side, d + rng.uniform(0, 1.5) * (rng.random() < 0.4)))
            x += length

    def _block(self, side, x0, x1, y) -> None:
        rng = self.rng
        height, depth = rng.uniform(6, 28), 15.0
        wall = self.colour(FACADE)
        parts = [_Part([_upright(x0, y, x1, y, 0, height)], LABEL["building"], self.lit(wall, (0, -side, 0)))]
        if x0 > self.camera.x:  # the end wall facing us
            parts.append(_Part([_upright(x0, y + side * depth, x0, y, 0, height)], LABEL["building"],
                               self.lit(wall, (-1, 0, 0))))
        # windows: a grid on the facade, a little off the wall plane so they stay in front of it
        floor, pitch = rng.uniform(2.8, 3.6), rng.uniform(2.0, 3.5)
        win_w, win_h = pitch * rng.uniform(0.35, 0.65), floor * rng.uniform(0.4, 0.6)
        cols = np.arange(x0 + pitch * 0.5, x1 - win_w, pitch)
        rows = np.arange(floor * (1 + rng.uniform(0.15, 0.3)), height - win_h - 0.5, floor)
        glass = [self.colour(GLASS, noise=10) for _ in range(3)]
        panes = [[] for _ in glass]
        yw = y - side * 0.02
        for row in rows:
            for col in cols:
                panes[rng.integers(len(glass))].append(_upright(col, yw, col + win_w, yw, row, row + win_h))
        if rng.random() < 0.5:  # shop fronts
            panes[0] += [_upright(c, yw, c + pitch * 0.85, yw, 0.4, floor * 0.8)
                         for c in np.arange(x0 + 0.3, x1 - pitch, pitch)]
        parts += [_Part(p, LABEL["building"], self.lit(g, (0, -side, 0))) for g, p in zip(glass, panes) if p]
        self.buildings.append((self.distance(max(x0, self.camera.x), y), parts))
        if not self.overcast:
            offset = self.shadow_offset(height)
            if offset[1] * side < 0:  # the shadow falls towards the street
                self.shadows.append(np.array([[x0, y, 0], [x1, y, 0], [x1 + offset[0], y + offset[1], 0],
                                              [x0 + offset[0], y + offset[1], 0]]))

    # -- street objects
    def _tree(self, x, y, z) -> None:
        rng = self.rng
        height = rng.uniform(4, 10)
        crown_base = height * rng.uniform(0.3, 0.5)
        trunk = rng.uniform(0.2, 0.4)
        parts = [_Part([_facing(x, y, z, _rect(-trunk / 2, trunk / 2, 0, crown_base + 0.5))], LABEL["vegetation"],
                       self.colour(BARK))]
        leaves = self.colour(FOLIAGE)
        radius = (height - crown_base) / 2
        for _ in range(rng.integers(5, 10)):
            s, t = rng.normal(0, radius * 0.5), crown_base + radius + rng.normal(0, radius * 0.4)
            r = radius * rng.uniform(0.4, 0.8)
            parts.append(_Part([_facing(x, y, z, _ellipse(r, r * rng.uniform(0.8, 1.1), s, t))],
                               LABEL["vegetation"], np.clip(leaves * rng.uniform(0.8, 1.2), 0, 255)))
        self.add_thing(x, y, parts)
        if not self.overcast:
            centre = np.array([x, y]) + self.shadow_offset(crown_base + radius)
            blob = np.column_stack([centre + _ellipse(radius, radius), np.full(14, z)])
            self.shadows.append(blob)

    def _pole(self, x, y, z, height, width, colour, arm=0.0) -> list[_Part]:
        """A pole, optionally with an arm over the road (a street lamp or a mast for signals)."""
        polys = [_facing(x, y, z, _rect(-width / 2, width / 2, 0, height))]
        if arm:
            reach = -np.sign(y - self.camera.y) * arm  # towards the road centre, in image-right units
            polys.append(_facing(x, y, z, _rect(min(0, reach), max(0, reach), height - 0.15, height)))
        return [_Part(polys, LABEL["pole"], self.lit(colour, (-1, 0, 0)))]

    def _sign(self, x, y, z) -> list[_Part]:
        """A traffic sign plate seen from the front (or, sometimes, its grey back) centred at height z."""
        rng = self.rng
        size = rng.uniform(0.55, 0.9)
        kind = rng.choice(["prohibitory", "mandatory", "warning", "info", "stop", "priority", "back"])
        outline = {"prohibitory": _regular(16, size / 2), "mandatory": _regular(16, size / 2),
                   "warning": _regular(3, size * 0.6, np.pi / 2), "stop": _regular(8, size / 2, np.pi / 8),
                   "priority": _regular(4, size / 2), "info": _rect(-size / 2, size / 2, -size / 3, size / 3),
                   "back": _regular(16, size / 2)}[kind]
        white, red, blue = (235, 235, 230), (200, 30, 35), (30, 75, 165)
        layers = {"prohibitory": [(red, 1.0), (white, 0.75)], "mandatory": [(blue, 1.0), (white, 0.0)],
                  "warning": [(red, 1.0), (white, 0.7)], "stop": [(red, 1.0)],
                  "priority": [(white, 1.0), ((235, 190, 30), 0.75)],
                  "info": [(white, 1.0), (blue if rng.random() < 0.5 else (30, 120, 60), 0.85)],
                  "back": [((165, 168, 170), 1.0)]}[kind]
        shade = rng.uniform(0.75, 1.05)
        parts = [_Part([_facing(x, y, z, outline * scale)], LABEL["traffic sign"], np.array(c, float) * shade)
                 for c, scale in layers if scale]
        if kind in ("mandatory", "stop", "warning"):  # a symbol: arrow shaft or bar
            symbol = _rect(-size * 0.06, size * 0.06, -size * 0.22, size * 0.22) if kind != "stop" else \
                _rect(-size * 0.3, size * 0.3, -size * 0.06, size * 0.06)
            parts.append(_Part([_facing(x, y, z, symbol)], LABEL["traffic sign"],
                               np.array(white if kind != "warning" else (20, 20, 20), float) * shade))
        return parts

    def _signal(self, x, y, z) -> list[_Part]:
        """A three-lamp traffic light housing (bottom at height z) facing the camera."""
        rng = self.rng
        w, h = rng.uniform(0.3, 0.4), rng.uniform(0.85, 1.05)
        housing = np.array((190, 160, 40) if rng.random() < 0.25 else (30, 32, 30), float) * rng.uniform(0.8, 1.2)
        parts = [_Part([_facing(x, y, z, _rect(-w / 2, w / 2, 0, h))], LABEL["traffic light"], housing)]
        if rng.random() < 0.4:  # back plate with a white border
            parts.insert(0, _Part([_facing(x, y, z, _rect(-w, w, -0.1, h + 0.1))], LABEL["traffic light"],
                                  np.array((225, 225, 220), float)))
        lit = rng.integers(3)
        for i, colour in enumerate(((60, 235, 150), (255, 175, 30), (255, 45, 35))):  # bottom to top
            c = np.array(colour, float) if i == lit else np.array((45, 45, 40), float)
            parts.append(_Part([_facing(x, y, z, _ellipse(w * 0.3, w * 0.3, 0, h * (i + 0.5) / 3, 10))],
                               LABEL["traffic light"], c))
        return parts

    def _sidewalk_furniture(self, side) -> None:
        rng, z, sw = self.rng, self.kerb_height, self.sidewalk[side]
        near_kerb = self.y_at(side, 0.5)
        metal = self.colour(METAL)
        for x in np.arange(self.x_near + rng.uniform(0, 20), self.x_far * 0.6, rng.uniform(20, 35)):
            if not self.in_crossing(x, 1):  # street lamps
                parts = self._pole(x, near_kerb, z, rng.uniform(6, 9), rng.uniform(0.14, 0.22), metal, arm=1.5)
                if rng.random() < 0.3:
                    parts += self._sign(x, near_kerb, z + rng.uniform(2.3, 3.0))
                self.add_thing(x, near_kerb, parts)
        for _ in range(rng.integers(1, 4)):  # traffic signs on their own posts
            x = rng.uniform(self.x_near + 4, 80)
            if not self.in_crossing(x, 1):
                height = rng.uniform(2.0, 2.8)
                y = self.y_at(side, rng.uniform(0.3, 0.8))
                parts = self._pole(x, y, z, height, rng.uniform(0.06, 0.09), self.colour(METAL))
                self.add_thing(x, y, parts + self._sign(x, y, z + height))
        if self.side_kind[side] == "city" and rng.random() < 0.5:  # a row of street trees
            for x in np.arange(self.x_near + rng.uniform(0, 10), 100, rng.uniform(8, 14)):
                if not self.in_crossing(x, 2):
                    self._tree(x, self.y_at(side, min(1.0, sw / 2)), z)
        for _ in range(rng.integers(0, 5)):  # bins, bollards, cabinets: Cityscapes "static", ignored
            x, y = rng.uniform(self.x_near + 2, 60), self.y_at(side, rng.uniform(0.3, sw - 0.3))
            if self.in_crossing(x, 1):
                continue
            w, h = rng.choice([(0.55, 1.0), (0.15, 0.9), (0.5, 1.3)], axis=0)
            faces = self._box(x, x + w, y - w / 2, y + w / 2, z, z + h)
            colour = self.colour(BIN)
            self.add_thing(x, y, [_Part([f], LABEL["static"], self.lit(colour, n)) for n, f in faces])
        for _ in range(rng.integers(0, 3)):  # parked bicycles, across the sidewalk so we see them side-on
            x, y = rng.uniform(self.x_near + 4, 50), self.y_at(side, rng.uniform(0.5, sw - 0.2))
            if not self.in_crossing(x, 1):
                self.add_thing(x, y, self._bicycle(x, y, z, rng.choice([-1, 1])))

    def _crossing_furniture(self) -> None:
        """Traffic lights at the corners (some on masts over the road) and cyclists crossing."""
        if not self.crossing:
            return
        rng = self.rng
        metal = self.colour(METAL)
        for side in (LEFT, RIGHT):
            for x in (self.crossing[0] - 1.0, self.crossing[1] + 1.0):
                if rng.random() < 0.2:
                    continue
                y, z, width = self.y_at(side, 0.6), self.kerb_height, rng.uniform(0.12, 0.2)
                if rng.random() < 0.4:  # a mast with a second signal hanging over the lanes
                    height, arm = rng.uniform(5.5, 6.5), rng.uniform(3, 6)
                    parts = self._pole(x, y, z, height, width, metal, arm=arm)
                    parts += self._signal(x, y - side * arm * 0.85, z + height - 1.2)
                else:
                    height = rng.uniform(3.2, 4.0)
                    parts = self._pole(x, y, z, height, width, metal)
                parts += self._signal(x, y, z + height - 1.1 if height < 5 else z + 2.2)
                self.add_thing(x, y, parts)
        for _ in range(rng.integers(0, 3)):
            x = rng.uniform(*self.crossing)
            y = rng.uniform(self.edge[RIGHT] + 1, self.edge[LEFT] - 1)
            facing = rng.choice([-1, 1])
            self.add_thing(x, y, self._bicycle(x, y, 0.0, facing) + self._rider(x, y, facing))

    def _bicycle(self, x, y, z, facing) -> list[_Part]:
        """Side view of a bicycle in the plane x = const, heading to the image right if facing > 0."""
        f, r = facing, self.rng.uniform(0.31, 0.36)
        rear, front, crank = (-0.52 * f, r), (0.52 * f, r), (0.0, r)
        seat, bar = (-0.18 * f, r + 0.6), (0.42 * f, r + 0.65)
        ring = _ellipse(r, r, n=20)
        ring = np.vstack([ring, ring[:1]])  # closed, as an open polyline
        wheels = [_facing(x, y, z, ring + hub) for hub in (rear, front)]
        frame = [_facing(x, y, z, np.array(p)) for p in ((rear, seat, crank, rear), (seat, bar, front), (crank, bar))]
        return [_Part(wheels, LABEL["bicycle"], np.array((25, 25, 25), float), line_width=0.045),
                _Part(frame, LABEL["bicycle"], self.colour(CAR_PAINT), line_width=0.035)]

    def _rider(self, x, y, facing) -> list[_Part]:
        """Someone riding the bicycle drawn by ``_bicycle`` at the same place."""
        f = facing
        hip, shoulder, head = (-0.15 * f, 0.98), (0.1 * f, 1.5), (0.17 * f, 1.68)
        hand, knee, pedal = (0.42 * f, 1.0), (0.12 * f, 0.62), (0.02 * f, 0.2)
        legs = [_limb(*hip, *knee, 0.16, 0.12), _limb(*knee, *pedal, 0.12, 0.1)]
        upper = [_limb(*hip, *shoulder, 0.3, 0.38), _limb(*shoulder, *hand, 0.1, 0.08)]
        head_colour = self.colour(SKIN, noise=4) if self.rng.random() < 0.5 else self.colour(CLOTHES)  # or a helmet
        return [_Part([_facing(x, y, 0, p) for p in legs], LABEL["rider"], self.colour(CLOTHES)),
                _Part([_facing(x, y, 0, p) for p in upper], LABEL["rider"], self.colour(CLOTHES)),
                _Part([_facing(x, y, 0, _ellipse(0.1, 0.12, *head))], LABEL["rider"], head_colour)]

    def _person(self, x, y, z) -> None:
        """A pedestrian seen from the front or back; outlines in units of body height."""
        rng = self.rng
        h = rng.uniform(1.55, 1.95) if rng.random() < 0.9 else rng.uniform(1.0, 1.4)  # adults, children
        stride, swing = rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1)
        legs = [_limb(-0.07, 0.52, -0.07 + stride, 0.0, 0.1, 0.07), _limb(0.07, 0.52, 0.07 - stride, 0.0, 0.1, 0.07)]
        torso_and_arms = [np.array([[-0.1, 0.47], [0.1, 0.47], [0.12, 0.82], [-0.12, 0.82]]),
                          _limb(-0.12, 0.82, -0.15 + swing, 0.44, 0.06, 0.045),
                          _limb(0.12, 0.82, 0.15 - swing, 0.44, 0.06, 0.045)]
        neck_and_face = [_rect(-0.025, 0.025, 0.81, 0.87), _ellipse(0.055, 0.068, 0, 0.925)]
        hair = [_ellipse(0.058, 0.035, 0, 0.965)]
        hair_colour = self.colour(((30, 25, 20), (90, 60, 35), (160, 130, 80), (120, 120, 120)))
        parts = [_Part([_facing(x, y, z, o * h) for o in outlines], LABEL["person"], colour)
                 for outlines, colour in ((legs, self.colour(CLOTHES)), (torso_and_arms, self.colour(CLOTHES)),
                                          (neck_and_face, self.colour(SKIN, noise=4)), (hair, hair_colour))]
        self.add_thing(x, y, parts)
        if not self.overcast:  # a thin dark quad from the feet away from the sun
            foot = np.array([x, y])
            tip = foot + self.shadow_offset(h)
            along = tip - foot
            across = np.array([-along[1], along[0]]) / max(np.hypot(*along), 1e-6) * 0.2
            quad = np.array([foot - across, foot + across, tip + across, tip - across])
            self.shadows.append(np.column_stack([quad, np.full(4, z)]))

    def _pedestrians(self) -> None:
        rng = self.rng
        for side in (LEFT, RIGHT):
            for _ in range(rng.integers(0, 7)):
                x = rng.uniform(self.x_near + 3, 70)
                if not self.in_crossing(x, 0.5):
                    self._person(x, self.y_at(side, rng.uniform(0.4, self.sidewalk[side] - 0.3)), self.kerb_height)
        if self.crossing:
            for _ in range(rng.integers(0, 4)):  # on the zebra crossing
                x = self.crossing[0] - rng.uniform(0.8, 3.4)
                self._person(x, rng.uniform(self.edge[RIGHT], self.edge[LEFT]), 0.0)

    # -- vehicles
    def _box(self, x0, x1, y0, y1, z0, z1) -> list[tuple[tuple, np.ndarray]]:
        """(outward normal, face) for the faces of a box that look at the camera (they never overlap)."""
        cx, cy, cz = self.camera.position
        faces = []
        if cx < x0:
            faces.append(((-1, 0, 0), _upright(x0, y1, x0, y0, z0, z1)))
        if cx > x1:
            faces.append(((1, 0, 0), _upright(x1, y0, x1, y1, z0, z1)))
        if cy < y0:
            faces.append(((0, -1, 0), _upright(x0, y0, x1, y0, z0, z1)))
        if cy > y1:
            faces.append(((0, 1, 0), _upright(x0, y1, x1, y1, z0, z1)))
        if cz > z1:
            faces.append(((0, 0, 1), _ground(x0, x1, y0, y1, z1)))
        return faces

    def _box_parts(self, label, colour, x0, x1, y0, y1, z0, z1) -> list[_Part]:
        return [_Part([face], label, self.lit(colour, normal)) for normal, face in self._box(x0, x1, y0, y1, z0, z1)]

    def _facing_side(self, y0, y1) -> float | None:
        """Lateral position of a vehicle's side that faces the camera; None when we are right behind it."""
        if self.camera.y < y0:
            return y0
        if self.camera.y > y1:
            return y1
        return None

    def _vehicle(self, x0, y, kind, oncoming) -> None:
        """A car, truck or bus along the road, its end nearest to the camera at x0 (its front if
        ``oncoming``), centred on lateral position y."""
        rng, label = self.rng, LABEL[kind]
        length, width, height = {"car": (rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9), rng.uniform(1.35, 1.6)),
                                 "truck": (rng.uniform(6, 9), 2.5, rng.uniform(3.0, 3.6)),
                                 "bus": (rng.uniform(10, 12.5), 2.5, rng.uniform(2.9, 3.3))}[kind]
        x1, y0, y1 = x0 + length, y - width / 2, y + width / 2
        floor = 0.3 if kind == "car" else 0.45
        side = self._facing_side(y0, y1)
        tyre = np.array((22, 22, 22), float)
        axles = (x0 + 0.8, x1 - 0.8)
        # the near tyres show under the body; drawn first, the body covers the rest of them
        parts = [_Part([_upright(axles[0], y1 - 0.05, axles[0], y1 - 0.3, 0, floor + 0.05),
                        _upright(axles[0], y0 + 0.3, axles[0], y0 + 0.05, 0, floor + 0.05)], label, tyre)]
        body = {"car": self._car, "truck": self._truck, "bus": self._bus}[kind]
        parts += body(x0, x1, y0, y1, floor, height, side, oncoming)
        if side is not None:
            r, s = (0.32 if kind == "car" else 0.5), side - np.sign(side - self.camera.y) * 0.03
            a = np.linspace(0, 2 * np.pi, 14, endpoint=False)
            parts += [_Part([np.column_stack([ax + r * np.cos(a), np.full(14, s), r + r * np.sin(a)])], label, tyre)
                      for ax in axles]
        self.add_thing(x0, float(np.clip(self.camera.y, y0, y1)), parts)
        if not self.overcast:
            foot = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            hull = cv2.convexHull(np.vstack([foot, foot + self.shadow_offset(height / 2)]).astype(np.float32))[:, 0]
            self.shadows.append(np.column_stack([hull, np.zeros(len(hull))]))

    def _car(self, x0, x1, y0, y1, floor, height, side, oncoming) -> list[_Part]:
        rng, label, length = self.rng, LABEL["car"], x1 - x0
        paint, glass = self.colour(CAR_PAINT), self.colour(GLASS[:2], noise=6)
        waist = height * rng.uniform(0.55, 0.65)  # bonnet and boot lid
        c0, c1 = x0 + length * (0.28 if oncoming else 0.22), x0 + length * (0.78 if oncoming else 0.72)  # cabin
        parts = self._box_parts(label, paint, x0, x1, y0, y1, floor, waist)
        parts += self._box_parts(label, paint, c0, c1, y0 + 0.08, y1 - 0.08, waist, height)
        windows = [_upright(c0 - 0.01, y1 - 0.15, c0 - 0.01, y0 + 0.15, waist + 0.05, height - 0.08)]
        if side is not None:
            s = side - np.sign(side - self.camera.y) * 0.09
            windows.append(_upright(c0 + 0.1, s, c1 - 0.1, s, waist + 0.05, height - 0.08))
        parts.append(_Part(windows, label, glass))
        lamp = (waist - 0.25, waist - 0.1)
        parts.append(_Part([_upright(x0 - 0.01, y1 - 0.05, x0 - 0.01, y1 - 0.3, *lamp),
                            _upright(x0 - 0.01, y0 + 0.3, x0 - 0.01, y0 + 0.05, *lamp)],
                           label, np.array((235, 235, 215) if oncoming else (200, 20, 20), float)))
        plate = _upright(x0 - 0.01, (y0 + y1) / 2 + 0.26, x0 - 0.01, (y0 + y1) / 2 - 0.26, floor + 0.1, floor + 0.22)
        return parts + [_Part([plate], label, np.array((225, 225, 225), float))]

    def _truck(self, x0, x1, y0, y1, floor, height, side, oncoming) -> list[_Part]:
        """A cab and a taller cargo box; the one farther from the camera is drawn first."""
        label = LABEL["truck"]
        cab, cargo = self.colour(CAR_PAINT), self.colour(((230, 230, 225), (60, 90, 140), (150, 40, 30)))
        if oncoming:
            boxes = [(x0 + 2.2, x1, height, cargo), (x0, x0 + 2.0, 2.8, cab)]
        else:
            boxes = [(x1 - 2.0, x1, 2.8, cab), (x0, x1 - 2.2, height, cargo)]
        return [p for a, b, top, colour in boxes for p in self._box_parts(label, colour, a, b, y0, y1, floor, top)]

    def _bus(self, x0, x1, y0, y1, floor, height, side, oncoming) -> list[_Part]:
        label = LABEL["bus"]
        paint = self.colour(((200, 40, 40), (230, 225, 210), (40, 90, 160), (230, 190, 40)))
        parts = self._box_parts(label, paint, x0, x1, y0, y1, floor, height)
        band = (1.3, height - 0.35)  # the window band, all round
        windows = [_upright(x0 - 0.01, y1 - 0.15, x0 - 0.01, y0 + 0.15, *band)]
        if side is not None:
            s = side - np.sign(side - self.camera.y) * 0.02
            windows.append(_upright(x0 + 0.5, s, x1 - 0.5, s, *band))
        return parts + [_Part(windows, label, self.colour(GLASS[:2], noise=6))]

    def _traffic(self) -> None:
        rng = self.rng
        for side in (LEFT, RIGHT):
            if not self.parking[side]:
                continue
            y = self.lane_edge[side] + side * 1.1
            x = self.camera.x + rng.uniform(1, 8)
            while x < 90:
                length = 5.0
                if rng.random() < 0.75 and not self.in_crossing(x, 5) and not self.in_crossing(x + length, 5):
                    self._vehicle(x, y + rng.normal(0, 0.1), "car", oncoming=rng.random() < 0.5)
                x += length + rng.uniform(0.5, 6)
        for lane, y in enumerate(self.lane_centres):
            oncoming = lane >= self.own_lanes
            ego = abs(y - self.camera.y) < self.lane_width / 2
            x = self.camera.x + rng.uniform(9 if ego else 2, 30)
            while x < 160:
                kind = rng.choice(["car", "truck", "bus"], p=[0.8, 0.1, 0.1])
                if not self.in_crossing(x, -2):
                    self._vehicle(x, y + rng.normal(0, 0.25), kind, oncoming)
                x += rng.uniform(15, 60)


# ------------------------------------------------------------------------------------------ appearance
def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Roughly unit-variance noise with blobs about ``cell`` pixels wide."""
    small = rng.standard_normal((max(2, round(height / cell)), max(2, round(width / cell)))).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _label_lut(table: dict, width: int) -> np.ndarray:
    lut = np.zeros((256, width), np.float32)
    for name, values in table.items():
        lut[LABEL[name]] = values
    return lut


_TEXTURE_LUT = _label_lut(TEXTURE, 3)
_TINT_LUT = _label_lut(TINT, 3)


def _finish(canvas: _Canvas, rng: np.random.Generator, street: _Street) -> np.ndarray:
    """Sky, texture, haze, lighting, blur and sensor noise on the drawn RGB image → uint8."""
    rgb, label = canvas.rgb, canvas.label
    height, width = label.shape
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    # signed distance below the horizon line (rolled with the camera), in image heights
    (u_a, v_a), (u_b, v_b) = canvas.project(np.array([[1e4, -1e3, 0.0], [1e4, 1e3, 0.0]]))
    below = (rows - v_a - (cols - u_a) * np.float32((v_b - v_a) / (u_b - u_a))) / height

    sky = label == LABEL["sky"]
    zenith, horizon = (np.array(c, np.float32) for c in (SKY_OVERCAST if street.overcast else SKY_CLEAR))
    zenith = zenith * rng.uniform(0.85, 1.1) + rng.normal(0, 8, 3).astype(np.float32)
    horizon = horizon * rng.uniform(0.9, 1.1) + rng.normal(0, 6, 3).astype(np.float32)
    up = np.clip(-below[sky] / rng.uniform(0.3, 0.6), 0, 1)[:, None] ** 0.7
    clouds = np.clip(_smooth_noise(rng, height, width, height / 6)[sky] * 0.6 + rng.uniform(-0.6, 0.4), 0, 1)[:, None]
    rgb[sky] = (horizon * (1 - up) + zenith * up) * (1 - clouds) + rng.uniform(200, 245) * clouds

    grain = rng.standard_normal((height, width), dtype=np.float32)
    blotch = _smooth_noise(rng, height, width, max(2.0, width / 128))
    stain = _smooth_noise(rng, height, width, max(4.0, width / 20))
    amp = _TEXTURE_LUT[label]
    rgb *= (1 + amp[..., 0] * grain + amp[..., 1] * blotch + amp[..., 2] * stain)[..., None]
    rgb += _TINT_LUT[label] * _smooth_noise(rng, height, width, max(2.0, width / 64))[..., None]

    # aerial perspective: distant things fade into the colour of the sky at the horizon
    hood = label == LABEL["ego vehicle"]
    visibility = np.float32(rng.uniform(150, 800))
    haze = np.float32(rng.uniform(0.5, 0.9)) * -np.expm1(-np.minimum(canvas.distance, 1e4) / visibility)
    haze[sky | hood] = 0
    rgb += (horizon - rgb) * haze[..., None]
    # the bonnet mirrors the sky along its upper edge
    hood_rows = np.nonzero(hood)[0].astype(np.float32)
    if hood_rows.size:
        edge = (hood_rows - hood_rows.min()) / max(1.0, np.ptp(hood_rows))
        rgb[hood] *= (1 + 1.5 * np.clip(1 - 3 * edge, 0, 1))[:, None]

    # exposure and white balance, a lighting gradient across the frame, vignetting
    gains = (rng.uniform(0.75, 1.2) * (1 + rng.normal(0, 0.06, 3))).astype(np.float32)
    gx, gy, vignette = (np.float32(g) for g in rng.uniform([-0.3, -0.3, 0], [0.3, 0.3, 0.5]))
    x, y = cols / width - 0.5, rows / height - 0.5
    rgb *= ((1 + gx * x + gy * y) * (1 - vignette * (x * x + y * y)))[..., None] * gains
    sigma = rng.uniform(0.0, 0.8)  # optics; below ~0.3 px a blur changes nothing
    if sigma > 0.3:
        rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(rng.uniform(2, 7))
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _hood(canvas: _Canvas, rng: np.random.Generator) -> None:
    """The bonnet of the recording car along the bottom edge (Cityscapes "ego vehicle", ignored)."""
    height, width = canvas.label.shape
    top, bulge = rng.uniform(0.05, 0.12) * height, rng.uniform(0.5, 1.0)
    xs = np.linspace(-0.1, 1.1, 40) * width
    ys = height - top * (1 - bulge * ((xs / width - rng.uniform(0.45, 0.55)) * 2) ** 2)
    outline = np.vstack([np.column_stack([xs, ys]), [[1.1 * width, 1.1 * height], [-0.1 * width, 1.1 * height]]])
    pixels = [np.round(outline * (1 << _Canvas.SHIFT)).astype(np.int32)]
    colour = tuple(float(c) for c in rng.uniform(15, 70) + rng.normal(0, 5, 3))
    cv2.fillPoly(canvas.label, pixels, LABEL["ego vehicle"], cv2.LINE_8, _Canvas.SHIFT)
    cv2.fillPoly(canvas.rgb, pixels, colour, cv2.LINE_8, _Canvas.SHIFT)


def generate_scene(rng: np.random.Generator, height: int, width: int,
                   camera: Camera | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one street scene: ``(rgb uint8 H×W×3, Cityscapes label ids uint8 H×W)``.

    ``camera`` defaults to one sampled from ``rng`` (``Camera.sample``); pass it to know the calibration.
    """
    camera = camera or Camera.sample(rng, height, width)
    street = _Street(rng, camera).build()
    canvas = _Canvas(camera, height, width)
    for part in street.ground:
        canvas.draw(part)
    # shadows darken only the ground: everything drawn later stands on top of them
    shade = np.ones((height, width), np.float32)
    for pixels in canvas.pixel_polygons(street.shadows):
        cv2.fillPoly(shade, [pixels], street.ambient, cv2.LINE_8, _Canvas.SHIFT)
    canvas.rgb *= shade[..., None]
    for layer in (street.backdrop, sorted(street.buildings, key=lambda item: -item[0]),
                  sorted(street.things, key=lambda item: -item[0])):
        for distance, parts in layer:
            for part in parts:
                canvas.draw(part, distance)
    _hood(canvas, rng)
    return _finish(canvas, rng, street), canvas.label


# -------------------------------------------------------------------------------------------- dataset
def image_stem(split: str, index: int) -> tuple[str, str]:
    """(city, file stem) of image ``index`` of ``split``: ``{city}_{seq:06d}_{frame:06d}``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{ANNOTATED_FRAME:06d}"


def _png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _label_colours() -> np.ndarray:
    """256×3 RGB by Cityscapes label id, for the ``*_gtFine_color.png`` previews."""
    lut = np.zeros((256, 3), np.uint8)
    for label_id, label in id2label.items():
        if 0 <= label_id < 256:
            lut[label_id] = label.color
    return lut


_COLOR_LUT = _label_colours()


def write_dataset(out, num: int, size: tuple[int, int] = (512, 1024), seed: int = 0, val_num: int | None = None,
                  color: bool = True, progress: bool = True) -> dict:
    """Write ``num`` train and ``val_num`` (default ``max(1, num // 5)``) val scenes of ``size`` (H, W)
    under ``out`` in Cityscapes layout; returns a summary with per-class pixel counts."""
    out = Path(out)
    height, width = size
    val_num = max(1, num // 5) if val_num is None else val_num
    if num < 0 or val_num < 0 or seed < 0:
        raise ValueError("num, val_num and seed must be non-negative")
    pixels = np.zeros(256, np.int64)
    jobs = [("train", i) for i in range(num)] + [("val", i) for i in range(val_num)]
    for split, index in tqdm(jobs, desc="rtseg-synth", unit="img", disable=not progress):
        rng = np.random.default_rng([seed, SPLIT_SEED[split], index])
        camera = Camera.sample(rng, height, width)
        rgb, label_ids = generate_scene(rng, height, width, camera)
        train_ids = CITYSCAPES.id_to_train_id[label_ids]
        pixels += np.bincount(train_ids.ravel(), minlength=256)
        city, stem = image_stem(split, index)
        gt = out / "gtFine" / split / city / stem
        write_bytes_atomic(out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _png(rgb[..., ::-1]))
        write_bytes_atomic(Path(f"{gt}_gtFine_labelIds.png"), _png(label_ids))
        write_bytes_atomic(Path(f"{gt}_gtFine_labelTrainIds.png"), _png(train_ids))
        if color:
            write_bytes_atomic(Path(f"{gt}_gtFine_color.png"), _png(_COLOR_LUT[label_ids][..., ::-1]))
        write_bytes_atomic(out / "camera" / split / city / f"{stem}_camera.json",
                      (json.dumps(camera.to_json(), indent=4, sort_keys=True) + "\n").encode())
    return {"out": str(out), "size": [height, width], "seed": seed, "images": {"train": num, "val": val_num},
            "class_pixels": {name: int(pixels[i]) for i, name in enumerate(CITYSCAPES.class_names)},
            "ignore_pixels": int(pixels[IGNORE_INDEX])}


# ------------------------------------------------------------------------------------------------ CLI
def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 32:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: expected HEIGHTxWIDTH, both at least 32, "
                                         "e.g. 512x1024")
    return int(match[1]), int(match[2])


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtseg-synth",
        description="Write procedurally drawn street scenes in Cityscapes layout: leftImg8bit/, gtFine/ "
                    "(labelIds, labelTrainIds, color) and camera/ for the train and val splits. The same "
                    "arguments always give identical files; a larger --num keeps the earlier images.")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output root (created if missing)")
    parser.add_argument("--num", type=_count, default=100, metavar="N",
                        help="number of training images (default: 100)")
    parser.add_argument("--val-num", type=_count, default=None, metavar="N",
                        help="number of validation images (default: NUM // 5, at least 1)")
    parser.add_argument("--size", type=_size, default=(512, 1024), metavar="HxW",
                        help="image height x width in pixels (default: 512x1024; Cityscapes is 1024x2048)")
    parser.add_argument("--seed", type=_count, default=0, metavar="S",
                        help="random seed; image i of a split depends only on (S, split, i) (default: 0)")
    parser.add_argument("--no-color", dest="color", action="store_false",
                        help="skip the *_gtFine_color.png previews")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = write_dataset(args.out, args.num, args.size, args.seed, args.val_num, color=args.color,
                            progress=not args.quiet)
    if not args.quiet:
        present = [name for name, n in summary["class_pixels"].items() if n]
        images = summary["images"]
        print(f"wrote {images['train']} train + {images['val']} val images of {args.size[0]}x{args.size[1]} "
              f"to {args.out}; {len(present)}/{CITYSCAPES.num_classes} classes present")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
