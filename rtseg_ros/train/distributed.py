"""The processes of a training run: one, or one per GPU under ``torchrun`` (DDP); the device each one uses."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..runtime.choices import resolve_device
from .config import ConfigError


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
    if resolve_device(wanted) == "cuda":
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
