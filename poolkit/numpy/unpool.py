r"""Max unpooling in NumPy: the partial inverse of max pooling, forward and backward.

``max_unpool`` puts every pooled value back at the position its ``indices`` name (the flat
index within each output plane that ``max_pool(..., return_indices=True)`` returned) and fills
the rest with zeros. Where two values name the same position (overlapping windows that chose
the same element) the last one written stays, as in PyTorch's CPU kernel; they are equal anyway
when the indices come from max pooling.

Shape:
    - Input and indices: :math:`(N, C, *S_{in})` or :math:`(C, *S_{in})`.
    - Output: :math:`(N, C, *S_{out})` with, per dimension,
      :math:`S_{out} = (S_{in} - 1) s - 2p + k` unless ``output_size`` says otherwise
      (strictly within one stride of it; see :func:`poolkit.geometry.unpool_output_size`).
"""

from __future__ import annotations

import math

import numpy as np

from poolkit.geometry import unpool_output_size
from poolkit.numpy._arrays import grad_planes, to_planes

__all__ = [
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "max_unpool1d_backward", "max_unpool2d_backward", "max_unpool3d_backward",
]


def _setup(fn_name, dims, input, indices, kernel_size, stride, padding, output_size):
    planes = to_planes(input, dims, fn_name)
    index = np.asarray(indices)
    if not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"indices of {fn_name} must be an integer array, got dtype {index.dtype}")
    if index.shape != np.shape(input):
        raise ValueError(
            f"indices of {fn_name} must have the input's shape {np.shape(input)}, "
            f"got {index.shape}"
        )
    sizes = unpool_output_size(planes.spatial, kernel_size, stride, padding, output_size)
    plane = math.prod(sizes)
    n_planes, plane_in = planes.array.shape[0], math.prod(planes.spatial)
    flat = index.reshape(n_planes, plane_in).astype(np.int64, copy=False)
    if flat.size:
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= plane:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"indices of {fn_name} contain {bad}, outside [0, {plane}): the output plane "
                f"is {'x'.join(map(str, sizes))}"
            )
    return planes, sizes, flat


def _unpool(fn_name, dims, input, indices, kernel_size, stride, padding, output_size):
    planes, sizes, flat = _setup(fn_name, dims, input, indices, kernel_size, stride, padding,
                                 output_size)
    x = planes.array
    out = np.zeros((x.shape[0], math.prod(sizes)), x.dtype)
    rows = np.arange(x.shape[0])[:, None]
    out[rows, flat] = x.reshape(flat.shape)  # duplicates: the last one written stays
    return planes.restore(out.reshape((x.shape[0],) + tuple(sizes)))


def _unpool_backward(fn_name, dims, grad_output, input, indices, kernel_size, stride, padding,
                     output_size):
    planes, sizes, flat = _setup(fn_name, dims, input, indices, kernel_size, stride, padding,
                                 output_size)
    g = grad_planes(grad_output, planes, sizes, fn_name).reshape(flat.shape[0], math.prod(sizes))
    grad_input = np.take_along_axis(g, flat, axis=1) if flat.size else np.zeros(flat.shape,
                                                                                 g.dtype)
    return planes.restore(grad_input.reshape(planes.array.shape))


_DOC = r"""{dims}-d max unpooling (``torch.nn.functional.max_unpool{dims}d``).

    .. math::

        \text{{out}}(n, c)[\text{{indices}}(n, c, i)] = x(n, c, i), \quad 0 \text{{ elsewhere}}

    Args:
        input: pooled values ``(N, C, *S)`` or ``(C, *S)``.
        indices: int array of the same shape, flat indices within each output plane (from
            :func:`max_pool{dims}d` with ``return_indices=True``); each must lie in
            ``[0, prod(S_out))``.
        kernel_size, stride (default ``kernel_size``), padding: those of the max pooling.
        output_size: the spatial output size (``{dims}`` or ``{dims} + 2`` entries), to undo a
            pooling whose input size the default formula cannot recover.

    Example::

        >>> import numpy as np
        >>> from poolkit.numpy import max_pool1d, max_unpool1d
        >>> values, indices = max_pool1d(np.array([[1.0, 3.0, 2.0, 0.0]]), 2,
        ...                              return_indices=True)
        >>> max_unpool1d(values, indices, 2)
        array([[0., 3., 2., 0.]])
    """

_BACKWARD_DOC = r"""Gradient of :func:`max_unpool{dims}d` with respect to ``input``: the output
    gradient read back at ``indices``. Takes the forward's arguments."""


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool1d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0,
                          output_size=None):
    return _unpool_backward("max_unpool1d", 1, grad_output, input, indices, kernel_size,
                            stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0,
                          output_size=None):
    return _unpool_backward("max_unpool2d", 2, grad_output, input, indices, kernel_size,
                            stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0,
                          output_size=None):
    return _unpool_backward("max_unpool3d", 3, grad_output, input, indices, kernel_size,
                            stride, padding, output_size)


for _d, (_f, _b) in {1: (max_unpool1d, max_unpool1d_backward),
                     2: (max_unpool2d, max_unpool2d_backward),
                     3: (max_unpool3d, max_unpool3d_backward)}.items():
    _f.__doc__ = _DOC.format(dims=_d)
    _b.__doc__ = _BACKWARD_DOC.format(dims=_d)

