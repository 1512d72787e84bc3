"""poolkit.keras on every other installed Keras backend: the parity suite again, in a fresh
process (Keras picks its backend once per process, from ``KERAS_BACKEND``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # keras' own default (tensorflow) is not installed
pytest.importorskip("keras")

# the in-process run of tests/test_keras_layers.py uses JAX (its default)
OTHER_BACKENDS = [name for name in ("torch", "tensorflow") if importlib.util.find_spec(name)]


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_parity_suite_on_backend(backend):
    suite = Path(__file__).with_name("test_keras_layers.py")
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-q", "-x", "-p", "no:cacheprovider"],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
