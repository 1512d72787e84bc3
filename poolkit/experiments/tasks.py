"""The task registry of ``poolkit compare``: what to train, on which data, and how to perturb it.

A :class:`Task` says how to load its data (:class:`TaskData`), how to build a model for a pooling
name, the training defaults (small and fast; ``--epochs`` overrides), and which robustness
perturbation to measure (pixel shifts for images, word dropout for text). Built-in tasks are
registered by name; a user adds their own with :func:`register_task`, or on the command line by a
path and a format (``csv:reviews.csv``, ``tsv:…``, ``jsonl:…``, ``images:digits.npz``), see
:func:`get_task`.

Everything a task holds must pickle (module-level functions and :func:`functools.partial` of
them), because ``compare`` sends the task to worker processes.

Example:
    >>> from poolkit.experiments.tasks import Task, register_task, list_tasks
    >>> def load(**options): ...
    >>> def build(pool, data): ...
    >>> task = register_task(Task("my-task", "text", load, build), overwrite=True)
    >>> "my-task" in list_tasks()
    True
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

KINDS = ("image", "text")


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


@dataclass(frozen=True)
class Task:
    """A classification task to compare pooling types on.

    Args:
        name: registry key (``digits``, ``mr``…).
        kind: ``"image"`` or ``"text"``; picks the default perturbation.
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
        fit: optional ``fit(model, data, train_config, seed) -> dict`` replacing the default
            trainer (must return ``train_time_s`` and ``epochs``).
        metric: name of the score the pooling types are ranked by, as the tables show it
            (``"accuracy"``; ``"mIoU"``, ``"mAP@0.5"`` for the dense tasks), higher is better.
        evaluate: optional ``evaluate(model, data, dataset, batch_size=...) -> dict`` replacing
            classification accuracy on the test split: it returns ``score`` (the ``metric``, a
            fraction shown x100), ``time_s`` and any extras for ``results.jsonl``. Such a task
            has no perturbation unless it names one.
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
    fit: Callable[..., dict] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    metric: str = "accuracy"
    evaluate: Callable[..., dict] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"task name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"task kind ({self.kind!r}) must be one of {', '.join(KINDS)}")
        if self.perturbation is None and not self.levels and self.evaluate is None:
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


_TASKS: dict[str, Task] = {}


def register_task(task: Task, *, overwrite: bool = False) -> Task:
    """Add ``task`` to the registry (``overwrite=True`` to replace one of the same name)."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task expects a Task, got {type(task).__name__}")
    if task.name in _TASKS and not overwrite:
        raise ValueError(f"a task named {task.name!r} is already registered (overwrite=True)")
    _TASKS[task.name] = task
    return task


def list_tasks() -> list[str]:
    """Names of the registered tasks (built-ins first)."""
    _register_builtins()
    return list(_TASKS)


_FILE_FORMATS = ("csv", "tsv", "jsonl", "images")


def get_task(spec: str | Task, **file_options: Any) -> Task:
    """The task for ``spec``: a registered name, or ``FORMAT:PATH`` for a user's file.

    ``FORMAT`` is one of ``csv``, ``tsv``, ``jsonl`` (text; ``file_options`` may give
    ``text_column`` and ``label_column``) or ``images`` (a ``.npz`` with ``images``/``x`` and
    ``labels``/``y`` arrays). Unknown names raise ``ValueError`` listing the valid ones.
    """
    if isinstance(spec, Task):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"task must be a name or a Task, got {type(spec).__name__}")
    _register_builtins()
    match = re.fullmatch(r"(\w+):(.+)", spec)
    if match and match.group(1) in _FILE_FORMATS:
        from poolkit.experiments import builtin_tasks

        return builtin_tasks.file_task(match.group(1), match.group(2), **file_options)
    if spec not in _TASKS:
        formats = ", ".join(f"{name}:PATH" for name in _FILE_FORMATS)
        raise ValueError(
            f"task ({spec!r}) must be one of {', '.join(_TASKS)}, or a file as {formats}"
        )
    return _TASKS[spec]


@functools.cache
def _register_builtins() -> None:
    from poolkit.experiments import builtin_tasks

    for task in builtin_tasks.BUILTIN_TASKS:
        _TASKS.setdefault(task.name, task)


def parse_pools(text: str | Sequence[str] | None, task: Task) -> list[str]:
    """``"max,avg"`` -> ``["max", "avg"]`` (the task's defaults when empty); duplicates dropped."""
    if text is None or text == "" or text == []:
        return list(task.default_pools)
    items = text.split(",") if isinstance(text, str) else list(text)
    pools: list[str] = []
    for item in items:
        name = item.strip()
        if name and name not in pools:
            pools.append(name)
    if not pools:
        raise ValueError(f"pools ({text!r}) must name at least one pooling type")
    return pools
