"""The `poolkit` command: the Typer app, exit codes and shared output helpers.

Contract: every command exits 0 on success, 2 on bad usage (unknown option, invalid argument
value), 1 on a runtime failure (a ``ValueError`` from data or a model included: commands run
that part inside :func:`at_run_time`), printing a one-line ``poolkit: error: ...`` (the
traceback only with ``--debug`` or ``POOLKIT_DEBUG=1``). Commands that produce results accept
``--json`` and then print nothing but JSON on stdout; progress bars and notes go to stderr.

Each command lives in its own module of this package and registers itself on :data:`app`; the
modules import heavy libraries (torch, transformers) inside the command functions so that
``poolkit --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
import typer.rich_utils
from rich.table import Table
from rich.text import Text

from poolkit import __version__
from poolkit._console import stderr_console, stdout_console  # noqa: F401  (the commands' consoles)
from poolkit._io import dumps
from poolkit.errors import DataFormatError


class _HelpTable(Table):
    """typer's table of options with the columns of option names kept whole (all but the last
    two: the type and the help, which wrap): on an 80-column terminal the help wraps instead of
    option names being cut to ``--no-group-by-…``; a help word longer than its column folds
    onto the next line."""

    def add_row(self, *renderables, **kwargs) -> None:
        if len(renderables) in (6, 7):  # [required], long, short, --no-long, --no-short, ...
            renderables = _stack_negative_names(list(renderables), len(renderables) - 6)
        super().add_row(*renderables, **kwargs)
        for column in self.columns[:-2]:
            column.no_wrap = True
        for text in getattr(renderables[-1], "renderables", ()) if renderables else ():
            if isinstance(text, Text):  # a help word longer than its column goes on, not "…"
                text.overflow = "fold"


def _stack_negative_names(row: list, offset: int) -> list:
    """An option row with its ``--no-`` name under its name, in one column, instead of a
    column of its own that takes 20 cells from the help text of every option."""
    name, negative = row[offset], row[offset + 2]
    if isinstance(name, Text) and isinstance(negative, Text) and negative.plain:
        name = name.copy()
        name.append("\n")
        name.append_text(negative)
        row[offset], row[offset + 2] = name, Text("")
    return row


typer.rich_utils.Table = _HelpTable  # the one name typer's help panels build their tables with

app = typer.Typer(
    name="poolkit",
    help="Pooling in deep learning: explain it, train with it, compare it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = False

#: Help of the --encoding and --skip-bad-lines options of the commands that read data files.
ENCODING_HELP = "Text encoding of the data files (default UTF-8; MR: UTF-8, else Windows-1252)."
SKIP_HELP = "Leave malformed data lines out (and say how many) instead of stopping at them."


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"poolkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Pooling in deep learning: explain it, train with it, compare it."""
    global _debug
    _debug = _debug or debug


class UsageError(ValueError):
    """Bad usage found after the options were parsed (a split that does not exist, an option
    that does not apply to the data): exit 2 even inside :func:`at_run_time`."""


def renamed_option(old_flag: str, old_value, new_flag: str, new_value, why: str):
    """The value of an option whose name changed from ``old_flag`` to ``new_flag``: the new one's,
    else the old one's with a deprecation note on stderr saying ``why``; both is bad usage."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise ValueError(f"give {new_flag} only ({old_flag} {old_value!r} and {new_flag} "
                         f"{new_value!r}: {old_flag} is its old name here)")
    stderr_console().print(f"poolkit: {old_flag} is deprecated here, give {new_flag} ({why})",
                           markup=False, highlight=False)
    return old_value


@contextlib.contextmanager
def at_run_time():
    """Mark the part of a command that runs (loading data, building and training a model):
    a ``ValueError``/``TypeError`` raised there is a runtime failure (exit 1), not bad usage."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        if not isinstance(exc, UsageError):
            exc.poolkit_runtime = True
        raise


