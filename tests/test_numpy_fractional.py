"""poolkit.numpy fractional max pooling against torch (same _random_samples): values,
indices, gradients; the generator path; invalid arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit.numpy as pnp
from poolkit.geometry import fractional_intervals
from poolkit.numpy.fractional import draw_random_samples, fractional_intervals_array

torch = pytest.importorskip("torch")
F = torch.nn.functional


@st.composite
def fractional_cases(draw):
    dims = draw(st.sampled_from([2, 3]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    # 3-d needs output + kernel - 1 < input (strict), 2-d allows equality (PyTorch's checks)
    spatial = tuple(draw(st.integers(k + dims - 2, k + (8 if dims == 2 else 4))) for k in kernel)
    output_size = tuple(draw(st.integers(1, n - k + 1 - (dims - 2)))
                        for n, k in zip(spatial, kernel, strict=True))
    batched = draw(st.booleans())
    n_batch = draw(st.sampled_from([0, 1, 2])) if batched else 1
    channels = draw(st.integers(1, 2))
    lead = (n_batch, channels) if batched else (channels,)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["randn", "ties", "nan"]))
    x = (rng.integers(-2, 3, lead + spatial) if kind == "ties"
         else rng.standard_normal(lead + spatial)).astype(dtype)
    if kind == "nan" and x.size:
        x.reshape(-1)[rng.choice(x.size, max(1, x.size // 6))] = np.nan
    samples = rng.random((max(n_batch, 1), channels, dims)).astype(dtype)
    return dims, x, kernel, output_size, samples


@given(case=fractional_cases())
def test_fractional_matches_torch(case):
    dims, x, kernel, output_size, samples = case
    name = f"fractional_max_pool{dims}d"
    xt = torch.tensor(x, requires_grad=True)
    values, index = getattr(F, name)(xt, kernel, output_size, return_indices=True,
                                     _random_samples=torch.tensor(samples))
    ours, our_index = getattr(pnp, name)(x, kernel, output_size, return_indices=True,
                                         _random_samples=samples)
    assert ours.dtype == x.dtype and our_index.dtype == np.int64
    np.testing.assert_array_equal(ours, values.detach().numpy())
    np.testing.assert_array_equal(our_index, index.numpy())
    g = np.random.default_rng(0).standard_normal(ours.shape).astype(x.dtype)
    values.backward(torch.tensor(g))
    our_grad = getattr(pnp, f"{name}_backward")(g, x, kernel, output_size,
                                                _random_samples=samples)
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(our_grad, xt.grad.numpy(), rtol=tol, atol=tol)


def test_fractional_float32_start_matches_torch():
    # a sample where float32 arithmetic moves a window start (see test_geometry)
    samples = np.array([[[0.875, 0.0]]], np.float32)
    x = np.arange(26.0, dtype=np.float32).reshape(1, 1, 1, 26)
    _, index = pnp.fractional_max_pool2d(x, (1, 2), (1, 12), return_indices=True,
                                         _random_samples=samples)
    _, expected = F.fractional_max_pool2d(torch.tensor(x), (1, 2), (1, 12), return_indices=True,
                                          _random_samples=torch.tensor(samples))
    np.testing.assert_array_equal(index, expected.numpy())
    assert index[0, 0, 0, 6] == 15  # window [14, 15]: start 14, not 13 as float64 would give


def test_intervals_array_matches_geometry():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        samples = rng.random(50).astype(dtype)
        table = fractional_intervals_array(samples, 37, 11, 3)
        precision = np.dtype(dtype).name
        for u, row in zip(samples, table, strict=True):
            assert list(row) == fractional_intervals(float(u), 37, 11, 3, precision)


def test_hand_worked_and_ratio():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    # u = 0: alpha = (5 - 2) / (2 - 1) = 3, starts [0, 3]: windows rows/cols {0,1} and {3,4}
    out = pnp.fractional_max_pool2d(x, 2, output_size=2, _random_samples=np.zeros((1, 1, 2)))
    np.testing.assert_array_equal(out[0, 0], [[6, 9], [21, 24]])
    # output_ratio 0.5 of 5 -> int(2.5) = 2, scalar ratio accepted
    assert pnp.fractional_max_pool2d(x, 2, output_ratio=0.5, generator=0).shape == (1, 1, 2, 2)
    assert pnp.fractional_max_pool3d(np.ones((2, 6, 6, 6)), 2, output_ratio=(0.5, 0.5, 0.5),
                                     generator=0).shape == (2, 3, 3, 3)


def test_generator_is_reproducible_and_backward_needs_the_windows():
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    a = pnp.fractional_max_pool2d(x, 2, output_size=4, generator=7)
    b = pnp.fractional_max_pool2d(x, 2, output_size=4, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    samples = draw_random_samples(2, 3, 2, x.dtype, 7)
    np.testing.assert_array_equal(
        a, pnp.fractional_max_pool2d(x, 2, output_size=4, _random_samples=samples))
    grad = pnp.fractional_max_pool2d_backward(np.ones_like(a), x, 2, output_size=4, generator=7)
    assert grad.sum() == a.size  # every output's gradient lands on one input
    with pytest.raises(ValueError, match="same _random_samples"):
        pnp.fractional_max_pool2d_backward(np.ones_like(a), x, 2, output_size=4)


def test_float16_input():
    x = np.random.default_rng(0).standard_normal((1, 2, 8, 8)).astype(np.float16)
    samples = np.random.default_rng(1).random((1, 2, 2)).astype(np.float16)
    out = pnp.fractional_max_pool2d(x, 2, output_size=3, _random_samples=samples)
    expected = F.fractional_max_pool2d(torch.tensor(x), 2, output_size=3,
                                       _random_samples=torch.tensor(samples))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, expected.numpy())


@pytest.mark.parametrize(
    ("kwargs", "exc", "word"),
    [
        ({"kernel_size": 3}, ValueError, "output_size or output_ratio"),
        ({"kernel_size": 3, "output_size": 8}, ValueError, "kernel_size"),
        ({"kernel_size": 11, "output_size": 1}, ValueError, "kernel_size"),
        ({"kernel_size": 3, "output_size": (4, 4, 4)}, ValueError, "output_size"),
        ({"kernel_size": 3, "output_ratio": (0.5, 0.5, 0.5)}, ValueError, "output_ratio"),
        ({"kernel_size": 3, "output_size": 4, "_random_samples": np.zeros((2, 3, 3))},
         ValueError, "_random_samples"),
        ({"kernel_size": 3, "output_size": 4, "_random_samples": np.zeros((1, 3, 2))},
         ValueError, "_random_samples"),
        ({"kernel_size": 3, "output_size": 4, "_random_samples": np.zeros((2, 2, 2))},
         ValueError, "_random_samples"),
        ({"kernel_size": 3, "output_size": 4,
          "_random_samples": np.zeros((2, 3, 2), np.float32)}, TypeError, "_random_samples"),
    ],
)
def test_invalid_arguments_refused_like_torch(kwargs, exc, word):
    x = np.random.default_rng(0).standard_normal((2, 3, 10, 9))
    torch_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                    for k, v in kwargs.items()}
    with pytest.raises((RuntimeError, ValueError, TypeError)):
        F.fractional_max_pool2d(torch.tensor(x), **torch_kwargs)
    with pytest.raises(exc, match=word):
        pnp.fractional_max_pool2d(x, **kwargs)


def test_stricter_than_torch_where_torch_is_silent():
    x = np.ones((1, 1, 6, 6))
    # torch accepts kernel_size 0 (windows of nothing) and an output_ratio > 1 via a tuple
    with pytest.raises(ValueError, match="kernel_size"):
        pnp.fractional_max_pool2d(x, 0, output_size=2, generator=0)
    with pytest.raises(ValueError, match="output_ratio"):
        pnp.fractional_max_pool2d(x, 1, output_ratio=(1.5, 1.5), generator=0)
