r"""Windowed pooling in NumPy: max, average and power-average (Lp), forward and backward.

Each op is a reduction on the windowing primitive of :mod:`poolkit.numpy.windows`, and each
forward ``f`` has its backward ``f_backward(grad_output, input, *same arguments)`` right below
it. Semantics, argument names and defaults are those of ``torch.nn.functional``.

Shape (for ``dims`` = 1, 2, 3 spatial dimensions):
    - Input: :math:`(N, C, *S_{in})` or :math:`(C, *S_{in})`; :math:`N` may be 0.
    - Output: :math:`(N, C, *S_{out})` or :math:`(C, *S_{out})` with, per dimension,

      .. math::

          S_{out} = \left\lfloor \frac{S_{in} + 2p - d(k - 1) - 1}{s} \right\rfloor + 1

      (``ceil`` instead of ``floor`` in ceil mode, where a last window that would start in
      the right padding is dropped; see :func:`poolkit.geometry.pool_output_size`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from poolkit.geometry import (
    PoolGeometry,
    check_divisor_override,
    check_input_shape,
    normalize_tuple,
    pool_geometry,
)
from poolkit.numpy import _backend
from poolkit.numpy._arrays import Planes, as_float_array, grad_planes, to_planes
from poolkit.numpy.windows import (
    argmax_reduce,
    axis_windows,
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
    "max_pool1d", "max_pool2d", "max_pool3d",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "lp_pool1d_backward", "lp_pool2d_backward", "lp_pool3d_backward",
]


def _setup(input, dims, fn_name, kernel_size, stride, padding, dilation, ceil_mode):
    planes = to_planes(input, dims, fn_name)
    geometry = pool_geometry(
        planes.spatial, kernel_size, stride, padding, dilation, ceil_mode, fn_name=fn_name
    )
    return planes, geometry


def _blocks(planes: Planes):
    x = planes.array
    return plane_blocks(x.shape[0], x[:1].nbytes)


# --------------------------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------------------------


class _ArgmaxPlan:
    """Everything the argmax pass needs that does not depend on the data, built once per call
    (not once per block): the kernel offsets' slices, PyTorch's initial winners, and the table
    turning winners into flat indices."""

    def __init__(self, geometry: PoolGeometry):
        self.axes = axis_windows(geometry)
        self.offsets = regular_offsets(self.axes)
        self.initial = initial_winners(self.axes)
        self.dtype = winner_dtype(math.prod(geometry.kernel_size))
        self.input_size = geometry.input_size
        self._table = None

    def winners(self, x: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Running-max pass over all kernel offsets of a block ``x`` ``(B, *S)``: fills
        ``values`` ``(B, *out)`` and returns the winning offset of every window."""
        values.fill(-np.inf)
        winners = np.empty(values.shape, self.dtype)
        winners[...] = self.initial
        lead = (slice(None),)

        def read():
            for off in self.offsets:
                yield off.k, lead + off.out, x[lead + off.inp]

        argmax_reduce(read, values, winners)
        return winners

    def indices(self, winners: np.ndarray) -> np.ndarray:
        if self._table is None:
            self._table = winner_index_table(self.axes, self.input_size)
        return winners_to_indices(self.axes, winners, self.input_size, self._table)


def _max_outs(out, return_indices: bool, fn_name: str):
    """``out=`` of max pooling: an array, or ``(values, indices)`` with ``return_indices``."""
    if out is None or not return_indices:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"out of {fn_name} with return_indices=True must be a tuple of two "
                        f"arrays (values, indices) or None, got {type(out).__name__}")
    return out


