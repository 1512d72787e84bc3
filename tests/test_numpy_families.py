"""The NumPy engine's pooling families equal the torch layers (forward and backward), and their
backward passes equal finite differences."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import poolkit.nn.functional as PF
from poolkit.numpy import families as fam

WINDOWS = [  # (dims, kernel_size, stride, padding); None = global
    (1, 3, 2, 1),
    (2, (3, 2), (2, 1), (1, 0)),
    (2, 2, 2, 0),
    (2, None, None, 0),
    (3, 2, 1, 1),
]
SHAPES = {1: (2, 3, 9), 2: (2, 3, 7, 6), 3: (1, 2, 4, 5, 4)}

# name -> (numpy forward, numpy backward, torch forward), all taking (x, kernel, stride, padding)
FAMILIES = {
    "softpool": (
        lambda x, d, *w: getattr(fam, f"soft_pool{d}d")(x, *w),
        lambda g, x, d, *w: getattr(fam, f"soft_pool{d}d_backward")(g, x, *w),
        lambda t, d, *w: getattr(PF, f"soft_pool{d}d")(t, *w),
    ),
    "lse": (
        lambda x, d, *w: getattr(fam, f"lse_pool{d}d")(x, *w, r=1.7),
        lambda g, x, d, *w: getattr(fam, f"lse_pool{d}d_backward")(g, x, *w, r=1.7),
        lambda t, d, *w: getattr(PF, f"lse_pool{d}d")(t, *w, r=1.7),
    ),
    "gem": (
        lambda x, d, *w: getattr(fam, f"gem_pool{d}d")(np.abs(x) + 0.1, *w, p=2.5),
        lambda g, x, d, *w: getattr(fam, f"gem_pool{d}d_backward")(g, np.abs(x) + 0.1, *w, p=2.5)
        * np.sign(x),
        lambda t, d, *w: getattr(PF, f"gem_pool{d}d")(t.abs() + 0.1, *w, p=2.5),
    ),
    "lp_abs": (
        lambda x, d, *w: getattr(fam, f"lp_abs_pool{d}d")(x, 1.5, *w),
        lambda g, x, d, *w: getattr(fam, f"lp_abs_pool{d}d_backward")(g, x, 1.5, *w),
        lambda t, d, *w: getattr(PF, f"lp_abs_pool{d}d")(t, 1.5, *w),
    ),
    "mixed": (
        lambda x, d, *w: getattr(fam, f"mixed_pool{d}d")(x, *w, alpha=0.3),
        lambda g, x, d, *w: getattr(fam, f"mixed_pool{d}d_backward")(g, x, *w, alpha=0.3),
        lambda t, d, *w: getattr(PF, f"mixed_pool{d}d")(t, *w, alpha=0.3),
    ),
    "stochastic_eval": (
        lambda x, d, *w: getattr(fam, f"stochastic_pool{d}d")(x, *w, training=False),
        lambda g, x, d, *w: getattr(fam, f"stochastic_pool{d}d_backward")(g, x, *w,
                                                                           training=False),
        lambda t, d, *w: getattr(PF, f"stochastic_pool{d}d")(t, *w, training=False),
    ),
}


def _noise(shape):
    return np.random.default_rng(42).random(shape)


FAMILIES["stochastic_train"] = (
    lambda x, d, *w: getattr(fam, f"stochastic_pool{d}d")(x, *w, noise=_noise(x.shape)),
    lambda g, x, d, *w: getattr(fam, f"stochastic_pool{d}d_backward")(g, x, *w,
                                                                       noise=_noise(x.shape)),
    lambda t, d, *w: getattr(PF, f"stochastic_pool{d}d")(t, *w,
                                                         noise=torch.tensor(_noise(t.shape))),
)


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("dims,kernel,stride,padding", WINDOWS)
def test_forward_and_backward_equal_torch(name, dims, kernel, stride, padding):
    forward, backward, torch_forward = FAMILIES[name]
    rng = np.random.default_rng(dims)
    x = rng.standard_normal(SHAPES[dims])
    t = torch.tensor(x, requires_grad=True)
    want = torch_forward(t, dims, kernel, stride, padding)
    got = forward(x, dims, kernel, stride, padding)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(want.shape)
    (want_grad,) = torch.autograd.grad(want, t, torch.tensor(g))
    got_grad = backward(g, x, dims, kernel, stride, padding)
    np.testing.assert_allclose(got_grad, want_grad.numpy(), rtol=1e-9, atol=1e-11)


def finite_difference(f, x, g, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = ((f(x + step) - f(x - step)) * g).sum() / (2 * eps)
    return grad


@pytest.mark.parametrize("name", [n for n in FAMILIES if n != "stochastic_train"])
def test_backward_equals_finite_differences(name):
    forward, backward, _ = FAMILIES[name]
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 4))
    g = np.random.default_rng(2).standard_normal(forward(x, 2, 3, 2, 1).shape)
    numeric = finite_difference(lambda v: forward(v, 2, 3, 2, 1), x, g)
    np.testing.assert_allclose(backward(g, x, 2, 3, 2, 1), numeric, rtol=1e-5, atol=1e-7)


def test_gem_and_lp_abs_against_loops():
    x = np.array([[[1.0, -2.0, 3.0, 0.5]]])
    # GeM p=2 over windows of 2: sqrt((1 + eps^2)/2) (x = -2 clamps to eps), sqrt((9 + .25)/2)
    np.testing.assert_allclose(fam.gem_pool1d(x, 2, p=2.0)[0, 0],
                               [np.sqrt((1 + 1e-12) / 2), np.sqrt(9.25 / 2)])
    np.testing.assert_allclose(fam.lp_abs_pool1d(x, 2.0, 2)[0, 0], [np.sqrt(5), np.sqrt(9.25)])


@pytest.mark.parametrize("levels,mode", [((1, 2), "max"), ((1, 3, 4), "avg")])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_spatial_pyramid_equals_torch(levels, mode, dims):
    x = np.random.default_rng(3).standard_normal(SHAPES[dims])
    t = torch.tensor(x, requires_grad=True)
    want = getattr(PF, f"spatial_pyramid_pool{dims}d")(t, levels, mode)
    np.testing.assert_allclose(getattr(fam, f"spatial_pyramid_pool{dims}d")(x, levels, mode),
                               want.detach().numpy())
    g = np.random.default_rng(4).standard_normal(want.shape)
    (want_grad,) = torch.autograd.grad(want, t, torch.tensor(g))
    got = getattr(fam, f"spatial_pyramid_pool{dims}d_backward")(g, x, levels, mode)
    np.testing.assert_allclose(got, want_grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 12])
def test_kmax_equals_torch(k):
    x = np.random.default_rng(5).standard_normal((3, 4, 9))
    t = torch.tensor(x, requires_grad=True)
    want = PF.kmax_pool1d(t, k)
    np.testing.assert_array_equal(fam.kmax_pool1d(x, k), want.detach().numpy())
    g = np.random.default_rng(6).standard_normal(want.shape)
    (want_grad,) = torch.autograd.grad(want, t, torch.tensor(g))
    np.testing.assert_array_equal(fam.kmax_pool1d_backward(g, x, k), want_grad.numpy())


def test_stochastic_with_a_generator_samples_proportionally():
    windows = 20_000
    x = np.tile(np.array([[1.0, 2.0], [3.0, 4.0]]), (1, windows)).reshape(1, 1, 2, 2 * windows)
    values = fam.stochastic_pool2d(x, 2, generator=np.random.default_rng(9)).ravel()
    counts = np.array([(values == v).sum() for v in (1.0, 2.0, 3.0, 4.0)])
    expected = np.array([0.1, 0.2, 0.3, 0.4]) * windows
    assert ((counts - expected) ** 2 / expected).sum() < 16.27  # chi-square, 3 dof, p = 0.001


def test_float32_and_unbatched_inputs():
    x = np.random.default_rng(7).standard_normal((3, 6, 6)).astype(np.float32)
    y = fam.soft_pool2d(x, 2)
    assert y.dtype == np.float32 and y.shape == (3, 3, 3)
    want = PF.soft_pool2d(torch.tensor(x)[None], 2)[0].numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5)
    big = np.full((1, 1, 4, 4), 100.0, dtype=np.float32)
    assert np.isfinite(fam.soft_pool2d(big, 2)).all() and np.isfinite(fam.lse_pool2d(big, 2)).all()


def test_invalid_arguments():
    x = np.random.default_rng(8).standard_normal((1, 1, 6, 6))
    with pytest.raises(ValueError, match="padding"):
        fam.soft_pool2d(x, 3, 1, 2)
    with pytest.raises(ValueError, match=r"\bp\b"):
        fam.gem_pool2d(x, 2, p=0.0)
    with pytest.raises(ValueError, match=r"\br\b"):
        fam.lse_pool2d(x, 2, r=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        fam.mixed_pool2d(x, 2, alpha=2.0)
    with pytest.raises(ValueError, match="noise"):
        fam.stochastic_pool2d(x, 2, noise=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="noise is required"):
        fam.stochastic_pool2d_backward(np.ones((1, 1, 3, 3)), x, 2)
    with pytest.raises(ValueError, match="levels"):
        fam.spatial_pyramid_pool2d(x, ())
    with pytest.raises(ValueError, match=r"\bk\b"):
        fam.kmax_pool1d(x[0], 0)
    with pytest.raises(ValueError, match="input must have shape"):
        fam.soft_pool2d(x[0, 0, 0], 2)
    with pytest.raises(TypeError, match="floating"):
        fam.soft_pool2d(np.ones((1, 1, 4, 4), dtype=np.int64), 2)


def test_engine_does_not_import_torch():
    code = "import sys, poolkit.numpy.families; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
