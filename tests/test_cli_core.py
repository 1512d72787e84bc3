"""The command-line contract: help, exit codes, one-line errors, --debug."""

from __future__ import annotations

import subprocess
import sys

import pytest

from poolkit.cli import app, run
from poolkit.cli._app import exit_code_for
from poolkit.errors import DataFormatError


def test_help_lists_commands_and_exits_zero(capsys):
    assert run(["--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_unknown_command_is_bad_usage():
    assert run(["no-such-command"]) == 2


def test_every_command_has_help(capsys):
    import typer

    group = typer.main.get_command(app)
    for name in group.commands:
        assert run([name, "--help"]) == 0, name
    capsys.readouterr()


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ValueError("kernel_size (0) must be positive"), 2),
        (TypeError("kernel_size must be int"), 2),
        (DataFormatError("data.tsv", 3, "expected 2 columns, got 1"), 1),
        (FileNotFoundError("model dir"), 1),
        (RuntimeError("boom"), 1),
    ],
)
def test_exit_codes(exc, code):
    assert exit_code_for(exc) == code


def test_data_format_error_names_file_and_line():
    err = DataFormatError("reviews.tsv", 12, "expected a label 0 or 1, got 'x'")
    assert str(err) == "reviews.tsv:12: expected a label 0 or 1, got 'x'"


def test_version_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "poolkit", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("poolkit ")


def test_a_missing_optional_dependency_names_the_extra():
    """A command whose optional dependency is not installed says which extra brings it (run in
    a fresh interpreter in which importing torch fails)."""
    script = (
        "import importlib.abc, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from poolkit.cli import run\n"
        "sys.exit(run(['compare', '--task', 'digits', '--seeds', '1']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert "No module named 'torch'; install it with: pip install 'poolkit[torch]'" in done.stderr
