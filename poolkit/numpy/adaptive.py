r"""Adaptive average and max pooling in NumPy, forward and backward.

The output size is given; the windows follow. Along a dimension of size :math:`S` with
:math:`S_{out}` outputs, output :math:`i` pools the bin

.. math::

    \Big[\Big\lfloor \frac{i S}{S_{out}} \Big\rfloor,\;
    \Big\lceil \frac{(i + 1) S}{S_{out}} \Big\rceil\Big)

(:func:`poolkit.geometry.adaptive_bins`). When :math:`S_{out}` divides :math:`S` the bins are
regular windows (kernel = stride = :math:`S / S_{out}`) and the fast strided path runs;
otherwise bins differ in length by one and neighbours may share an element, and the windowing
primitive gathers them.

Shape:
    - Input: :math:`(N, C, *S_{in})` or :math:`(C, *S_{in})`.
    - Output: :math:`(N, C, *S_{out})` with ``S_out = output_size`` (an entry ``None`` keeps
      that dimension's input size, for 2-d and 3-d).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from poolkit.geometry import adaptive_windows, normalize_output_size
from poolkit.numpy._arrays import grad_planes, to_planes
from poolkit.numpy.windows import (
    AxisWindows,
    argmax_reduce,
    initial_winners,
    plane_blocks,
    reduce_separable,
    regular_offsets,
    scatter_separable,
    scatter_winners,
    winner_dtype,
    winner_index_table,
    winners_to_indices,
)

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_backward",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d_backward",
]


def _setup(input, output_size, dims, fn_name, *, empty_channels_ok):
    planes = to_planes(input, dims, fn_name, empty_channels_ok=empty_channels_ok)
    sizes = normalize_output_size(output_size, dims, planes.spatial)
    axes = [
        AxisWindows.from_table(adaptive_windows(n, o))
        for n, o in zip(planes.spatial, sizes, strict=True)
    ]
    return planes, sizes, axes


def _empty(planes, sizes) -> bool:
    return planes.array.shape[0] == 0 or 0 in sizes


def _bin_divisor(axes, dtype):
    """Product of the bin lengths of every output (PyTorch divides each bin sum by it)."""
    lengths = [
        np.asarray([w.table.length(o) for o in range(w.output_size)], np.float64) for w in axes
    ]
    divisor = lengths[0]
    for n in lengths[1:]:
        divisor = np.multiply.outer(divisor, n)
    return divisor.astype(dtype)


# --------------------------------------------------------------------------------------------
# Adaptive average pooling
# --------------------------------------------------------------------------------------------


def _adaptive_avg(fn_name, dims, input, output_size):
    planes, sizes, axes = _setup(input, output_size, dims, fn_name, empty_channels_ok=True)
    x = planes.array
    out = np.zeros((x.shape[0],) + sizes, x.dtype)
    if _empty(planes, sizes):
        return planes.restore(out)
    divisor = _bin_divisor(axes, x.dtype)
    for blk in plane_blocks(x.shape[0], x[:1].nbytes):
        o = out[blk]
        reduce_separable(x[blk], axes, "sum", out=o)
        np.divide(o, divisor, out=o)
    return planes.restore(out)


def _adaptive_avg_backward(fn_name, dims, grad_output, input, output_size):
    planes, sizes, axes = _setup(input, output_size, dims, fn_name, empty_channels_ok=True)
    g = grad_planes(grad_output, planes, sizes, fn_name)
    grad_input = np.zeros_like(planes.array)
    if _empty(planes, sizes):
        return planes.restore(grad_input)
    divisor = _bin_divisor(axes, g.dtype)
    for blk in plane_blocks(g.shape[0], planes.array[:1].nbytes):
        scatter_separable(g[blk] / divisor, axes, out=grad_input[blk])
    return planes.restore(grad_input)


_AVG_DOC = r"""{dims}-d adaptive average pooling (``torch.nn.functional.adaptive_avg_pool{dims}d``).

    .. math::

        \text{{out}}(n, c, i) = \frac{{1}}{{|B_i|}} \sum_{{t \in B_i}} x(n, c, t)

    over the bin :math:`B_i` of output :math:`i` (the product of one bin per dimension, see
    :func:`poolkit.geometry.adaptive_bins`). ``output_size``: int or tuple of {dims}{none}.
    An output size of 0 gives an empty output.

    Example::

        >>> import numpy as np
        >>> from poolkit.numpy import adaptive_avg_pool1d
        >>> adaptive_avg_pool1d(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]), 3)  # bins [0,2) [1,4) [3,5)
        array([[1.5, 3. , 4.5]])
    """

_AVG_BACKWARD_DOC = r"""Gradient of :func:`adaptive_avg_pool{dims}d` with respect to ``input``:
    every input element receives :math:`\sum_i g(i) / |B_i|` over the bins containing it."""


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool1d_backward(grad_output, input, output_size):
    return _adaptive_avg_backward("adaptive_avg_pool1d", 1, grad_output, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool2d_backward(grad_output, input, output_size):
    return _adaptive_avg_backward("adaptive_avg_pool2d", 2, grad_output, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    return _adaptive_avg("adaptive_avg_pool3d", 3, input, output_size)


def adaptive_avg_pool3d_backward(grad_output, input, output_size):
    return _adaptive_avg_backward("adaptive_avg_pool3d", 3, grad_output, input, output_size)


# --------------------------------------------------------------------------------------------
# Adaptive max pooling
# --------------------------------------------------------------------------------------------


def _bin_offsets(axes, xb):
    """``(k, region, values)`` per kernel offset of the bins, for :func:`argmax_reduce`."""
    lead = (slice(None),)
    if all(w.regular for w in axes):
        offsets = regular_offsets(axes)
        return lambda: ((o.k, lead + o.out, xb[lead + o.inp]) for o in offsets)
    nd = len(axes)
    kernel = [w.kernel_size for w in axes]
    batch = np.arange(xb.shape[0]).reshape((-1,) + (1,) * nd)

    def read():
        for combo in itertools.product(*(range(k) for k in kernel)):
            index = tuple(
                w.positions[:, j].reshape((1,) * d + (-1,) + (1,) * (nd - d - 1))
                for d, (w, j) in enumerate(zip(axes, combo, strict=True))
            )
            k = int(np.ravel_multi_index(combo, kernel))
            yield k, (Ellipsis,), xb[(batch,) + index]

    return read


def _adaptive_winners(axes, xb, values):
    values.fill(-np.inf)
    winners = np.empty(values.shape, winner_dtype(math.prod(w.kernel_size for w in axes)))
    winners[...] = initial_winners(axes)
    argmax_reduce(_bin_offsets(axes, xb), values, winners)
    return winners


def _adaptive_max(fn_name, dims, input, output_size, return_indices):
    planes, sizes, axes = _setup(input, output_size, dims, fn_name, empty_channels_ok=False)
    x = planes.array
    out = np.zeros((x.shape[0],) + sizes, x.dtype)
    index = np.zeros(out.shape, np.int64)
    if not _empty(planes, sizes):
        table = winner_index_table(axes, planes.spatial) if return_indices else None
        for blk in plane_blocks(x.shape[0], x[:1].nbytes):
            winners = _adaptive_winners(axes, x[blk], out[blk])
            if return_indices:
                index[blk] = winners_to_indices(axes, winners, planes.spatial, table)
    if return_indices:
        return planes.restore(out), planes.restore_indices(index)
    return planes.restore(out)


def scatter_to_indices(g: np.ndarray, index: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[b].flat[index[b, o]] += g[b, o]`` for a block of planes (repeats add up)."""
    B = g.shape[0]
    plane = math.prod(out.shape[1:])
    flat = (index.reshape(B, -1) + (np.arange(B) * plane)[:, None]).ravel()
    summed = np.bincount(flat, weights=g.reshape(-1), minlength=B * plane)
    np.copyto(out, summed.reshape(out.shape), casting="unsafe")
    return out


