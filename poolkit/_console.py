"""Rich consoles for the layers that print: results on stdout, progress and notes on stderr.

A leaf module (it imports nothing from poolkit, and rich only when called), so that the
trainer, the experiments and the command line share one definition without any layer
importing the one above it.
"""

from __future__ import annotations


def stderr_console(quiet: bool = False):
    """A rich console on stderr, for progress bars and notes that must not mix with results
    (``quiet``: one that prints nothing, for ``--quiet``)."""
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def stdout_console():
    """A rich console on stdout, for results."""
    from rich.console import Console

    return Console()


def progress_bar(head: str, tail: str = "", *, console=None, transient: bool = True,
                 disable: bool = False):
    """A rich progress bar on ``console`` (default: stderr): ``head``, the bar, done/total,
    elapsed, ``eta`` remaining, ``tail``. ``head``/``tail`` are rich column templates such as
    ``"{task.description}"`` or ``"loss {task.fields[loss]}"``.

    Fits the console's width: the bar, counts and times keep their width (the bar shrinks to 10
    cells on a narrow terminal), ``head`` and ``tail`` share what is left and end in ``…`` when
    longer, instead of every column being cut to ``1…``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column

    console = console or stderr_console()
    bar_width, fixed = _bar_widths(console.width)
    room = max(console.width - bar_width - fixed - (1 if tail else 0), 16)
    head_width = min(room, max(room // 2, 16)) if tail else room

    def text(template: str, width: int) -> TextColumn:
        return TextColumn(template, table_column=Column(no_wrap=True, overflow="ellipsis",
                                                        max_width=width))

    def kept() -> Column:
        return Column(no_wrap=True)

    columns = [text(head, head_width), BarColumn(bar_width=bar_width),
               MofNCompleteColumn(table_column=kept()), TimeElapsedColumn(table_column=kept()),
               TextColumn("eta", table_column=kept()), TimeRemainingColumn(table_column=kept())]
    if tail:
        columns.append(text(tail, max(room - head_width, 8)))
    return Progress(*columns, console=console, transient=transient, disable=disable)


def _bar_widths(width: int) -> tuple[int, int]:
    """``(bar cells, cells of the counts, times and gaps)`` on a console ``width`` wide: the
    bar is 40 cells from 140 columns on, down to 10 at 110 and below."""
    fixed = 9 + 7 + 3 + 7 + 5  # done/total (up to 9999/9999), elapsed, "eta", eta, the gaps
    return max(10, min(40, width - 100)), fixed
