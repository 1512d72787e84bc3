"""One parser for window arguments: ``poolkit.nn``, ``poolkit.numpy`` and ``poolkit.geometry``
accept what ``torch.nn`` accepts and refuse the rest with the same exception and message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import poolkit.nn as pnn
import poolkit.nn.functional as PF
import poolkit.numpy as pnp
from poolkit.geometry import check_dims, normalize_window, pool_geometry

X = torch.arange(64.0).reshape(1, 1, 8, 8)


@pytest.mark.parametrize(
    "kernel_size", [(2,), np.int64(2), (np.int64(3), 2), [2, 2]], ids=repr
)
def test_kernel_size_spellings_accepted_as_torch_does(kernel_size):
    expected = torch.nn.MaxPool2d(kernel_size)(X)
    torch.testing.assert_close(pnn.MaxPool2d(kernel_size)(X), expected)
    torch.testing.assert_close(PF.max_pool2d(X, kernel_size), expected)
    np.testing.assert_array_equal(pnp.max_pool2d(X.numpy(), kernel_size), expected.numpy())


def test_numpy_integer_dims_accepted_by_the_factory():
    assert pnn.create_pool("max", dims=np.int64(1), kernel_size=2).dims == 1


BAD_WINDOWS = [  # window arguments that PyTorch refuses as well
    {"kernel_size": 0},
    {"kernel_size": (2, 0)},
    {"kernel_size": (2, 2, 2)},
    {"kernel_size": ()},
    {"kernel_size": 2.0},
    {"kernel_size": True},
    {"kernel_size": "2"},
    {"kernel_size": (2, 2.5)},
    {"kernel_size": 2, "stride": 0},
    {"kernel_size": 2, "stride": (1, -1)},
    {"kernel_size": 2, "stride": 1.0},
    {"kernel_size": 3, "padding": -1},
    {"kernel_size": 3, "padding": 2},
    {"kernel_size": (3, 4), "padding": (1, 3)},
    {"kernel_size": 2, "dilation": 0},
    {"kernel_size": 2, "dilation": (1, 2, 3)},
]


def _error(call):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("window", BAD_WINDOWS, ids=repr)
def test_same_error_from_geometry_numpy_and_nn(window):
    expected = _error(lambda: pool_geometry((8, 8), **window))
    assert _error(lambda: normalize_window(**window, dims=2)) == expected
    assert _error(lambda: pnp.max_pool2d(X.numpy(), **window)) == expected
    assert _error(lambda: pnn.MaxPool2d(**window)) == expected
    assert _error(lambda: PF.max_pool2d(X, **window)) == expected
    assert _error(lambda: pnn.create_pool("max", **window)) == expected


@given(
    kernel=st.integers(-1, 3), stride=st.one_of(st.none(), st.integers(-1, 3)),
    padding=st.integers(-1, 2), dilation=st.integers(0, 2),
)
def test_nn_and_numpy_accept_and_refuse_the_same_windows(kernel, stride, padding, dilation):
    window = {"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation}
    x = np.arange(2 * 12 * 12, dtype=np.float64).reshape(2, 12, 12)  # every window fits
    try:
        expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), **window)
    except RuntimeError:  # torch refuses: poolkit must too, with the same message everywhere
        refused = _error(lambda: normalize_window(**window, dims=2))
        assert _error(lambda: pnp.max_pool2d(x, **window)) == refused
        assert _error(lambda: pnn.MaxPool2d(**window)) == refused
        return
    np.testing.assert_array_equal(pnp.max_pool2d(x, **window), expected.numpy())
    torch.testing.assert_close(pnn.MaxPool2d(**window)(torch.from_numpy(x)[None]), expected[None])


@pytest.mark.parametrize(
    "dims, error", [(0, ValueError), (4, ValueError), (2.0, TypeError), (True, TypeError)]
)
def test_dims_refused_alike(dims, error):
    expected = _error(lambda: check_dims(dims))
    assert expected[0] is error and "dims" in expected[1]
    assert _error(lambda: pnn.create_pool("max", dims=dims, kernel_size=2)) == expected


BAD_FRACTIONAL = [  # fractional max pooling with PyTorch's windows, on a (1, 1, 10, 9) input
    {"kernel_size": 3},
    {"kernel_size": 3, "output_ratio": 1.5},
    {"kernel_size": 3, "output_ratio": (0.5, 0.5, 0.5)},
    {"kernel_size": 3, "output_size": 8},
    {"kernel_size": 0, "output_size": 2},
    {"kernel_size": (3, 3, 3), "output_size": 2},
    {"kernel_size": 3, "output_size": 2.0},
]


@pytest.mark.parametrize("arguments", BAD_FRACTIONAL, ids=repr)
def test_fractional_sizes_refused_alike_by_numpy_and_nn(arguments):
    x = torch.rand(1, 1, 10, 9, dtype=torch.float64)
    expected = _error(lambda: pnp.fractional_max_pool2d(x.numpy(), **arguments, generator=0))
    assert _error(lambda: PF.fractional_max_pool2d(x, **arguments)) == expected


def test_fractional_output_size_wins_over_the_ratio_as_in_torch():
    x = torch.rand(1, 1, 10, 9, dtype=torch.float64)
    samples = torch.full((1, 1, 2), 0.5, dtype=torch.float64)
    both = PF.fractional_max_pool2d(x, 2, output_size=(3, 4), output_ratio=0.5, samples=samples)
    expected = torch.nn.functional.fractional_max_pool2d(
        x, 2, output_size=(3, 4), output_ratio=0.5, _random_samples=samples)
    torch.testing.assert_close(both, expected)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "2"], ids=repr)
def test_kmax_k_refused_alike_by_numpy_and_nn(k):
    from poolkit.numpy import families

    x = torch.rand(1, 2, 5, dtype=torch.float64)
    expected = _error(lambda: families.kmax_pool1d(x.numpy(), k))
    assert expected[1].startswith("k ")
    assert _error(lambda: PF.kmax_pool1d(x, k)) == expected


@pytest.mark.parametrize("levels", [(), 0, (1, 0), (1.5,), "12", (True,)], ids=repr)
def test_pyramid_levels_refused_alike_by_numpy_and_nn(levels):
    from poolkit.numpy import families

    x = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    expected = _error(lambda: families.spatial_pyramid_pool2d(x.numpy(), levels))
    assert expected[0] is ValueError and expected[1].startswith("levels (")
    assert _error(lambda: PF.spatial_pyramid_pool2d(x, levels)) == expected


def test_numpy_integers_accepted_for_k_and_levels():
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(PF.spatial_pyramid_pool2d(x, (np.int64(1), 2)),
                               PF.spatial_pyramid_pool2d(x, (1, 2)))
    torch.testing.assert_close(PF.kmax_pool1d(x[..., 0], np.int64(2)),
                               PF.kmax_pool1d(x[..., 0], 2))


def _raised(call):
    try:
        call()
    except (TypeError, ValueError) as error:
        return type(error), str(error)
    return None


@pytest.mark.parametrize("divisor", [0, -1, -2, np.int64(-3), 2.0, True, "2"], ids=repr)
def test_divisor_override_refused_alike_by_numpy_nn_and_geometry(divisor):
    """One rule (``check_divisor_override``): torch refuses 0 but divides by a negative
    divisor; poolkit refuses every divisor below 1, with the same exception and message."""
    from poolkit.geometry import check_divisor_override

    expected = _raised(lambda: check_divisor_override(divisor))
    assert expected is not None
    assert _raised(lambda: pnp.avg_pool2d(X.numpy(), 2, divisor_override=divisor)) == expected
    assert _raised(lambda: PF.avg_pool2d(X, 2, divisor_override=divisor)) == expected
    assert _raised(lambda: pnn.AvgPool2d(2, divisor_override=divisor)) == expected
    assert _raised(lambda: PF.avg_pool3d(X[None], 2, divisor_override=divisor)) == expected
    if not isinstance(divisor, bool) and isinstance(divisor, (int, np.integer)):
        assert expected == (ValueError, f"divisor_override ({int(divisor)}) must be None or "
                                        "an int >= 1")


def test_divisor_override_where_torch_differs():
    # torch divides by a negative divisor (the average negated) and refuses 0 at run time
    negated = torch.nn.functional.avg_pool2d(X, 2, divisor_override=-2)
    torch.testing.assert_close(negated, -torch.nn.functional.avg_pool2d(X, 2, divisor_override=2))
    with pytest.raises(RuntimeError, match="divisor must be not zero"):
        torch.nn.functional.avg_pool2d(X, 2, divisor_override=0)


@pytest.mark.parametrize("divisor", [1, 3, np.int64(5)], ids=repr)
def test_divisor_override_accepted_alike(divisor):
    expected = torch.nn.functional.avg_pool2d(X, 2, divisor_override=int(divisor))
    torch.testing.assert_close(PF.avg_pool2d(X, 2, divisor_override=divisor), expected)
    np.testing.assert_allclose(pnp.avg_pool2d(X.numpy(), 2, divisor_override=divisor),
                               expected.numpy(), rtol=1e-6)
