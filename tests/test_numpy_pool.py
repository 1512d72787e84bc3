"""poolkit.numpy max/avg/Lp pooling against torch.nn.functional: forward values, indices and
gradients (torch autograd) over hypothesis-drawn shapes, arguments and values, on both
backends (pure NumPy, and numba when installed); invalid arguments refused where torch refuses.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit.numpy as pnp
from poolkit.numpy._backend import numba_available, use_backend

torch = pytest.importorskip("torch")
F = torch.nn.functional

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not numba_available(), reason="numba not installed"))]
TOL = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}
ARG_NAMES = ("kernel_size", "stride", "padding", "dilation", "input", "divisor_override",
             "norm_type", "grad_output")


def make_values(kind: str, shape, dtype, seed: int) -> np.ndarray:
    """Random values with the features that break naive pooling: ties, NaN, -inf."""
    rng = np.random.default_rng(seed)
    if kind == "ties":  # few distinct values: many tied maxima
        x = rng.integers(-2, 3, size=shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    if x.size and kind in ("nan", "neg_inf", "mixed"):
        flat = x.reshape(-1)
        picks = rng.choice(flat.size, size=max(1, flat.size // 5), replace=True)
        if kind == "nan":
            flat[picks] = np.nan
        elif kind == "neg_inf":
            flat[picks] = -np.inf
        else:
            flat[picks[::2]] = np.nan
            flat[picks[1::2]] = -np.inf
    return x


def torch_forward_backward(fn_name, x, args, kwargs, grad_seed=0):
    """(outputs as NumPy, gradient wrt input, grad_output used) from torch autograd."""
    xt = torch.tensor(x, requires_grad=True)
    out = getattr(F, fn_name)(xt, *args, **kwargs)
    values = out[0] if isinstance(out, tuple) else out
    g = np.random.default_rng(grad_seed).standard_normal(values.shape).astype(x.dtype)
    values.backward(torch.tensor(g))
    outs = tuple(o.detach().numpy() for o in out) if isinstance(out, tuple) else \
        (out.detach().numpy(),)
    return outs, xt.grad.numpy(), g


@st.composite
def pool_cases(draw, op: str):
    dims = draw(st.sampled_from([1, 2, 3]))
    kernel = tuple(draw(st.integers(1, 3 if dims == 3 else 4)) for _ in range(dims))
    stride = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * dims)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel) if op != "lp" else 0
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims)) if op == "max" else 1
    ceil_mode = draw(st.booleans())
    span = [(dilation[d] if op == "max" else 1) * (kernel[d] - 1) + 1 for d in range(dims)]
    spatial = tuple(draw(st.integers(max(1, span[d] - 1), span[d] + (4 if dims == 3 else 7)))
                    for d in range(dims))
    batched = draw(st.booleans())
    lead = (draw(st.sampled_from([0, 1, 2])), draw(st.integers(1, 2))) if batched else \
        (draw(st.integers(1, 2)),)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(["randn", "ties", "nan", "neg_inf", "mixed"]))
    x = make_values(kind, lead + spatial, dtype, draw(st.integers(0, 2**16)))
    return dims, x, kernel, stride, padding, dilation, ceil_mode


def garbage(shape, dtype) -> np.ndarray:
    """A stale buffer for ``out=``: every element must be overwritten."""
    return np.full(shape, 7 if np.dtype(dtype).kind == "i" else np.nan, dtype)


def _torch_refuses(fn):
    try:
        fn()
    except (RuntimeError, ValueError, TypeError, IndexError):
        return True
    return False


def check_close(ours, theirs, dtype):
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, equal_nan=True, **TOL[dtype])


# --------------------------------------------------------------------------------------------
# max pooling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=pool_cases("max"))
def test_max_pool_matches_torch(backend, case):
    dims, x, kernel, stride, padding, dilation, ceil_mode = case
    name = f"max_pool{dims}d"
    args = (kernel, stride, padding, dilation, ceil_mode)
    if _torch_refuses(lambda: getattr(F, name)(torch.tensor(x), *args)):
        with pytest.raises(ValueError, match="input size"), use_backend(backend):
            getattr(pnp, name)(x, *args)
        return
    (values, index), grad, g = torch_forward_backward(name, x, args, {"return_indices": True})
    with use_backend(backend):
        ours, our_index = getattr(pnp, name)(x, *args, return_indices=True)
        plain = getattr(pnp, name)(x, *args)
        our_grad = getattr(pnp, f"{name}_backward")(g, x, *args)
    check_close(ours, values, x.dtype.type)
    check_close(plain, values, x.dtype.type)
    assert our_index.dtype == np.int64
    np.testing.assert_array_equal(our_index, index)
    check_close(our_grad, grad, x.dtype.type)
    # out=: the same results written into the caller's (stale) arrays, which are returned
    outs = (garbage(values.shape, x.dtype), garbage(index.shape, np.int64))
    out_grad = garbage(x.shape, x.dtype)
    with use_backend(backend):
        written = getattr(pnp, name)(x, *args, return_indices=True, out=outs)
        plain_out = garbage(values.shape, x.dtype)
        assert getattr(pnp, name)(x, *args, out=plain_out) is plain_out
        assert getattr(pnp, f"{name}_backward")(g, x, *args, out=out_grad) is out_grad
    assert written[0] is outs[0] and written[1] is outs[1]
    check_close(outs[0], values, x.dtype.type)
    check_close(plain_out, values, x.dtype.type)
    np.testing.assert_array_equal(outs[1], index)
    check_close(out_grad, grad, x.dtype.type)


# --------------------------------------------------------------------------------------------
# average pooling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=pool_cases("avg"), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 3]))
def test_avg_pool_matches_torch(backend, case, count_include_pad, divisor_override):
    dims, x, kernel, stride, padding, _, ceil_mode = case
    name = f"avg_pool{dims}d"
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    if dims > 1:
        args += (divisor_override,)
    if _torch_refuses(lambda: getattr(F, name)(torch.tensor(x), *args)):
        with pytest.raises(ValueError, match="input size"), use_backend(backend):
            getattr(pnp, name)(x, *args)
        return
    (values,), grad, g = torch_forward_backward(name, x, args, {})
    out, out_grad = garbage(values.shape, x.dtype), garbage(x.shape, x.dtype)
    with use_backend(backend):
        ours = getattr(pnp, name)(x, *args)
        our_grad = getattr(pnp, f"{name}_backward")(g, x, *args)
        assert getattr(pnp, name)(x, *args, out=out) is out
        assert getattr(pnp, f"{name}_backward")(g, x, *args, out=out_grad) is out_grad
    check_close(ours, values, x.dtype.type)
    check_close(our_grad, grad, x.dtype.type)
    check_close(out, values, x.dtype.type)
    check_close(out_grad, grad, x.dtype.type)


# --------------------------------------------------------------------------------------------
# Lp pooling
# --------------------------------------------------------------------------------------------


@given(case=pool_cases("lp"), norm_type=st.sampled_from([1, 2, 3, 1.5, -1, math.inf, -math.inf]))
def test_lp_pool_matches_torch(case, norm_type):
    dims, x, kernel, stride, _, _, ceil_mode = case
    x = np.nan_to_num(x, nan=0.5, neginf=-3.0)
    if norm_type not in (1, 2, 3, math.inf):  # keep the root real and finite
        x = np.abs(x) + np.asarray(0.25, x.dtype)
    name = f"lp_pool{dims}d"
    k = kernel[0] if dims == 1 else kernel
    s = stride if stride is None or dims > 1 else stride[0]
    args = (norm_type, k, s, ceil_mode)
    if _torch_refuses(lambda: getattr(F, name)(torch.tensor(x), *args)):
        with pytest.raises(ValueError, match="input size"):
            getattr(pnp, name)(x, *args)
        return
    (values,), grad, g = torch_forward_backward(name, x, args, {})
    ours = getattr(pnp, name)(x, *args)
    our_grad = getattr(pnp, f"{name}_backward")(g, x, *args)
    tol = {"rtol": 1e-4, "atol": 1e-5} if x.dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
    assert ours.dtype == x.dtype and our_grad.dtype == x.dtype
    np.testing.assert_allclose(ours, values, equal_nan=True, **tol)
    np.testing.assert_allclose(our_grad, grad, equal_nan=True, **tol)


def test_lp_pool_hand_worked():
    # p=2 over [3, 4] and [6, 8]: sqrt(9 + 16) = 5, sqrt(36 + 64) = 10
    np.testing.assert_allclose(pnp.lp_pool1d(np.array([[3.0, 4.0, 6.0, 8.0]]), 2, 2), [[5, 10]])
    # p=1 is the window sum; ceil mode scales a partial window by k over its divisor (PyTorch):
    # last window [5] alone: avg 5 / 1, times k=2 -> 10
    np.testing.assert_allclose(
        pnp.lp_pool1d(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]), 1, 2, ceil_mode=True), [[3, 7, 10]]
    )
    # p = inf is the max of |x|, p = -inf the min of |x|
    x = np.array([[1.0, -2.0, 3.0, -4.0]])
    np.testing.assert_allclose(pnp.lp_pool1d(x, math.inf, 2), [[2, 4]])
    np.testing.assert_allclose(pnp.lp_pool1d(x, -math.inf, 2), [[1, 3]])
    # zero window: output 0 and gradient 0 (not NaN)
    zeros = np.zeros((1, 4))
    np.testing.assert_array_equal(pnp.lp_pool1d_backward(np.ones((1, 2)), zeros, 2, 2), 0)


def test_lp_pool_invalid_norm_and_kernel():
    x = np.ones((1, 4))
    with pytest.raises(ValueError, match=r"norm_type \(0\)"):
        pnp.lp_pool1d(x, 0, 2)
    with pytest.raises(TypeError, match="norm_type"):
        pnp.lp_pool1d(x, "2", 2)
    with pytest.raises(TypeError, match="kernel_size"):
        pnp.lp_pool1d(x, 2, (2,))  # torch: mul() by a tuple fails
    with pytest.raises(ValueError, match="kernel_size"):
        pnp.lp_pool2d(np.ones((1, 4, 4)), 2, (2,))  # torch: cannot unpack 1 value into 2


# --------------------------------------------------------------------------------------------
# Hand-worked values, semantics corners
# --------------------------------------------------------------------------------------------

TUTORIAL = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)


def test_tutorial_example():
    np.testing.assert_array_equal(pnp.max_pool2d(TUTORIAL, 2)[0, 0], [[6, 8], [14, 16]])
    np.testing.assert_array_equal(pnp.avg_pool2d(TUTORIAL, 2)[0, 0], [[3.5, 5.5], [11.5, 13.5]])
    _, index = pnp.max_pool2d(TUTORIAL, 2, return_indices=True)
    np.testing.assert_array_equal(index[0, 0], [[5, 7], [13, 15]])


def test_max_pool_gradient_hand_worked():
    # 1-d, k=3, s=1 over [1, 3, 2, 0]: windows [1,3,2] and [3,2,0] both pick 3 (index 1),
    # so index 1 receives 1 + 1 = 2 (overlapping windows add up).
    grad = pnp.max_pool1d_backward(np.ones((1, 2)), np.array([[1.0, 3.0, 2.0, 0.0]]), 3, 1)
    np.testing.assert_array_equal(grad, [[0, 2, 0, 0]])


def test_avg_pool_divisors_hand_worked():
    x = np.arange(1.0, 6.0).reshape(1, 5)  # [1 2 3 4 5], k=3, s=2, p=1, ceil_mode
    # windows [-1,0,1] [1,2,3] [3,4,5]: sums 3, 9, 9
    # count_include_pad=True: divisors 3, 3, 3 (the last window's position 5 is padding)
    np.testing.assert_allclose(pnp.avg_pool1d(x, 3, 2, 1, True, True), [[1, 3, 3]])
    # count_include_pad=False: divisors 2, 3, 2
    np.testing.assert_allclose(pnp.avg_pool1d(x, 3, 2, 1, True, False), [[1.5, 3, 4.5]])
    # gradient of count_include_pad=False: each input gets sum over windows of 1/divisor
    grad = pnp.avg_pool1d_backward(np.ones((1, 3)), x, 3, 2, 1, True, False)
    np.testing.assert_allclose(grad, [[1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2]])
    assert pnp.avg_divisor.__doc__


def test_nan_wins_and_last_nan_is_reported():
    # PyTorch's CPU kernels: a NaN replaces the running max, so the last NaN is reported.
    x = np.array([[1.0, np.nan, 2.0, np.nan, 0.0]])
    values, index = pnp.max_pool1d(x, 5, return_indices=True)
    assert np.isnan(values[0, 0]) and index[0, 0] == 3
    np.testing.assert_array_equal(pnp.max_pool1d_backward(np.ones((1, 1)), x, 5),
                                  [[0, 0, 0, 1, 0]])


def test_all_negative_infinity_windows_report_their_first_real_element():
    x = np.full((1, 3), -np.inf)
    values, index = pnp.max_pool1d(x, 2, 1, 1, return_indices=True)
    np.testing.assert_array_equal(values, -np.inf)
    np.testing.assert_array_equal(index, [[0, 0, 1, 2]])


def test_dilated_window_reading_only_padding():
    # L=2, k=2, d=3, p=1: the single window reads positions -1 and 2 (both padding)
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    values, index = pnp.max_pool2d(x, 2, 1, 1, 3, return_indices=True)
    expected_values, expected_index = F.max_pool2d(torch.tensor(x), 2, 1, 1, 3,
                                                   return_indices=True)
    np.testing.assert_array_equal(values, expected_values.numpy())
    np.testing.assert_array_equal(index, expected_index.numpy())


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(dtype)
    for fn in (pnp.max_pool2d, pnp.avg_pool2d):
        out = fn(x, 2)
        assert out.dtype == dtype
        expected = getattr(F, fn.__name__)(torch.tensor(x), 2).numpy()
        np.testing.assert_allclose(out.astype(np.float64), expected.astype(np.float64),
                                   rtol=1e-3 if dtype == np.float16 else 2e-5)
    assert pnp.max_pool2d_backward(np.ones((2, 3, 3, 3), dtype), x, 2).dtype == dtype


def test_non_contiguous_and_list_input():
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 6)).transpose(0, 1, 3, 2)
    np.testing.assert_allclose(pnp.max_pool2d(x, 2), F.max_pool2d(torch.tensor(x), 2).numpy())
    np.testing.assert_allclose(pnp.avg_pool1d([[1.0, 2.0, 3.0, 4.0]], 2), [[1.5, 3.5]])


def test_empty_batch():
    x = np.zeros((0, 3, 5, 5), np.float32)
    assert pnp.max_pool2d(x, 2).shape == (0, 3, 2, 2)
    values, index = pnp.max_pool2d(x, 2, return_indices=True)
    assert index.shape == (0, 3, 2, 2) and index.dtype == np.int64
    assert pnp.avg_pool2d_backward(np.zeros((0, 3, 2, 2), np.float32), x, 2).shape == x.shape


# --------------------------------------------------------------------------------------------
# Invalid arguments: refused where torch refuses, with the argument named
# --------------------------------------------------------------------------------------------


@st.composite
def risky_cases(draw):
    dims = draw(st.sampled_from([1, 2, 3]))
    op = draw(st.sampled_from(["max", "avg"]))
    kernel = draw(st.one_of(st.integers(-1, 4),
                            st.tuples(*[st.integers(-1, 4)] * dims),
                            st.sampled_from([2.5, (2, 2, 2, 2), "2"])))
    stride = draw(st.one_of(st.none(), st.integers(-1, 3)))
    padding = draw(st.integers(-1, 3))
    dilation = draw(st.integers(0, 2))
    spatial = tuple(draw(st.integers(1, 5)) for _ in range(dims))
    rank_change = draw(st.sampled_from([0, 0, 0, -1, 1]))  # wrong input rank sometimes
    lead = (2,) if rank_change == 0 else ((1, 2, 1) if rank_change > 0 else ())
    if rank_change < 0 and dims > 1:
        spatial = spatial[1:]
    divisor = draw(st.sampled_from([None, 0, 2, 1.5]))
    return dims, op, kernel, stride, padding, dilation, lead + spatial, divisor


@given(case=risky_cases())
def test_invalid_arguments_refused_where_torch_refuses(case):
    dims, op, kernel, stride, padding, dilation, shape, divisor = case
    x = np.random.default_rng(0).standard_normal(shape)
    name = f"{op}_pool{dims}d"
    if op == "max":
        args = (kernel, stride, padding, dilation)
    else:
        args = (kernel, stride, padding, False, True) + ((divisor,) if dims > 1 else ())
    try:
        expected = getattr(F, name)(torch.tensor(x), *args)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        with pytest.raises((ValueError, TypeError)) as info:
            getattr(pnp, name)(x, *args)
        message = str(info.value)
        assert any(arg in message for arg in ARG_NAMES), (message, error)
        return
    ours = getattr(pnp, name)(x, *args)
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-12)


def test_error_messages_name_argument_value_and_rule():
    x = np.zeros((1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"padding \(3\) must be at most half the kernel size"):
        pnp.max_pool2d(x, 5, padding=3)
    with pytest.raises(ValueError, match=r"stride \(0\) must be greater than zero in dim 0"):
        pnp.avg_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match=r"divisor_override \(0\)"):
        pnp.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match="divisor_override"):
        pnp.avg_pool2d(x, 2, divisor_override=2.0)
    with pytest.raises(ValueError, match=r"input of max_pool2d must have 3 .* got shape \(8, 8\)"):
        pnp.max_pool2d(x[0, 0], 2)
    with pytest.raises(TypeError, match="floating-point"):
        pnp.max_pool2d(x.astype(np.int64), 2)
    with pytest.raises(ValueError, match="grad_output"):
        pnp.max_pool2d_backward(np.zeros((1, 1, 3, 3)), x, 2)
    with pytest.raises(ValueError, match="avg_pool3d must be at least kernel_size"):
        pnp.avg_pool3d(np.zeros((1, 1, 1, 4, 4)), (2, 1, 1))
    with pytest.raises(TypeError, match="unexpected keyword"):
        pnp.avg_pool1d(x[0], 2, divisor_override=2)  # as in torch: no divisor_override in 1-d


def test_importing_the_engine_imports_neither_torch_nor_numba():
    import subprocess
    import sys

    code = ("import sys, numpy as np, poolkit.numpy as p; p.max_pool2d(np.ones((1, 4, 4)), 2); "
            "print('torch' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"POOLKIT_NUMPY_BACKEND": "numpy", "PATH": ""}, check=True)
    assert out.stdout.split() == ["False", "False"]
    # with the default backend (numba when installed) importing alone compiles nothing
    code = "import sys, poolkit.numpy; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": ""}, check=True)
    assert out.stdout.split() == ["False"]


# --------------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_in_float16_and_unbatched(backend):
    x = make_values("mixed", (3, 5, 6), np.float16, 1)
    out = np.empty((3, 2, 3), np.float16)
    grad = np.empty_like(x)
    with use_backend(backend):
        assert pnp.avg_pool2d(x, 2, out=out) is out
        np.testing.assert_array_equal(out, pnp.avg_pool2d(x, 2))
        g = np.ones((3, 2, 3), np.float16)
        assert pnp.max_pool2d_backward(g, x, 2, out=grad) is grad
        np.testing.assert_array_equal(grad, pnp.max_pool2d_backward(g, x, 2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_is_checked(backend):
    x = np.zeros((2, 3, 4, 4), np.float32)
    good = np.empty((2, 3, 2, 2), np.float32)
    bad = [
        ([0.0] * 4, TypeError, "out of max_pool2d must be a numpy.ndarray or None, got list"),
        (np.empty((2, 3, 2, 3), np.float32), ValueError,
         r"out of max_pool2d must have shape \(2, 3, 2, 2\), got \(2, 3, 2, 3\)"),
        (np.empty((2, 3, 2, 2), np.float64), ValueError,
         "out of max_pool2d must have dtype float32, got float64"),
        (np.empty((2, 3, 2, 4), np.float32)[..., ::2], ValueError,
         "out of max_pool2d must be C-contiguous"),
        (np.broadcast_to(np.float32(0), (2, 3, 2, 2)), ValueError,
         "out of max_pool2d must be C-contiguous|out of max_pool2d must be writeable"),
        (x[:, :, :2, :2].copy().reshape(-1)[:24].reshape(2, 3, 2, 2), None, None),
    ]
    with use_backend(backend):
        for out, error, message in bad:
            if error is None:
                pnp.max_pool2d(x, 2, out=out)  # a fresh, contiguous array is fine
                continue
            with pytest.raises(error, match=message):
                pnp.max_pool2d(x, 2, out=out)
        with pytest.raises(ValueError, match="out of max_pool2d must not share memory"):
            pnp.max_pool2d(x, 2, out=x.reshape(-1)[:24].reshape(2, 3, 2, 2))
        with pytest.raises(TypeError, match="must be a tuple of two arrays"):
            pnp.max_pool2d(x, 2, return_indices=True, out=good)
        with pytest.raises(ValueError, match=r"out\[1\] of max_pool2d must have dtype int64"):
            pnp.max_pool2d(x, 2, return_indices=True,
                           out=(good, np.empty(good.shape, np.int32)))
        with pytest.raises(ValueError, match=r"out of avg_pool2d_backward must have shape "
                                             r"\(2, 3, 4, 4\)"):
            pnp.avg_pool2d_backward(good, x, 2, out=good)
        g = np.ones_like(good)
        with pytest.raises(ValueError, match="out of max_pool2d_backward must not share memory"):
            pnp.max_pool2d_backward(g, x, 2, out=x)
