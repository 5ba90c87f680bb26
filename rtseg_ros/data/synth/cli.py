"""``rtseg-synth``: the command line."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from .dataset import CITYSCAPES, write_dataset


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
