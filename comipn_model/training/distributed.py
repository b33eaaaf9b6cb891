"""Where a run executes: the process group under ``torchrun`` (NCCL on CUDA, gloo on CPU), seeding, and the
RNG states a resumed run restores."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from comipn_model.saved import run_folder as rf


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any(self, flag: bool, device: torch.device | None = None) -> bool:
        """True on every rank when ``flag`` is true on some rank (ranks must stop at the same step).
        ``device``: where the collective runs (NCCL needs the rank's GPU)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)


def device_kind(name: str) -> str:
    return "cuda" if name.startswith("cuda") or (name == "auto" and torch.cuda.is_available()) else "cpu"


def init_distributed(kind: str) -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_rng_state(dinfo: Dist) -> dict:
    # Every rank starts from the same seed and draws the same number of numbers, so rank 0's state
    # is every rank's state; a resumed run restores it on each rank.
    return rf.rng_state()


def set_rng_state(state: dict, rank: int = 0) -> None:
    rf.set_rng_state(state)