def _max_pool(fn_name, dims, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices, out=None):
    planes, geometry = _setup(input, dims, fn_name, kernel_size, stride, padding, dilation,
                              ceil_mode)
    x = planes.array
    out_values, out_index = _max_outs(out, return_indices, fn_name)
    inputs = (input, x)
    values = planes.out_buffer(out_values, geometry.output_size, fn_name,
                               "out[0]" if return_indices else "out", inputs=inputs)
    index = None if not return_indices else planes.out_buffer(
        out_index, geometry.output_size, fn_name, "out[1]", np.int64, inputs + (out_values,))
    if _backend.compiled(x):
        _backend.kernels().max_pool(x, geometry, values, return_indices, index,
                                    _backend.threads_for(x.nbytes, x.shape[0]))
    elif not return_indices:
        axes = axis_windows(geometry)
        for blk in _blocks(planes):
            reduce_separable(x[blk], axes, "max", out=values[blk])
    else:
        plan = _ArgmaxPlan(geometry)
        for blk in _blocks(planes):
            index[blk] = plan.indices(plan.winners(x[blk], values[blk]))
    if not return_indices:
        return planes.restore(values, out_values)
    return planes.restore(values, out_values), planes.restore_indices(index, out_index)


def _max_pool_backward(fn_name, dims, grad_output, input, kernel_size, stride, padding,
                       dilation, ceil_mode, out=None):
    planes, geometry = _setup(input, dims, fn_name, kernel_size, stride, padding, dilation,
                              ceil_mode)
    x = planes.array
    g = grad_planes(grad_output, planes, geometry.output_size, fn_name)
    grad_input = planes.out_buffer(out, planes.spatial, f"{fn_name}_backward",
                                   inputs=(input, x, grad_output, g))
    if _backend.compiled(x):
        _backend.kernels().max_pool_backward(g, x, geometry, grad_input,
                                             _backend.threads_for(x.nbytes, x.shape[0]))
        return planes.restore(grad_input, out)
    plan = _ArgmaxPlan(geometry)
    for blk in _blocks(planes):
        winners = plan.winners(x[blk], np.empty(g[blk].shape, x.dtype))
        scatter_winners(g[blk], winners, plan.offsets, plan.axes, grad_input[blk])
    return planes.restore(grad_input, out)


_MAX_DOC = r"""{dims}-d max pooling (``torch.nn.functional.max_pool{dims}d``).

    .. math::

        \text{{out}}(n, c, o) = \max_{{j}} \; x(n, c, o \cdot s - p + j \cdot d)

    over the kernel offsets :math:`j` whose position lies inside the input (padding is
    :math:`-\infty`). With ``return_indices=True`` also returns the int64 flat index of the
    maximum within each input plane (row-major over the spatial dims), as PyTorch does: the
    first maximum wins ties (scan order: last dimension fastest), NaN propagates and wins (the
    last NaN scanned is reported), and a window of ``-inf`` reports its first real element.

    Args:
        input: ``(N, C, *S)`` or ``(C, *S)`` array, float16/32/64 (dtype is preserved).
        kernel_size, stride (default ``kernel_size``), padding (``<= kernel_size // 2``),
        dilation: int or tuple of {dims}.
        ceil_mode: round the output size up; a last window starting in the right padding is
            dropped.
        return_indices: also return the argmax indices (for :func:`max_unpool{dims}d`).
        out: where to write the result (keyword only): a C-contiguous array of the output's
            shape and the input's dtype, or with ``return_indices`` a tuple ``(values,
            indices)`` (indices int64); returned. Saves the allocation in a training loop.

    Shape:
        ``S_out = floor((S + 2p - d(k-1) - 1) / s) + 1`` per dimension (``ceil`` in ceil mode).

    Example::

        >>> import numpy as np
        >>> from poolkit.numpy import max_pool{dims}d
        >>> max_pool{dims}d(np.arange(1.0, {n1}).reshape({shape}), 2){example}
    """

_MAX_BACKWARD_DOC = r"""Gradient of :func:`max_pool{dims}d` with respect to ``input``.

    Each output's gradient goes to the input element that won its window (PyTorch's argmax,
    including its tie and NaN rules); where windows overlap, the contributions add up.
    Takes the same arguments as the forward (``return_indices`` is accepted and ignored);
    ``out=`` (keyword only) is a C-contiguous array of the input's shape and dtype to write
    the gradient into.
    """


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, out=None):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, out=out)


def max_pool1d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, return_indices=False, *, out=None):
    return _max_pool_backward("max_pool1d", 1, grad_output, input, kernel_size, stride,
                              padding, dilation, ceil_mode, out=out)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, out=None):
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, out=out)


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, return_indices=False, *, out=None):
    return _max_pool_backward("max_pool2d", 2, grad_output, input, kernel_size, stride,
                              padding, dilation, ceil_mode, out=out)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, out=None):
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, out=out)


