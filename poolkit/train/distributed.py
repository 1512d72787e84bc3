"""Seeds and multi-process data parallelism (``torchrun``) with no code change.

Under ``torchrun --nproc_per_node N`` the environment holds ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; :func:`setup_distributed` then starts the process group (``nccl`` on CUDA,
``gloo`` on the CPU), and the trainer wraps the model in ``DistributedDataParallel`` and shards
every epoch's order with a ``DistributedSampler``. Without those variables everything runs in one
process, unchanged.

Example:
    >>> set_seed(0); a = torch.rand(1)
    >>> set_seed(0); bool(torch.equal(a, torch.rand(1)))
    True
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["set_seed", "epoch_seed", "DistInfo", "setup_distributed", "cleanup_distributed",
           "resolve_device"]


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002 -- the global generator user code may use
    torch.manual_seed(int(seed))


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for ``epoch`` of a run seeded ``seed`` (distinct for every pair, < 2**63)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 1) % (2**63 - 1)


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0
                   ) -> torch.device:
    """``"auto"``: ``cuda:<local_rank>`` when CUDA is available, else the CPU."""
    if device is None or str(device) in ("auto", "cuda"):
        if torch.cuda.is_available():  # one GPU per local process under torchrun
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        if str(device) == "cuda":
            raise ValueError("device ('cuda') is not available: torch sees no CUDA device")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device ({device!r}) is not a torch device: {exc}") from None


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a ``torchrun`` job (:func:`setup_distributed`'s answer).

    The defaults describe a plain single-process run.

    Attributes:
        world_size: number of processes (``WORLD_SIZE``; 1 without torchrun).
        rank: this process's global rank in ``[0, world_size)`` (``RANK``).
        local_rank: its rank on this machine (``LOCAL_RANK``), which picks its CUDA device.
        created_group: :func:`setup_distributed` started the process group, so
            :func:`cleanup_distributed` must destroy it (False when it was already running).
    """

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    created_group: bool = False  # we started the process group (and must destroy it)

    @property
    def enabled(self) -> bool:
        """More than one process: the model is wrapped in ``DistributedDataParallel``."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the process that logs and writes the checkpoints."""
        return self.rank == 0


def setup_distributed(device: torch.device) -> DistInfo:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1`` (no-op otherwise)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        created = True
    return DistInfo(dist.get_world_size(), dist.get_rank(), local_rank, created)


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup_distributed` started it."""
    if info.created_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
