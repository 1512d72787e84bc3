"""Batching for the trainer: the training loader, length-grouped batches, moving batches.

Every epoch's order comes from a ``DistributedSampler`` seeded with ``(seed, epoch)`` (one
process or many under torchrun), so the order depends on nothing but the seed and the epoch
number; :class:`LengthGroupedBatches` reorders it into batches of similar length with a
generator seeded the same way. The loader keeps its own generator, so drawing batches never
moves the global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from poolkit.train.distributed import DistInfo, epoch_seed

__all__ = ["LengthGroupedBatches", "train_loader", "to_device"]


class LengthGroupedBatches(Sampler):
    """Batches of similar length: this epoch's order (from ``sampler``) in chunks of
    ``group`` batches, each chunk sorted by length and cut into batches, the batches shuffled
    with a generator seeded by ``(seed, epoch)``."""

    def __init__(self, sampler, lengths, batch_size: int, group: int = 50, seed: int = 0):
        self.sampler = sampler
        self.lengths = lengths
        self.batch_size = batch_size
        self.group = group
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        indices = list(self.sampler)
        chunk = self.batch_size * self.group
        batches = []
        for start in range(0, len(indices), chunk):
            part = sorted(indices[start : start + chunk], key=lambda i: self.lengths[i])
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        for position in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[position]


def train_loader(
    data: Any,
    *,
    batch_size: int,
    seed: int,
    group_by_length: bool,
    num_workers: int,
    collate_fn: Callable[[list], dict] | None,
    dist: DistInfo,
    device: torch.device,
) -> tuple[DataLoader, DistributedSampler | LengthGroupedBatches]:
    """``(loader, order)``: the training ``DataLoader`` and the sampler whose
    ``set_epoch(epoch)`` must be called before each epoch."""
    sampler = DistributedSampler(
        data, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed,
        drop_last=False,
    )
    if group_by_length:
        lengths = getattr(data, "lengths", None)
        if lengths is None:
            raise ValueError("group_by_length=True needs a data set with `lengths`")
        order = LengthGroupedBatches(sampler, lengths, batch_size, seed=seed)
        batching: dict[str, Any] = {"batch_sampler": order}
    else:
        order = sampler
        batching = {"batch_size": batch_size, "sampler": sampler}
    loader = DataLoader(
        data, **batching, collate_fn=collate_fn, num_workers=num_workers,
        generator=torch.Generator(),  # keep the global RNG out of the loader
        pin_memory=device.type == "cuda",
    )
    return loader, order


def to_device(batch: dict, device: torch.device) -> dict:
    """``batch`` with its tensors on ``device`` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}