def max_pool3d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, return_indices=False, *, out=None):
    return _max_pool_backward("max_pool3d", 3, grad_output, input, kernel_size, stride,
                              padding, dilation, ceil_mode, out=out)


max_pool1d.__doc__ = _MAX_DOC.format(
    dims=1, n1="5.0", shape="1, 4",
    example="\n        array([[2., 4.]])",
)
max_pool2d.__doc__ = _MAX_DOC.format(
    dims=2, n1="17.0", shape="1, 4, 4",
    example="\n        array([[[ 6.,  8.],\n                [14., 16.]]])",
)
max_pool3d.__doc__ = _MAX_DOC.format(
    dims=3, n1="9.0", shape="1, 2, 2, 2",
    example="\n        array([[[[8.]]]])",
)
for _f, _d in ((max_pool1d_backward, 1), (max_pool2d_backward, 2), (max_pool3d_backward, 3)):
    _f.__doc__ = _MAX_BACKWARD_DOC.format(dims=_d)


# --------------------------------------------------------------------------------------------
# Average pooling
# --------------------------------------------------------------------------------------------


def divisor_factors(geometry: PoolGeometry, count_include_pad: bool, divisor_override=None):
    """Per-dimension window counts whose outer product is the average-pooling divisor."""
    if divisor_override is not None:
        ones = [np.ones(n, np.float64) for n in geometry.output_size]
        ones[-1] = ones[-1] * float(divisor_override)
        return ones
    factors = []
    for d in range(geometry.dims):
        t = geometry.windows(d)
        pad = geometry.padding[d] if count_include_pad else 0
        factors.append(np.array([t.count(o, pad) for o in range(t.output_size)], np.float64))
    return factors


def avg_divisor(geometry: PoolGeometry, count_include_pad: bool, divisor_override=None):
    r"""The divisor of every average-pooling window: a number, or an array of the output shape.

    PyTorch's rule, obtained by sum-pooling a tensor of ones (separably: the product of one
    count per dimension, :func:`divisor_factors`): with ``count_include_pad`` the window is
    clipped to the padded input :math:`[-p, S + p)` (so a ceil-mode window hanging past the
    padding still counts less), without it to the input :math:`[0, S)`. ``divisor_override``
    replaces it for every window.

    >>> from poolkit.geometry import pool_geometry
    >>> avg_divisor(pool_geometry((5,), 3, 2, 1, ceil_mode=True), count_include_pad=False)
    array([2., 3., 2.])
    """
    if divisor_override is not None:
        return float(divisor_override)
    factors = divisor_factors(geometry, count_include_pad)
    if all((c == c[0]).all() for c in factors):
        return float(math.prod(c[0] for c in factors))
    divisor = factors[0]
    for c in factors[1:]:
        divisor = np.multiply.outer(divisor, c)
    return divisor


def _avg_setup(fn_name, dims, input, kernel_size, stride, padding, ceil_mode,
               count_include_pad, divisor_override):
    divisor_override = check_divisor_override(divisor_override)
    planes = to_planes(input, dims, fn_name)
    if dims == 3:  # PyTorch's avg_pool3d alone also requires input >= kernel, padding aside
        kernel = normalize_tuple(kernel_size, dims, "kernel_size")
        for d, (n, k) in enumerate(zip(planes.spatial, kernel, strict=True)):
            if n < k:
                raise ValueError(
                    f"input size ({n}) in spatial dim {d} of avg_pool3d must be at least "
                    f"kernel_size ({k})"
                )
    geometry = pool_geometry(planes.spatial, kernel_size, stride, padding, 1, ceil_mode,
                             fn_name=fn_name)
    divisor = avg_divisor(geometry, count_include_pad, divisor_override)
    if not isinstance(divisor, float):
        divisor = divisor.astype(planes.array.dtype)
    return planes, geometry, divisor


