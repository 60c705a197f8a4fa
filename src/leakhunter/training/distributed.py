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

from ..errors import LeakhunterError
from ..runtime import devices


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


def device_for(ctx: Context, requested: str) -> devices.Choice:
    """The device of this process (``cuda:LOCAL_RANK`` under torchrun with CUDA), made
    current. Raises :class:`devices.DeviceError` for a device the machine lacks."""
    choice = devices.resolve(requested, "train", ctx.local_rank if ctx.enabled else None)
    devices.activate(choice.device)
    return choice


def ddp_device_ids(device: torch.device) -> list[int] | None:
    """``device_ids`` for ``DistributedDataParallel``: the GPU's index, or None on CPU."""
    return [device.index] if device.type == "cuda" else None


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
