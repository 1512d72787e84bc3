"""The trainer: fit a classifier, early stopping on a dev split, checkpoints, exact resume, DDP.

API (stable; ``poolkit compare`` and the CLI build on it)::

    config = TrainConfig(epochs=25, batch_size=50, optimizer="adadelta", patience=5,
                         seed=0, out_dir="runs/mr")
    trainer = Trainer(model, config, train_data, dev_data, collate_fn, metadata={...})
    result = trainer.fit()            # -> TrainResult (history, best dev metrics, time, epochs)
    metrics = trainer.evaluate(test)  # -> {"accuracy", "macro_f1", "confusion_matrix", "loss", ...}

``train_data``/``dev_data`` are data sets whose examples ``collate_fn`` turns into a batch
``dict[str, Tensor]`` with ``"labels"`` (B,) and the model's inputs; the model maps
``model(**inputs)`` to logits ``(B, num_classes)`` and is trained with cross-entropy. A model with
an ``apply_constraints()`` method (TextCNN's max-norm) has it called after every step.

Reproducibility and resume. Every epoch starts by seeding all generators with
``epoch_seed(seed, epoch)`` and draws its order from a ``DistributedSampler`` seeded with
``(seed, epoch)``, so an epoch's data order and dropout depend on nothing but the seed and the
epoch number. With ``out_dir`` set, the end of each epoch writes

- ``out_dir/model.safetensors`` + ``poolkit_config.json``: the best model so far (by the dev metric
  ``monitor``; the last epoch when there is no dev data) — the artifact ``poolkit eval`` and
  ``poolkit predict`` read;
- ``out_dir/checkpoints/epoch-NNNN/``: the last epoch's model, optimizer moments, counters, RNG
  states and history (safetensors + JSON, no pickle), made complete in a temporary folder and
  renamed into place, older ones removed;
- ``out_dir/log.jsonl``: one JSON line per epoch (``{"event": "epoch", ...}``) and one at the end.

``TrainConfig(resume=True)`` continues from the newest complete ``checkpoints/epoch-NNNN``, and the
finished run has the same weights and metrics as one that was never interrupted.

The trainer is three files, each readable alone: this one (the settings and the loop: one
epoch of steps, dev scoring and model selection, the end), :mod:`poolkit.train.run_state`
(the loop's state between epochs, checkpoints, resume and the log) and
:mod:`poolkit.train.batching` (the seeded training order and the loader).

Data parallel. Started under ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1), ``fit`` joins
the process group (gloo on CPU, nccl on GPU), wraps the model in ``DistributedDataParallel`` and
gives each process 1/N of every epoch: ``batch_size`` is per process, so the global batch is
``N * batch_size``. Every process evaluates the whole dev set (identical weights, identical early
stopping decision); only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from poolkit._console import progress_bar, stderr_console
from poolkit.errors import PoolkitError
from poolkit.train import checkpoint as ckpt
from poolkit.train.batching import to_device, train_loader
from poolkit.train.distributed import (
    DistInfo,
    cleanup_distributed,
    epoch_seed,
    resolve_device,
    set_seed,
    setup_distributed,
)
from poolkit.train.metrics import ECE_BINS, calibration_metrics, classification_metrics
from poolkit.train.optim import (
    OPTIMIZERS,
    SCHEDULES,
    WeightAverage,
    build_optimizer,
    default_lr,
    layer_decay_groups,
    lr_factor,
)
from poolkit.train.run_state import (
    RESULT_FILE,
    LoopState,
    RunFolderError,
    best_weights_at_start,
    check_run_folder,
    checkpoint_metadata,
    load_last_checkpoint,
    save_epoch_checkpoint,
    write_log,
)

__all__ = ["TrainConfig", "TrainResult", "Trainer", "MONITORS", "NonFiniteLossError",
           "RunFolderError", "check_run_folder", "metrics_from_logits"]

MONITORS = ("accuracy", "macro_f1", "loss")
#: autocast dtype of each ``precision`` (None: no autocast)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(PoolkitError, RuntimeError):
    """Training produced a NaN or infinite loss (or weights): the run stops, nothing is saved."""


@dataclass
class TrainConfig:
    """Training settings (all JSON-ready).

    Attributes:
        epochs: maximum number of passes over the training data.
        batch_size: examples per step (per process under torchrun).
        lr: base learning rate; ``None`` = the optimizer's default (AdamW 1e-3, Adadelta 1.0).
        optimizer: ``"adamw"``, ``"adadelta"`` (Kim 2014: rho 0.95) or ``"sgd"``.
        weight_decay: decoupled (AdamW) or L2 (others) weight decay.
        schedule: ``"constant"``, ``"linear"`` or ``"cosine"`` decay of the lr.
        warmup: linear warmup as a fraction of all steps (0 = none).
        patience: stop after this many epochs without a better dev ``monitor`` (None = never).
        monitor: dev metric for early stopping and the best model: accuracy, macro_f1 or loss.
        grad_clip: clip the global gradient norm to this value (None = no clipping).
        seed: seeds model-independent randomness (data order, dropout) of every epoch.
        out_dir: folder for checkpoints and logs (None = keep everything in memory).
        resume: continue from the last checkpoint in ``out_dir`` if there is one.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        eval_batch_size: batch size of evaluation (None = max(batch_size, 256)).
        num_workers: DataLoader worker processes.
        progress: rich progress bars and one line per epoch on stderr.
        restore_best: load the best dev weights into the model when ``fit`` ends.
        group_by_length: batch examples of similar length (the data set must have ``lengths``):
            each epoch's order is cut into chunks of 50 batches, each chunk sorted by length
            and cut into batches, and the batches shuffled, so batches carry less padding
            (about 2x faster on MR) while the order stays a function of (seed, epoch).
        layer_lr_decay: layer-wise learning-rate decay for fine-tuning (1 = off): the model's
            ``lr_layers()`` lists its parameters from the bottom layer to the head, and each
            layer trains at ``layer_lr_decay`` times the lr of the layer above
            (:func:`~poolkit.train.optim.layer_decay_groups`).
        ema: decay of an exponential moving average of the trainable weights, updated after
            every step and bias-corrected (None = off; 0.99 averages over about the last 100
            steps). Dev evaluation, the best checkpoint and the returned model use the average
            (:class:`~poolkit.train.optim.WeightAverage`).
        skip_nonfinite: how many batches with a NaN or infinite loss may be skipped (no update)
            over the whole run; the next one stops it with :class:`NonFiniteLossError` naming
            the epoch and step. Weights that become non-finite stop it too, and are never saved.
        overwrite: start a new run in an ``out_dir`` that holds one (its checkpoints are
            replaced by this run's first save, not deleted before); without it such a folder
            is refused with :class:`RunFolderError`.
        force_resume: resume even where the settings that define the model, its training or
            its data differ from the checkpoint's (listed in the :class:`RunFolderError`
            otherwise).
        grad_accum: gradient accumulation: each optimizer step sums the gradients of this many
            batches, each loss weighted by its share of the examples, so that a step equals one
            batch ``grad_accum`` times as large (learning-rate schedule steps count optimizer
            steps; an epoch's last step takes the batches left over).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``: the forward pass and loss run under
            ``torch.autocast`` in that dtype (weights and optimizer stay in float32); fp16 uses a
            gradient scaler (saved with the checkpoints). bf16 works on CPUs too.
        save_total_limit: how many epoch checkpoints (``checkpoints/epoch-N``, with optimizer
            state) to keep; older ones are deleted once a newer one is complete.
        resume_state: write the epoch checkpoints at all; ``False`` keeps only the best model,
            its config and the log (no optimizer state on disk: the run cannot be resumed).
    """

    epochs: int = 10
    batch_size: int = 50
    lr: float | None = None
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup: float = 0.0
    patience: int | None = None
    monitor: str = "accuracy"
    grad_clip: float | None = None
    seed: int = 0
    out_dir: str | None = None
    resume: bool = False
    device: str = "auto"
    eval_batch_size: int | None = None
    num_workers: int = 0
    progress: bool = True
    restore_best: bool = True
    group_by_length: bool = False
    layer_lr_decay: float = 1.0
    ema: float | None = None
    skip_nonfinite: int = 0
    overwrite: bool = False
    force_resume: bool = False
    grad_accum: int = 1
    precision: str = "fp32"
    save_total_limit: int = 1
    resume_state: bool = True

    def __post_init__(self) -> None:
        if self.out_dir is not None:
            self.out_dir = str(self.out_dir)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be a positive integer")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer ({self.optimizer!r}) must be one of {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule ({self.schedule!r}) must be one of {list(SCHEDULES)}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor ({self.monitor!r}) must be one of {list(MONITORS)}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup ({self.warmup}) must be a fraction in [0, 1)")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr ({self.lr}) must be positive")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience ({self.patience}) must be at least 1 or None")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip ({self.grad_clip}) must be positive or None")
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise ValueError(f"layer_lr_decay ({self.layer_lr_decay}) must be in (0, 1]")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ValueError(f"ema ({self.ema}) must be in (0, 1) or None")
        if (not isinstance(self.skip_nonfinite, int) or isinstance(self.skip_nonfinite, bool)
                or self.skip_nonfinite < 0):
            raise ValueError(f"skip_nonfinite ({self.skip_nonfinite!r}) must be an integer >= 0")
        if self.resume and self.out_dir is None:
            raise ValueError("resume=True needs out_dir (the folder of the checkpoints)")
        for name in ("grad_accum", "save_total_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be a positive integer")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision ({self.precision!r}) must be one of {list(PRECISIONS)}")
        if self.resume and not self.resume_state:
            raise ValueError("resume=True needs resume_state=True (the checkpoints it reads)")

    @property
    def base_lr(self) -> float:
        return default_lr(self.optimizer) if self.lr is None else float(self.lr)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns (``to_dict()`` is JSON-ready)."""

    history: list[dict]  # one record per epoch: train_loss, train_accuracy, lr, dev metrics...
    best_epoch: int  # 1-based; the epoch whose weights the model holds at the end
    best_metrics: dict  # dev metrics of best_epoch ({} without dev data)
    train_time_s: float  # wall time of all epochs, across resumes
    epochs_run: int  # epochs completed (<= epochs when stopped early)
    stopped_early: bool
    resumed_from: int = 0  # epochs already done when this call started
    world_size: int = 1
    out_dir: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Trainer:
    """Train ``model`` on ``train_data`` with early stopping on ``dev_data`` (see module doc).

    Args:
        model: a classifier, ``model(**inputs) -> logits (B, num_classes)``.
        config: a :class:`TrainConfig`.
        train_data: a map-style data set (``len`` and indexing) of examples.
        dev_data: the same for early stopping and model selection (optional).
        collate_fn: list of examples -> batch dict with ``"labels"``.
        metadata: JSON-ready dict written into the checkpoint's ``poolkit_config.json`` (label
            names, text encoder, data set...), so that ``poolkit eval``/``predict`` can rebuild
            inputs.
        callbacks: ``fn(trainer, record)`` called after each epoch is logged and checkpointed.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig | None = None,
        train_data: Any = None,
        dev_data: Any = None,
        collate_fn: Callable[[list], dict] | None = None,
        *,
        metadata: dict | None = None,
        callbacks: Sequence[Callable[[Trainer, dict], None]] = (),
    ):
        if config is None:
            config = TrainConfig()
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.model = model
        self.config = config
        self.train_data = train_data
        self.dev_data = dev_data
        self.collate_fn = collate_fn
        self.metadata = dict(metadata or {})
        self.callbacks = list(callbacks)
        self.dist = DistInfo()
        self.device = resolve_device(config.device)
        self.scaler = None  # an fp16 gradient scaler, made by fit()
        self.optimizer: torch.optim.Optimizer | None = None
        self.step = 0
        self.nonfinite_skipped = 0  # batches skipped for a NaN/inf loss, over the whole run

    # -----------------------------------------------------------------------------------------
    # Public API

    def fit(self) -> TrainResult:
        """Train for ``config.epochs`` (or until early stopping); see the module doc."""
        cfg = self.config
        if self.train_data is None or len(self.train_data) == 0:
            raise ValueError("train_data is empty: nothing to train on")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(cfg.device, local_rank)
        self.dist = setup_distributed(self.device)
        try:
            return self._fit()
        finally:
            cleanup_distributed(self.dist)

    @torch.no_grad()
    def predict_logits(self, data, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(logits (N, K), labels (N,))`` of ``data`` in order, in eval mode."""
        model = getattr(self.model, "module", self.model)  # DDP
        model.to(self.device)
        was_training = model.training
        model.eval()
        lengths = getattr(data, "lengths", None)
        # similar lengths together means less padding; the outputs are put back in order
        order = np.argsort(lengths, kind="stable") if lengths is not None else np.arange(len(data))
        loader = DataLoader(
            data, batch_size=batch_size or self._eval_batch_size(), sampler=order.tolist(),
            collate_fn=self.collate_fn, num_workers=self.config.num_workers,
        )
        all_logits, all_labels = [], []
        for batch in loader:
            batch = to_device(batch, self.device)
            labels = batch.pop("labels")
            with self._autocast():
                all_logits.append(model(**batch).float().cpu())
            all_labels.append(labels.cpu())
        model.train(was_training)
        if not all_logits:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        logits, labels = torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()
        restored_logits, restored_labels = np.empty_like(logits), np.empty_like(labels)
        restored_logits[order], restored_labels[order] = logits, labels
        return restored_logits, restored_labels

    def evaluate(self, data, batch_size: int | None = None) -> dict:
        """:func:`metrics_from_logits` of the model on ``data`` (accuracy, macro-F1, per-class
        precision/recall/F1, confusion matrix, loss, ECE)."""
        return metrics_from_logits(*self.predict_logits(data, batch_size))

    # -----------------------------------------------------------------------------------------
    # The loop

    def _eval_batch_size(self) -> int:
        return self.config.eval_batch_size or max(self.config.batch_size, 256)

    def _fit(self) -> TrainResult:
        cfg = self.config
        out_dir = Path(cfg.out_dir) if cfg.out_dir else None
        model = self._setup_model()
        loader, order = train_loader(
            self.train_data, batch_size=cfg.batch_size, seed=cfg.seed,
            group_by_length=cfg.group_by_length, num_workers=cfg.num_workers,
            collate_fn=self.collate_fn, dist=self.dist, device=self.device,
        )
        total_steps = math.ceil(len(loader) / cfg.grad_accum) * cfg.epochs  # optimizer steps
        warmup_steps = int(round(cfg.warmup * total_steps))
        state = self._start_state(out_dir)
        start_epoch = state.epoch
        best_weights = best_weights_at_start(self, out_dir, state)
        console = stderr_console() if (cfg.progress and self.dist.is_main) else None
        for epoch in range(start_epoch, cfg.epochs):
            if state.stopped_early:
                break
            started = time.perf_counter()
            set_seed(epoch_seed(cfg.seed, epoch) + self.dist.rank)
            order.set_epoch(epoch)
            train_stats = self._train_epoch(
                model, loader, epoch, total_steps, warmup_steps, console
            )
            record = {"event": "epoch", "epoch": epoch + 1, **train_stats}
            state.epoch, state.step = epoch + 1, self.step
            state.nonfinite_skipped = self.nonfinite_skipped
            _check_finite_weights(self.model, epoch)
            best_weights = self._select(record, state, out_dir, best_weights)
            record["time_s"] = time.perf_counter() - started
            state.train_time_s += record["time_s"]
            state.history.append(record)
            self._end_epoch(record, state, out_dir, console)
        return self._finish(state, out_dir, start_epoch, best_weights)

    def _setup_model(self) -> torch.nn.Module:
        """Move the model to the device and build the optimizer, the weight average and the
        fp16 scaler; returns the model the loop runs (wrapped in DDP under torchrun)."""
        cfg = self.config
        self.model.to(self.device)
        model = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = build_optimizer(self._parameter_groups(), cfg.optimizer, cfg.base_lr,
                                         cfg.weight_decay)
        self.average = WeightAverage(self.model, cfg.ema) if cfg.ema is not None else None
        self.scaler = (torch.amp.GradScaler(self.device.type) if cfg.precision == "fp16"
                       else None)
        return model

    def _parameter_groups(self):
        """The model's parameters, or its layer-lr-decay groups (``layer_lr_decay`` < 1)."""
        decay = self.config.layer_lr_decay
        if decay == 1.0:
            return self.model.parameters()
        lr_layers = getattr(self.model, "lr_layers", None)
        if not callable(lr_layers):
            raise ValueError(
                f"layer_lr_decay={decay} needs a model with lr_layers() (its parameters from "
                f"the bottom layer to the head); {type(self.model).__name__} has none"
            )
        groups = layer_decay_groups(lr_layers(), decay)
        grouped = {id(p) for g in groups for p in g["params"]}
        left = [n for n, p in self.model.named_parameters()
                if p.requires_grad and id(p) not in grouped]
        if left:
            raise ValueError(f"lr_layers() of {type(self.model).__name__} leaves out "
                             f"trainable parameters {left[:3]}")
        return groups

    def _start_state(self, out_dir: Path | None) -> LoopState:
        """A fresh loop state, or the newest checkpoint's when resuming."""
        state = LoopState()
        if self.config.resume:
            state = load_last_checkpoint(self, out_dir, state)
        else:  # every process checks, so that all stop together
            # an old run's checkpoints go when this run saves its first one
            check_run_folder(self.config)
        self.step, self.nonfinite_skipped = state.step, state.nonfinite_skipped
        return state

    def _select(self, record: dict, state: LoopState, out_dir: Path | None,
                best_weights: dict | None) -> dict | None:
        """Score the dev data, keep the model when it is the best so far (saved to ``out_dir``,
        and in memory for ``restore_best``), count the epochs without progress; returns the
        best weights."""
        cfg = self.config
        # with a weight average, the average is what is evaluated and kept as the best
        averaged = self.average.swapped() if self.average else contextlib.nullcontext()
        with averaged:
            if self.dev_data is not None and len(self.dev_data):
                dev = self.evaluate(self.dev_data)
                record["dev"] = {k: dev[k] for k in ("accuracy", "macro_f1", "loss")}
                # a dev loss of NaN/inf means NaN/inf logits: never the best model
                better = math.isfinite(dev["loss"]) and _is_better(
                    dev[cfg.monitor], state.best_score, cfg.monitor)
            else:
                dev, better = {}, True  # no dev data: the last epoch is the best
            if better:
                state.best_score, state.best_epoch = dev.get(cfg.monitor), record["epoch"]
                state.best_metrics, state.bad_epochs = dev, 0
                if cfg.restore_best:
                    best_weights = {k: v.detach().to("cpu", copy=True)
                                    for k, v in self.model.state_dict().items()}
                if out_dir is not None and self.dist.is_main:
                    ckpt.save_checkpoint(out_dir, self.model,
                                         metadata=checkpoint_metadata(self, state))
            else:
                state.bad_epochs += 1
        if cfg.patience is not None and state.bad_epochs >= cfg.patience:
            state.stopped_early = True
        record["best"] = better
        return best_weights

    def _end_epoch(self, record: dict, state: LoopState, out_dir: Path | None, console) -> None:
        """Checkpoint, log, print the epoch's line and call the callbacks."""
        if out_dir is not None and self.dist.is_main:
            if self.config.resume_state:
                save_epoch_checkpoint(self, out_dir, state)
            write_log(out_dir, state.history)
        if console is not None:
            console.print(_epoch_line(record, self.config.epochs, self.config.monitor))
        for callback in self.callbacks:
            callback(self, record)

    def _finish(self, state: LoopState, out_dir: Path | None, start_epoch: int,
                best_weights: dict | None) -> TrainResult:
        """Load the best (or averaged) weights, write the end of the log and ``result.json``."""
        if self.config.restore_best and best_weights is not None:
            self.model.load_state_dict(best_weights)
        elif self.average is not None:
            self.average.copy_to()  # the average is the trained model
        result = TrainResult(
            history=state.history,
            best_epoch=state.best_epoch,
            best_metrics=state.best_metrics,
            train_time_s=state.train_time_s,
            epochs_run=state.epoch,
            stopped_early=state.stopped_early,
            resumed_from=start_epoch,
            world_size=self.dist.world_size,
            out_dir=str(out_dir) if out_dir else None,
        )
        if out_dir is not None and self.dist.is_main:
            end = {"event": "end", **{k: v for k, v in result.to_dict().items()
                                      if k != "history"}}
            write_log(out_dir, state.history + [end])
            ckpt.atomic_write_json(out_dir / RESULT_FILE, result.to_dict())
        return result

    def _train_epoch(self, model, loader, epoch, total_steps, warmup_steps, console) -> dict:
        cfg = self.config
        model.train()
        # running sums stay on the device: no host sync per step on a GPU
        totals = {"loss": torch.zeros((), dtype=torch.float64, device=self.device),
                  "correct": torch.zeros((), dtype=torch.int64, device=self.device)}
        seen = skipped = 0
        progress = _progress(console)
        task = None
        if progress is not None:
            progress.start()
            task = progress.add_task(
                f"epoch {epoch + 1}/{cfg.epochs}", total=len(loader), loss="-"
            )
        try:
            batches = iter(loader)
            position = 0
            while group := list(itertools.islice(batches, cfg.grad_accum)):
                lr = cfg.base_lr * lr_factor(self.step, total_steps, cfg.schedule, warmup_steps)
                for param_group in self.optimizer.param_groups:
                    param_group["lr"] = lr * param_group.get("lr_scale", 1.0)
                loss = self._accumulate(model, group, totals)
                position += len(group)
                if loss is None:  # a NaN/inf loss somewhere in the group: no update
                    self._skip_nonfinite(self._bad_loss, epoch, position - 1, len(loader))
                    self.step += 1
                    skipped += 1
                    continue
                self._optimizer_step()
                self.step += 1
                seen += sum(len(batch["labels"]) for batch in group)
                if progress is not None:
                    progress.update(task, advance=len(group), loss=f"{loss:.4f}")
        finally:
            if progress is not None:
                progress.stop()
        stats = torch.tensor([totals["loss"].item(), totals["correct"].item(), seen],
                             dtype=torch.float64)
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(stats)  # gloo and nccl both reduce float64 sums
        loss_total, correct_total, seen_total = stats.tolist()
        return {
            "train_loss": loss_total / max(seen_total, 1),
            "train_accuracy": correct_total / max(seen_total, 1),
            "lr": self.optimizer.param_groups[-1]["lr"],  # the head's under layer lr decay
            "steps": self.step,
            "skipped_nonfinite": skipped,
        }

    def _accumulate(self, model, group: list[dict], totals: dict) -> float | None:
        """Forward and backward over the ``grad_accum`` batches of one optimizer step, each
        loss weighted by its share of the group's examples (so the summed gradient is the
        mean over all of them). Returns the group's mean loss, or ``None`` (gradients
        cleared) when a loss is not finite in some process."""
        examples = sum(len(batch["labels"]) for batch in group)
        self.optimizer.zero_grad(set_to_none=True)
        group_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        group_correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for index, batch in enumerate(group):
            batch = to_device(batch, self.device)
            labels = batch.pop("labels")
            last = index == len(group) - 1
            # DDP: gradients are all-reduced on the group's last backward only
            sync = contextlib.nullcontext() if last or not self.dist.enabled else model.no_sync()
            with sync:
                with self._autocast():
                    logits = model(**batch)
                    loss = F.cross_entropy(logits.float(), labels)
                if not self._all_finite(loss):  # one host sync per batch, as the progress bar's
                    self._bad_loss = loss
                    self.optimizer.zero_grad(set_to_none=True)
                    return None
                weighted = loss * (len(labels) / examples)
                (self.scaler.scale(weighted) if self.scaler else weighted).backward()
            group_loss += loss.detach().double() * len(labels)
            group_correct += (logits.detach().argmax(1) == labels).sum()
        totals["loss"] += group_loss
        totals["correct"] += group_correct
        return group_loss.item() / examples

    def _optimizer_step(self) -> None:
        """Clip, step (through the fp16 scaler), constrain and average the weights."""
        cfg = self.config
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        constrain = getattr(self.model, "apply_constraints", None)
        if callable(constrain):
            constrain()
        if self.average is not None:
            self.average.update()

    def _autocast(self):
        """``torch.autocast`` in the configured precision (nothing for fp32)."""
        dtype = PRECISIONS[self.config.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite in every process (under torchrun all skip a batch
        together, or none does: DDP needs every process in each backward pass)."""
        finite = torch.isfinite(loss.detach()).to(torch.int32)
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite)

    def _skip_nonfinite(self, loss, epoch: int, position: int, batches: int) -> None:
        """Count a batch whose loss is NaN/inf; past ``skip_nonfinite`` such batches, stop."""
        self.nonfinite_skipped += 1
        value = loss.item()
        value = value if not math.isfinite(value) else "not finite in another process"
        where = (f"epoch {epoch + 1}, step {self.step + 1} (batch {position + 1} of "
                 f"{batches} of the epoch)")
        if self.nonfinite_skipped > self.config.skip_nonfinite:
            allowed = self.config.skip_nonfinite
            raise NonFiniteLossError(
                f"the training loss is {value} at {where}"
                + (f", after {allowed} skipped non-finite batches (--skip-nonfinite {allowed})"
                   if allowed else "")
                + "; lower the learning rate, clip gradients (--grad-clip) or check the data. "
                "Nothing from this step on was saved."
            )
        if self.dist.is_main and self.config.progress:
            print(f"poolkit: skipped a batch whose loss is {value} at {where} "
                  f"({self.nonfinite_skipped} of at most {self.config.skip_nonfinite})",
                  file=sys.stderr)

def _check_finite_weights(model: torch.nn.Module, epoch: int) -> None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteLossError(
                f"the weights are no longer finite after epoch {epoch + 1} ({name} holds NaN or "
                "inf); lower the learning rate or clip gradients (--grad-clip). Nothing from "
                "this epoch was saved."
            )


def metrics_from_logits(logits: np.ndarray, labels: np.ndarray, ece_bins: int = ECE_BINS) -> dict:
    """:func:`~poolkit.train.metrics.classification_metrics` of ``logits (N, K)`` against
    ``labels (N,)``, plus the mean cross-entropy ``"loss"`` and the calibration over
    ``ece_bins`` bins (:func:`~poolkit.train.metrics.calibration_metrics`: ``"ece"``,
    ``"ece_bins"``, ``"reliability"``)."""
    if len(labels) == 0:
        raise ValueError("data is empty: nothing to evaluate")
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    metrics = classification_metrics(labels, logits.argmax(axis=1), logits.shape[1])
    if np.isfinite(logits).all():
        calibration = calibration_metrics(logits, labels, ece_bins)
    else:  # NaN/inf logits (a diverged model): no probabilities to bin
        calibration = {"ece": float("nan"), "ece_bins": ece_bins, "reliability": []}
    return {**metrics, "loss": float(loss), **calibration}


def _is_better(score: float, best: float | None, monitor: str) -> bool:
    if best is None:
        return True
    return score < best if monitor == "loss" else score > best


def _progress(console):
    if console is None or not console.is_terminal:  # no bars in log files
        return None
    return progress_bar("{task.description}", "loss {task.fields[loss]}", console=console)


def _epoch_line(record: dict, epochs: int, monitor: str) -> str:
    text = (f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.4f}  "
            f"train acc {record['train_accuracy']:.4f}")
    if "dev" in record:
        text += f"  dev {monitor} {record['dev'][monitor]:.4f}"
        text += "  (best)" if record["best"] else ""
    return text + f"  {record['time_s']:.1f}s"
