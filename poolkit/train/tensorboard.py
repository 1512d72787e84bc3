"""TensorBoard logging of a training run: a :class:`~poolkit.train.trainer.Trainer` callback.

:class:`TensorBoardLogger` writes each epoch record the trainer hands its callbacks as scalars
(``train/loss``, ``train/accuracy``, ``train/lr``, ``dev/accuracy``, ``dev/macro_f1``,
``dev/loss``, ``time/epoch_s``, ``epoch``), at the x value ``record["steps"]``: optimizer steps
since the start of the run, the axis a per-step hook would share.

Exact under resume: the logger opens its event file with ``purge_step`` = the step of the first
record it writes, so TensorBoard (and :class:`EventAccumulator`) drops whatever an interrupted
run wrote at or after that step; each step is shown once. ``purge_step=0`` starts the log afresh.

Needs the ``tensorboard`` package (``pip install 'poolkit[tensorboard]'``); torch's
``SummaryWriter`` writes the files.

Example:
    >>> logger = TensorBoardLogger("runs/tb/textcnn")                  # doctest: +SKIP
    >>> Trainer(model, config, train, dev, collate, callbacks=[logger]).fit()  # doctest: +SKIP
    >>> logger.close()                                                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["TensorBoardLogger", "require_tensorboard", "has_events", "record_scalars",
           "log_run_folder"]


def require_tensorboard() -> None:
    """Raise ``ModuleNotFoundError(name="tensorboard")`` (the CLI adds the install hint) when
    the package is missing: call it before training starts, not after the first epoch."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ModuleNotFoundError("TensorBoard logging needs the tensorboard package",
                                  name="tensorboard")


def has_events(log_dir: str | os.PathLike) -> bool:
    """Whether ``log_dir`` holds TensorBoard event files already (an earlier run's)."""
    folder = Path(log_dir)
    return folder.is_dir() and any(folder.glob("events.out.tfevents.*"))


def record_scalars(record: dict) -> dict[str, float]:
    """The scalars of one epoch record of the trainer: ``{tag: value}`` (missing keys left
    out, non-numbers too)."""
    pairs = {
        "train/loss": record.get("train_loss"),
        "train/accuracy": record.get("train_accuracy"),
        "train/lr": record.get("lr"),
        "time/epoch_s": record.get("time_s"),
        "epoch": record.get("epoch"),
    }
    for key, value in (record.get("dev") or {}).items():
        pairs[f"dev/{key}"] = value
    return {tag: float(value) for tag, value in pairs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


class TensorBoardLogger:
    """Trainer callback ``fn(trainer, record)`` writing epoch records to ``log_dir``.

    Args:
        log_dir: the folder of this run's event files (point ``tensorboard --logdir`` at it or
            at its parent).
        purge_step: events an earlier writer left at or after this step are dropped; default:
            the step of the first record written (exact under ``--resume``); 0 starts afresh.
    """

    def __init__(self, log_dir: str | os.PathLike, *, purge_step: int | None = None):
        require_tensorboard()
        self.log_dir = Path(log_dir)
        self.purge_step = purge_step
        self._writer = None

    def __call__(self, trainer, record: dict) -> None:
        if getattr(getattr(trainer, "dist", None), "is_main", True):
            self.write(record)

    def write(self, record: dict) -> None:
        """Write one epoch record (a dict with ``"steps"``) and flush."""
        step = int(record["steps"])
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            purge = step if self.purge_step is None else self.purge_step
            self._writer = SummaryWriter(str(self.log_dir), purge_step=purge)
        for tag, value in record_scalars(record).items():
            self._writer.add_scalar(tag, value, global_step=step)
        self._writer.flush()

    def write_history(self, records: Iterable[dict]) -> None:
        """Write every epoch record of a run's history (``log.jsonl``, ``TrainResult.history``)
        in order; other events (``"end"``) are skipped."""
        for record in records:
            if record.get("event", "epoch") == "epoch":
                self.write(record)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def log_run_folder(run_dir: str | os.PathLike, log_dir: str | os.PathLike) -> list[str]:
    """Write the history of a finished (or resumed) run, its ``log.jsonl``, to ``log_dir``
    afresh: a new event file with every epoch, then the folder's older event files are removed
    (an earlier write of the same run: no step twice, even for readers that ignore purges);
    a cross-validation's folds (``fold-NN/log.jsonl``) go to ``log_dir/fold-NN``. Returns the
    folders written."""
    from poolkit._io import read_jsonl

    run_dir, log_dir = Path(run_dir), Path(log_dir)
    folds = sorted(path.parent for path in run_dir.glob("fold-*/log.jsonl"))
    pairs = [(fold, log_dir / fold.name) for fold in folds] or [(run_dir, log_dir)]
    written = []
    for source, target in pairs:
        older = list(target.glob("events.out.tfevents.*")) if target.is_dir() else []
        with TensorBoardLogger(target, purge_step=0) as logger:
            logger.write_history(read_jsonl(source / "log.jsonl"))
        for path in older:  # the new file is complete: the old ones would only repeat steps
            path.unlink(missing_ok=True)
        written.append(str(target))
    return written
