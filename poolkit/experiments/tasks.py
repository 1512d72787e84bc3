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
from collections.abc import Sequence
from typing import Any

from poolkit.experiments.task_types import KINDS, FitResult, Task, TaskData

__all__ = [
    "KINDS", "FitResult", "Task", "TaskData", "register_task", "list_tasks", "get_task",
    "parse_pools",
]

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


_FILE_FORMATS = ("csv", "tsv", "jsonl", "images", "hf")


def get_task(spec: str | Task, **file_options: Any) -> Task:
    """The task for ``spec``: a registered name, or ``FORMAT:PATH`` for a user's file.

    ``FORMAT`` is one of ``csv``, ``tsv``, ``jsonl`` (text; ``file_options`` may give
    ``text_column`` and ``label_column``) or ``images`` (a ``.npz`` with ``images``/``x`` and
    ``labels``/``y`` arrays) or ``hf`` (a Hugging Face text data set: a hub name
    ``NAME[/CONFIG]`` or a ``save_to_disk`` folder; same options as the text formats).
    Unknown names raise ``ValueError`` listing the valid ones.
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
