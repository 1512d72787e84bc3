"""Built-in tasks of ``poolkit compare`` (filled in as the data and model layers land)."""

from __future__ import annotations

from typing import Any

BUILTIN_TASKS: list = []


def file_task(fmt: str, path: str, **options: Any):
    raise NotImplementedError(f"{fmt}:{path}")
