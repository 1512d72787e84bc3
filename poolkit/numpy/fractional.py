r"""Fractional max pooling (Graham 2014, https://arxiv.org/abs/1412.6071) in NumPy.

Windows of size :math:`k` start at pseudo-random positions that shrink the input by a
non-integer factor. One sample :math:`u \in [0, 1)` per (batch, channel, dimension) fixes the
starts along that dimension (:func:`poolkit.geometry.fractional_intervals`, PyTorch's
``generate_intervals``, computed in the input's dtype):

.. math::

    \alpha = \frac{S - k}{S_{out} - 1}, \quad
    \text{start}_i = \lfloor (i + u)\alpha \rfloor - \lfloor u\alpha \rfloor, \quad
    \text{start}_{S_{out}-1} = S - k,

and output :math:`i` is the max over :math:`[\text{start}_i, \text{start}_i + k)`.

Samples come from ``_random_samples`` (shape ``(N, C, dims)``, the input's dtype, exactly as
PyTorch takes them -- pass PyTorch's to reproduce its output) or are drawn from ``generator``
(a ``numpy.random.Generator``, an int seed, or ``None`` for fresh entropy). For 2-d, sample 0
drives the width and sample 1 the height (PyTorch's order); for 3-d, samples 0, 1, 2 drive
depth, height, width.

Shape:
    - Input: :math:`(N, C, *S_{in})` or :math:`(C, *S_{in})`.
    - Output: :math:`(N, C, *S_{out})` with ``S_out = output_size``, or
      ``int(S_in * output_ratio)``; ``S_out + k - 1 <= S_in`` is required.
"""

from __future__ import annotations

import itertools

import numpy as np

from poolkit.geometry import check_fractional_sizes, fractional_output_size, normalize_tuple
from poolkit.numpy._arrays import Planes, as_float_array, grad_planes, to_planes
from poolkit.numpy.adaptive import scatter_to_indices
from poolkit.numpy.windows import argmax_reduce, plane_blocks

__all__ = [
    "fractional_max_pool2d", "fractional_max_pool3d",
    "fractional_max_pool2d_backward", "fractional_max_pool3d_backward",
    "fractional_intervals_array", "draw_random_samples",
]


def fractional_intervals_array(samples: np.ndarray, input_size: int, output_size: int,
                               pool_size: int) -> np.ndarray:
    """Vectorised :func:`poolkit.geometry.fractional_intervals`: ``samples`` ``(P,)`` ->
    window starts ``(P, output_size)`` int64, computed in ``samples.dtype`` like PyTorch."""
    dtype = samples.dtype.type
    starts = np.empty((samples.shape[0], output_size), np.int64)
    if output_size == 0:
        return starts
    if output_size > 1:
        alpha = dtype(input_size - pool_size) / dtype(output_size - 1)
        i = np.arange(output_size - 1, dtype=samples.dtype)
        u = samples[:, None]
        starts[:, :-1] = ((i + u) * alpha).astype(np.int64) - (u * alpha).astype(np.int64)
    starts[:, -1] = input_size - pool_size
    return starts


def draw_random_samples(n_batch: int, channels: int, dims: int, dtype, generator=None):
    """Samples ``(n_batch, channels, dims)`` uniform in ``[0, 1)`` in ``dtype``, like
    PyTorch's ``torch.rand`` draw. ``generator``: a ``numpy.random.Generator``, an int seed,
    or ``None``."""
    rng = generator if isinstance(generator, np.random.Generator) else \
        np.random.default_rng(generator)
    dtype = np.dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    return rng.random((n_batch, channels, dims), dtype=draw_dtype).astype(dtype)