def _avg_pool(fn_name, dims, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, out=None):
    planes, geometry, divisor = _avg_setup(fn_name, dims, input, kernel_size, stride, padding,
                                           ceil_mode, count_include_pad, divisor_override)
    x = planes.array
    values = planes.out_buffer(out, geometry.output_size, fn_name, inputs=(input, x))
    if _backend.compiled(x):
        factors = divisor_factors(geometry, count_include_pad, divisor_override)
        _backend.kernels().avg_pool(x, geometry, values, factors,
                                    _backend.threads_for(x.nbytes, x.shape[0]))
        return planes.restore(values, out)
    axes = axis_windows(geometry)
    for blk in _blocks(planes):
        o = values[blk]
        reduce_separable(x[blk], axes, "sum", out=o)
        np.divide(o, divisor, out=o)
    return planes.restore(values, out)


def _avg_pool_backward(fn_name, dims, grad_output, input, kernel_size, stride, padding,
                       ceil_mode, count_include_pad, divisor_override, out=None):
    planes, geometry, divisor = _avg_setup(fn_name, dims, input, kernel_size, stride, padding,
                                           ceil_mode, count_include_pad, divisor_override)
    g = grad_planes(grad_output, planes, geometry.output_size, fn_name)
    grad_input = planes.out_buffer(out, planes.spatial, f"{fn_name}_backward",
                                   inputs=(input, planes.array, grad_output, g))
    if _backend.compiled(g):
        factors = divisor_factors(geometry, count_include_pad, divisor_override)
        _backend.kernels().avg_pool_backward(g, geometry, grad_input, factors,
                                             _backend.threads_for(grad_input.nbytes,
                                                                  g.shape[0]))
        return planes.restore(grad_input, out)
    axes = axis_windows(geometry)
    for blk in plane_blocks(g.shape[0], planes.array[:1].nbytes):
        scatter_separable(np.divide(g[blk], divisor), axes, out=grad_input[blk])
    return planes.restore(grad_input, out)


_AVG_DOC = r"""{dims}-d average pooling (``torch.nn.functional.avg_pool{dims}d``).

    .. math::

        \text{{out}}(n, c, o) = \frac{{1}}{{D(o)}} \sum_{{j}} x(n, c, o \cdot s - p + j)

    over the window's real input elements (padding adds 0). The divisor :math:`D(o)` is
    ``divisor_override`` if given, else the window's size clipped to the padded input
    :math:`[-p, S + p)` when ``count_include_pad`` (default), or to the input :math:`[0, S)`
    when not (see :func:`avg_divisor`).{extra} ``out=`` (keyword only): a C-contiguous array
    of the output's shape and the input's dtype to write the result into (returned).

    Shape:
        ``S_out = floor((S + 2p - k) / s) + 1`` per dimension (``ceil`` in ceil mode, dropping
        a last window that would start in the right padding).

    Example::

        >>> import numpy as np
        >>> from poolkit.numpy import avg_pool{dims}d
        >>> avg_pool{dims}d(np.arange(1.0, {n1}).reshape({shape}), 2){example}
    """

_AVG_BACKWARD_DOC = r"""Gradient of :func:`avg_pool{dims}d` with respect to ``input``.

    Every input element receives :math:`\sum_o g(o) / D(o)` over the windows :math:`o` that
    contain it (the same divisor rules as the forward). Takes the forward's arguments, and
    ``out=`` (keyword only): a C-contiguous array of the input's shape and dtype.
    """


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, *, out=None):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None, out=out)


def avg_pool1d_backward(grad_output, input, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, *, out=None):
    return _avg_pool_backward("avg_pool1d", 1, grad_output, input, kernel_size, stride,
                              padding, ceil_mode, count_include_pad, None, out=out)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None,
                        *, out=None):
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, out=out)


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        *, out=None):
    return _avg_pool_backward("avg_pool2d", 2, grad_output, input, kernel_size, stride,
                              padding, ceil_mode, count_include_pad, divisor_override, out=out)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None,
                        *, out=None):
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, out=out)


def avg_pool3d_backward(grad_output, input, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        *, out=None):
    return _avg_pool_backward("avg_pool3d", 3, grad_output, input, kernel_size, stride,
                              padding, ceil_mode, count_include_pad, divisor_override, out=out)


