"""Rich consoles for the layers that print: results on stdout, progress and notes on stderr.

A leaf module (it imports nothing from poolkit, and rich only when called), so that the
trainer, the experiments and the command line share one definition without any layer
importing the one above it.
"""

from __future__ import annotations


def stderr_console():
    """A rich console on stderr, for progress bars and notes that must not mix with results."""
    from rich.console import Console

    return Console(stderr=True)


def stdout_console():
    """A rich console on stdout, for results."""
    from rich.console import Console

    return Console()


def progress_bar(head: str, tail: str = "", *, console=None, transient: bool = True,
                 disable: bool = False):
    """A rich progress bar on ``console`` (default: stderr): ``head``, the bar, done/total,
    elapsed, ``eta`` remaining, ``tail``. ``head``/``tail`` are rich column templates such as
    ``"{task.description}"`` or ``"loss {task.fields[loss]}"``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn(head), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    if tail:
        columns.append(TextColumn(tail))
    return Progress(*columns, console=console or stderr_console(), transient=transient,
                    disable=disable)
