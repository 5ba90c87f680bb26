"""The training loop behind ``rtseg-train``: one process, or one per GPU under ``torchrun`` (DDP).

Everything that can be wrong with the inputs (config, model name, data folders, label files, resume
checkpoint) is checked before the first iteration. Rank 0 alone writes the run folder:

``config.yaml`` (resolved config), ``last.pt`` / ``best.pt`` (see :mod:`rtseg_ros.models.checkpoint`, whose
``make_checkpoint`` makes them), ``train_log.csv``, ``val_log.csv``, ``curves.png`` (both logs plotted) and ``tb/``
(TensorBoard).

Beside it: the processes and their devices in ``train/distributed.py``, the run folder's logs in
``train/runlog.py``, validation in ``train/validation.py``.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.datasets import DatasetLayoutError
from ..data.labels import DatasetInfo, get_dataset_info
from ..models.checkpoint import CheckpointError, check_compatible, load_checkpoint, make_checkpoint, save_checkpoint
from ..models.registry import ModelEntry, build_model, get_entry
from .config import ConfigError
from .data import DataCheckError, TrainSampler, TrainSet, ValSet, check_split, open_splits, worker_error_message
from .distributed import Runtime, setup_runtime
from .losses import build_loss
from .optim import build_optimizer, build_scheduler
from .rng_state import rng_state, set_rng_state
from .runlog import RunLog, open_run_folder
from .transforms import build_eval_transform, build_train_transform
from .validation import evaluate

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
    ``{"iteration", "best_miou", "last_miou", "out_dir", "checkpoints"}`` (the checkpoint files the run has)."""
    out_dir = Path(out_dir)
    runtime = setup_runtime(cfg["runtime"])
    try:
        return _train(cfg, out_dir, resume, runtime)
    finally:
        if runtime.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: dict, out_dir: Path, resume, runtime: Runtime) -> dict:
    """The run as a list of steps; each one below, in this order. The order is part of the result: a
    resumed run is bit-identical to an uninterrupted one only because every random draw happens in the
    same place."""
    inputs = set_up_run(cfg, out_dir, resume, runtime)
    run = build_run(cfg, out_dir, runtime, inputs)
    loop = start_loop(run)
    try:
        for epoch, images, labels in batches(run, loop.iteration):
            loss = forward_and_loss(run, images, labels)
            lr = backward_and_step(run, loss)
            loop.iteration += 1
            log_step(run, loop, epoch, loss, lr)
            maybe_validate(run, loop, epoch)
            maybe_checkpoint(run, loop)
    except DatasetLayoutError as exc:  # a file the data check did not read (or data.check is off)
        loop.progress.close()
        kept = (f"; {out_dir / 'last.pt'} is kept: fix or remove the file, then --resume it"
                if (out_dir / "last.pt").exists() else "")
        raise DataCheckError(f"{worker_error_message(exc)} (at iteration {loop.iteration + 1}){kept}") from None
    return finish(run, loop)


# ---- set-up: everything that can be wrong with the inputs, before any training ----------------------
@dataclass
class RunInputs:
    """The checked inputs of a run: model entry, dataset, the checkpoint resumed from, the data folders."""

    entry: ModelEntry
    info: DatasetInfo
    aux: bool
    aux_weights: tuple[float, ...]
    model_options: dict  # stored in checkpoints: no local file paths
    checkpoint: dict | None
    train_folder: object
    val_folder: object
    batch_per_rank: int