avg_pool1d.__doc__ = _AVG_DOC.format(
    dims=1, n1="5.0", shape="1, 4", example="\n        array([[1.5, 3.5]])",
    extra=" ``avg_pool1d`` has no ``divisor_override`` (as in PyTorch).",
)
avg_pool2d.__doc__ = _AVG_DOC.format(
    dims=2, n1="17.0", shape="1, 4, 4",
    example="\n        array([[[ 3.5,  5.5],\n                [11.5, 13.5]]])", extra="",
)
avg_pool3d.__doc__ = _AVG_DOC.format(
    dims=3, n1="9.0", shape="1, 2, 2, 2", example="\n        array([[[[4.5]]]])",
    extra=" ``avg_pool3d`` also requires the input to be at least the kernel size in every "
    "dimension (PyTorch's rule).",
)
for _f, _d in ((avg_pool1d_backward, 1), (avg_pool2d_backward, 2), (avg_pool3d_backward, 3)):
    _f.__doc__ = _AVG_BACKWARD_DOC.format(dims=_d)


# --------------------------------------------------------------------------------------------
# Power-average (Lp) pooling, built on avg and max pooling as in PyTorch
# --------------------------------------------------------------------------------------------


def _check_norm_type(norm_type) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(
            f"norm_type must be a real number, got {norm_type!r} ({type(norm_type).__name__})"
        )
    p = float(norm_type)
    if p == 0:
        raise ValueError("norm_type (0) must not be zero: the Lp mean takes a 1/p root")
    return p


def _lp_kernel(kernel_size, dims: int, fn_name: str) -> tuple[int, ...]:
    if dims == 1:  # PyTorch's lp_pool1d multiplies by kernel_size, so it must be an int
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral):
            raise TypeError(
                f"kernel_size of {fn_name} must be an int, got {kernel_size!r} "
                f"({type(kernel_size).__name__})"
            )
        return (int(kernel_size),)
    if isinstance(kernel_size, (tuple, list)) and len(kernel_size) != dims:
        raise ValueError(
            f"kernel_size of {fn_name} must be an int or a sequence of {dims} ints, "
            f"got {kernel_size!r}"
        )
    return normalize_tuple(kernel_size, dims, "kernel_size")


_AVG_BY_DIMS = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}
_AVG_BACKWARD_BY_DIMS = {1: avg_pool1d_backward, 2: avg_pool2d_backward, 3: avg_pool3d_backward}
_MAX_BY_DIMS = {1: max_pool1d, 2: max_pool2d, 3: max_pool3d}
_MAX_BACKWARD_BY_DIMS = {1: max_pool1d_backward, 2: max_pool2d_backward, 3: max_pool3d_backward}


def _lp_pool(fn_name, dims, input, norm_type, kernel_size, stride, ceil_mode):
    p = _check_norm_type(norm_type)
    kernel = _lp_kernel(kernel_size, dims, fn_name)
    x = as_float_array(input)
    check_input_shape(x.shape, dims, fn_name)
    if math.isinf(p):  # max of |x| (p = inf) or min of |x| (p = -inf)
        sign = 1.0 if p > 0 else -1.0
        return sign * _MAX_BY_DIMS[dims](sign * np.abs(x), kernel, stride, 0, 1, ceil_mode)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN/inf results as in PyTorch
        a = _AVG_BY_DIMS[dims](np.power(x, p), kernel, stride, 0, ceil_mode)
        # sign(a) * relu(|a|) is a itself; written out because PyTorch's gradient masks a == 0
        return np.power(np.sign(a) * np.maximum(np.abs(a), 0) * math.prod(kernel), 1.0 / p)


