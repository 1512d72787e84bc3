"""The default ``fit`` of a compare run: :class:`poolkit.train.Trainer` with the task's settings."""

from __future__ import annotations

import dataclasses
from typing import Any

from poolkit.experiments.task_types import FitResult


def train_config(train: dict[str, Any], seed: int):
    """A :class:`poolkit.train.TrainConfig` from a task's ``train`` dict (unknown keys are a
    ``ValueError`` naming the allowed ones); no progress bars, no checkpoints."""
    from poolkit.train import TrainConfig

    allowed = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(train) - allowed)
    if unknown:
        raise ValueError(f"train settings {unknown} are not TrainConfig fields ({sorted(allowed)})")
    settings = {**train, "seed": seed, "progress": False, "out_dir": None, "resume": False}
    return TrainConfig(**settings)


def fit_with_trainer(model, data, train: dict[str, Any], seed: int) -> FitResult:
    """Train ``model`` on ``data.train`` (model selection on ``data.dev``, by accuracy)."""
    from poolkit.train import Trainer

    config = train_config(train, seed)
    trainer = Trainer(model, config, data.train, data.dev, data.collate_fn)
    result = trainer.fit()
    model.cpu()
    return FitResult(train_time_s=result.train_time_s, epochs=result.epochs_run,
                     best_epoch=result.best_epoch,
                     best_dev_score=result.best_metrics.get("accuracy"))
