"""Distributed training under ``torchrun``: process group set-up and small collectives.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them training runs in
one process and every helper here is a no-op. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import LeakhunterError


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the only process that logs and writes files."""
        return self.rank == 0


def from_environment() -> Context:
    """The context ``torchrun`` describes in the environment (single process otherwise)."""
    try:
        return Context(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise LeakhunterError(f"bad torchrun environment: {exc}") from None


def device_for(ctx: Context, requested: str) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` under torchrun with CUDA."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LeakhunterError(f"--device {requested}: CUDA is not available on this machine")
        if ctx.enabled:
            device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    return device


def init(ctx: Context, device: torch.device) -> None:
    if ctx.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(minutes=10))


def close(ctx: Context) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(ctx: Context, tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, in place (a no-op in one process). A synchronisation point."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(ctx: Context, tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's values to every rank, in place."""
    if ctx.enabled:
        dist.broadcast(tensor, src=0)
    return tensor
