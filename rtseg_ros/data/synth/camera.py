"""The pinhole camera every scene is seen through (Cityscapes' calibration model) and the near plane."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

NEAR_PLANE = 0.3  # metres in front of the camera; polygons are clipped there


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


def clip_to_near_plane(points: np.ndarray) -> np.ndarray:
    """Sutherland–Hodgman: the part of a camera-frame polygon with depth (x) ≥ NEAR_PLANE."""
    kept = []
    for a, b in zip(points, np.roll(points, -1, axis=0)):
        a_in, b_in = a[0] >= NEAR_PLANE, b[0] >= NEAR_PLANE
        if a_in:
            kept.append(a)
        if a_in != b_in:
            kept.append(a + (b - a) * (NEAR_PLANE - a[0]) / (b[0] - a[0]))
    return np.array(kept).reshape(-1, 3)
