"""poolkit.numpy adaptive average/max pooling against torch.nn.functional (values, indices,
autograd gradients), hand-worked bins, and invalid output sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit.numpy as pnp

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _values(kind, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.integers(-2, 3, shape) if kind == "ties" else rng.standard_normal(shape)).astype(dtype)
    if x.size and kind in ("nan", "neg_inf"):
        picks = rng.choice(x.size, max(1, x.size // 6))
        x.reshape(-1)[picks] = np.nan if kind == "nan" else -np.inf
    return x


@st.composite
def adaptive_cases(draw):
    dims = draw(st.sampled_from([1, 2, 3]))
    spatial = tuple(draw(st.integers(1, 7 if dims < 3 else 5)) for _ in range(dims))
    sizes = [draw(st.integers(0, 9)) for _ in range(dims)]
    output_size = sizes[0] if dims == 1 and draw(st.booleans()) else tuple(sizes)
    if dims > 1 and draw(st.integers(0, 4)) == 0:
        output_size = tuple(None if d == 0 else s for d, s in enumerate(sizes))
    batched = draw(st.booleans())
    lead = (draw(st.sampled_from([0, 1, 2])), draw(st.integers(1, 2))) if batched else \
        (draw(st.integers(1, 2)),)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(["randn", "ties", "nan", "neg_inf"]))
    return dims, _values(kind, lead + spatial, dtype, draw(st.integers(0, 2**16))), output_size


def _torch(fn_name, x, *args, **kwargs):
    xt = torch.tensor(x, requires_grad=True)
    out = getattr(F, fn_name)(xt, *args, **kwargs)
    values = out[0] if isinstance(out, tuple) else out
    g = np.random.default_rng(1).standard_normal(tuple(values.shape)).astype(x.dtype)
    if values.numel() == 0:  # torch's backward refuses an empty output; the gradient is 0
        return out, np.zeros_like(x), g
    values.backward(torch.tensor(g))
    return out, xt.grad.numpy(), g


def _tol(dtype):
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


@given(case=adaptive_cases())
def test_adaptive_avg_matches_torch(case):
    dims, x, output_size = case
    name = f"adaptive_avg_pool{dims}d"
    out, grad, g = _torch(name, x, output_size)
    ours = getattr(pnp, name)(x, output_size)
    assert ours.dtype == x.dtype
    np.testing.assert_allclose(ours, out.detach().numpy(), equal_nan=True, **_tol(x.dtype))
    our_grad = getattr(pnp, f"{name}_backward")(g, x, output_size)
    np.testing.assert_allclose(our_grad, grad, equal_nan=True, **_tol(x.dtype))


@given(case=adaptive_cases())
def test_adaptive_max_matches_torch(case):
    dims, x, output_size = case
    name = f"adaptive_max_pool{dims}d"
    (values, index), grad, g = _torch(name, x, output_size, return_indices=True)
    ours, our_index = getattr(pnp, name)(x, output_size, return_indices=True)
    np.testing.assert_array_equal(ours, values.detach().numpy())
    np.testing.assert_array_equal(our_index, index.numpy())
    np.testing.assert_array_equal(getattr(pnp, name)(x, output_size), ours)
    our_grad = getattr(pnp, f"{name}_backward")(g, x, output_size)
    np.testing.assert_allclose(our_grad, grad, **_tol(x.dtype))


def test_adaptive_hand_worked():
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    # bins of 5 -> 3: [0,2) [1,4) [3,5): means 1.5, 3, 4.5
    np.testing.assert_allclose(pnp.adaptive_avg_pool1d(x, 3), [[1.5, 3.0, 4.5]])
    # gradient of ones: element 1 is in bins 0 and 1 -> 1/2 + 1/3; element 3 in bins 1, 2
    grad = pnp.adaptive_avg_pool1d_backward(np.ones((1, 3)), x, 3)
    np.testing.assert_allclose(grad, [[1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2]])
    # max over the same bins, the middle bin's max 4 is also the last bin's
    values, index = pnp.adaptive_max_pool1d(np.array([[5.0, 1.0, 3.0, 4.0, 2.0]]), 3, True)
    np.testing.assert_array_equal(values, [[5, 4, 4]])
    np.testing.assert_array_equal(index, [[0, 3, 3]])
    np.testing.assert_array_equal(
        pnp.adaptive_max_pool1d_backward(np.ones((1, 3)), np.array([[5.0, 1.0, 3.0, 4.0, 2.0]]),
                                         3), [[1, 0, 0, 2, 0]])
    # more outputs than inputs repeat elements: 2 -> 4 bins [0,1) [0,1) [1,2) [1,2)
    np.testing.assert_allclose(pnp.adaptive_avg_pool1d(np.array([[1.0, 3.0]]), 4),
                               [[1, 1, 3, 3]])
    # global average pooling
    np.testing.assert_allclose(pnp.adaptive_avg_pool2d(np.arange(16.0).reshape(1, 4, 4), 1),
                               [[[7.5]]])


def test_adaptive_output_size_zero_and_none():
    x = np.ones((1, 2, 5, 6), np.float32)
    assert pnp.adaptive_avg_pool2d(x, (0, 2)).shape == (1, 2, 0, 2)
    assert pnp.adaptive_max_pool2d(x, (None, 2)).shape == (1, 2, 5, 2)
    assert pnp.adaptive_avg_pool2d(np.ones((1, 0, 5, 6)), 2).shape == (1, 0, 2, 2)


@pytest.mark.parametrize(
    ("fn", "shape", "output_size", "exc", "word"),
    [
        ("adaptive_avg_pool1d", (1, 2, 5), (2, 2), ValueError, "output_size"),
        ("adaptive_avg_pool1d", (1, 2, 5), 2.0, TypeError, "output_size"),
        ("adaptive_avg_pool1d", (1, 2, 5), None, TypeError, "output_size"),
        ("adaptive_max_pool1d", (1, 2, 5), True, TypeError, "output_size"),
        ("adaptive_avg_pool2d", (1, 2, 5, 6), (2, -1), ValueError, "output_size"),
        ("adaptive_max_pool2d", (1, 2, 5, 6), (2,), ValueError, "output_size"),
        ("adaptive_max_pool2d", (1, 0, 5, 6), 2, ValueError, "input"),
        ("adaptive_avg_pool2d", (1, 1, 0, 6), 2, ValueError, "input"),
        ("adaptive_avg_pool2d", (5, 6), 2, ValueError, "input"),
        ("adaptive_avg_pool3d", (5, 5, 5), 2, ValueError, "input"),
        ("adaptive_avg_pool1d", (5,), 2, ValueError, "input"),
    ],
)
def test_adaptive_invalid_arguments_refused_like_torch(fn, shape, output_size, exc, word):
    x = np.ones(shape)
    with pytest.raises((RuntimeError, TypeError, ValueError)):
        getattr(F, fn)(torch.tensor(x), output_size)
    with pytest.raises(exc, match=word):
        getattr(pnp, fn)(x, output_size)
