"""Data-parallel training under ``torchrun``: one process per device, gradients averaged by DDP.

``torchrun --nproc_per_node=N -m transformer train ...`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``;
``setup`` reads them and joins the process group (NCCL on CUDA, Gloo on CPU). Without them training runs in
one process and every helper here is a no-op. Each rank takes every N-th batch of the epoch (the sampler's
``num_replicas``/``rank``), the loss is normalised by the target tokens of *all* ranks, and only rank 0
writes files.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # ``setup`` joined the process group, so ``cleanup`` leaves it

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0


def resolve_device(setting: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: CUDA if available else CPU; ``"cuda"``: this process's GPU; anything else as given."""
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device='cuda' but CUDA is not available")
        return torch.device("cuda", local_rank)
    return torch.device(setting)


def setup(device_setting: str) -> World:
    """Join the process group described by torchrun's environment variables, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting, local_rank)
    owns_group = world_size > 1 and not dist.is_initialized()
    if owns_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return World(rank=rank, world_size=world_size, device=device, owns_group=owns_group)


def cleanup(world: World) -> None:
    """Leave the process group if ``setup`` joined it."""
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, world: World) -> nn.Module:
    """DistributedDataParallel around ``module`` when there are several processes, else ``module``."""
    if world.world_size == 1:
        return module
    device_ids = [world.device.index] if world.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def no_sync(module: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Skip DDP's gradient all-reduce in this backward unless ``sync`` (accumulate locally first)."""
    module = getattr(module, "_orig_mod", module)  # under torch.compile
    if sync or not isinstance(module, DistributedDataParallel):
        return contextlib.nullcontext()
    return module.no_sync()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all processes, in place, and return it."""
    if dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_objects(values: list, src: int = 0) -> list:
    """Everyone gets rank ``src``'s list (of picklable values), e.g. scores only rank 0 computed."""
    if dist.is_initialized():
        dist.broadcast_object_list(values, src=src)
    return values


def all_gather_objects(value: object) -> list:
    """Every process's ``value``, ordered by rank."""
    if not dist.is_initialized():
        return [value]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
