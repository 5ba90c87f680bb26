"""``rtseg-train``: train a registry model on Cityscapes, CamVid or a Cityscapes-layout folder.

Examples::

    rtseg-train --model ddrnet23_slim --dataset cityscapes --data-root /data/cityscapes
    rtseg-train --model sgcpnet --dataset camvid --data-root /data/CamVid --set optimizer.lr=0.1
    rtseg-train --resume runs/ddrnet23_slim_cityscapes/last.pt
    torchrun --nproc-per-node 4 -m rtseg_ros.train --model csfcn --dataset cityscapes --data-root ...
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..data.datasets import DatasetLayoutError
from ..data.labels import DATASET_NAMES
from ..models.checkpoint import CheckpointError, load_checkpoint
from ..runtime.choices import DEVICES
from .config import ConfigError, available_recipes, find_model_recipe, load_yaml, parse_override, resolve
from .data import DataCheckError

USER_ERRORS = (ConfigError, CheckpointError, DatasetLayoutError, DataCheckError, KeyError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtseg-train", description="Train a registry model on Cityscapes, CamVid or "
                                "a Cityscapes-layout folder; the checkpoint is all the node and rtseg-eval need.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Recipes: rtseg_ros/train/recipes/<model>_<dataset>.yaml (specs §3). Every config key "
                                       "can be overridden with --set section.key=value.")
    p.add_argument("--model", help="registry name (rtseg-models lists them)")
    p.add_argument("--dataset", choices=DATASET_NAMES,
                   help="class set and folder layout; cityscapes also reads any Cityscapes-layout folder")
    p.add_argument("--data-root", help="dataset folder")
    p.add_argument("--config", help="recipe YAML file, or a shipped recipe's name such as sgcpnet_camvid_cpu "
                                    "(default: the recipe <model>_<dataset>)")
    p.add_argument("--out", help="run folder (default: runs/<model>_<dataset>, or the resumed checkpoint's folder)")
    p.add_argument("--resume", help="checkpoint to continue from (last.pt); without --model/--config its saved "
                                    "config is used")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optimizer.lr=0.005 (repeatable)")
    p.add_argument("--max-iters", type=int, help="total iterations (the LR schedule spans them)")
    p.add_argument("--epochs", type=int, help="total epochs instead of the recipe's length")
    p.add_argument("--batch-size", type=int, help="total batch over all processes")
    p.add_argument("--workers", type=int, help="data loader processes per training process")
    p.add_argument("--pretrained-backbone", metavar="FILE",
                   help="torchvision-format ImageNet weights (a path, or a file name in torch's hub cache)")
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--seed", type=int)
    p.add_argument("--stop-at", type=int, metavar="ITER",
                   help="stop after this iteration (last.pt written) without changing the schedule; resume later")
    p.add_argument("--no-data-check", action="store_true", help="skip reading every label before training")
    return p


def resolve_config(args: argparse.Namespace) -> tuple[dict, Path | None]:
    """The resolved config and the checkpoint to resume from (if any)."""
    resume = Path(args.resume) if args.resume else None
    if resume is not None and resume.is_dir():
        resume = resume / "last.pt"
    if args.config:
        base = load_yaml(args.config)
    elif args.model:
        dataset = args.dataset or "cityscapes"
        recipe = find_model_recipe(args.model, dataset)
        if recipe is None:
            print(f"rtseg-train: no recipe {args.model}_{dataset}.yaml (have: {', '.join(available_recipes())}); "
                  "using the generic defaults", file=sys.stderr)
        base = load_yaml(recipe) if recipe else {}
    elif resume is not None:
        base = load_checkpoint(resume)["config"]
        base["train"]["stop_at"] = None  # the stop that ended the previous part of the run
    else:
        raise ConfigError("give --model (with --dataset), --config, or --resume")

    flags: dict = {"model": {}, "data": {}, "train": {}, "runtime": {}}
    for value, section, key in ((args.model, "model", "name"), (args.dataset, "data", "dataset"),
                                (args.data_root, "data", "root"), (args.workers, "data", "num_workers"),
                                (args.pretrained_backbone, "model", "pretrained_backbone"),
                                (args.batch_size, "train", "batch_size"), (args.max_iters, "train", "iters"),
                                (args.stop_at, "train", "stop_at"), (args.device, "runtime", "device"),
                                (args.seed, "runtime", "seed")):
        if value is not None:
            flags[section][key] = value
    if args.epochs is not None:
        flags["train"].update(epochs=args.epochs, iters=None)
    if args.no_data_check:
        flags["data"]["check"] = False
    return resolve(base, flags, *(parse_override(text) for text in args.overrides)), resume


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .trainer import train  # after argument parsing, so --help is quick

    try:
        cfg, resume = resolve_config(args)
        out = Path(args.out) if args.out else (resume.parent if resume else
                                               Path("runs") / f"{cfg['model']['name']}_{cfg['data']['dataset']}")
        summary = train(cfg, out, resume)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise SystemExit(f"rtseg-train: error: {message}") from None
    if int(os.environ.get("RANK", 0)) == 0:
        best = (f"best val mIoU {summary['best_miou']:.4f}" if summary["best_miou"] >= 0
                else "not validated yet (no best.pt)")
        print(f"rtseg-train: finished at iteration {summary['iteration']}; {best}; wrote "
              f"{', '.join(summary['checkpoints'])} in {summary['out_dir']}")
    return 0
