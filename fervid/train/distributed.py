"""Data-parallel helpers for runs started by torchrun (one process per GPU or CPU share)."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist


def dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_distributed(device: str) -> tuple[int, int, str]:
    """Join torchrun's process group when there is one; (rank, world, device to use)."""
    rank, world, local = dist_info()
    if world > 1:
        use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        else:
            device = "cpu"
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, device


def reduce_sum(cm, loss_sum: float) -> tuple[np.ndarray, float]:
    """Sum a confusion matrix and a loss total over all processes."""
    t = torch.tensor(np.asarray(cm), dtype=torch.float64)
    s = torch.tensor([loss_sum], dtype=torch.float64)
    dist.all_reduce(t)
    dist.all_reduce(s)
    return t.round().long().numpy(), float(s[0])
