"""``curves.png`` in a run folder: training loss and learning rate, validation mIoU and per-class IoU, from
``train_log.csv`` and ``val_log.csv`` (redrawn after each validation, so a running job can be watched)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..fileio import write_bytes_atomic


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def plot_curves(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """Draw the run's curves into ``out`` (default ``run_dir/curves.png``); None when nothing is logged yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    train, val = _read(run_dir / "train_log.csv"), _read(run_dir / "val_log.csv")
    if not train:
        return None
    figure, (loss_axis, miou_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    steps = [int(row["iteration"]) for row in train]
    loss_axis.plot(steps, [float(row["loss"]) for row in train], lw=0.8, color="tab:blue")
    loss_axis.set(xlabel="iteration", ylabel="training loss", title="training")
    lr_axis = loss_axis.twinx()
    lr_axis.plot(steps, [float(row["lr"]) for row in train], lw=0.8, color="tab:gray", ls="--")
    lr_axis.set_ylabel("learning rate")
    if val:
        steps = [int(row["iteration"]) for row in val]
        classes = [name for name in val[0] if name not in ("iteration", "epoch", "miou", "pixel_accuracy")]
        for name in classes:
            miou_axis.plot(steps, [float(row[name]) for row in val], lw=0.7, alpha=0.6, label=name)
        miou_axis.plot(steps, [float(row["miou"]) for row in val], lw=2.5, color="black", label="mIoU")
        best = max(val, key=lambda row: float(row["miou"]))
        miou_axis.set_title(f"validation (best mIoU {100 * float(best['miou']):.1f} % at {best['iteration']})")
        miou_axis.legend(fontsize=7, ncol=2, loc="lower right")
    miou_axis.set(xlabel="iteration", ylabel="IoU", ylim=(0, 1))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return write_bytes_atomic(out or run_dir / "curves.png", buffer.getvalue())
