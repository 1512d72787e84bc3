"""Finite-difference checks of every ``*_backward`` of poolkit.numpy, in float64, on tie-free
inputs (distinct values 0.1 apart, so a 1e-6 step never changes which element wins).

Independent of torch: the gradient is checked against the forward alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import poolkit.numpy as pnp
from poolkit.numpy._backend import numba_available, use_backend

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not numba_available(), reason="numba not installed"))]


def tie_free(shape, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    values = (rng.permutation(n) - (0 if positive else n / 2)) * 0.1 + (0.3 if positive else 0)
    return values.reshape(shape).astype(np.float64)


def numeric_gradient(forward, x, g, eps=1e-6):
    grad = np.zeros_like(x)
    flat, out = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + eps
        up = np.sum(g * forward(x))
        flat[i] = keep - eps
        down = np.sum(g * forward(x))
        flat[i] = keep
        out[i] = (up - down) / (2 * eps)
    return grad


def check(name, x, *args, seed=1, **kwargs):
    forward = getattr(pnp, name)
    backward = getattr(pnp, f"{name}_backward")
    y = forward(x, *args, **kwargs)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    analytic = backward(g, x, *args, **kwargs)
    numeric = numeric_gradient(lambda v: forward(v, *args, **kwargs), x.copy(), g)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6)


WINDOWED = [
    ("max_pool1d", (2, 2, 7), (3, 2, 1, 2, True)),  # kernel, stride, padding, dilation, ceil
    ("max_pool2d", (1, 2, 5, 6), ((3, 2), 1, (1, 0))),  # overlapping windows add up
    ("max_pool3d", (1, 1, 3, 4, 4), (2, (1, 2, 2), 1, 1, True)),
    ("avg_pool1d", (2, 7), (3, 2, 1, True, False)),  # ceil, count_include_pad=False
    ("avg_pool2d", (1, 2, 5, 6), (3, 2, 1, False, True, 5)),  # divisor_override
    ("avg_pool3d", (1, 1, 3, 4, 5), (2, 1, 1, True, True)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "shape", "args"), WINDOWED, ids=[w[0] for w in WINDOWED])
def test_windowed_pooling_gradients(backend, name, shape, args):
    with use_backend(backend):
        check(name, tie_free(shape), *args)


@pytest.mark.parametrize(
    ("name", "shape", "args"),
    [
        ("lp_pool1d", (1, 2, 7), (2, 3, 2, True)),
        ("lp_pool2d", (1, 5, 6), (3, 2)),
        ("lp_pool2d", (1, 5, 6), (1.5, (2, 3), 1)),
        ("lp_pool3d", (1, 1, 4, 4, 4), (2, 2)),
        ("lp_pool2d", (1, 4, 6), (math.inf, 2)),
        ("lp_pool1d", (1, 2, 7), (-math.inf, 2)),
    ],
)
def test_lp_pooling_gradients(name, shape, args):
    check(name, tie_free(shape, positive=args[0] not in (2, math.inf)), *args)


@pytest.mark.parametrize(
    ("name", "shape", "output_size"),
    [
        ("adaptive_avg_pool1d", (2, 7), 3),
        ("adaptive_avg_pool2d", (1, 2, 5, 7), (3, 4)),
        ("adaptive_avg_pool3d", (1, 3, 5, 4), (2, 3, 3)),
        ("adaptive_max_pool1d", (2, 7), 4),
        ("adaptive_max_pool2d", (1, 2, 5, 7), (3, 10)),  # more outputs than inputs along W
        ("adaptive_max_pool3d", (1, 3, 5, 4), (2, 3, 2)),
    ],
)
def test_adaptive_gradients(name, shape, output_size):
    check(name, tie_free(shape), output_size)


def test_fractional_gradients():
    samples = np.random.default_rng(3).random((2, 2, 2))
    check("fractional_max_pool2d", tie_free((2, 2, 7, 6)), 2, (4, 3), _random_samples=samples)
    samples3 = np.random.default_rng(4).random((1, 1, 3))
    check("fractional_max_pool3d", tie_free((1, 1, 5, 5, 6)), (2, 1, 2), (3, 3, 4),
          _random_samples=samples3)


def test_unpool_gradient():
    values, index = pnp.max_pool2d(tie_free((1, 2, 4, 6)), 2, return_indices=True)
    g = np.random.default_rng(0).standard_normal((1, 2, 4, 6))
    analytic = pnp.max_unpool2d_backward(g, values, index, 2)
    numeric = numeric_gradient(lambda v: pnp.max_unpool2d(v, index, 2), values.copy(), g)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6)
