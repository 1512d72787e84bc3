"""Windows with ``keras.ops`` only: strided slices of a padded input, one per kernel offset.

Every windowed family of :mod:`poolkit.keras` reduces over the same windows as
:mod:`poolkit.nn` because both take their geometry from :mod:`poolkit.geometry`: kernel size,
stride, padding, dilation and ceil mode are validated there (same errors), the output size comes
from :func:`poolkit.geometry.pool_geometry`, and averaging divisors are counted from the same
window tables. With the spatial size known when the layer is called, the window of output ``o``
at kernel offset ``j`` reads input ``o * s - p + j * d``; after padding the input by ``p`` on the
left (and enough on the right for ceil mode), offset ``j`` of *all* outputs is one strided slice
``x[j*d : j*d + (L_out - 1)*s + 1 : s]``. A family reduces over those ``prod(kernel)`` slices
(max, sum, weighted sums), so nothing copies the windows and every backend runs the same code.

Tensors here are channels-last, ``(N, *spatial, C)``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from keras import ops

from poolkit.geometry import PoolGeometry, adaptive_bins, pool_geometry


def spatial_shape(x, dims: int) -> tuple[int, ...]:
    """The static spatial size of a channels-last tensor (the windows need it)."""
    shape = tuple(x.shape[1:1 + dims])
    if not all(isinstance(size, (int, np.integer)) for size in shape):
        raise ValueError(
            f"poolkit.keras pooling needs a known spatial size, got {shape}: give the Input a "
            "full shape such as (32, 32, 3)"
        )
    return tuple(int(size) for size in shape)


def geometry_of(x, dims, kernel_size, stride, padding, dilation=1, ceil_mode=False,
                fn_name="pooling") -> PoolGeometry:
    """The validated geometry of one call (:func:`poolkit.geometry.pool_geometry`)."""
    return pool_geometry(spatial_shape(x, dims), kernel_size, stride, padding, dilation,
                         ceil_mode, fn_name=fn_name)


def _right_padding(geometry: PoolGeometry, d: int) -> int:
    """Right padding so that the last window's last offset exists (ceil mode reaches past it)."""
    out, s = geometry.output_size[d], geometry.stride[d]
    span = (out - 1) * s + geometry.dilation[d] * (geometry.kernel_size[d] - 1) + 1
    return max(0, span - geometry.input_size[d] - geometry.padding[d])


def pad_spatial(x, geometry: PoolGeometry, value: float):
    """``x`` padded by ``padding`` on the left and as needed on the right, with ``value``."""
    widths = [(geometry.padding[d], _right_padding(geometry, d)) for d in range(geometry.dims)]
    if not any(a or b for a, b in widths):
        return x
    return ops.pad(x, [(0, 0), *widths, (0, 0)], constant_values=value)


def window_slices(x, geometry: PoolGeometry, pad_value: float = 0.0):
    """Yield ``(offset, slice)`` for every kernel offset: ``slice`` is ``(N, *out, C)``."""
    padded = pad_spatial(x, geometry, pad_value)
    ranges = [range(k) for k in geometry.kernel_size]
    for offset in itertools.product(*ranges):
        index = [slice(None)]
        for d, j in enumerate(offset):
            start = j * geometry.dilation[d]
            stop = start + (geometry.output_size[d] - 1) * geometry.stride[d] + 1
            index.append(slice(start, stop, geometry.stride[d]))
        index.append(slice(None))
        yield offset, padded[tuple(index)]


def window_max(x, geometry: PoolGeometry):
    """Max over every window (padding never wins; NaN propagates as in torch)."""
    result = None
    for _, part in window_slices(x, geometry, -math.inf):
        result = part if result is None else ops.maximum(result, part)
    return result


def window_sum(x, geometry: PoolGeometry):
    """Sum over every window (padding counts as zero)."""
    result = None
    for _, part in window_slices(x, geometry, 0.0):
        result = part if result is None else result + part
    return result


def window_counts(geometry: PoolGeometry, include_padding: bool) -> np.ndarray:
    """Elements per window as PyTorch's average pooling counts them: ``(1, *out, 1)``.

    ``include_padding`` counts padding positions but never the part of a ceil-mode window that
    lies past the padding (:meth:`poolkit.geometry.DimWindows.count`). Windows are boxes, so the
    count is the outer product of the per-dimension counts.
    """
    counts = np.ones((), dtype=np.float64)
    for d in range(geometry.dims):
        table = geometry.windows(d)
        pad = geometry.padding[d] if include_padding else 0
        per_dim = np.array([table.count(o, pad) for o in range(table.output_size)], np.float64)
        counts = np.multiply.outer(counts, per_dim)
    return counts.reshape(1, *geometry.output_size, 1)


def constant(array: np.ndarray, like):
    """A NumPy constant in ``like``'s dtype."""
    return ops.convert_to_tensor(array, dtype=like.dtype)


def adaptive_reduce(x, axis: int, bins: int, reduce):
    """Adaptive pooling along one axis (PyTorch's bins), reduced with ``reduce(part, axis)``."""
    size = int(x.shape[axis])
    index = [slice(None)] * len(x.shape)
    parts = []
    for start, end in adaptive_bins(size, bins):
        index[axis] = slice(start, end)
        parts.append(reduce(x[tuple(index)], axis))
    return ops.stack(parts, axis=axis)


def take_positions(x, axis: int, positions) -> object:
    """``x`` at static integer ``positions`` along ``axis`` (reflect/replicate padding)."""
    return ops.take(x, ops.convert_to_tensor(np.asarray(positions, np.int32)), axis=axis)


def linear_resize_matrix(input_size: int, output_size: int) -> np.ndarray:
    """``(output_size, input_size)`` weights of 1-D linear interpolation, ``align_corners=False``
    (PyTorch's ``F.interpolate`` rule: source ``(i + 0.5) * in/out - 0.5`` clamped at 0)."""
    weights = np.zeros((output_size, input_size))
    scale = input_size / output_size
    for i in range(output_size):
        source = max((i + 0.5) * scale - 0.5, 0.0)
        low = min(int(math.floor(source)), input_size - 1)
        high = min(low + 1, input_size - 1)
        frac = source - low
        weights[i, low] += 1.0 - frac
        weights[i, high] += frac
    return weights
