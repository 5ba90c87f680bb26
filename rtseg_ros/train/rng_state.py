"""The training state an ``rtseg-train`` checkpoint carries beside the weights: the random generators.

The format, reading, atomic saving and loading of checkpoints live in :mod:`rtseg_ros.models.checkpoint`
(inference uses them too); optimizer, scheduler and scaler states are their own ``state_dict()``s.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict:
    """torch (CPU and CUDA), NumPy and Python RNG states in ``weights_only``-loadable form."""
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": _to_lists(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value
