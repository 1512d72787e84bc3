"""Exceptions shared across poolkit's layers."""

from __future__ import annotations


class PoolkitError(Exception):
    """Base class for errors poolkit raises on purpose (as opposed to bugs)."""


class DataFormatError(PoolkitError, ValueError):
    """A data file does not have the expected format.

    The message names the file and, where there is one, the 1-based line number, so that a
    user can open the file at the offending place.
    """

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