def _lp_pool_backward(fn_name, dims, grad_output, input, norm_type, kernel_size, stride,
                      ceil_mode):
    p = _check_norm_type(norm_type)
    kernel = _lp_kernel(kernel_size, dims, fn_name)
    x = as_float_array(input)
    check_input_shape(x.shape, dims, fn_name)
    g = as_float_array(grad_output, "grad_output")
    if math.isinf(p):  # d|x|/dx = sign(x); the max (or min) of |x| routes g to one element
        sign = 1.0 if p > 0 else -1.0
        return _MAX_BACKWARD_BY_DIMS[dims](g, sign * np.abs(x), kernel, stride, 0, 1,
                                           ceil_mode) * np.sign(x)
    area = math.prod(kernel)
    xp = np.power(x, p)
    a = _AVG_BY_DIMS[dims](xp, kernel, stride, 0, ceil_mode)
    v = np.sign(a) * np.maximum(np.abs(a), 0) * area
    with np.errstate(divide="ignore", invalid="ignore"):
        grad_v = g * (1.0 / p) * np.power(v, 1.0 / p - 1.0)  # y = v ** (1/p)
        grad_a = np.where(np.maximum(np.abs(a), 0) <= 0, 0, grad_v * area) * np.sign(a) ** 2
        grad_xp = _AVG_BACKWARD_BY_DIMS[dims](grad_a.astype(x.dtype), xp, kernel, stride, 0,
                                              ceil_mode)
        return (grad_xp * (p * np.power(x, p - 1.0))).astype(x.dtype, copy=False)


_LP_DOC = r"""{dims}-d power-average pooling (``torch.nn.functional.lp_pool{dims}d``).

    .. math::

        \text{{out}}(n, c, o) = \Big(K \cdot \operatorname{{avg}}_{{j}}\, x(n, c, o s + j)^p
        \Big)^{{1/p}}, \qquad K = \textstyle\prod k,

    i.e. :math:`(\sum_j x^p)^{{1/p}}` for full windows, computed as PyTorch does: by average
    pooling :math:`x^p` (no padding) and multiplying by the kernel area :math:`K` -- so in ceil
    mode a partial last window is scaled by :math:`K` over its smaller divisor, like PyTorch.
    :math:`p = \infty` is max pooling of :math:`|x|`, :math:`p = -\infty` min pooling of
    :math:`|x|`; a negative window sum with a non-integer :math:`1/p` gives NaN (as in
    PyTorch); ``norm_type`` 0 is refused. The gradient is 0 where the window sum is 0.

    Shape:
        ``S_out = floor((S - k) / s) + 1`` per dimension (``ceil`` in ceil mode, dropping a
        last window that would start past the input).

    Example::

        >>> import numpy as np
        >>> from poolkit.numpy import lp_pool{dims}d
        >>> lp_pool{dims}d(np.array({data}), 2, 2){example}
    """

_LP_BACKWARD_DOC = r"""Gradient of :func:`lp_pool{dims}d` with respect to ``input``, by the
    chain rule through the forward's PyTorch formula (zero where the window sum is zero).
    Takes the forward's arguments."""


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool1d_backward(grad_output, input, norm_type, kernel_size, stride=None,
                       ceil_mode=False):
    return _lp_pool_backward("lp_pool1d", 1, grad_output, input, norm_type, kernel_size,
                             stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d_backward(grad_output, input, norm_type, kernel_size, stride=None,
                       ceil_mode=False):
    return _lp_pool_backward("lp_pool2d", 2, grad_output, input, norm_type, kernel_size,
                             stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d_backward(grad_output, input, norm_type, kernel_size, stride=None,
                       ceil_mode=False):
    return _lp_pool_backward("lp_pool3d", 3, grad_output, input, norm_type, kernel_size,
                             stride, ceil_mode)


lp_pool1d.__doc__ = _LP_DOC.format(
    dims=1, data="[[3.0, 4.0, 6.0, 8.0]]", example="\n        array([[ 5., 10.]])",
)
lp_pool2d.__doc__ = _LP_DOC.format(
    dims=2, data="[[[1.0, 1.0], [1.0, 1.0]]]", example="\n        array([[[2.]]])",
)
lp_pool3d.__doc__ = _LP_DOC.format(
    dims=3, data="[[[[1.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]]]",
    example="\n        array([[[[2.82842712]]]])",
)
for _f, _d in ((lp_pool1d_backward, 1), (lp_pool2d_backward, 2), (lp_pool3d_backward, 3)):
    _f.__doc__ = _LP_BACKWARD_DOC.format(dims=_d)
