"""NaN, infinities and empty batches through every family of the NumPy engine, against
poolkit.nn (whose own behaviour tests/test_nn_nonfinite.py pins to torch's max pool): a NaN
spreads to exactly the outputs whose windows hold it, and an empty batch gives an empty result.
The test walks ``poolkit.nn.list_pools()``, so a new family must be placed here."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import poolkit.numpy as pnp  # noqa: E402
from poolkit.nn import create_pool, list_pools  # noqa: E402
from poolkit.numpy import families  # noqa: E402

# family name -> (NumPy function of a (N, C, H, W) array, the same pool's kwargs for create_pool)
ENGINE = {
    "max": (lambda x: pnp.max_pool2d(x, 2), {"kernel_size": 2}),
    "avg": (lambda x: pnp.avg_pool2d(x, 2), {"kernel_size": 2}),
    "lp": (lambda x: pnp.lp_pool2d(x, 2.0, 2), {"kernel_size": 2, "norm_type": 2.0}),
    "avgmax": (lambda x: 0.5 * (pnp.max_pool2d(x, 2) + pnp.avg_pool2d(x, 2)),
               {"kernel_size": 2}),
    "catavgmax": (lambda x: np.concatenate([pnp.avg_pool2d(x, 2), pnp.max_pool2d(x, 2)], 1),
                  {"kernel_size": 2}),
    "softpool": (lambda x: families.soft_pool2d(x, 2), {"kernel_size": 2}),
    "lse": (lambda x: families.lse_pool2d(x, 2), {"kernel_size": 2}),
    "gem": (lambda x: families.gem_pool2d(x, 2, p=3.0), {"kernel_size": 2, "p": 3.0}),
    "lp_abs": (lambda x: families.lp_abs_pool2d(x, 2.0, 2), {"kernel_size": 2, "norm_type": 2.0}),
    "stochastic": (lambda x: families.stochastic_pool2d(x, 2, training=False),
                   {"kernel_size": 2}),
    "mixed": (lambda x: families.mixed_pool2d(x, 2, alpha=0.3),
              {"kernel_size": 2, "mode": "fixed", "alpha": 0.3}),
    "spp": (lambda x: families.spatial_pyramid_pool2d(x, (1, 2)), {"levels": (1, 2)}),
    "fractional_max": (
        lambda x: pnp.fractional_max_pool2d(x, 2, output_size=2,
                                            _random_samples=np.full((*x.shape[:2], 2), 0.5)),
        {"kernel_size": 2, "output_size": 2},
    ),
}
# 1-D families (N, C, L)
ENGINE_1D = {
    "kmax": (lambda x: families.kmax_pool1d(x, 2), {"k": 2, "global_pool": False}),
    "dynamic_kmax": (lambda x: families.kmax_pool1d(x, 2), {"k_top": 2}),
}
# Families the NumPy engine does not carry, and why (learned weights, or a filter bank).
TORCH_ONLY = {
    "gated": "learned gating mask", "tree": "learned leaf and gate masks",
    "lip": "learned logit network", "attention": "learned query and projections",
    "blur": "a fixed binomial filter: a convolution, not a pooling reduction",
    "maxblur": "max pool then the blur filter",
}


def test_every_family_is_placed():
    assert set(ENGINE) | set(ENGINE_1D) | set(TORCH_ONLY) == set(list_pools())


def _torch_pool(name, kwargs, dims):
    pool = create_pool(name, dims=dims, **kwargs).eval()
    return lambda x: pool(torch.from_numpy(x)).detach().numpy()


@pytest.mark.parametrize("name", sorted(ENGINE))
def test_nan_spreads_as_in_poolkit_nn(name):
    engine, kwargs = ENGINE[name]
    x = np.random.default_rng(0).random((2, 3, 4, 4))
    x[0, 1, 0, 1] = np.nan
    got = engine(x)
    expected = _torch_pool(name, kwargs, 2)(x)
    if name == "fractional_max":  # poolkit.nn's eval grid is the same mid-point one
        expected = create_pool(name, dims=2, **kwargs).eval()(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got).any()  # the NaN reached an output
    assert not np.isnan(got[1]).any() and not np.isnan(got[0, 0]).any()  # and no further
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["max", "avg", "lp", "avgmax", "catavgmax"])
def test_infinity_as_in_poolkit_nn(name):
    engine, kwargs = ENGINE[name]
    x = np.random.default_rng(2).random((1, 2, 4, 4))
    x[0, 1, 2, 2] = np.inf
    got, expected = engine(x), _torch_pool(name, kwargs, 2)(x)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ENGINE_1D))
def test_nan_spreads_as_in_poolkit_nn_1d(name):
    engine, kwargs = ENGINE_1D[name]
    x = np.random.default_rng(1).random((2, 3, 6))
    x[0, 1, 2] = np.nan
    got, expected = engine(x), _torch_pool(name, kwargs, 1)(x)
    expected = expected.reshape(got.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert not np.isnan(got[1]).any()


@pytest.mark.parametrize("name", sorted(ENGINE))
def test_empty_batch_gives_an_empty_result(name):
    engine, kwargs = ENGINE[name]
    x = np.zeros((0, 3, 4, 4))
    got = engine(x)
    expected = _torch_pool(name, kwargs, 2)(x)
    assert got.shape == expected.shape and got.shape[0] == 0


@pytest.mark.parametrize("name", sorted(ENGINE_1D))
def test_empty_batch_gives_an_empty_result_1d(name):
    engine, _ = ENGINE_1D[name]
    assert engine(np.zeros((0, 3, 6))).shape == (0, 3, 2)
