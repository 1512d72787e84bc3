"""Experiments: compare pooling types over seeds on a task, tables, plots, explanations.

Public API::

    from poolkit.experiments import Task, TaskData, register_task, get_task, list_tasks
    from poolkit.experiments import CompareSpec, compare

Importing this package imports neither torch nor matplotlib; they load when a grid runs.
"""

from __future__ import annotations

from poolkit.experiments.compare import CompareReport, compare, write_report
from poolkit.experiments.runner import CompareSpec, run_grid, run_one
from poolkit.experiments.tasks import Task, TaskData, get_task, list_tasks, register_task

__all__ = [
    "CompareReport",
    "CompareSpec",
    "Task",
    "TaskData",
    "compare",
    "get_task",
    "list_tasks",
    "register_task",
    "run_grid",
    "run_one",
    "write_report",
]
