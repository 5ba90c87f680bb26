"""Perspective drawing: outlines in metres become pixel polygons, painted into the RGB and label images
by the same ``cv2.fillPoly`` call, so the labels are exactly what was drawn."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .camera import NEAR_PLANE, Camera, clip_to_near_plane
from .palette import LABEL


@dataclass
class Part:
    """Outlines in vehicle coordinates drawn with one label and colour (each outline filled on its own,
    so overlapping outlines add up instead of cancelling as they would in one even-odd fillPoly)."""

    polys: list
    label: int
    colour: np.ndarray
    line_width: float = 0.0  # > 0: draw the outlines as open polylines this many metres wide


class Canvas:
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
                points = clip_to_near_plane(points)
                if len(points) < 3:
                    continue
            out.append(self._pixels(points))
        return out

    def draw(self, part: Part, distance: float | None = None) -> None:
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

    def _stroke(self, part: Part, colour: tuple) -> None:
        """Open polylines, their width in metres turned into pixels at their mean depth."""
        for points in self._camera_frame(part.polys):
            if points[:, 0].min() < NEAR_PLANE:
                continue
            thickness = max(1, round(part.line_width * self.camera.fx / points[:, 0].mean()))
            pixels = [self._pixels(points)]
            cv2.polylines(self.label, pixels, False, part.label, thickness, cv2.LINE_8, self.SHIFT)
            cv2.polylines(self.rgb, pixels, False, colour, thickness, cv2.LINE_8, self.SHIFT)
