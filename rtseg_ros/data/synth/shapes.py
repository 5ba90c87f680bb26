"""Outlines in vehicle coordinates (metres, x forward, y left, z up) that scene elements are built from."""
import numpy as np


def ground(x0, x1, y0, y1, z=0.0) -> np.ndarray:
    """Horizontal rectangle at height z."""
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float)


def upright(x0, y0, x1, y1, z0, z1) -> np.ndarray:
    """Vertical rectangle standing on the segment (x0, y0)–(x1, y1)."""
    return np.array([[x0, y0, z0], [x1, y1, z0], [x1, y1, z1], [x0, y0, z1]], float)


def cutout(x, y, z, outline) -> np.ndarray:
    """A flat cut-out facing the camera: a 2-D outline (s to the image right, t up, metres) in the plane
    x = const around (x, y, z)."""
    outline = np.asarray(outline, float)
    return np.column_stack([np.full(len(outline), x), y - outline[:, 0], z + outline[:, 1]])


def ellipse(rs, rt, s=0.0, t=0.0, n=14) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([s + rs * np.cos(a), t + rt * np.sin(a)])


def rect(s0, s1, t0, t1) -> np.ndarray:
    return np.array([[s0, t0], [s1, t0], [s1, t1], [s0, t1]], float)


def limb(s0, t0, s1, t1, w0, w1) -> np.ndarray:
    """Tapered quad from (s0, t0) to (s1, t1), w0/w1 wide at its ends."""
    d = np.array([t1 - t0, s0 - s1]) / max(np.hypot(s1 - s0, t1 - t0), 1e-6)
    return np.array([[s0, t0] + d * w0 / 2, [s1, t1] + d * w1 / 2, [s1, t1] - d * w1 / 2, [s0, t0] - d * w0 / 2])


def regular(n, r, rotation=0.0) -> np.ndarray:
    a = rotation + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([r * np.cos(a), r * np.sin(a)])
