"""``rtseg-demo``: the whole chain on one machine, on real street frames, with nothing to download.

By default it writes the eight real CamVid frames the package ships (``rtseg_ros/data/demo_frames``, source
and terms in its README) as a rosbag2 (as ``rtseg-make-bag``) and replays them through ``segment_node``
running a shipped model to ``evaluator_node`` (as ``rtseg-replay``): three processes talking over real DDS,
as ``replay.launch.py`` starts them.

``--synthetic`` runs the chain from scratch instead: it draws a small Cityscapes-layout street dataset (as
``rtseg-synth``), trains a network on it for a few hundred CPU iterations (as ``rtseg-train``; skipped with
``--weights``), writes its validation split as a bag and replays that.

The evaluation report (``report.json``, ``report.md``, confusion matrix, per-class IoU, latency histogram
and sample overlays) lands in ``--out``/eval.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from rtseg_ros.apps import replay
from rtseg_ros.common import parse_size
from rtseg_ros.data.synth import write_dataset
from rtseg_ros.tools.make_bag import dataset_to_bag
from rtseg_ros.train.config import find_model_recipe, load_yaml, resolve
from rtseg_ros.train.trainer import train as train_model

DEMO_FRAMES = Path(__file__).resolve().parents[1] / "data" / "demo_frames"  # CamVid layout, val split
SYNTHETIC_MODEL = "ddrnet23_slim"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="rtseg-demo", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                epilog="Example: rtseg-demo --out demo_out   (--synthetic: train a toy network first)")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="working folder (default: demo_out)")
    p.add_argument("--model", help="network to run: on the real frames, its shipped weights (default: the best "
                                   f"shipped model); with --synthetic, the one to train (default {SYNTHETIC_MODEL})")
    p.add_argument("--weights", help="run this checkpoint (or shipped name) instead")
    p.add_argument("--synthetic", action="store_true",
                   help="draw synthetic scenes and train a toy network on them instead of the real frames")
    p.add_argument("--size", type=parse_size, default=(64, 128),
                   help="--synthetic: frame size HxW of the synthetic data (default 64x128)")
    p.add_argument("--train-images", type=int, default=48, help="--synthetic: training images (default 48)")
    p.add_argument("--val-images", type=int, default=24, help="--synthetic: frames replayed to the node (default 24)")
    p.add_argument("--iters", type=int, default=300, help="--synthetic: training iterations (default 300)")
    p.add_argument("--rate", type=float, help="replay at this many frames per second (default: lockstep, each "
                   "frame once the previous one's prediction is back)")
    p.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", 42)),
                   help="ROS_DOMAIN_ID of the replay (default: $ROS_DOMAIN_ID or 42; discovery stays on localhost)")
    return p.parse_args(argv)


def train(args, data: Path, size: tuple[int, int], step: str) -> Path:
    run = args.out / "run"
    if (run / "best.pt").is_file():
        print(f"{step} reusing {run / 'best.pt'}")
        return run / "best.pt"
    model = args.model or SYNTHETIC_MODEL
    print(f"{step} training {model} for {args.iters} iterations on the CPU")
    recipe = find_model_recipe(model, "cityscapes")
    # The model's recipe, shortened to a toy run: frame-sized crops, a high LR for a few hundred iterations.
    cfg = resolve(load_yaml(recipe) if recipe else {}, {
        "model": {"name": model}, "data": {"root": str(data), "num_workers": 2},
        "train": {"batch_size": 8, "iters": args.iters, "crop": list(size)}, "runtime": {"device": "cpu"},
        "optimizer": {"lr": 0.1}, "augment": {"scale": [0.75, 1.5]}})
    summary = train_model(cfg, run)
    print(f"trained to iteration {summary['iteration']}; best val mIoU {summary['best_miou']:.4f}")
    return run / "best.pt"


def write_bag(data: Path, dataset: str, bag: Path, step: str) -> None:
    shutil.rmtree(bag, ignore_errors=True)  # the demo's own bag, remade each run
    print(f"{step} writing the frames of {data} to the rosbag {bag}")
    print(f"wrote {bag}: {dataset_to_bag(data, bag, dataset=dataset)} frames")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(args.domain_id))
    bag = args.out / "val_bag"
    if args.synthetic:
        size, data = args.size, args.out / "synth"
        print(f"[1/4] drawing {args.train_images} + {args.val_images} synthetic scenes of {size[0]}x{size[1]} "
              f"in {data}")
        write_dataset(data, args.train_images, size, seed=0, val_num=args.val_images, progress=False)
        weights = str(Path(args.weights).resolve()) if args.weights else str(train(args, data, size, "[2/4]").resolve())
        write_bag(data, "cityscapes", bag, "[3/4]")
        model, replay_step = "", "[4/4]"
    else:
        size, weights, model = None, args.weights or "", args.model or ""
        write_bag(DEMO_FRAMES, "camvid", bag, "[1/2]")
        replay_step = "[2/2]"
    pacing = f"at {args.rate:g} Hz" if args.rate else "in lockstep"
    print(f"{replay_step} replaying {bag} {pacing} through segment_node to evaluator_node")
    code = replay.run(replay.Replay(bag=bag, model=model, weights=weights, device="cpu",
                                    pacing="rate" if args.rate else "lockstep", rate=args.rate or 0.0,
                                    input_size=size, out=args.out / "eval", node_param=["cpu_threads:=1"]))
    if code:
        return code
    report = json.loads((args.out / "eval" / "report.json").read_text())
    frames, latency = report["frames"], report["latency_ms"]
    print(f"segment_node ({report['model']}, {report['weights']}) answered {frames['evaluated']}/"
          f"{frames['published']} frames; val mIoU {100 * report['miou']:.1f} % (pixel accuracy "
          f"{100 * report['pixel_accuracy']:.1f} %); latency p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms")
    print(f"report: {args.out / 'eval' / 'report.md'} (plots beside it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
