"""The windowing primitive itself: every op's windows against the naive definition (a view of
every window, reduced with NumPy), the whole-array helpers, and blocking."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import poolkit.numpy as pnp
from poolkit.geometry import pool_geometry, pool_output_size
from poolkit.numpy.windows import (
    plane_blocks,
    sliding_windows,
    window_max,
    window_sum,
    window_sum_backward,
)


@st.composite
def geometries(draw):
    dims = draw(st.sampled_from([1, 2, 3]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    ceil = draw(st.booleans())
    spatial = tuple(draw(st.integers(1, 7)) for _ in range(dims))
    if any(pool_output_size(n, k, s, p, d, ceil).size < 1
           for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation, strict=True)):
        spatial = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    x = np.random.default_rng(draw(st.integers(0, 999))).standard_normal((2, 3) + spatial)
    return dims, x, kernel, stride, padding, dilation, ceil


@given(case=geometries())
def test_max_and_sum_match_the_naive_definition(case):
    dims, x, kernel, stride, padding, dilation, ceil = case
    geometry = pool_geometry(x.shape[2:], kernel, stride, padding, dilation, ceil)
    windows = sliding_windows(x, geometry, pad_value=np.nan)  # (N, C, *out, *kernel)
    axes = tuple(range(-dims, 0))
    naive_max = np.nanmax(np.where(np.isnan(windows), -np.inf, windows), axis=axes)
    naive_sum = np.nansum(windows, axis=axes)
    args = (kernel, stride, padding, dilation, ceil)
    np.testing.assert_allclose(window_max(x, *args, dims=dims), naive_max)
    np.testing.assert_allclose(window_sum(x, *args, dims=dims), naive_sum, atol=1e-12)
    np.testing.assert_allclose(getattr(pnp, f"max_pool{dims}d")(x, *args), naive_max)


@given(case=geometries())
def test_window_sum_backward_is_the_transpose(case):
    # <window_sum(x), g> == <x, window_sum_backward(g)> for every x and g
    dims, x, kernel, stride, padding, dilation, ceil = case
    args = (kernel, stride, padding, dilation, ceil)
    y = window_sum(x, *args, dims=dims)
    g = np.random.default_rng(1).standard_normal(y.shape)
    back = window_sum_backward(g, x.shape, *args, dims=dims)
    np.testing.assert_allclose(np.sum(y * g), np.sum(x * back), rtol=1e-10, atol=1e-10)


def test_avg_pool_is_window_sum_over_the_divisor():
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    geometry = pool_geometry((7, 6), 3, 2, 1, ceil_mode=True)
    divisor = pnp.avg_divisor(geometry, count_include_pad=False)
    np.testing.assert_allclose(pnp.avg_pool2d(x, 3, 2, 1, True, False),
                               window_sum(x, 3, 2, 1, 1, True) / divisor)


def test_plane_blocks_cover_every_plane_once():
    blocks = plane_blocks(10, 300, block_bytes=1000)
    assert [b.stop - b.start for b in blocks] == [3, 3, 3, 1]
    assert plane_blocks(3, 10**9, block_bytes=1000) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert plane_blocks(0, 100) == []
