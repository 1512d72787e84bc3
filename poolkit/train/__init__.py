"""Training: the :class:`Trainer`, metrics, checkpoints (safetensors + JSON), resume, DDP.

- :class:`TrainConfig`, :class:`Trainer`, :class:`TrainResult` — :mod:`poolkit.train.trainer`
- :func:`set_seed` — :mod:`poolkit.train.distributed` (also torchrun/DDP setup)
- :mod:`poolkit.train.metrics` — accuracy, macro-F1, confusion matrix
- :func:`save_checkpoint` / :func:`load_checkpoint` — :mod:`poolkit.train.checkpoint`
- :mod:`poolkit.train.recipes` — data set -> encoder -> model -> trainer in one call, k-fold CV
  (what ``poolkit train`` runs)
"""

from __future__ import annotations

from poolkit.train import metrics
from poolkit.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from poolkit.train.distributed import set_seed
from poolkit.train.trainer import TrainConfig, Trainer, TrainResult

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "set_seed",
    "metrics",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
]
