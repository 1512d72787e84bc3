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
    "ppm": "context module: learned convolutions and batch norm around the bin pooling",
    "aspp_pooling": "context module: learned convolution and batch norm after the global pool",
    "aspp": "context module: learned dilated convolutions and batch norm",
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


# Every form (windowed and global) in every dimension of the families the engine pools with a
# plain window: family -> NumPy call given (x, dims, kernel) and the create_pool kwargs. A
# global form is a window as large as the plane. spp, fractional_max, kmax and dynamic_kmax are
# checked above in the forms the engine has (spp's levels; fractional max in 2-D and 3-D only,
# see test_fractional_max_every_dimension_the_engine_has; k-max over (N, C, L) only).
def _fn(stem, *args, **kwargs):
    def call(x, dims, kernel):
        module = families if hasattr(families, f"{stem}{dims}d") else pnp
        return getattr(module, f"{stem}{dims}d")(x, *args, kernel, **kwargs)
    return call


WINDOWED = {
    "max": (_fn("max_pool"), {}),
    "avg": (_fn("avg_pool"), {}),
    "lp": (_fn("lp_pool", 2.0), {"norm_type": 2.0}),
    "avgmax": (lambda x, d, k: 0.5 * (_fn("max_pool")(x, d, k) + _fn("avg_pool")(x, d, k)), {}),
    "catavgmax": (lambda x, d, k: np.concatenate([_fn("avg_pool")(x, d, k),
                                                  _fn("max_pool")(x, d, k)], 1), {}),
    "softpool": (_fn("soft_pool"), {}),
    "lse": (_fn("lse_pool"), {}),
    "gem": (_fn("gem_pool", p=3.0), {"p": 3.0}),
    "lp_abs": (_fn("lp_abs_pool", 2.0), {"norm_type": 2.0}),
    "stochastic": (_fn("stochastic_pool", training=False), {}),
    "mixed": (_fn("mixed_pool", alpha=0.3), {"mode": "fixed", "alpha": 0.3}),
}
SHAPES = {1: (2, 3, 6), 2: (2, 3, 4, 4), 3: (2, 3, 4, 4, 2)}


def test_the_windowed_table_covers_every_plain_window_family():
    assert set(WINDOWED) == set(ENGINE) - {"spp", "fractional_max"}


@pytest.mark.parametrize("form", ["local", "global"])
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(WINDOWED))
def test_nan_inf_and_empty_batch_in_every_form_as_in_poolkit_nn(name, dims, form):
    engine, extra = WINDOWED[name]
    shape = SHAPES[dims]
    kernel = 2 if form == "local" else (shape[2] if dims == 1 else shape[2:])
    kwargs = {**extra, "kernel_size": 2} if form == "local" else extra
    pool = create_pool(name, dims=dims, **kwargs).eval()
    x = np.random.default_rng(dims).random(shape) + 0.1
    x.reshape(-1)[[1, 7]] = np.nan, np.inf
    x.reshape(-1)[-2] = -np.inf
    got = engine(x, dims, kernel)
    expected = pool(torch.from_numpy(x)).detach().numpy().reshape(got.shape)
    for check in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(check(got), check(expected))
    assert np.isnan(got).any() and not np.isnan(got[1]).any()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6, atol=1e-8)
    empty = np.zeros((0, *shape[1:]))
    assert engine(empty, dims, kernel).shape == (0, *got.shape[1:])


@pytest.mark.parametrize("dims", [2, 3])
def test_fractional_max_every_dimension_the_engine_has(dims):
    shape = (2, 3, 4, 4) if dims == 2 else (2, 3, 4, 4, 4)
    x = np.random.default_rng(0).random(shape)
    x.reshape(-1)[3] = np.nan
    samples = np.full((*shape[:2], dims), 0.5)
    name = f"fractional_max_pool{dims}d"
    got = getattr(pnp, name)(x, 2, output_size=2, _random_samples=samples)
    expected = getattr(torch.nn.functional, name)(torch.from_numpy(x), 2, output_size=2,
                                                  _random_samples=torch.from_numpy(samples))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected.numpy()))
    assert getattr(pnp, name)(x[:0], 2, output_size=2,
                              _random_samples=samples[:0]).shape == (0, *got.shape[1:])
