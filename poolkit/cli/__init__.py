"""The ``poolkit`` command line. Each command is a module of this package that registers itself
on :data:`poolkit.cli._app.app`; they are discovered here so that adding one needs no edit."""

from __future__ import annotations

import importlib
import pkgutil

from poolkit.cli._app import app, main, print_json, run

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["app", "main", "print_json", "run"]
