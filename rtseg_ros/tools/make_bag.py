"""``rtseg-make-bag``: a Cityscapes-layout (or CamVid) folder → a rosbag2 for replay and evaluation.

Each frame becomes ``/camera/image_raw`` (rgb8 or bgr8), ``/camera/camera_info`` (intrinsics from Cityscapes'
``camera/*_camera.json`` when present, else an uncalibrated all-zero K) and ``/camera/labels_gt`` (mono8 train
ids, 255 = ignore), all with one header stamp, at 17 Hz by default. Written with the ``rosbags`` library, so
no ROS install is needed; ``ros2 bag info``/``play`` read the result.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..data.datasets import DatasetLayoutError, open_dataset
from ..data.labels import DATASET_NAMES
from ..data.rosbag import CITYSCAPES_RATE_HZ, BagError, Frame, bag_summary, cityscapes_intrinsics, write_bag


def parse_args(argv):
    p = argparse.ArgumentParser(prog="rtseg-make-bag", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                epilog="Example: rtseg-make-bag --data-root /data/cityscapes --split val --out val_bag")
    p.add_argument("--data-root", type=Path, required=True, help="dataset folder (Cityscapes layout, e.g. "
                   "rtseg-synth output, or CamVid)")
    p.add_argument("--dataset", default="cityscapes", choices=DATASET_NAMES, help="default cityscapes")
    p.add_argument("--split", default="val", help="split to convert (default val)")
    p.add_argument("--out", type=Path, required=True, help="bag folder to create (must not exist)")
    p.add_argument("--storage", default="sqlite3", choices=("sqlite3", "mcap"), help="rosbag2 storage (default sqlite3)")
    p.add_argument("--rate", type=float, default=CITYSCAPES_RATE_HZ,
                   help=f"frames per second of the recorded timing (default {CITYSCAPES_RATE_HZ:g}, Cityscapes' rate)")
    p.add_argument("--encoding", default="rgb8", choices=("rgb8", "bgr8"), help="image encoding (default rgb8)")
    p.add_argument("--frame-id", default="camera", help="header frame_id (default camera)")
    p.add_argument("--limit", type=int, default=0, help="convert only the first N frames (default: all)")
    return p.parse_args(argv)


def dataset_to_bag(data_root: Path, out: Path, dataset: str = "cityscapes", split: str = "val",
                   storage: str = "sqlite3", rate_hz: float = CITYSCAPES_RATE_HZ, encoding: str = "rgb8",
                   frame_id: str = "camera", limit: int = 0) -> int:
    """Write ``split`` of the dataset folder ``data_root`` as the rosbag2 ``out``; returns the frames written.

    Raises ``BagError`` (e.g. ``out`` exists), ``DatasetLayoutError`` or ``KeyError`` (unknown dataset)."""
    folder = open_dataset(dataset, data_root, split)
    count = len(folder) if not limit else min(limit, len(folder))

    def frames():
        for index in tqdm(range(count), desc="rtseg-make-bag", unit="frame"):
            frame = folder[index]
            yield Frame(frame["image"], frame["label"], cityscapes_intrinsics(folder.pairs[index][0]))
    return write_bag(out, frames(), rate_hz=rate_hz, storage=storage, encoding=encoding, frame_id=frame_id)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rate <= 0:
        print("rtseg-make-bag: error: --rate must be positive", file=sys.stderr)
        return 2
    try:
        written = dataset_to_bag(args.data_root, args.out, args.dataset, args.split, args.storage, args.rate,
                                 args.encoding, args.frame_id, args.limit)
    except (BagError, DatasetLayoutError, KeyError, OSError) as error:  # OSError: e.g. --out not writable
        print(f"rtseg-make-bag: error: {error}", file=sys.stderr)
        return 1
    summary = bag_summary(args.out)
    print(f"wrote {args.out}: {written} frames, {summary['duration_s']:.2f} s at {args.rate:g} Hz ({args.storage})")
    for topic, facts in summary["topics"].items():
        print(f"  {topic:24s} {facts['type']:28s} {facts['count']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