@contextlib.contextmanager
def quiet_libraries(quiet: bool):
    """With ``quiet`` (``--quiet``), no progress bars of transformers while loading weights;
    restored afterwards (a caller in the same process, such as a test, keeps its setting)."""
    if not quiet:
        yield
        return
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # no nlp extra: nothing prints
        yield
        return
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def exit_code_for(exc: BaseException) -> int:
    """2 for an invalid argument value (bad usage), 1 for anything that failed at run time:
    every exception but a ``ValueError``/``TypeError`` raised while the options are checked."""
    if isinstance(exc, DataFormatError) or getattr(exc, "poolkit_runtime", False):
        return 1
    if isinstance(exc, (ValueError, TypeError)):
        return 2
    return 1


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    global _debug
    args = list(sys.argv[1:] if argv is None else argv)
    _debug = "--debug" in args or os.environ.get("POOLKIT_DEBUG", "") not in ("", "0")
    command = typer.main.get_command(app)
    _show_notes(quiet=bool({"--quiet", "-q"} & set(args)))
    try:
        command.main(args=args, prog_name="poolkit", standalone_mode=True)
    except SystemExit as stop:
        if stop.code is None:
            return 0
        return stop.code if isinstance(stop.code, int) else 1
    except KeyboardInterrupt:
        print("poolkit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one place that turns errors into exit codes
        if _debug:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            message += _install_hint(exc.name)
        print(f"poolkit: error: {message}", file=sys.stderr)
        return exit_code_for(exc)
    return 0


class _NoteHandler(logging.Handler):
    """Log records of ``poolkit.*`` as ``poolkit: message`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"poolkit: {record.getMessage()}", file=sys.stderr)


def _show_notes(quiet: bool = False) -> None:
    """Show the notes the library logs (class counts at load, an encoding fallback, skipped
    lines) on stderr; with ``--quiet``/``-q`` only its warnings."""
    logger = logging.getLogger("poolkit")
    if not any(isinstance(handler, _NoteHandler) for handler in logger.handlers):
        logger.addHandler(_NoteHandler())
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


#: The extra of pyproject.toml that brings each optional top-level package.
_EXTRAS = {
    "torch": "torch", "safetensors": "torch", "matplotlib": "plots", "pandas": "plots",
    "sklearn": "data", "mlxtend": "data", "snownlp": "data", "transformers": "nlp",
    "tokenizers": "nlp", "peft": "nlp", "accelerate": "nlp", "gguf": "nlp", "datasets": "nlp",
    "sentence_transformers": "models", "numba": "fast", "tensorboard": "tensorboard",
}


def _install_hint(module: str) -> str:
    """``"; install it with: pip install 'poolkit[torch]'"`` for an optional dependency."""
    extra = _EXTRAS.get(module.split(".")[0])
    return f"; install it with: pip install 'poolkit[{extra}]'" if extra else ""


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


# ---------------------------------------------------------------------------------------------
# Output helpers shared by the commands


def print_json(payload: Any) -> None:
    """Print ``payload`` as JSON on stdout (the only thing a ``--json`` command prints there)."""
    text = dumps(payload, indent=2)  # NaN/infinity as null
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def per_class_table(label_names: Sequence[str], metrics: dict, title: str | None = None):
    """A rich table: precision, recall, F1 and support of each class (from
    :func:`~poolkit.train.metrics.classification_metrics`)."""
    table = Table(title=title)
    table.add_column("class")
    for column in ("precision", "recall", "F1", "support"):
        table.add_column(column, justify="right")
    rows = zip(label_names, metrics["precision_per_class"], metrics["recall_per_class"],
               metrics["f1_per_class"], metrics["support_per_class"], strict=True)
    for name, precision, recall, f1, support in rows:
        table.add_row(str(name), f"{precision:.4f}", f"{recall:.4f}", f"{f1:.4f}", str(support))
    return table
