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

The numba kernels split the ``N * C`` planes over threads (numba ``prange``): as many as
:func:`set_num_threads` chose, else ``NUMBA_NUM_THREADS``, else the CPUs this process may run
on (numba's own default). Arrays smaller than :data:`PARALLEL_MIN_BYTES` run on one thread,
where starting the others costs more than it saves. The pure-NumPy path is single-threaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import numbers
import os

import numpy as np

BACKENDS = ("auto", "numpy", "numba")
_override: str | None = None
_numba_available: bool | None = None
_threads: int | None = None
_parallel_pid: int | None = None  # the process that started numba's threads

#: Inputs (bytes read) below this run on one thread. Measured with
#: ``python benchmarks/bench_numpy_pool.py --crossover`` (stacks of float32 56 x 56 planes,
#: max 2x2/2 forward and backward and avg 2x2/2 forward, fastest of 20 runs, one thread against
#: two, on the 2-core development Xeon at load average 1.4): a tie up to 49 KiB, two threads
#: 12% faster at 98 KiB (max forward 69 -> 61 us), 23% at 196 KiB (87 -> 67 us). Below that
#: the call's fixed cost (~50 us) dominates, and on a busy machine a second thread that has to
#: wait for a core costs milliseconds, so the threshold sits between the two.
PARALLEL_MIN_BYTES = 1 << 17


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


def max_threads() -> int:
    """The most threads the kernels may use: ``NUMBA_NUM_THREADS`` if set (numba's thread
    pool has that many), else the CPUs this process may run on (numba's default)."""
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"NUMBA_NUM_THREADS must be a positive integer, got {value!r}")\
                from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads in the numba kernels (``None``: back to the default,
    :func:`max_threads`). ``n`` must be an int from 1 to :func:`max_threads`."""
    global _threads
    if n is None:
        _threads = None
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n (number of threads) must be an int or None, got {n!r} "
                        f"({type(n).__name__})")
    limit = max_threads()
    if not 1 <= n <= limit:
        raise ValueError(f"n (number of threads) must be between 1 and {limit} "
                         f"(NUMBA_NUM_THREADS or the CPUs available), got {n}")
    _threads = int(n)


def get_num_threads() -> int:
    """The threads the numba kernels use on large inputs (:func:`set_num_threads`, else
    :func:`max_threads`)."""
    return _threads if _threads is not None else max_threads()


def threads_for(nbytes: int, n_planes: int) -> int:
    """Threads to use on ``n_planes`` planes of ``nbytes`` in all: one below
    :data:`PARALLEL_MIN_BYTES`, never more than one per plane, and one in a process forked
    after this one started its threads (GNU OpenMP, numba's threading layer here, is not
    fork-safe: a child would hang waiting for threads it does not have)."""
    global _parallel_pid
    if nbytes < PARALLEL_MIN_BYTES:
        return 1
    n = max(1, min(get_num_threads(), n_planes))
    if n > 1:
        if _parallel_pid is None:
            _parallel_pid = os.getpid()
        elif _parallel_pid != os.getpid():
            return 1  # a forked child: numba's OpenMP threads did not survive the fork
    return n


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
