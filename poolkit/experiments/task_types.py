"""What a ``poolkit compare`` task is: :class:`Task` (how to load, build, train, perturb) and
:class:`TaskData` (the loaded splits).

A leaf of :mod:`poolkit.experiments`: it imports nothing from poolkit, so that the registry
(:mod:`poolkit.experiments.tasks`) and the built-in tasks
(:mod:`poolkit.experiments.builtin_tasks`) both import it and neither imports the other back
(the registry loads the built-ins on first use).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "FitResult", "Task", "TaskData", "data_path"]

KINDS = ("image", "text", "pairs")


@dataclass
class TaskData:
    """The loaded data of a task.

    ``train``/``dev``/``test`` are data sets (anything with ``len`` and indexing, such as a
    ``torch.utils.data.Dataset`` or a list of examples); ``collate_fn`` turns a list of examples
    into a batch ``dict[str, Tensor]`` with ``"labels"`` and the model's inputs. ``info`` carries
    what a model builder or a perturbation needs (``vocab_size``, ``pad_id``, ``image_shape``…).
    """

    train: Any
    dev: Any
    test: Any
    collate_fn: Callable[[list], dict]
    num_classes: int
    class_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitResult:
    """What a task's ``fit`` returns.

    Attributes:
        train_time_s: wall time of training.
        epochs: epochs run.
        best_epoch: 1-based epoch whose weights the model holds (None: not tracked).
        best_dev_score: the task's ``metric`` on the dev split at ``best_epoch`` (accuracy for
            classifiers, Spearman for STS-B, mIoU / mAP@0.5 for the dense tasks; None without
            dev data).
    """

    train_time_s: float = float("nan")
    epochs: int | None = None  # None: not reported (the record takes the configured epochs)
    best_epoch: int | None = None
    best_dev_score: float | None = None

    @classmethod
    def coerce(cls, value: FitResult | dict[str, Any]) -> FitResult:
        """``value`` itself, or a ``fit``'s dict (keys as the attributes; the older
        ``best_dev_accuracy`` is read as ``best_dev_score``) made typed."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"a task's fit must return a FitResult or a dict, got "
                            f"{type(value).__name__}")
        score = value.get("best_dev_score", value.get("best_dev_accuracy"))
        return cls(train_time_s=float(value.get("train_time_s", float("nan"))),
                   epochs=None if value.get("epochs") is None else int(value["epochs"]),
                   best_epoch=value.get("best_epoch"),
                   best_dev_score=None if score is None else float(score))


@dataclass(frozen=True)
class Task:
    """A classification task to compare pooling types on.

    Args:
        name: registry key (``digits``, ``mr``…).
        kind: ``"image"``, ``"text"`` (these pick the default perturbation) or ``"pairs"``
            (scored sentence pairs, no perturbation).
        load: ``load(**options) -> TaskData``; the split must not depend on the run's seed, so that
            every pooling type sees the same data.
        build_model: ``build_model(pool, data, **model) -> nn.Module`` whose
            ``forward(**inputs)`` returns logits ``(B, num_classes)``.
        description: one line for ``compare --help`` and the summary.
        train: training defaults (keys of ``poolkit.train.TrainConfig``: ``epochs``, ``batch_size``,
            ``lr``…), kept small so a grid finishes in minutes.
        perturbation: ``"shift"`` (images), ``"word_dropout"`` (text) or ``None``.
        levels: perturbation levels (pixels, or drop rates).
        default_pools: pools compared when ``--pools`` is not given.
        options: keyword arguments for ``load`` (subset sizes, paths, columns).
        model: keyword arguments for ``build_model`` (sizes such as ``embed_dim``).
        fit: optional ``fit(model, data, train_config, seed) -> FitResult`` replacing the
            default trainer (a dict with the same keys is accepted too).
        metric: the record key that ranks pooling types (a fraction, shown x100): ``accuracy``,
            or what ``evaluate`` returns (``spearman`` for STS-B).
        metric_label: its column header (``accuracy %``, ``Spearman x100``).
        evaluate: optional ``evaluate(model, data, batch_size) -> dict`` replacing the
            classification test (accuracy, macro-F1, perturbations); it returns ``metric``,
            ``n_test``, ``inference_time_s`` and may add an ``extra`` dict of numbers, which the
            summary averages over seeds like the metric. Such a task has no default perturbation
            (mIoU for ``mnist-seg``, mAP@0.5 for ``mnist-det``).
        preload: load the data once in the parent process before the runs start, with every
            thread (an expensive load that caches to disk, such as a frozen encoder's pass).
    """

    name: str
    kind: str
    load: Callable[..., TaskData]
    build_model: Callable[..., Any]
    description: str = ""
    train: dict[str, Any] = field(default_factory=dict)
    perturbation: str | None = None
    levels: tuple[float, ...] = ()
    default_pools: tuple[str, ...] = ("max", "avg")
    options: dict[str, Any] = field(default_factory=dict)
    fit: Callable[..., FitResult | dict] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    metric: str = "accuracy"
    metric_label: str = "accuracy %"
    evaluate: Callable[..., dict] | None = None
    preload: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"task name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"task kind ({self.kind!r}) must be one of {', '.join(KINDS)}")
        if self.metric != "accuracy" and self.evaluate is None:
            raise ValueError(
                f"task {self.name!r}: metric ({self.metric!r}) needs an evaluate function that "
                "returns it (the default test measures accuracy)"
            )
        if (self.perturbation is None and not self.levels and self.kind != "pairs"
                and self.evaluate is None):  # its own evaluate measures no perturbation
            default = "shift" if self.kind == "image" else "word_dropout"
            levels = (1, 2, 3) if self.kind == "image" else (0.1, 0.2, 0.3)
            object.__setattr__(self, "perturbation", default)
            object.__setattr__(self, "levels", levels)

    def with_options(self, **options: Any) -> Task:
        """A copy with some ``load`` options changed (``None`` values are ignored)."""
        merged = {**self.options, **{k: v for k, v in options.items() if v is not None}}
        return replace(self, options=merged)

    def with_settings(
        self, *, train: dict[str, Any] | None = None, model: dict[str, Any] | None = None
    ) -> Task:
        """A copy with some training defaults and model arguments changed."""
        return replace(
            self, train={**self.train, **(train or {})}, model={**self.model, **(model or {})}
        )


def data_path(name: str) -> str | None:
    """``$POOLKIT_DATA/<name>`` when that exists (a folder holding ``mr/``, ``sst2/``,
    ``mnist/``, ``stsb/``...), else ``None``: the task then needs ``--data``."""
    root = os.environ.get("POOLKIT_DATA")
    if root and (Path(root) / name).exists():
        return str(Path(root) / name)
    return None
