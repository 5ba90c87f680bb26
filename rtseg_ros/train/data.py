"""Training-side data plumbing: up-front label checks, a resumable sharded sampler, torch datasets.

Reproducibility: the sampler hands every sample its own augmentation seed, derived from (run seed,
epoch, position in the epoch), so the augmented batches depend on neither the number of loader workers
nor on whether the run was resumed, and a global batch is the same set of samples whether one process
or several draw it.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import tv_tensors

from ..data.datasets import DatasetLayoutError, SegmentationFolder, open_dataset, read_label
from ..data.labels import IGNORE_INDEX


class DataCheckError(ValueError):
    """The data on disk cannot be trained on (bad label values, image/label size mismatch, ...)."""


def open_splits(dataset: str, root, splits: str) -> SegmentationFolder:
    """``open_dataset`` for one split, or several joined with ``+`` (e.g. ``train+val``)."""
    parts = [open_dataset(dataset, root, split) for split in splits.split("+")]
    if len(parts) == 1:
        return parts[0]
    return SegmentationFolder([pair for part in parts for pair in part.pairs], parts[0].lookup, parts[0].info)


class _LabelScan(Dataset):
    def __init__(self, folder: SegmentationFolder):
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder.pairs)

    def __getitem__(self, index: int) -> tuple[str | None, np.ndarray]:
        image_path, label_path = self.folder.pairs[index]
        try:
            with Image.open(image_path) as image:
                image.load()  # decodes every pixel: a truncated file fails here, not mid-run
                width, height = image.size
            label = self.folder.lookup[read_label(label_path)]
        except (OSError, DatasetLayoutError) as exc:
            return f"{image_path}: {exc}", np.zeros(0, np.uint8)
        if label.shape != (height, width):
            return (f"image {image_path} is {width}x{height} but its label {label_path} is "
                    f"{label.shape[1]}x{label.shape[0]}"), np.zeros(0, np.uint8)
        return None, np.unique(label)


def check_split(folder: SegmentationFolder, split: str, num_workers: int = 0, progress: bool = False) -> None:
    """Read every label once; raise :class:`DataCheckError` listing the first problems found."""
    num_classes = folder.info.num_classes
    loader = DataLoader(_LabelScan(folder), batch_size=None, num_workers=num_workers)
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc=f"checking {split} labels", leave=False)
    problems = []
    for (error, values), (_, label_path) in zip(loader, folder.pairs):
        if error is None:
            bad = [int(v) for v in values if v >= num_classes and v != IGNORE_INDEX]
            if bad:
                error = (f"label {label_path} holds values {bad} outside the {num_classes} classes of "
                         f"{folder.info.name} (0-{num_classes - 1}, {IGNORE_INDEX} = ignore)")
        if error:
            problems.append(error)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataCheckError(f"{len(problems)} bad file(s) in the {split} split{more}:\n  " + "\n  ".join(problems[:5]))


def worker_error_message(error: Exception) -> str:
    """The reader's own message of an error raised in a DataLoader worker: torch re-raises it with the
    worker's whole traceback folded into the message, whose last line is ``module.Class: message``."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    return text.strip().splitlines()[-1].split(": ", 1)[-1]


def sample_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, np.uint64)[0] >> 1)


class TrainSampler(Sampler):
    """One shuffled permutation per epoch, cut into global batches of ``batch_size × world_size``; this rank
    takes its contiguous ``batch_size`` slice of each. Incomplete global batches are dropped. Yields
    ``(index, augmentation seed)``. ``set_epoch(epoch, start_batch)`` resumes in the middle of an epoch."""

    def __init__(self, size: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0):
        self.size, self.batch_size, self.world_size, self.rank, self.seed = size, batch_size, world_size, rank, seed
        self.batches_per_epoch = size // (batch_size * world_size)
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        global_batch = self.batch_size * self.world_size
        for batch in range(self.start_batch, self.batches_per_epoch):
            first = batch * global_batch + self.rank * self.batch_size
            for position in range(first, first + self.batch_size):
                yield order[position], sample_seed(self.seed, self.epoch, position)

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


def to_tv_tensors(sample: dict) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(sample["image"])).permute(2, 0, 1))
    return image, tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(sample["label"])))


class TrainSet(Dataset):
    """Augmented ``(image float 3×H×W, label uint8 H×W)`` for keys ``(index, seed)`` from :class:`TrainSampler`."""

    def __init__(self, folder: SegmentationFolder, transform):
        self.folder, self.transform = folder, transform

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key
        image, label = to_tv_tensors(self.folder[index])
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG alone (workers=0 runs in the main process)
            torch.manual_seed(seed)
            image, label = self.transform(image, label)
        return image.as_subclass(torch.Tensor), label.as_subclass(torch.Tensor)


class ValSet(Dataset):
    """``(normalised image at the eval input size, label at full resolution, index)``; this rank's shard
    (every ``world_size``-th image) of the first ``max_images``."""

    def __init__(self, folder: SegmentationFolder, transform, world_size: int = 1, rank: int = 0,
                 max_images: int | None = None):
        self.folder, self.transform = folder, transform
        self.indices = list(range(len(folder)))[:max_images][rank::world_size]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, label = to_tv_tensors(self.folder[self.indices[i]])
        return self.transform(image).as_subclass(torch.Tensor), label.as_subclass(torch.Tensor), self.indices[i]