def _setup(fn_name, dims, input, kernel_size, output_size, output_ratio, _random_samples,
           generator, *, backward=False):
    original = as_float_array(input)
    planes = to_planes(original, dims, fn_name)
    kernel = normalize_tuple(kernel_size, dims, "kernel_size")
    sizes = fractional_output_size(planes.spatial, output_size, output_ratio)
    check_fractional_sizes(planes.spatial, kernel, sizes)
    n_batch = planes.lead[0] if planes.batched else 1
    channels = planes.lead[-1]
    if _random_samples is None:
        if backward and not isinstance(generator, (int, np.integer)):
            raise ValueError(
                f"{fn_name}_backward needs the forward's windows: pass the same "
                "_random_samples (or the same int seed as generator) as the forward"
            )
        samples = draw_random_samples(n_batch, channels, dims, original.dtype, generator)
    else:
        samples = _check_samples(_random_samples, n_batch, channels, dims, original.dtype)
    # (N * C, dims) in the order of the spatial dims: 2-d samples are (width, height)
    per_plane = samples[:n_batch].reshape(n_batch * channels, dims)
    if dims == 2:
        per_plane = per_plane[:, ::-1]
    starts = [
        fractional_intervals_array(np.ascontiguousarray(per_plane[:, d]), planes.spatial[d],
                                   sizes[d], kernel[d])
        for d in range(dims)
    ]
    return planes, kernel, sizes, starts


def _check_samples(samples, n_batch, channels, dims, dtype) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 3:
        raise ValueError(
            f"_random_samples must have 3 dimensions (N, C, {dims}), got shape {samples.shape}"
        )
    if samples.shape[0] < n_batch or samples.shape[1] != channels or samples.shape[2] != dims:
        raise ValueError(
            f"_random_samples must have shape (N, C, {dims}) = ({n_batch}, {channels}, {dims}) "
            f"(a larger first dimension is allowed), got {samples.shape}"
        )
    if samples.dtype != dtype:
        raise TypeError(
            f"_random_samples must have the input's dtype ({np.dtype(dtype)}), got "
            f"{samples.dtype}: PyTorch computes the window starts in that precision"
        )
    return samples


def _winners(xb: np.ndarray, starts_b: list[np.ndarray], kernel, values: np.ndarray):
    """Argmax over every kernel offset, gathering each plane's windows at its own starts."""
    nd = len(kernel)
    B = xb.shape[0]
    batch = np.arange(B).reshape((B,) + (1,) * nd)
    per_dim = [
        s.reshape((B,) + (1,) * d + (-1,) + (1,) * (nd - d - 1)) for d, s in enumerate(starts_b)
    ]

    def read():
        for combo in itertools.product(*(range(k) for k in kernel)):
            k = int(np.ravel_multi_index(combo, kernel))
            index = tuple(p + j for p, j in zip(per_dim, combo, strict=True))
            yield k, (Ellipsis,), xb[(batch,) + index]

    values.fill(-np.inf)
    winners = np.zeros(values.shape, np.int32)  # the first element starts every window
    argmax_reduce(read, values, winners)
    # flat index within the plane of each winner
    js = np.unravel_index(winners, kernel)
    index = np.zeros(values.shape, np.int64)
    for p, j, size in zip(per_dim, js, xb.shape[1:], strict=True):
        index *= size
        index += p + j
    return index


def _fractional(fn_name, dims, input, kernel_size, output_size, output_ratio, return_indices,
                _random_samples, generator):
    planes, kernel, sizes, starts = _setup(fn_name, dims, input, kernel_size, output_size,
                                           output_ratio, _random_samples, generator)
    out, index = _forward(planes, kernel, sizes, starts)
    if return_indices:
        return planes.restore(out), planes.restore_indices(index)
    return planes.restore(out)


def _forward(planes: Planes, kernel, sizes, starts):
    x = planes.array
    out = np.zeros((x.shape[0],) + tuple(sizes), x.dtype)
    index = np.zeros(out.shape, np.int64)
    if x.shape[0] and 0 not in sizes:
        for blk in plane_blocks(x.shape[0], x[:1].nbytes):
            index[blk] = _winners(x[blk], [s[blk] for s in starts], kernel, out[blk])
    return out, index


def _fractional_backward(fn_name, dims, grad_output, input, kernel_size, output_size,
                         output_ratio, _random_samples, generator):
    planes, kernel, sizes, starts = _setup(fn_name, dims, input, kernel_size, output_size,
                                           output_ratio, _random_samples, generator,
                                           backward=True)
    g = grad_planes(grad_output, planes, sizes, fn_name)
    _, index = _forward(planes, kernel, sizes, starts)
    grad_input = np.zeros_like(planes.array)
    if g.size:
        for blk in plane_blocks(g.shape[0], planes.array[:1].nbytes):
            scatter_to_indices(g[blk], index[blk], grad_input[blk])
    return planes.restore(grad_input)


