"""Weights shipped inside the package, addressable by name wherever a weights file is accepted
(``weights:=sgcpnet_camvid`` in the node and the launch files, ``--weights sgcpnet_camvid`` in the tools).

Each file is an rtseg_ros checkpoint without its training state (``rtseg-export --inference-checkpoint``),
installed as package data by pip and colcon alike. Its sha256 is checked before it is read, so a damaged or
modified copy is refused; reading itself is the usual ``weights_only=True`` load.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ShippedWeights:
    name: str  # what users type: weights:=<name>
    model: str  # registry name
    dataset: str  # class table (names, palette) stored in the checkpoint
    num_classes: int
    input_size: tuple[int, int]  # (H, W) the network was validated at
    val_miou: float  # on the dataset's val split, as rtseg-eval reports it through the Segmenter
    sha256: str
    trained: str  # how long, on what
    command: str  # how to reproduce it

    @property
    def path(self) -> Path:
        return FOLDER / f"{self.name}.pt"


SHIPPED = (
    ShippedWeights(
        name="sgcpnet_camvid", model="sgcpnet", dataset="camvid", num_classes=11, input_size=(360, 480),
        val_miou=0.644, sha256="190e16feb92cb0142726392352e5cd8fda91cabbd6ff70fb517b1ec36909a317",
        trained="5,000 iterations at batch 8 on 2 CPU cores, 3,000 of them in 38 min idle",
        command="rtseg-train --config sgcpnet_camvid_cpu --data-root CamVid --out runs/sgcpnet_camvid_cpu && "
                "rtseg-export --weights runs/sgcpnet_camvid_cpu/best.pt --inference-checkpoint sgcpnet_camvid.pt"),
)
BY_NAME = {weights.name: weights for weights in SHIPPED}
DEFAULT = "sgcpnet_camvid"  # the best shipped model: what segment_node runs given neither model nor weights


class TamperedWeightsError(ValueError):
    """A shipped weights file whose content is not what the package shipped."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(weights: str | Path) -> Path:
    """A weights argument as a file: a shipped name becomes its verified package file; anything else is a path."""
    shipped = BY_NAME.get(str(weights))
    if shipped is None:
        return Path(weights)
    if not shipped.path.is_file():
        raise FileNotFoundError(f"shipped weights {shipped.name} are missing from the installed package "
                                f"({shipped.path}): reinstall rtseg_ros")
    digest = file_sha256(shipped.path)
    if digest != shipped.sha256:
        raise TamperedWeightsError(f"shipped weights {shipped.name} ({shipped.path}) fail their sha256 check "
                                   f"(file {digest[:16]}…, shipped {shipped.sha256[:16]}…): the file was modified "
                                   "or damaged and was not loaded; reinstall rtseg_ros")
    return shipped.path


def choose(model: str | None, weights: str | None) -> tuple[str | None, str | None]:
    """(model, weights) to build, from what a user gave: weights alone name their model; a model alone runs
    on random weights (plumbing checks); neither gives the best shipped model, ``DEFAULT``."""
    if not model and not weights:
        return None, DEFAULT
    return model or None, weights or None


def markdown_table() -> str:
    """The shipped weights, as ``rtseg-models`` prints them."""
    lines = ["| weights | model | dataset (classes) | input (H×W) | val mIoU | trained | sha256 |",
             "|---|---|---|---|---:|---|---|"]
    for w in SHIPPED:
        lines.append(f"| `{w.name}` | {w.model} | {w.dataset} ({w.num_classes}) | {w.input_size[0]}×{w.input_size[1]} "
                     f"| {100 * w.val_miou:.1f} % | {w.trained} | `{w.sha256[:16]}…` |")
    return "\n".join(lines)
