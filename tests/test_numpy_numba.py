"""The numba kernels' own paths, each forced by hypothesis shapes that reach it, against torch:

- the unrolled 2- and 3-wide, stride-2 rows of the forward values (``_rows``), with odd and
  even widths, padding, ceil mode and sizes too small for any interior output;
- the phase planes of the argmax and of the average backward (``_fill``/``_unfill``): every
  stride from 1 to 4 (the stride-2 fast path, stride 1 and the strided path), ragged row ends,
  dilation margins, ceil-mode windows past the padding, kernel volumes that are not a multiple
  of the four offsets combined per pass, strides larger than the kernel (phases no window
  reads, inputs that get no gradient);
- the phase split itself: :func:`_unfill` is the transpose of :func:`_fill`;
- one compiled version per kernel and dtype, whatever the geometry (compile time).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit.numpy as pnp
from poolkit.geometry import pool_geometry
from poolkit.numpy import _backend
from poolkit.numpy._backend import numba_available, use_backend

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba not installed")
torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}


def values(shape, dtype, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "ties":
        return rng.integers(-2, 3, size=shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "special" and x.size:
        flat = x.reshape(-1)
        picks = rng.choice(flat.size, size=max(1, flat.size // 4))
        flat[picks[::2]] = np.nan
        flat[picks[1::2]] = -np.inf
    return x


@contextlib.contextmanager
def threads(n: int):
    """The kernels on ``n`` chunks of planes (``n`` > 1: the prange drivers), however small
    the input and however many CPUs this machine has (prange runs every chunk either way)."""
    saved = _backend._threads, _backend.PARALLEL_MIN_BYTES
    _backend._threads, _backend.PARALLEL_MIN_BYTES = n, 0
    try:
        yield
    finally:
        _backend._threads, _backend.PARALLEL_MIN_BYTES = saved


def against_torch(dims, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                  n_threads=1):
    """numba's max values, indices, max backward, avg and avg backward against torch, on
    ``n_threads`` chunks of planes."""
    with threads(n_threads):
        _against_torch(dims, x, kernel, stride, padding, dilation, ceil_mode,
                       count_include_pad)


def _against_torch(dims, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad):
    max_args = (kernel, stride, padding, dilation, ceil_mode)
    avg_args = (kernel, stride, padding, ceil_mode, count_include_pad)
    xt = torch.tensor(x, requires_grad=True)
    values_t, index_t = getattr(F, f"max_pool{dims}d")(xt, *max_args, return_indices=True)
    g = np.random.default_rng(7).standard_normal(values_t.shape).astype(x.dtype)
    values_t.backward(torch.tensor(g))
    tol = TOL[x.dtype.type]
    with use_backend("numba"):
        np.testing.assert_allclose(getattr(pnp, f"max_pool{dims}d")(x, *max_args),
                                   values_t.detach().numpy(), equal_nan=True, **tol)
        ours, index = getattr(pnp, f"max_pool{dims}d")(x, *max_args, return_indices=True)
        np.testing.assert_array_equal(index, index_t.numpy())
        np.testing.assert_allclose(ours, values_t.detach().numpy(), equal_nan=True, **tol)
        grad = getattr(pnp, f"max_pool{dims}d_backward")(g, x, *max_args)
        np.testing.assert_allclose(grad, xt.grad.numpy(), equal_nan=True, **tol)
    if np.any(np.asarray(dilation) != 1):
        return  # average pooling has no dilation
    xt = torch.tensor(x, requires_grad=True)
    try:
        avg_t = getattr(F, f"avg_pool{dims}d")(xt, *avg_args)
    except RuntimeError:  # avg_pool3d: input smaller than the kernel; poolkit refuses too
        with pytest.raises(ValueError, match="input size"), use_backend("numba"):
            getattr(pnp, f"avg_pool{dims}d")(x, *avg_args)
        return
    g = np.random.default_rng(8).standard_normal(avg_t.shape).astype(x.dtype)
    avg_t.backward(torch.tensor(g))
    with use_backend("numba"):
        np.testing.assert_allclose(getattr(pnp, f"avg_pool{dims}d")(x, *avg_args),
                                   avg_t.detach().numpy(), equal_nan=True, **tol)
        grad = getattr(pnp, f"avg_pool{dims}d_backward")(g, x, *avg_args)
        np.testing.assert_allclose(grad, xt.grad.numpy(), equal_nan=True, **tol)


@st.composite
def stride2_rows(draw):
    """Windows whose last dimension takes the unrolled loops: 2 or 3 wide, stride 2."""
    dims = draw(st.sampled_from([1, 2, 3]))
    k_last = draw(st.sampled_from([2, 3]))
    lead = [draw(st.integers(1, 3)) for _ in range(dims - 1)]
    kernel = tuple(lead) + (k_last,)
    stride = tuple(draw(st.integers(1, 2)) for _ in range(dims - 1)) + (2,)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    spatial = tuple(draw(st.integers(k, k + 5)) for k in lead) + \
        (draw(st.integers(k_last - 1, 2 * k_last + 9)),)  # odd, even, and no interior at all
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = values((2, 3) + spatial, dtype, draw(st.integers(0, 2**16)),
               draw(st.sampled_from(["randn", "ties", "special"])))
    return dims, x, kernel, stride, padding, ceil_mode, draw(st.booleans())


THREADS = st.sampled_from([1, 2, 4])  # 4 chunks of 6 planes: uneven chunks


@given(case=stride2_rows(), n_threads=THREADS)
def test_unrolled_stride2_rows_match_torch(case, n_threads):
    dims, x, kernel, stride, padding, ceil_mode, count_include_pad = case
    try:
        pool_geometry(x.shape[2:], kernel, stride, padding, 1, ceil_mode)
    except ValueError:
        return  # an output size below 1 (refused like torch; tested in test_numpy_pool)
    against_torch(dims, x, kernel, stride, padding, 1, ceil_mode, count_include_pad,
                  n_threads)


@st.composite
def phase_geometries(draw):
    """Strides 1-4 (phase planes of every kind), dilation, kernels up to 5 wide."""
    dims = draw(st.sampled_from([1, 2, 2, 3]))
    kernel = tuple(draw(st.integers(1, 5 if dims < 3 else 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    spatial = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 9 if dims < 3 else 5))
                    for k, d in zip(kernel, dilation, strict=True))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = values((2, 2) + spatial, dtype, draw(st.integers(0, 2**16)),
               draw(st.sampled_from(["randn", "ties", "special"])))
    return dims, x, kernel, stride, padding, dilation, ceil_mode


@given(case=phase_geometries(), count_include_pad=st.booleans(), n_threads=THREADS)
def test_phase_plane_kernels_match_torch(case, count_include_pad, n_threads):
    dims, x, kernel, stride, padding, dilation, ceil_mode = case
    try:
        pool_geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    except ValueError:
        return
    against_torch(dims, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                  n_threads)


@st.composite
def tiling_2x2(draw):
    """2x2 windows of stride 2 tiling even planes (the argmax and backward fast path), and
    near misses that must not take it: odd sizes, padding, a depth kernel."""
    dims = draw(st.sampled_from([2, 3]))
    size = [2 * draw(st.integers(1, 6)) for _ in range(2)]
    if draw(st.booleans()):
        size[draw(st.integers(0, 1))] += 1  # odd: floor drops a row, ceil a partial window
    kernel, stride, padding = (2, 2), (2, 2), (0, draw(st.sampled_from([0, 0, 1])))
    if dims == 3:
        k_depth = draw(st.sampled_from([1, 1, 2]))
        kernel, stride, padding = (k_depth,) + kernel, (1,) + stride, (0,) + padding
        size = [draw(st.integers(2, 3))] + size
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = values((2, 3, *size), dtype, draw(st.integers(0, 2**16)),
               draw(st.sampled_from(["randn", "ties", "special"])))
    return dims, x, kernel, stride, padding, draw(st.booleans())


@given(case=tiling_2x2(), n_threads=THREADS)
def test_2x2_tiles_match_torch(case, n_threads):
    dims, x, kernel, stride, padding, ceil_mode = case
    against_torch(dims, x, kernel, stride, padding, 1, ceil_mode, True, n_threads)


@st.composite
def windows_3x3_stride2(draw):
    """3x3 windows of stride 2, padding 0 or 1 per dimension (the streaming argmax), sizes
    down to one window, both rounding modes; 3-d with a depth kernel of 1 (and 2: a near
    miss, the phase planes)."""
    dims = draw(st.sampled_from([2, 3]))
    padding = tuple(draw(st.integers(0, 1)) for _ in range(2))
    size = [draw(st.integers(3 - 2 * p, 12)) for p in padding]
    kernel, stride = (3, 3), (2, 2)
    if dims == 3:
        k_depth = draw(st.sampled_from([1, 1, 2]))
        kernel, stride, padding = (k_depth,) + kernel, (1,) + stride, (0,) + padding
        size = [draw(st.integers(2, 3))] + size
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = values((2, 3, *size), dtype, draw(st.integers(0, 2**16)),
               draw(st.sampled_from(["randn", "ties", "special"])))
    return dims, x, kernel, stride, padding, draw(st.booleans())


@given(case=windows_3x3_stride2(), n_threads=THREADS)
def test_3x3_stride2_windows_match_torch(case, n_threads):
    dims, x, kernel, stride, padding, ceil_mode = case
    try:
        pool_geometry(x.shape[2:], kernel, stride, padding, 1, ceil_mode)
    except ValueError:
        return
    against_torch(dims, x, kernel, stride, padding, 1, ceil_mode, True, n_threads)


def test_3x3_stride2_hand_worked():
    # padding 1: the window of output (0, 0) reads rows/columns -1..1; its first real
    # element is (0, 0). Ties: 5 at (0, 1) before 5 at (1, 0) in scan order, though column
    # 0 comes first; two NaN: the later, (1, 1), wins; all -inf: the first real element
    x = np.array([[[[1.0, 5.0, 0.0], [5.0, 2.0, 0.0], [0.0, 0.0, 0.0]]],
                  [[[np.nan, 0.0, 0.0], [0.0, np.nan, 0.0], [0.0, 0.0, 0.0]]],
                  [[[-np.inf] * 3] * 3]])
    with use_backend("numba"):
        values_, index = pnp.max_pool2d(x, 3, 2, 1, return_indices=True)
        grad = pnp.max_pool2d_backward(np.ones_like(values_), x, 3, 2, 1)
    np.testing.assert_array_equal(index[:, 0, 0, 0], [1, 4, 0])
    np.testing.assert_array_equal(values_[:, 0, 0, 0], [5.0, np.nan, -np.inf])
    # 2x2 windows of the first plane: (0, 1) wins the first two, (1, 0) and (1, 1) one each
    np.testing.assert_array_equal(grad[0, 0], [[0, 2, 0], [1, 1, 0], [0, 0, 0]])


def test_2x2_tiles_hand_worked():
    # one window, scan order (0,0) (0,1) (1,0) (1,1): ties go to the first, NaN wins, and a
    # window of -inf reports (and takes the gradient at) its first element
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]], [[[-1.0, np.nan], [np.nan, 5.0]]],
                  [[[-np.inf, -np.inf], [-np.inf, -np.inf]]]])
    with use_backend("numba"):
        values_, index = pnp.max_pool2d(x, 2, return_indices=True)
        grad = pnp.max_pool2d_backward(np.array([[[[10.0]]], [[[20.0]]], [[[30.0]]]]), x, 2)
    np.testing.assert_array_equal(index.ravel(), [1, 2, 0])
    np.testing.assert_array_equal(values_.ravel(), [3.0, np.nan, -np.inf])
    np.testing.assert_array_equal(grad.reshape(3, 4), [[0, 10, 0, 0], [0, 0, 20, 0],
                                                       [30, 0, 0, 0]])


@given(case=phase_geometries())
def test_unfill_is_the_transpose_of_fill(case):
    # <fill(x), y> == <x, unfill(y)> over the phase positions that hold input elements
    from poolkit.numpy import _numba

    _, x, kernel, stride, padding, dilation, ceil_mode = case
    x = np.nan_to_num(x, nan=1.5, neginf=-2.0).astype(np.float64)
    try:
        geometry = pool_geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    except ValueError:
        return
    geo = _numba._plan(geometry, 1)[0]
    n_phase = int(np.prod(geometry.stride)) * int(geo[25])
    plane = x.reshape(-1)[: int(np.prod(x.shape[2:]))].copy()
    phases = np.zeros(n_phase)
    _numba._fill(plane, 0, geo, phases)
    y = np.random.default_rng(0).standard_normal(n_phase)
    back = np.empty_like(plane)
    _numba._unfill(y, geo, back, 0)
    np.testing.assert_allclose(np.dot(phases, y), np.dot(plane, back), rtol=1e-12, atol=1e-12)
    # every input element lands in exactly one phase position (or in none: then no window
    # reads it, and its gradient is 0)
    ones = np.zeros(n_phase)
    _numba._fill(np.ones_like(plane), 0, geo, ones)
    assert ones.sum() <= plane.size and set(np.unique(ones)) <= {0.0, 1.0}


def test_hand_worked_phase_split():
    # 1-d, L = 5, k = 3, s = 2, p = 1: offset j reads o*2 - 1 + j, i.e. phase (j - 1) % 2 at
    # o + (j - 1) // 2; one margin element, phases of length 1 + 3 + 0 = 4:
    # phase 0 = [pad, x0, x2, x4], phase 1 = [pad, x1, x3, pad]
    from poolkit.numpy import _numba

    geo, shifts, positions, _, _ = _numba._plan(pool_geometry((5,), 3, 2, 1), 1)
    phases = np.full(8, -np.inf)
    _numba._fill(np.arange(10.0, 15.0), 0, geo, phases)
    np.testing.assert_array_equal(phases, [-np.inf, 10, 12, 14, -np.inf, 11, 13, -np.inf])
    # offsets 0, 1, 2 start at phase 1 pos 0, phase 0 pos 1, phase 1 pos 1; one filler
    np.testing.assert_array_equal(shifts, [4, 1, 5, 8])
    np.testing.assert_array_equal(positions, [0, 1, 2, 0])


def test_one_compiled_version_per_dtype():
    from poolkit.numpy import _numba

    rng = np.random.default_rng(0)
    for dims, kernel, stride, padding in [(1, 2, 2, 0), (2, 3, 2, 1), (2, (1, 4), 3, 0),
                                          (3, 2, 1, 1), (2, 2, 2, 0),
                                          (3, (1, 2, 2), (1, 2, 2), 0)]:
        for dtype, n_threads in ((np.float32, 1), (np.float64, 1), (np.float32, 2),
                                 (np.float64, 2)):
            x = rng.standard_normal((2, 3) + (6,) * dims).astype(dtype)
            with use_backend("numba"), threads(n_threads):
                y, _ = getattr(pnp, f"max_pool{dims}d")(x, kernel, stride, padding,
                                                         return_indices=True)
                getattr(pnp, f"max_pool{dims}d_backward")(y, x, kernel, stride, padding)
                getattr(pnp, f"max_pool{dims}d")(x, kernel, stride, padding)
                getattr(pnp, f"avg_pool{dims}d_backward")(
                    getattr(pnp, f"avg_pool{dims}d")(x, kernel, stride, padding), x,
                    kernel, stride, padding)
    for kernel in (_numba._rows, _numba._argmax, _numba._avg_backward, _numba._fill,
                   _numba._unfill, _numba._rows_par, _numba._argmax_par,
                   _numba._avg_backward_par):
        assert len(kernel.signatures) <= 2, kernel
    assert _numba._argmax2x2.signatures  # the 2x2 tiles took their fast path
    assert _numba._argmax3x3.signatures  # and 3x3/2 with padding 1 its own


def test_planes_of_2_31_elements_take_the_numpy_path():
    huge = np.broadcast_to(np.float32(0), (1, 2**31))  # no memory behind it
    with use_backend("numba"):
        assert not _backend.compiled(huge)
        assert _backend.compiled(np.zeros((1, 4), np.float32))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_windows_of_padding_only_pass_no_gradient(backend):
    """A dilated window can read only padding (width 1, kernel 2, dilation 2, padding 1, ceil
    mode): its output is -inf whatever the input, so it passes no gradient. PyTorch reports
    indices past the window (1, 3, 5, 7 here; 7 is past the plane) and adds the gradient there,
    which poolkit does not copy; the forward indices stay PyTorch's."""
    x = np.arange(7, dtype=np.float64).reshape(1, 1, 7, 1)
    args = ((1, 2), (2, 2), (0, 1), (1, 2), True)
    values_t, index_t = F.max_pool2d(torch.tensor(x), *args, return_indices=True)
    with use_backend(backend):
        values, index = pnp.max_pool2d(x, *args, return_indices=True)
        grad = pnp.max_pool2d_backward(np.ones_like(values), x, *args)
    np.testing.assert_array_equal(values, values_t.numpy())  # all -inf
    np.testing.assert_array_equal(index, index_t.numpy())
    np.testing.assert_array_equal(grad, np.zeros_like(x))
    # a window that reads real -inf elements does pass its gradient, to its first element
    x = np.full((1, 1, 3, 3), -np.inf)
    with use_backend(backend):
        grad = pnp.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 3)
    assert grad.sum() == 1 and grad[0, 0, 0, 0] == 1


