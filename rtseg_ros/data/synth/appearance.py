"""What happens to the drawn RGB image afterwards: sky, texture, haze, lighting, blur and sensor noise.
They change colours, never where a class is."""
import cv2
import numpy as np

from .canvas import Canvas
from .palette import LABEL, SKY_CLEAR, SKY_OVERCAST, TEXTURE, TINT
from .street import Street


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


def finish(canvas: Canvas, rng: np.random.Generator, street: Street) -> np.ndarray:
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
