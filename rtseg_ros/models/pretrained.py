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

from .registry import get_entry

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
        val_miou=0.644, sha256="a8f1e027e7eac381a4ac748c55e9c109c002aa15c6d388703dc65587c6f030df",
        trained="5,000 iterations at batch 8 on 2 CPU cores, 3,000 of them in 38 min idle",
        command="rtseg-train --config sgcpnet_camvid_cpu --data-root CamVid --out runs/sgcpnet_camvid_cpu && "
                "rtseg-export --weights runs/sgcpnet_camvid_cpu/best.pt --inference-checkpoint sgcpnet_camvid.pt"),
    ShippedWeights(
        name="farsee_camvid", model="farsee", dataset="camvid", num_classes=11, input_size=(360, 480),
        val_miou=0.563, sha256="59b8abadea16de267d4d2dc59f853a8cb9756c15b611c8d4502433cfae9142e1",
        trained="2,000 iterations at batch 8 on 2 CPU cores, 2 h 10 min (shared with other work)",
        command="rtseg-train --config farsee_camvid_cpu --data-root CamVid --out runs/farsee_camvid_cpu && "
                "rtseg-export --weights runs/farsee_camvid_cpu/best.pt --inference-checkpoint farsee_camvid.pt"),
)
BY_NAME = {weights.name: weights for weights in SHIPPED}
DEFAULT = "sgcpnet_camvid"  # the best shipped model: what segment_node runs given neither model nor weights
RANDOM = "random"  # weights:=random: random initialisation, only when asked for by name
# BCPNet is SGCPNet's earlier version with the same architecture: model:=bcpnet runs SGCPNet's weights, as
# sgcpnet (no BCPNet run of its own was affordable here).
STAND_INS = {"bcpnet": "sgcpnet"}
# Registered networks without shipped weights, why, and the command that trains them.
NOT_SHIPPED = {
    "csfcn": ("25 MB in fp16, over what the 64 MB budget leaves; 2.9 s per CPU iteration",
              "rtseg-train --config csfcn_camvid --data-root CamVid"),
    "csfcn_mnv3": ("its CPU run (csfcn_mnv3_camvid_cpu) was set aside after 90 iterations for DDRNet-23-slim's: "
                   "one run at a time on two cores",
                   "rtseg-train --config csfcn_mnv3_camvid_cpu --data-root CamVid"),
    "ddrnet23_slim": ("its CPU run (63.2 % val mIoU) predates fp16 storage and its checkpoint was not kept",
                      "rtseg-train --config ddrnet23_slim_camvid_cpu --data-root CamVid"),
    "ddrnet23": ("39 MB in fp16, over the 64 MB budget with the others", "rtseg-train --config ddrnet23_camvid "
                 "--data-root CamVid"),
    "ddrnet39": ("62 MB in fp16, the whole 64 MB budget", "rtseg-train --config ddrnet39_camvid --data-root CamVid"),
}


def shipped_for(model: str) -> ShippedWeights | None:
    """The shipped weights ``model`` (a registry name) runs when no weights are given, if any."""
    model = STAND_INS.get(model, model)
    return next((w for w in SHIPPED if w.model == model), None)


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
    its shipped weights (BCPNet SGCPNet's, as sgcpnet); neither gives the best shipped model, ``DEFAULT``;
    ``weights=RANDOM`` random initialisation of ``model`` (plumbing checks). Raises ValueError, in one line,
    for a model with no shipped weights, saying what to give instead."""
    if weights == RANDOM:
        if not model:
            raise ValueError(f"weights:={RANDOM} needs a model (e.g. model:=farsee)")
        return model, None
    if weights or not model:
        return model or None, weights or DEFAULT
    try:
        name = get_entry(model).name
    except KeyError:
        return model, None  # the builder refuses an unknown model in its own words
    shipped = shipped_for(name)
    if shipped is None:
        reason, command = NOT_SHIPPED[name]
        raise ValueError(f"no weights ship for model {model!r} ({reason}): give weights:=<checkpoint> (train one: "
                         f"{command}), or weights:={RANDOM} for a plumbing check")
    return STAND_INS.get(name, name), shipped.name


def startup_note(model: str | None, weights: str | None) -> str | None:
    """What segment_node says at start-up when it picked shipped weights itself (None when it did not)."""
    chosen = BY_NAME.get(choose(model, weights)[1]) if not weights else None
    if chosen is None:
        return None
    stand_in = model and get_entry(model).name in STAND_INS
    return (f"{f'model {model}' if model else 'no model or weights given'}: running the shipped {chosen.name} "
            f"({chosen.model} trained on {chosen.dataset}, {chosen.num_classes} classes, val mIoU "
            f"{100 * chosen.val_miou:.1f} %)"
            + ("; BCPNet is SGCPNet's earlier version, the same architecture, so it runs SGCPNet's weights"
               if stand_in else ""))


def markdown_table() -> str:
    """The shipped weights, as ``rtseg-models`` prints them, then the networks without any and why."""
    lines = ["| weights | model | dataset (classes) | input (H×W) | val mIoU | size | trained | sha256 |",
             "|---|---|---|---|---:|---:|---|---|"]
    for w in SHIPPED:
        lines.append(f"| `{w.name}` | {w.model} | {w.dataset} ({w.num_classes}) | {w.input_size[0]}×{w.input_size[1]} "
                     f"| {100 * w.val_miou:.1f} % | {w.path.stat().st_size / 2**20:.1f} MB | {w.trained} "
                     f"| `{w.sha256[:16]}…` |")
    for model, stand_in in STAND_INS.items():
        lines.append(f"| - | {model} | | | | | runs `{shipped_for(model).name}`: the same architecture as "
                     f"{stand_in} | |")
    for model, (reason, command) in NOT_SHIPPED.items():
        lines.append(f"| - | {model} | | | | | not shipped: {reason}; `{command}` | |")
    return "\n".join(lines)
