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

The package is split by scene element, each module drawing from the image's generator in a fixed order
(see :func:`.scene.lay_out_street`):

- ``palette``: label ids and colours; ``shapes``: outlines in metres; ``camera``: the pinhole camera;
  ``canvas``: perspective drawing into the RGB and label images
- ``street``: one street's layout and its drawing layers
- scene elements: ``road``, ``roadside`` (kerb, sidewalk, fences, hedges, walls), ``buildings``,
  ``vegetation``, ``furniture`` (poles, signs, traffic lights, bins), ``vehicles``, ``people``
- ``appearance``: sky, texture, haze, lighting, blur and sensor noise
- ``scene``: the composer (:func:`generate_scene`); ``dataset``: the file tree; ``cli``: ``rtseg-synth``
"""
from .camera import Camera
from .cli import build_parser, main
from .dataset import ANNOTATED_FRAME, CITIES, SPLIT_SEED, image_stem, write_dataset
from .palette import LABEL
from .scene import generate_scene

__all__ = ["ANNOTATED_FRAME", "CITIES", "LABEL", "SPLIT_SEED", "Camera", "build_parser", "generate_scene",
           "image_stem", "main", "write_dataset"]
