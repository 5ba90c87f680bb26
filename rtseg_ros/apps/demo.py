"""``rtseg-demo``: the whole chain on one machine, with nothing to download.

1. draws a small Cityscapes-layout street dataset (as ``rtseg-synth``);
2. trains a network on it for a few hundred iterations on the CPU (as ``rtseg-train``; skipped with
   ``--weights``);
3. writes the validation split as a rosbag2 (as ``rtseg-make-bag``);
4. replays the bag through ``segment_node`` to ``evaluator_node`` (as ``rtseg-replay``): three processes
   talking over real DDS, as ``replay.launch.py`` starts them.

Steps 1-3 call the tools' functions in this process; step 4 starts the nodes as separate processes.

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
from rtseg_ros.data.synth import write_dataset
from rtseg_ros.common import parse_size
from rtseg_ros.tools.make_bag import dataset_to_bag
from rtseg_ros.train.config import find_model_recipe, load_yaml, resolve
from rtseg_ros.train.trainer import train as train_model


def parse_args(argv):
    p = argparse.ArgumentParser(prog="rtseg-demo", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                epilog="Example: rtseg-demo --out demo_out")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="working folder (default: demo_out)")
    p.add_argument("--model", default="ddrnet23_slim", help="network to train and run (default ddrnet23_slim)")
    p.add_argument("--weights", help="use this checkpoint instead of training one")
    p.add_argument("--size", type=parse_size, default=(64, 128), help="frame size HxW of the synthetic data (default 64x128)")
    p.add_argument("--train-images", type=int, default=48, help="synthetic training images (default 48)")
    p.add_argument("--val-images", type=int, default=24, help="frames replayed to the node (default 24)")
    p.add_argument("--iters", type=int, default=300, help="training iterations (default 300)")
    p.add_argument("--rate", type=float, help="replay at this many frames per second (default: lockstep, each "
                   "frame once the previous one's prediction is back)")
    p.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", 42)),
                   help="ROS_DOMAIN_ID of the replay (default: $ROS_DOMAIN_ID or 42; discovery stays on localhost)")
    return p.parse_args(argv)


def train(args, data: Path, size: tuple[int, int]) -> Path:
    run = args.out / "run"
    if (run / "best.pt").is_file():
        print(f"[2/4] reusing {run / 'best.pt'}")
        return run / "best.pt"
    print(f"[2/4] training {args.model} for {args.iters} iterations on the CPU")
    recipe = find_model_recipe(args.model, "cityscapes")
    # The model's recipe, shortened to a toy run: frame-sized crops, a high LR for a few hundred iterations.
    cfg = resolve(load_yaml(recipe) if recipe else {}, {
        "model": {"name": args.model}, "data": {"root": str(data), "num_workers": 2},
        "train": {"batch_size": 8, "iters": args.iters, "crop": list(size)}, "runtime": {"device": "cpu"},
        "optimizer": {"lr": 0.1}, "augment": {"scale": [0.75, 1.5]}})
    summary = train_model(cfg, run)
    print(f"trained to iteration {summary['iteration']}; best val mIoU {summary['best_miou']:.4f}")
    return run / "best.pt"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = args.size
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(args.domain_id))
    data = args.out / "synth"
    print(f"[1/4] drawing {args.train_images} + {args.val_images} synthetic scenes of {size[0]}x{size[1]} in {data}")
    write_dataset(data, args.train_images, size, seed=0, val_num=args.val_images, progress=False)
    weights = Path(args.weights) if args.weights else train(args, data, size)
    bag = args.out / "val_bag"
    shutil.rmtree(bag, ignore_errors=True)  # the demo's own bag, remade from the data just drawn
    print(f"[3/4] writing the validation split to the rosbag {bag}")
    written = dataset_to_bag(data, bag)
    print(f"wrote {bag}: {written} frames")
    pacing = f"at {args.rate:g} Hz" if args.rate else "in lockstep"
    print(f"[4/4] replaying {bag} {pacing} through segment_node to evaluator_node")
    code = replay.run(replay.Replay(bag=bag, weights=str(weights.resolve()), device="cpu",
                                    pacing="rate" if args.rate else "lockstep", rate=args.rate or 0.0,
                                    input_size=size, out=args.out / "eval", node_param=["cpu_threads:=1"]))
    if code:
        return code
    report = json.loads((args.out / "eval" / "report.json").read_text())
    frames, latency = report["frames"], report["latency_ms"]
    print(f"segment_node answered {frames['evaluated']}/{frames['published']} frames; val mIoU "
          f"{100 * report['miou']:.1f} % (pixel accuracy {100 * report['pixel_accuracy']:.1f} %); latency p50 "
          f"{latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms")
    print(f"report: {args.out / 'eval' / 'report.md'} (plots beside it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