_DOC = r"""{dims}-d fractional max pooling (``torch.nn.functional.fractional_max_pool{dims}d``).

    .. math::

        \text{{out}}(n, c, i) = \max_{{0 \le j < k}} x(n, c, \text{{start}}_i + j)

    with per-plane pseudo-random starts (see the module docstring for the formula).

    Args:
        input: ``(N, C, {names})`` or ``(C, {names})``, float16/32/64.
        kernel_size: int or tuple of {dims} (the window, ``k``).
        output_size: int or tuple of {dims}; or ``output_ratio``: a number or tuple in
            ``(0, 1]`` giving ``int(S * ratio)``. One of the two is required.
        return_indices: also return int64 flat indices within each input plane.
        _random_samples: ``(N, C, {dims})`` samples in the input's dtype (PyTorch's argument;
            pass the same ones to reproduce PyTorch's windows).
        generator: ``numpy.random.Generator``, int seed or ``None``, used when
            ``_random_samples`` is not given.

    Example::

        >>> import numpy as np
        >>> from poolkit.numpy import fractional_max_pool2d
        >>> x = np.arange(25.0).reshape(1, 1, 5, 5)
        >>> fractional_max_pool2d(x, 2, output_size=2,
        ...                       _random_samples=np.zeros((1, 1, 2)))  # starts 0 and 3
        array([[[[ 6.,  9.],
                 [21., 24.]]]])
    """

_BACKWARD_DOC = r"""Gradient of :func:`fractional_max_pool{dims}d` with respect to ``input``.

    Needs the forward's windows: pass the same ``_random_samples`` (or the same int seed as
    ``generator``); each output's gradient goes to its argmax, added up where windows share it.
    """


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None, *, generator=None):
    return _fractional("fractional_max_pool2d", 2, input, kernel_size, output_size,
                       output_ratio, return_indices, _random_samples, generator)


def fractional_max_pool2d_backward(grad_output, input, kernel_size, output_size=None,
                                   output_ratio=None, return_indices=False,
                                   _random_samples=None, *, generator=None):
    return _fractional_backward("fractional_max_pool2d", 2, grad_output, input, kernel_size,
                                output_size, output_ratio, _random_samples, generator)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None, *, generator=None):
    return _fractional("fractional_max_pool3d", 3, input, kernel_size, output_size,
                       output_ratio, return_indices, _random_samples, generator)


def fractional_max_pool3d_backward(grad_output, input, kernel_size, output_size=None,
                                   output_ratio=None, return_indices=False,
                                   _random_samples=None, *, generator=None):
    return _fractional_backward("fractional_max_pool3d", 3, grad_output, input, kernel_size,
                                output_size, output_ratio, _random_samples, generator)


fractional_max_pool2d.__doc__ = _DOC.format(dims=2, names="H, W")
fractional_max_pool3d.__doc__ = _DOC.format(dims=3, names="D, H, W").replace(
    "        >>> x = np.arange(25.0).reshape(1, 1, 5, 5)\n"
    "        >>> fractional_max_pool2d(x, 2, output_size=2,\n"
    "        ...                       _random_samples=np.zeros((1, 1, 2)))  # starts 0 and 3\n"
    "        array([[[[ 6.,  9.],\n"
    "                 [21., 24.]]]])",
    "        >>> from poolkit.numpy import fractional_max_pool3d\n"
    "        >>> x = np.arange(27.0).reshape(1, 1, 3, 3, 3)\n"
    "        >>> fractional_max_pool3d(x, 2, output_size=1, _random_samples=np.zeros((1, 1, 3)))\n"
    "        array([[[[[26.]]]]])",
)
fractional_max_pool2d_backward.__doc__ = _BACKWARD_DOC.format(dims=2)
fractional_max_pool3d_backward.__doc__ = _BACKWARD_DOC.format(dims=3)