def test_set_num_threads_is_validated_and_reset(monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    monkeypatch.setattr(_backend, "_threads", None)
    assert pnp.get_num_threads() == _backend.max_threads() == 3  # the environment's
    pnp.set_num_threads(2)
    assert pnp.get_num_threads() == 2
    for bad in (0, 4, -1):
        with pytest.raises(ValueError, match=rf"n \(number of threads\) must be between 1 "
                                             rf"and 3 .*got {bad}"):
            pnp.set_num_threads(bad)
    for bad in (2.0, True, "2"):
        with pytest.raises(TypeError, match="n .number of threads. must be an int or None"):
            pnp.set_num_threads(bad)
    assert pnp.get_num_threads() == 2  # a refused value changes nothing
    pnp.set_num_threads(None)
    assert pnp.get_num_threads() == 3
    monkeypatch.setenv("NUMBA_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS must be a positive integer"):
        pnp.get_num_threads()


def test_small_inputs_run_on_one_thread(monkeypatch):
    monkeypatch.setattr(_backend, "_threads", 4)
    monkeypatch.setattr(_backend, "_parallel_pid", None)
    limit = _backend.PARALLEL_MIN_BYTES
    assert _backend.threads_for(limit - 1, 64) == 1
    assert _backend.threads_for(limit, 64) == 4
    assert _backend.threads_for(limit, 3) == 3  # never more chunks than planes
    # a forked child of the process that started the threads runs on one
    monkeypatch.setattr(_backend, "_parallel_pid", os.getpid() + 1)
    assert _backend.threads_for(limit, 64) == 1


def test_default_threshold_on_an_input_above_it():
    """The real threshold, not the tests' 0: set_num_threads(2) on an input above it (the
    prange drivers) and one below it (one thread), against torch."""
    x = values((4, 9, 64, 64), np.float32, 5, "special")
    assert x.nbytes >= _backend.PARALLEL_MIN_BYTES > x[:1, :2].nbytes
    pnp.set_num_threads(2)
    try:
        for sample in (x, x[:1, :2]):
            xt = torch.tensor(sample)
            with use_backend("numba"):
                values_, index = pnp.max_pool2d(sample, 3, 2, 1, return_indices=True)
                average = pnp.avg_pool2d(sample, 2)
            values_t, index_t = F.max_pool2d(xt, 3, 2, 1, return_indices=True)
            np.testing.assert_array_equal(index, index_t.numpy())
            np.testing.assert_array_equal(values_, values_t.numpy())
            np.testing.assert_allclose(average, F.avg_pool2d(xt, 2).numpy(), equal_nan=True,
                                       **TOL[np.float32])
    finally:
        pnp.set_num_threads(None)


FORK_SCRIPT = """
import os, signal, sys
import numpy as np
import poolkit.numpy as pnp
from poolkit.numpy import _backend
_backend.PARALLEL_MIN_BYTES = 0
pnp.set_num_threads(2)
x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
expected = pnp.max_pool2d(x, 3, 2, 1)  # starts numba's OpenMP threads
pid = os.fork()
if pid == 0:
    signal.alarm(120)  # a hang (threads waited for in the child) ends as SIGALRM
    os._exit(0 if np.array_equal(pnp.max_pool2d(x, 3, 2, 1), expected) else 1)
_, status = os.waitpid(pid, 0)
print("signal" if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
def test_a_forked_child_pools_on_one_thread(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
