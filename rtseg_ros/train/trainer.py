"""The training loop behind ``rtseg-train``: one process, or one per GPU under ``torchrun`` (DDP).

Everything that can be wrong with the inputs (config, model name, data folders, label files, resume
checkpoint) is checked before the first iteration. Rank 0 alone writes the run folder:

``config.yaml`` (resolved config), ``last.pt`` / ``best.pt`` (see :mod:`rtseg_ros.models.checkpoint`), ``train_log.csv``,
``val_log.csv`` and ``tb/`` (TensorBoard).
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.labels import colorize, get_dataset_info
from ..eval.metrics import ConfusionMatrix
from ..models.registry import build_model, get_entry
from ..models.checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint
from .checkpoint import rng_state, set_rng_state
from .config import ConfigError, save_yaml
from .data import TrainSampler, TrainSet, ValSet, check_split, open_splits
from .losses import build_loss
from .optim import build_optimizer, build_scheduler
from .transforms import build_eval_transform, build_train_transform


@dataclass
class Runtime:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime(cfg: dict) -> Runtime:
    """Pick the device and join the process group that ``torchrun`` describes in the environment."""
    world_size, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    wanted = cfg["device"]
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device is 'cuda' but no CUDA device is available")
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = cfg["dist_backend"]
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return Runtime(rank, world_size, device)


def resolve_backbone_file(value: str) -> str:
    """A torchvision-format weights file: a path, or a file name in torch's hub cache (never downloads)."""
    path = Path(value).expanduser()
    if path.is_file():
        return str(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / value
    if cached.is_file():
        return str(cached)
    raise FileNotFoundError(f"pretrained backbone {value!r} is neither a file nor in torch's hub cache "
                            f"({cached.parent})")


def _autocast(runtime: Runtime, cfg: dict):
    """(context factory, whether to scale the loss): mixed precision on CUDA by default, on CPU when asked."""
    if not (cfg["amp"] is True or (cfg["amp"] == "auto" and runtime.device.type == "cuda")):
        return contextlib.nullcontext, False
    dtype = getattr(torch, cfg["amp_dtype"])
    return (lambda: torch.autocast(runtime.device.type, dtype=dtype)), dtype == torch.float16


class RunLog:
    """Rank 0's CSV files, TensorBoard writer and console (tqdm-safe) output; a no-op on other ranks."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, class_names: tuple[str, ...]):
        self.enabled, self.out_dir, self.class_names, self.writer = enabled, out_dir, class_names, None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(out_dir / "tb")
            except ImportError:
                tqdm.write("tensorboard is not installed: no TensorBoard logs (CSV logs are still written)")

    def _append_csv(self, name: str, header: list[str], row: list) -> None:
        path = self.out_dir / name
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(header)
            writer.writerow(row)

    def train(self, iteration: int, epoch: int, loss: float, lr: float, images_per_s: float, elapsed: float) -> None:
        if not self.enabled:
            return
        self._append_csv("train_log.csv", ["iteration", "epoch", "loss", "lr", "images_per_s", "elapsed_s"],
                         [iteration, epoch, f"{loss:.6f}", f"{lr:.8g}", f"{images_per_s:.2f}", f"{elapsed:.1f}"])
        if self.writer:
            self.writer.add_scalar("train/loss", loss, iteration)
            self.writer.add_scalar("train/lr", lr, iteration)
            self.writer.add_scalar("train/images_per_s", images_per_s, iteration)

    def val(self, iteration: int, epoch: int, summary: dict, images: list[np.ndarray]) -> None:
        if not self.enabled:
            return
        ious = [summary["iou"][name] for name in self.class_names]
        self._append_csv("val_log.csv", ["iteration", "epoch", "miou", "pixel_accuracy", *self.class_names],
                         [iteration, epoch, f"{summary['miou']:.6f}", f"{summary['pixel_accuracy']:.6f}",
                          *(f"{v:.6f}" for v in ious)])
        if self.writer:
            self.writer.add_scalar("val/miou", summary["miou"], iteration)
            self.writer.add_scalar("val/pixel_accuracy", summary["pixel_accuracy"], iteration)
            for name, value in zip(self.class_names, ious):
                if not math.isnan(value):
                    self.writer.add_scalar(f"val_iou/{name}", value, iteration)
            for i, image in enumerate(images):
                self.writer.add_image(f"val/prediction_{i}", image, iteration, dataformats="HWC")
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, runtime: Runtime, autocast, info,
             num_images: int = 0) -> tuple[ConfusionMatrix, list[np.ndarray]]:
    """Confusion matrix over the loader (all ranks' shards summed) and up to ``num_images`` pictures of
    ground truth above prediction, coloured with the dataset palette."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, device=runtime.device)
    pictures = []
    for images, labels, _ in loader:
        images, labels = images.to(runtime.device), labels.to(runtime.device)
        with autocast():
            logits = model(images)
        if logits.shape[-2:] != labels.shape[-2:]:  # eval input resized: score at label resolution
            logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        prediction = logits.argmax(1)
        matrix.update(prediction, labels)
        for gt, pred in zip(labels, prediction):
            if len(pictures) < num_images:
                pictures.append(np.concatenate([colorize(gt.byte().cpu().numpy(), info),
                                                colorize(pred.byte().cpu().numpy(), info)], axis=0))
    model.train(was_training)
    return matrix.all_reduce(), pictures


def open_data(dcfg: dict, batch_size: int, runtime: Runtime):
    """Open the train and val splits and (rank 0) read every label once; raises on anything unusable."""
    if not dcfg["root"]:
        raise ConfigError("no data root given (--data-root DIR or data.root)")
    train_folder = open_splits(dcfg["dataset"], dcfg["root"], dcfg["train_split"])
    val_folder = open_splits(dcfg["dataset"], dcfg["root"], dcfg["val_split"])
    if batch_size % runtime.world_size:
        raise ConfigError(f"train.batch_size {batch_size} (the total over all processes) is not divisible by the "
                          f"{runtime.world_size} processes")
    if len(train_folder) < batch_size:
        raise ConfigError(f"the {dcfg['train_split']} split has {len(train_folder)} images, fewer than one batch "
                          f"({batch_size})")
    if dcfg["check"] and runtime.is_main:
        for folder, split in ((train_folder, dcfg["train_split"]), (val_folder, dcfg["val_split"])):
            check_split(folder, split, dcfg["num_workers"], progress=True)
    if runtime.world_size > 1:
        dist.barrier()  # the other ranks wait for rank 0's checks (torchrun ends them if these failed)
    return train_folder, val_folder


def train(cfg: dict, out_dir: str | Path, resume: str | Path | None = None) -> dict:
    """Run the training ``cfg`` describes (a resolved config) into ``out_dir``; returns a summary dict
    ``{"iteration", "best_miou", "last_miou", "out_dir"}``."""
    out_dir = Path(out_dir)
    runtime = setup_runtime(cfg["runtime"])
    try:
        return _train(cfg, out_dir, resume, runtime)
    finally:
        if runtime.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: dict, out_dir: Path, resume, runtime: Runtime) -> dict:
    mcfg, dcfg, tcfg, rcfg = cfg["model"], cfg["data"], cfg["train"], cfg["runtime"]
    entry = get_entry(mcfg["name"])
    info = get_dataset_info(dcfg["dataset"])
    num_classes = info.num_classes
    aux = entry.has_aux if mcfg["aux"] is None else bool(mcfg["aux"])
    aux_weights = tuple(cfg["loss"]["aux_weights"] if cfg["loss"]["aux_weights"] is not None else entry.aux_weights)
    aux_weights = aux_weights if aux else ()
    model_options = dict(mcfg["options"])  # stored in checkpoints: no local file paths

    # ---- everything that can be wrong with the inputs, before any training -------------------------
    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(resume)
        check_compatible(checkpoint, entry.name, num_classes)
        if checkpoint["model_options"] != model_options or bool(checkpoint["aux"]) != aux:
            raise CheckpointError(f"checkpoint {resume} was trained with options {checkpoint['model_options']} "
                                  f"(aux={checkpoint['aux']}), this run asks for {model_options} (aux={aux})")
    elif runtime.is_main and (out_dir / "last.pt").exists():
        raise ConfigError(f"{out_dir} already holds a run (last.pt); add --resume {out_dir / 'last.pt'} to continue "
                          "it, or choose another --out")
    train_folder, val_folder = open_data(dcfg, tcfg["batch_size"], runtime)
    batch_per_rank = tcfg["batch_size"] // runtime.world_size

    # ---- model, optimisation ------------------------------------------------------------------------
    seed = rcfg["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # identical initial weights on every rank
    if rcfg["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = runtime.device.type == "cuda" and not rcfg["deterministic"]
    build_options = dict(model_options)
    if mcfg["pretrained_backbone"] and checkpoint is None:
        build_options["pretrained_backbone"] = resolve_backbone_file(mcfg["pretrained_backbone"])
    model = build_model(entry.name, num_classes=num_classes, aux=aux, **build_options)
    use_cuda = runtime.device.type == "cuda"
    if runtime.world_size > 1 and rcfg["sync_bn"]:
        if use_cuda:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif runtime.is_main:
            tqdm.write("SyncBatchNorm needs CUDA: CPU processes keep per-process BatchNorm statistics")
    channels_last = rcfg["channels_last"] is True or (rcfg["channels_last"] == "auto" and use_cuda)
    model.to(runtime.device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    criterion = build_loss(cfg["loss"], aux_weights).to(runtime.device)
    autocast, use_scaler = _autocast(runtime, rcfg)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=use_scaler)

    mean = tuple(dcfg["mean"] or entry.mean)
    std = tuple(dcfg["std"] or entry.std)
    sampler = TrainSampler(len(train_folder), batch_per_rank, runtime.world_size, runtime.rank, seed)
    iters_per_epoch = sampler.batches_per_epoch
    total = int(tcfg["iters"] or tcfg["epochs"] * iters_per_epoch)
    optimizer = build_optimizer(model, cfg["optimizer"])
    scheduler = build_scheduler(optimizer, total, cfg["scheduler"], iters_per_epoch)

    start, best_miou = 0, -1.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        start, best_miou = int(checkpoint["iteration"]), float(checkpoint["best_miou"])
        if runtime.is_main:
            set_rng_state(checkpoint["rng"])
    if runtime.rank:
        torch.manual_seed(seed + runtime.rank + start)  # different dropout draws per rank
    raw_model = model
    if runtime.world_size > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[runtime.device.index] if use_cuda else None)

    workers = dcfg["num_workers"]
    loader = DataLoader(TrainSet(train_folder, build_train_transform(cfg["augment"], tcfg["crop"], mean, std)),
                        batch_size=batch_per_rank, sampler=sampler, num_workers=workers, pin_memory=use_cuda,
                        drop_last=True, persistent_workers=workers > 0)
    ecfg = cfg["eval"]
    val_set = ValSet(val_folder, build_eval_transform(ecfg["input_size"], mean, std), runtime.world_size,
                     runtime.rank, ecfg["max_images"])
    val_loader = DataLoader(val_set, batch_size=ecfg["batch_size"], num_workers=min(workers, 2))
    input_size = list(ecfg["input_size"] or val_folder[0]["label"].shape)

    # ---- run folder ----------------------------------------------------------------------------------
    if runtime.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, out_dir / "config.yaml")
    log = RunLog(out_dir, runtime.is_main, cfg["log"]["tensorboard"], info.class_names)

    def write_checkpoint(names: tuple[str, ...], iteration: int) -> None:
        if not runtime.is_main:
            return
        state = {
            "model": entry.name, "model_options": model_options, "num_classes": num_classes, "aux": aux,
            "dataset": info.to_dict(), "input_size": input_size, "mean": list(mean), "std": list(std),
            "state_dict": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
            "iteration": iteration, "epoch": iteration // iters_per_epoch, "best_miou": best_miou, "config": cfg,
        }
        for name in names:
            save_checkpoint(state, out_dir / name)

    # ---- the loop ------------------------------------------------------------------------------------
    end = min(total, int(tcfg["stop_at"])) if tcfg["stop_at"] else total
    iteration, last_miou = start, math.nan
    ckpt_every, eval_every, log_every = cfg["checkpoint"]["every"], ecfg["every"], cfg["log"]["every"]
    progress = tqdm(total=total, initial=start, disable=not runtime.is_main, dynamic_ncols=True, desc="train")
    loss_sum, window_iters = torch.zeros((), device=runtime.device), 0
    window_start = run_start = time.perf_counter()
    model.train()
    while iteration < end:
        epoch, start_batch = divmod(iteration, iters_per_epoch)
        sampler.set_epoch(epoch, start_batch)
        for images, labels in loader:
            images = images.to(runtime.device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = labels.to(runtime.device, non_blocking=True).long()
            with autocast():
                outputs = model(images)
            loss = criterion(outputs, labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            iteration += 1
            loss_sum += loss.detach()
            window_iters += 1
            progress.update(1)

            if (log_every and iteration % log_every == 0) or iteration == end:
                mean_loss = float(loss_sum) / window_iters
                if not math.isfinite(mean_loss) and not use_scaler:  # (the loss scaler skips fp16 overflows)
                    raise FloatingPointError(f"loss is {mean_loss} at iteration {iteration}; lower optimizer.lr")
                now = time.perf_counter()
                speed = window_iters * tcfg["batch_size"] / (now - window_start)
                progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}")
                log.train(iteration, epoch, mean_loss, lr, speed, now - run_start)
                loss_sum.zero_()
                window_iters, window_start = 0, now
            if (eval_every and iteration % eval_every == 0) or iteration == total:
                matrix, pictures = evaluate(raw_model, val_loader, num_classes, runtime, autocast, info,
                                            cfg["log"]["num_images"] if runtime.is_main else 0)
                summary = matrix.summary(info.class_names)
                last_miou = summary["miou"]
                log.val(iteration, epoch, summary, pictures)
                improved = last_miou > best_miou  # False for NaN (no class present)
                best_miou = last_miou if improved else best_miou
                if runtime.is_main:
                    progress.write(f"iteration {iteration}: val mIoU {last_miou:.4f} (best {best_miou:.4f})")
                if improved:
                    write_checkpoint(("best.pt",), iteration)
            if (ckpt_every and iteration % ckpt_every == 0) or iteration == end:
                write_checkpoint(("last.pt",), iteration)
            if iteration >= end:
                break
    progress.close()
    log.close()
    if runtime.world_size > 1:
        dist.barrier()
    return {"iteration": iteration, "best_miou": best_miou, "last_miou": last_miou, "out_dir": str(out_dir)}
