"""The run folder's logs: ``train_log.csv``, ``val_log.csv``, ``curves.png`` (both logs plotted) and ``tb/``
(TensorBoard), written by rank 0 alone, beside the resolved ``config.yaml``."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.labels import DatasetInfo
from ..fileio import atomic_path
from .config import save_yaml
from .curves import plot_curves
from .distributed import Runtime


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

    LOGS = ("train_log.csv", "val_log.csv")

    def trim(self, iteration: int) -> None:
        """Drop the rows logged after ``iteration`` (a resumed checkpoint's): a run killed after logging
        but before its next checkpoint logs those iterations again when it resumes."""
        for name in self.LOGS if self.enabled else ():
            path = self.out_dir / name
            if not path.exists():
                continue
            with path.open(newline="") as f:
                header, *rows = list(csv.reader(f)) or [[]]
            kept = [row for row in rows if row and int(row[0]) <= iteration]
            if len(kept) < len(rows):
                with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                    csv.writer(f).writerows([header, *kept])

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
        plot_curves(self.out_dir)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def open_run_folder(cfg: dict, out_dir: Path, runtime: Runtime, info: DatasetInfo,
                    resumed_at: int | None = None) -> RunLog:
    """The run folder with the resolved config in it (rank 0), and the logs that go there (cut back to
    the iteration the run resumes from)."""
    if runtime.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, out_dir / "config.yaml")
    log = RunLog(out_dir, runtime.is_main, cfg["log"]["tensorboard"], info.class_names)
    if resumed_at is not None:
        log.trim(resumed_at)
    return log
