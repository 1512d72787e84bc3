"""The ``poolkit`` command line. Each command is a module of this package that registers itself
on :data:`poolkit.cli._app.app`; they are discovered here so that adding one needs no edit."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from poolkit.cli._app import app, main, print_json, run

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

# The command list of `poolkit --help` shows each command's first paragraph as written, line
# breaks included; join it into one line so that the terminal wraps it.
for _command in app.registered_commands:
    if _command.short_help is None and _command.callback is not None:
        _doc = inspect.cleandoc(_command.help or _command.callback.__doc__ or "")
        _command.short_help = " ".join(_doc.split("\n\n")[0].split())

__all__ = ["app", "main", "print_json", "run"]
