"""Which implementation the NumPy engine runs: pure NumPy, or optional numba kernels.

The pure-NumPy path is always there, always tested, and is the reference. When numba is
importable (``pip install poolkit[fast]``) the hot windowed ops (max and average pooling,
forward and backward) run fused, cache-blocked loops compiled by numba instead. Compilation is
lazy (the first call of each kernel, cached on disk with ``cache=True``): importing
``poolkit.numpy`` never imports numba.

Select with the environment variable ``POOLKIT_NUMPY_BACKEND`` (read at each call) or
:func:`set_backend`:

- ``"auto"`` (default): numba if importable, else NumPy;
- ``"numpy"``: pure NumPy always;
- ``"numba"``: numba, raising ``ImportError`` if it is not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import numpy as np

BACKENDS = ("auto", "numpy", "numba")
_override: str | None = None
_numba_available: bool | None = None


def set_backend(name: str | None) -> None:
    """Force a backend for this process (``None`` returns to ``POOLKIT_NUMPY_BACKEND``)."""
    if name is not None and name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {name!r}")
    global _override
    _override = name


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager running the block with backend ``name``."""
    global _override
    previous = _override
    set_backend(name)
    try:
        yield
    finally:
        _override = previous


def numba_available() -> bool:
    global _numba_available
    if _numba_available is None:
        _numba_available = importlib.util.find_spec("numba") is not None
    return _numba_available


def current() -> str:
    """The backend in effect: ``"numpy"`` or ``"numba"``."""
    name = _override or os.environ.get("POOLKIT_NUMPY_BACKEND", "auto").strip().lower()
    if name not in BACKENDS:
        raise ValueError(
            f"POOLKIT_NUMPY_BACKEND must be one of {BACKENDS}, got {name!r}"
        )
    if name == "auto":
        return "numba" if numba_available() else "numpy"
    if name == "numba" and not numba_available():
        raise ImportError("POOLKIT_NUMPY_BACKEND=numba but numba is not installed "
                          "(pip install 'poolkit[fast]')")
    return name


def compiled(x: np.ndarray) -> bool:
    """Whether to run the compiled kernels on the planes ``x`` ``(P, *spatial)``: float32 or
    float64, non-empty, and planes of fewer than 2**31 elements (the kernels keep positions
    within a plane in int32)."""
    return (x.size > 0 and x.dtype in (np.float32, np.float64) and x[0].size < 2**31
            and current() == "numba")


def kernels():
    """The numba kernels module (imported, and so compiled, on first use)."""
    from poolkit.numpy import _numba

    return _numba


def roi_kernels():
    """The numba kernels of the RoI ops (:mod:`poolkit.numpy._numba_roi`), imported on first
    use."""
    from poolkit.numpy import _numba_roi

    return _numba_roi
