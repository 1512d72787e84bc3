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
