"""``rtseg-eval``: score a network on a rosbag or a dataset folder, offline, without a ROS runtime.

The frames go through the same ``Segmenter`` the node uses (same pre- and post-processing); the report is
the one the evaluator node writes: mIoU, per-class IoU, per-frame Segmenter latency, ``report.json``,
``report.md`` and plots. ``--pred-topic`` scores predictions already recorded in the bag instead (for
example a ``ros2 bag record`` of ``segment_node``'s ``~/labels``), with no network run at all.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from cityscapesscripts.helpers.labels import labels as cs_labels
from tqdm import tqdm

from ..data.datasets import DatasetLayoutError, open_dataset
from ..data.encodings import to_rgb
from ..data.labels import DATASET_NAMES, IGNORE_INDEX, DatasetInfo, get_dataset_info
from ..data.rosbag import BagError, labelled_frames
from ..fileio import write_bytes_atomic
from ..runtime.segmenter import Segmenter
from ..common import parse_size
from ..runtime.choices import BACKENDS, PRECISIONS, resolve_device
from ..topics import IMAGE_TOPIC, LABELS_TOPIC
from .metrics import ConfusionMatrix
from .report import Samples, build_report, write_report

def parse_args(argv):
    p = argparse.ArgumentParser(prog="rtseg-eval", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                epilog="Examples:\n  rtseg-eval --bag val_bag --weights best.pt --out eval_out\n"
                                       "  rtseg-eval --data-root /data/cityscapes --split val --weights best.pt\n"
                                       "  rtseg-eval --bag recorded --pred-topic /segment_node/labels",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--bag", type=Path, help="rosbag2 folder (e.g. from rtseg-make-bag)")
    source.add_argument("--data-root", type=Path, help="dataset folder (Cityscapes layout or CamVid)")
    p.add_argument("--dataset", default="cityscapes", choices=DATASET_NAMES,
                   help="dataset of --data-root, and class table of bags (default cityscapes)")
    p.add_argument("--split", default="val", help="split of --data-root (default val)")
    p.add_argument("--image-topic", default=IMAGE_TOPIC, help=f"bag image topic (default {IMAGE_TOPIC})")
    p.add_argument("--labels-topic", default=LABELS_TOPIC, help=f"bag ground-truth topic (default {LABELS_TOPIC})")
    p.add_argument("--pred-topic", help="score predictions recorded on this bag topic instead of running a model")
    p.add_argument("--model", help="registry name; default: the model the checkpoint names")
    p.add_argument("--weights", help="rtseg-train checkpoint or published state_dict")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="inference engine (default auto: as the node; see segment_node --help)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--input-size", type=parse_size, help="network input HxW (default: the model's)")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N frames (default: all)")
    p.add_argument("--samples", type=int, default=6, help="sample rows in samples.png (default 6; 0: none)")
    p.add_argument("--save-predictions", type=Path, help="also write each prediction as a PNG here (Cityscapes: "
                   "label ids named like the input image, the format the official evaluator reads)")
    p.add_argument("--out", type=Path, default=Path("eval_out"), help="report folder (default eval_out)")
    p.add_argument("--overwrite", action="store_true", help="replace the report in an existing --out folder")
    return p.parse_args(argv)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a supervisor, ``timeout``) ends the run like Ctrl-C: the report is kept


def _folder_frames(args) -> tuple[int, Iterator[tuple[str, np.ndarray, str, np.ndarray]]]:
    folder = open_dataset(args.dataset, args.data_root, args.split)
    total = len(folder) if not args.limit else min(args.limit, len(folder))

    def frames():
        for index in range(total):
            frame = folder[index]
            yield frame["name"], frame["image"], "rgb8", frame["label"]
    return total, frames()


def _bag_frames(args, topic: str) -> tuple[int, Iterator[tuple[str, np.ndarray, str, np.ndarray]]]:
    total, frames = labelled_frames(args.bag, topic, args.labels_topic, args.limit)
    return total, ((f"{f.stamp_ns}.png", f.image, f.encoding, f.labels) for f in frames)


def _prediction_writer(args, info: DatasetInfo):
    if not args.save_predictions:
        return lambda name, prediction: None
    lookup = np.arange(256, dtype=np.uint8)  # train ids as they are, except for Cityscapes:
    if info.name == "cityscapes":  # the official evaluator reads label ids
        for label in cs_labels:
            if 0 <= label.trainId < IGNORE_INDEX:
                lookup[label.trainId] = label.id

    def write(name: str, prediction: np.ndarray) -> None:
        write_bytes_atomic(args.save_predictions / name, cv2.imencode(".png", lookup[prediction])[1].tobytes())
    return write


def evaluate(args) -> dict:
    segmenter = None
    if args.pred_topic:
        if not args.bag:
            raise SystemExit("rtseg-eval: --pred-topic needs --bag")
        info = get_dataset_info(args.dataset)
        meta = {"source": str(args.bag), "predictions": args.pred_topic}
    else:
        device = resolve_device(args.device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA device is available here (use --device cpu)")
        segmenter = Segmenter(args.model, weights=args.weights, device=device, backend=args.backend,
                              precision=args.precision, dataset=args.dataset,
                              input_size=args.input_size)
        info = segmenter.dataset
        facts = segmenter.describe()
        meta = {"source": str(args.bag or args.data_root), "model": facts["model"], "weights": facts["weights"],
                "device": facts["device"], "backend": facts["backend"], "precision": facts["precision"],
                "input_size": facts["input_size"]}
        if segmenter.random_weights:
            print("rtseg-eval: WARNING: no --weights given; scoring a randomly initialised network", file=sys.stderr)
    if args.bag:
        total, frames = _bag_frames(args, args.pred_topic or args.image_topic)
    else:
        total, frames = _folder_frames(args)

    matrix, samples, latency_ms = ConfusionMatrix(info.num_classes), Samples(args.samples), []
    save = _prediction_writer(args, info)
    evaluated, stopped = 0, ""  # stopped: why the run ended before the last frame
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        for index, (name, image, encoding, truth) in enumerate(tqdm(frames, total=total, desc="rtseg-eval",
                                                                    unit="frame")):
            if segmenter is None:  # predictions from the bag
                if image.shape[2] != 1:
                    raise SystemExit(f"rtseg-eval: {args.pred_topic} holds {encoding} images; predictions must be mono8")
                prediction = image[..., 0]
            else:
                start = time.perf_counter()
                prediction = segmenter(image, encoding).labels
                latency_ms.append(1e3 * (time.perf_counter() - start))
            if prediction.shape != truth.shape:
                raise SystemExit(f"rtseg-eval: frame {name}: prediction is {prediction.shape[1]}x{prediction.shape[0]} "
                                 f"but its ground truth is {truth.shape[1]}x{truth.shape[0]}")
            matrix.update(torch.from_numpy(prediction), torch.from_numpy(truth))
            save(name, prediction)
            if samples.wants(index) and segmenter is not None:
                samples.add(index, to_rgb(image, encoding), prediction.copy(), truth)
            evaluated += 1
    except KeyboardInterrupt:
        stopped = "interrupted"
    except BagError as error:
        if evaluated == 0:
            raise
        stopped = str(error)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    if evaluated == 0:
        raise SystemExit(f"rtseg-eval: {'interrupted before any' if stopped else 'no'} frame with ground truth "
                         f"{'was scored' if stopped else 'found in ' + str(args.bag or args.data_root)}")
    if stopped:
        meta["partial"] = f"stopped after {evaluated} of {total} frames: {stopped}"
    report = build_report(matrix, info, {"total": total, "evaluated": evaluated}, latency_ms, meta,
                          "time per Segmenter call, host wall clock")
    write_report(args.out, report, info, latency_ms, samples.picked())
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (args.out / "report.json").exists() and not args.overwrite:
        print(f"rtseg-eval: error: {args.out} already holds a report; pick another --out or add --overwrite",
              file=sys.stderr)
        return 1
    try:
        report = evaluate(args)
    except (BagError, DatasetLayoutError, FileNotFoundError, KeyError, ValueError) as error:
        print(f"rtseg-eval: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # during start-up, before any frame
        print("rtseg-eval: interrupted before any frame was scored; no report written", file=sys.stderr)
        return 130
    if report.get("partial"):
        print(f"rtseg-eval: partial report ({report['partial']}): mIoU {100 * report['miou']:.1f} % over "
              f"{report['frames']['evaluated']} frames; wrote {args.out / 'report.json'}", file=sys.stderr)
        return 130 if report["partial"].endswith("interrupted") else 1
    latency = report["latency_ms"]
    timing = f"; Segmenter p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms" if latency else ""
    print(f"mIoU {100 * report['miou']:.1f} % over {report['frames']['evaluated']} frames{timing}")
    print(f"wrote {args.out / 'report.json'}, report.md and plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
