"""Multi-process training with torchrun + DistributedDataParallel: gloo on CPU, NCCL on CUDA.

`torchrun --nproc_per_node=N -m depth_node.cli train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; without them
training runs as one process and every helper here is a no-op. Each rank draws its own share of every
epoch's permutation (`EpochBatchSampler` shards the same (seed, epoch) permutation, the same job as
DistributedSampler but resumable mid-epoch); rank 0 alone logs, validates and writes checkpoints, the others
wait at a barrier. Stop requests (signals, time budget) are agreed by an all-reduce so that all ranks leave
the loop after the same step and no collective is left waiting.
"""

from __future__ import annotations

import datetime
import logging
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    rank, world, local = env_world()
    if world <= 1:
        return DistInfo()
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s))
    log.info("rank %d/%d joined (%s)", rank, world, backend)
    return DistInfo(rank, world, local, backend)


def local_device(requested: str) -> torch.device:
    """The device this process trains on: CUDA device LOCAL_RANK under torchrun when CUDA is wanted."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            from depth_node.errors import DepthNodeError

            raise DepthNodeError("system.device asks for CUDA, but torch sees no CUDA device (use system.device=cpu)")
        if requested == "cuda":
            requested = f"cuda:{env_world()[2]}"
        dev = torch.device(requested)
        torch.cuda.set_device(dev)
        return dev
    return torch.device("cpu")


def wrap(model: nn.Module, info: DistInfo, device: torch.device, find_unused: bool = False) -> nn.Module:
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    # oneDNN returns 1×1-conv weight gradients with unusual (but valid) strides; DDP copies them into its
    # buckets either way and warns about each one
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when it is True on any rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