def set_up_run(cfg: dict, out_dir: Path, resume, runtime: Runtime) -> RunInputs:
    mcfg, dcfg, tcfg = cfg["model"], cfg["data"], cfg["train"]
    entry = get_entry(mcfg["name"])
    info = get_dataset_info(dcfg["dataset"])
    num_classes = info.num_classes
    aux = entry.has_aux if mcfg["aux"] is None else bool(mcfg["aux"])
    aux_weights = tuple(cfg["loss"]["aux_weights"] if cfg["loss"]["aux_weights"] is not None else entry.aux_weights)
    aux_weights = aux_weights if aux else ()
    model_options = dict(mcfg["options"])

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
    return RunInputs(entry, info, aux, aux_weights, model_options, checkpoint, train_folder, val_folder,
                     tcfg["batch_size"] // runtime.world_size)


# ---- model, loss, optimiser and data, restored from the checkpoint when resuming --------------------
@dataclass
class Run:
    """Everything the training steps work with; fixed for the whole run."""

    cfg: dict
    out_dir: Path
    runtime: Runtime
    inputs: RunInputs
    model: nn.Module  # what the steps call: the DDP wrapper when there are several processes
    raw_model: nn.Module  # what is evaluated and saved
    channels_last: bool
    criterion: nn.Module
    autocast: Callable
    use_scaler: bool
    scaler: torch.amp.GradScaler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: TrainSampler
    loader: DataLoader
    val_loader: DataLoader
    iters_per_epoch: int
    total: int  # iterations of the whole schedule
    end: int  # where this process stops (train.stop_at, or total)
    start: int
    best_miou: float
    input_size: list[int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    log: RunLog


def build_run(cfg: dict, out_dir: Path, runtime: Runtime, inputs: RunInputs) -> Run:
    mcfg, dcfg, tcfg, rcfg = cfg["model"], cfg["data"], cfg["train"], cfg["runtime"]
    entry, checkpoint = inputs.entry, inputs.checkpoint
    seed = rcfg["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # identical initial weights on every rank
    if rcfg["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = runtime.device.type == "cuda" and not rcfg["deterministic"]
    build_options = dict(inputs.model_options)
    if mcfg["pretrained_backbone"] and checkpoint is None:
        build_options["pretrained_backbone"] = resolve_backbone_file(mcfg["pretrained_backbone"])
    model = build_model(entry.name, num_classes=inputs.info.num_classes, aux=inputs.aux, **build_options)
    use_cuda = runtime.device.type == "cuda"
    if runtime.world_size > 1 and rcfg["sync_bn"]:
        if use_cuda:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif runtime.is_main:
            tqdm.write("SyncBatchNorm needs CUDA: CPU processes keep per-process BatchNorm statistics")
    channels_last = rcfg["channels_last"] is True or (rcfg["channels_last"] == "auto" and use_cuda)
    model.to(runtime.device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    criterion = build_loss(cfg["loss"], inputs.aux_weights).to(runtime.device)
    autocast, use_scaler = _autocast(runtime, rcfg)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=use_scaler)

    mean = tuple(dcfg["mean"] or entry.mean)
    std = tuple(dcfg["std"] or entry.std)
    sampler = TrainSampler(len(inputs.train_folder), inputs.batch_per_rank, runtime.world_size, runtime.rank, seed)
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
    loader = DataLoader(TrainSet(inputs.train_folder, build_train_transform(cfg["augment"], tcfg["crop"], mean, std)),
                        batch_size=inputs.batch_per_rank, sampler=sampler, num_workers=workers, pin_memory=use_cuda,
                        drop_last=True, persistent_workers=workers > 0)
    ecfg = cfg["eval"]
    val_set = ValSet(inputs.val_folder, build_eval_transform(ecfg["input_size"], mean, std), runtime.world_size,
                     runtime.rank, ecfg["max_images"])
    val_loader = DataLoader(val_set, batch_size=ecfg["batch_size"], num_workers=min(workers, 2))
    input_size = list(ecfg["input_size"] or inputs.val_folder[0]["label"].shape)

    end = min(total, int(tcfg["stop_at"])) if tcfg["stop_at"] else total
    if start >= end:
        raise ConfigError(f"nothing to do: the checkpoint is at iteration {start} and this run stops at {end} "
                          f"(train.iters/--max-iters, train.epochs or --stop-at)")
    log = open_run_folder(cfg, out_dir, runtime, inputs.info, resumed_at=start if checkpoint is not None else None)
    return Run(cfg=cfg, out_dir=out_dir, runtime=runtime, inputs=inputs, model=model, raw_model=raw_model,
               channels_last=channels_last, criterion=criterion, autocast=autocast, use_scaler=use_scaler,
               scaler=scaler, optimizer=optimizer, scheduler=scheduler, sampler=sampler, loader=loader,
               val_loader=val_loader, iters_per_epoch=iters_per_epoch, total=total, end=end, start=start,
               best_miou=best_miou, input_size=input_size, mean=mean, std=std, log=log)


# ---- the loop ------------------------------------------------------------------------------------------
@dataclass
class Loop:
    """What changes from one iteration to the next."""

    iteration: int
    best_miou: float
    progress: tqdm
    loss_sum: torch.Tensor  # since the last log line, summed on the device (no sync per step)
    window_iters: int = 0
    window_start: float = 0.0
    run_start: float = 0.0
    last_miou: float = math.nan


def start_loop(run: Run) -> Loop:
    runtime = run.runtime
    progress = tqdm(total=run.total, initial=run.start, disable=not runtime.is_main, dynamic_ncols=True, desc="train")
    loop = Loop(run.start, run.best_miou, progress, torch.zeros((), device=runtime.device))
    loop.window_start = loop.run_start = time.perf_counter()
    run.model.train()
    return loop


def batches(run: Run, start: int):
    """``(epoch, images, labels)`` on the device for iterations ``start`` to ``run.end``; the sampler
    resumes in the middle of an epoch."""
    iteration = start
    while iteration < run.end:
        epoch, start_batch = divmod(iteration, run.iters_per_epoch)
        run.sampler.set_epoch(epoch, start_batch)
        for images, labels in run.loader:
            images = images.to(run.runtime.device, non_blocking=True)
            if run.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = labels.to(run.runtime.device, non_blocking=True).long()
            yield epoch, images, labels
            iteration += 1
            if iteration >= run.end:
                return


def forward_and_loss(run: Run, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with run.autocast():
        outputs = run.model(images)
    return run.criterion(outputs, labels)


def backward_and_step(run: Run, loss: torch.Tensor) -> float:
    """One optimiser step; returns the learning rate it used (the scheduler then moves on)."""
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    lr = run.optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    return lr


def log_step(run: Run, loop: Loop, epoch: int, loss: torch.Tensor, lr: float) -> None:
    """Add the loss to the window; every ``log.every`` iterations (and at the end) log its mean and speed."""
    loop.loss_sum += loss.detach()
    loop.window_iters += 1
    loop.progress.update(1)
    iteration, log_every = loop.iteration, run.cfg["log"]["every"]
    if not ((log_every and iteration % log_every == 0) or iteration == run.end):
        return
    mean_loss = float(loop.loss_sum) / loop.window_iters
    if not math.isfinite(mean_loss) and not run.use_scaler:  # (the loss scaler skips fp16 overflows)
        raise FloatingPointError(f"loss is {mean_loss} at iteration {iteration}; lower optimizer.lr")
    now = time.perf_counter()
    speed = loop.window_iters * run.cfg["train"]["batch_size"] / (now - loop.window_start)
    loop.progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}")
    run.log.train(iteration, epoch, mean_loss, lr, speed, now - loop.run_start)
    loop.loss_sum.zero_()
    loop.window_iters, loop.window_start = 0, now


def maybe_validate(run: Run, loop: Loop, epoch: int) -> None:
    """Every ``eval.every`` iterations (and at the end of the schedule): validate, log, keep the best."""
    iteration, eval_every, info = loop.iteration, run.cfg["eval"]["every"], run.inputs.info
    if not ((eval_every and iteration % eval_every == 0) or iteration == run.total):
        return
    matrix, pictures = evaluate(run.raw_model, run.val_loader, info.num_classes, run.runtime, run.autocast, info,
                                run.cfg["log"]["num_images"] if run.runtime.is_main else 0)
    summary = matrix.summary(info.class_names)
    loop.last_miou = summary["miou"]
    run.log.val(iteration, epoch, summary, pictures)
    improved = loop.last_miou > loop.best_miou  # False for NaN (no class present)
    loop.best_miou = loop.last_miou if improved else loop.best_miou
    if run.runtime.is_main:
        loop.progress.write(f"iteration {iteration}: val mIoU {loop.last_miou:.4f} (best {loop.best_miou:.4f})")
    if improved:
        write_checkpoint(run, loop, ("best.pt",))


def maybe_checkpoint(run: Run, loop: Loop) -> None:
    """Every ``checkpoint.every`` iterations, and where this process stops: ``last.pt``."""
    ckpt_every = run.cfg["checkpoint"]["every"]
    if (ckpt_every and loop.iteration % ckpt_every == 0) or loop.iteration == run.end:
        write_checkpoint(run, loop, ("last.pt",))


def write_checkpoint(run: Run, loop: Loop, names: tuple[str, ...]) -> None:
    if not run.runtime.is_main:
        return
    inputs, iteration = run.inputs, loop.iteration
    state = make_checkpoint(
        model=inputs.entry.name, model_options=inputs.model_options, num_classes=inputs.info.num_classes,
        aux=inputs.aux, dataset=inputs.info.to_dict(), input_size=run.input_size, mean=run.mean, std=run.std,
        state_dict=run.raw_model.state_dict(), optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(), scaler=run.scaler.state_dict(), rng=rng_state(),
        iteration=iteration, epoch=iteration // run.iters_per_epoch, best_miou=loop.best_miou, config=run.cfg)
    for name in names:
        save_checkpoint(state, run.out_dir / name)


def finish(run: Run, loop: Loop) -> dict:
    loop.progress.close()
    run.log.close()
    if run.runtime.world_size > 1:
        dist.barrier()
    validated = loop.best_miou >= 0  # -1 until a validation scores (best.pt is written then)
    written = [name for name in ("last.pt", "best.pt") if (name == "last.pt" or validated)
               and (run.out_dir / name).exists()]
    return {"iteration": loop.iteration, "best_miou": loop.best_miou, "last_miou": loop.last_miou,
            "out_dir": str(run.out_dir), "checkpoints": written}