def _adaptive_max_backward(fn_name, dims, grad_output, input, output_size):
    planes, sizes, axes = _setup(input, output_size, dims, fn_name, empty_channels_ok=False)
    x = planes.array
    g = grad_planes(grad_output, planes, sizes, fn_name)
    grad_input = np.zeros_like(x)
    if _empty(planes, sizes):
        return planes.restore(grad_input)
    regular = all(w.regular for w in axes)
    offsets = regular_offsets(axes) if regular else None
    table = None if regular else winner_index_table(axes, planes.spatial)
    for blk in plane_blocks(x.shape[0], x[:1].nbytes):
        values = np.empty(g[blk].shape, x.dtype)
        winners = _adaptive_winners(axes, x[blk], values)
        if regular:
            scatter_winners(g[blk], winners, offsets, axes, grad_input[blk])
        else:
            index = winners_to_indices(axes, winners, planes.spatial, table)
            scatter_to_indices(g[blk], index, grad_input[blk])
    return planes.restore(grad_input)


_MAX_DOC = r"""{dims}-d adaptive max pooling (``torch.nn.functional.adaptive_max_pool{dims}d``).

    .. math::

        \text{{out}}(n, c, i) = \max_{{t \in B_i}} x(n, c, t)

    over the bin :math:`B_i` of output :math:`i` (see :func:`poolkit.geometry.adaptive_bins`).
    With ``return_indices=True`` also returns the int64 flat index of the maximum within each
    input plane (first maximum wins ties; NaN wins, the last NaN scanned is reported).
    ``output_size``: int or tuple of {dims}{none}.

    Example::

        >>> import numpy as np
        >>> from poolkit.numpy import adaptive_max_pool1d
        >>> adaptive_max_pool1d(np.array([[5.0, 1.0, 3.0, 4.0, 2.0]]), 3, return_indices=True)
        (array([[5., 4., 4.]]), array([[0, 3, 3]]))
    """

_MAX_BACKWARD_DOC = r"""Gradient of :func:`adaptive_max_pool{dims}d` with respect to ``input``:
    each bin's gradient goes to its argmax (added up where bins share their argmax)."""


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool1d_backward(grad_output, input, output_size, return_indices=False):
    return _adaptive_max_backward("adaptive_max_pool1d", 1, grad_output, input, output_size)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool2d_backward(grad_output, input, output_size, return_indices=False):
    return _adaptive_max_backward("adaptive_max_pool2d", 2, grad_output, input, output_size)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices)


def adaptive_max_pool3d_backward(grad_output, input, output_size, return_indices=False):
    return _adaptive_max_backward("adaptive_max_pool3d", 3, grad_output, input, output_size)


for _d, (_avg, _avg_b, _max, _max_b) in {
    1: (adaptive_avg_pool1d, adaptive_avg_pool1d_backward, adaptive_max_pool1d,
        adaptive_max_pool1d_backward),
    2: (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
        adaptive_max_pool2d_backward),
    3: (adaptive_avg_pool3d, adaptive_avg_pool3d_backward, adaptive_max_pool3d,
        adaptive_max_pool3d_backward),
}.items():
    _none = "" if _d == 1 else " (``None`` entries keep the input size)"
    _avg.__doc__ = _AVG_DOC.format(dims=_d, none=_none)
    _avg_b.__doc__ = _AVG_BACKWARD_DOC.format(dims=_d)
    _max.__doc__ = _MAX_DOC.format(dims=_d, none=_none)
    _max_b.__doc__ = _MAX_BACKWARD_DOC.format(dims=_d)
