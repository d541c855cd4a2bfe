"""Data-parallel training under ``torchrun`` (DDP): gloo on CPU, NCCL on CUDA.

``torchrun --nproc_per_node=K -m shamisa_core.cli train ...`` sets ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK``; :func:`init_distributed` reads them and joins the process group. Each rank
reads its own share of the corpus shards (``CorpusDataset(rank=, world_size=)``); only rank 0
writes files. Without those variables everything degrades to a single process.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and logs."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def dist_info_from_env() -> DistInfo:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (defaults: a single process)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when ``WORLD_SIZE > 1`` (gloo on CPU, NCCL on CUDA)."""
    info = dist_info_from_env()
    if not info.enabled or dist.is_initialized():
        return info
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return dataclasses.replace(info, owns_group=True)


def shutdown_distributed(info: DistInfo) -> None:
    """Leave the process group if :func:`init_distributed` joined it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP-wrap ``module`` when distributed, else return it unchanged.

    ``find_unused_parameters=True``: depending on the graph switches the aggregator (any
    weighting but ``learned``) or the prototype head (no transport branch) get no gradient.
    """
    if not info.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def mean_across_ranks(x: Tensor, info: DistInfo) -> Tensor:
    """Average a (detached) tensor over ranks; identity for one process."""
    if not info.enabled:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / info.world_size


def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts them at the start of each forward, so after the last step each rank still
    holds its own; this makes all ranks end with the model that rank 0 saves.
    """
    if info.enabled:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for one process)."""
    if info.enabled:
        dist.barrier()
