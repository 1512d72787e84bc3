r"""The windowing primitive of the NumPy engine: every pooling op is a reduction on it.

A pooling call is described by one window table per spatial dimension
(:class:`poolkit.geometry.DimWindows`: output ``o`` reads input ``starts[o] + j * dilation``
for kernel offsets ``j``). :class:`AxisWindows` turns a table into what NumPy needs:

- **regular** tables (windowed pooling, and adaptive pooling when the output size divides the
  input size) become one *strided slice pair per kernel offset*:
  ``out[o_lo:o_hi]  <-  x[i_lo : ... : stride]``. Padding is implicit: an offset simply does
  not reach the outputs whose element at that offset lies in the padding, so nothing is ever
  copied into a padded buffer;
- **irregular** tables (adaptive bins of varying length) become a gather: a ``positions``
  table ``(out, K)`` clamped into the bin, and a ``valid`` mask.

On top of that, the reductions (all work on a *block* of planes ``(B, *spatial)`` so that the
block and its temporaries stay in cache; see :func:`plane_blocks`):

- :func:`reduce_separable` -- ``sum`` or ``max`` over rectangular windows, one dimension at a
  time (outermost first, where NumPy slices are contiguous rows). Used by avg, Lp and max
  pooling without indices;
- :func:`scatter_separable` -- the transpose of the windowed sum (each output's value added to
  every input its window reads): the backward of sum-type pooling;
- :func:`argmax_reduce` -- max with the winning kernel offset, over the *product* of offsets
  in PyTorch's scan order (last dimension fastest) so that ties and NaNs resolve exactly as in
  PyTorch: the first maximum wins (strict ``>``), a NaN always wins, and among NaNs the last
  one scanned. Used by ``return_indices``, the max backward, adaptive and fractional max;
- :func:`scatter_winners` -- the backward of argmax: each output's gradient goes to the input
  element that won its window (added up where windows overlap);
- :func:`sliding_windows` -- a read-only ``(..., *out, *kernel)`` view of every window, for
  reductions that need the whole window at once (teaching, naive references, new pooling
  families that are not separable). It materialises a padded copy when there is padding.

The pooling families PyTorch lacks (:mod:`poolkit.numpy.families`) do not call this module
directly: they compose the engine's pooling ops (a window sum is ``avg_pool`` times the window
size, its transpose the average-pooling backward), which reduce here. The whole-array helpers
:func:`window_sum`, :func:`window_max` and :func:`window_sum_backward` take ``(N, C, *S)`` or
``(C, *S)`` arrays and PyTorch-style arguments and do the blocking; they serve teaching, naive
references and tests (e.g. GeM is ``(window_sum(x**p) / count) ** (1/p)``).

Example (sum pooling of a 4x4 plane with 2x2 windows)::

    >>> import numpy as np
    >>> from poolkit.geometry import pool_geometry
    >>> from poolkit.numpy.windows import AxisWindows, reduce_separable
    >>> geometry = pool_geometry((4, 4), 2)
    >>> axes = [AxisWindows.from_table(geometry.windows(d)) for d in range(2)]
    >>> x = np.arange(1.0, 17.0).reshape(1, 4, 4)
    >>> reduce_separable(x, axes, "sum")[0]
    array([[14., 22.],
           [46., 54.]])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from poolkit.geometry import DimWindows, PoolGeometry

__all__ = [
    "BLOCK_BYTES",
    "AxisWindows",
    "axis_windows",
    "plane_blocks",
    "reduce_separable",
    "scatter_separable",
    "Offset",
    "regular_offsets",
    "argmax_reduce",
    "winner_positions",
    "winners_to_indices",
    "winner_index_table",
    "scatter_winners",
    "sliding_windows",
    "initial_winners",
    "winner_dtype",
    "window_sum",
    "window_max",
    "window_sum_backward",
]

#: Bytes of input processed per block of planes: about one L2 cache (512 KiB here), so that a
#: block, its separable temporaries and its output stay in cache, and large enough to amortise
#: the per-call overhead of NumPy ufuncs (fastest of 128 KiB..1 MiB in the benchmark).
#: ``POOLKIT_BLOCK_BYTES`` overrides it.
BLOCK_BYTES = 1 << 19


def plane_blocks(n_planes: int, plane_bytes: int, block_bytes: int | None = None) -> list[slice]:
    """Slices of ``range(n_planes)`` holding about ``block_bytes`` of input each (>= 1 plane)."""
    import os

    budget = block_bytes or int(os.environ.get("POOLKIT_BLOCK_BYTES", BLOCK_BYTES))
    per_block = max(1, budget // max(1, plane_bytes))
    return [slice(b, min(b + per_block, n_planes)) for b in range(0, n_planes, per_block)]


# --------------------------------------------------------------------------------------------
# One dimension's windows, ready for NumPy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisWindows:
    """One spatial dimension's windows in the form the reductions use.

    ``slices`` (regular tables): ``(j, out_slice, in_slice)`` per kernel offset ``j`` that some
    output reads inside the input. ``positions``/``valid`` (every table): ``(out, K)`` input
    position of each window element, clamped into the input, and whether it is a real input
    element of the window (not padding, not past the end of a shorter adaptive bin).
    """

    table: DimWindows
    slices: tuple[tuple[int, slice, slice], ...] | None
    positions: np.ndarray
    valid: np.ndarray

    @classmethod
    def from_table(cls, table: DimWindows) -> AxisWindows:
        K = table.kernel_size
        starts = np.asarray(table.starts, dtype=np.int64).reshape(-1, 1)
        raw = starts + np.arange(K, dtype=np.int64) * table.dilation  # (out, K)
        lengths = (
            np.full((table.output_size, 1), K)
            if table.lengths is None
            else np.asarray(table.lengths).reshape(-1, 1)
        )
        valid = (raw >= 0) & (raw < table.input_size) & (np.arange(K) < lengths)
        # clamp invalid elements onto the window's last real element (harmless for max)
        last_valid = np.where(valid, raw, -1).max(axis=1, keepdims=True, initial=-1)
        positions = np.where(valid, raw, np.maximum(last_valid, 0))
        slices = None
        if table.stride is not None:
            s = table.stride
            slices = tuple(
                (j, slice(o_lo, o_hi), slice(i_lo, i_lo + (o_hi - o_lo - 1) * s + 1, s))
                for j, o_lo, o_hi, i_lo in table.offset_ranges()
            )
        return cls(table, slices, positions, valid)

    @property
    def input_size(self) -> int:
        return self.table.input_size

    @property
    def output_size(self) -> int:
        return self.table.output_size

    @property
    def kernel_size(self) -> int:
        return self.table.kernel_size

    @property
    def regular(self) -> bool:
        return self.slices is not None

    @property
    def identity(self) -> bool:
        """Output ``o`` is input ``o``: nothing to do along this dimension."""
        t = self.table
        return (
            self.regular and t.kernel_size == 1 and t.stride == 1
            and t.output_size == t.input_size and t.starts[:1] in ((), (0,))
        )

    @property
    def disjoint(self) -> bool:
        """Windows never share an input element (stride >= dilated span), so a scatter can
        assign instead of add."""
        t = self.table
        return self.regular and t.stride >= t.dilation * (t.kernel_size - 1) + 1


def axis_windows(geometry: PoolGeometry) -> list[AxisWindows]:
    """The :class:`AxisWindows` of every dimension of a windowed-pooling geometry."""
    return [AxisWindows.from_table(geometry.windows(d)) for d in range(geometry.dims)]


def _along(axis: int, index, ndim: int) -> tuple:
    """An index tuple selecting ``index`` along ``axis`` of an ``ndim``-d array."""
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


# --------------------------------------------------------------------------------------------
# Separable reductions (sum, max values) and the transpose of the sum
# --------------------------------------------------------------------------------------------


def _reduce_axis(x: np.ndarray, axis: int, w: AxisWindows, op: str, out: np.ndarray) -> None:
    """``out[.., o, ..] = op over window o`` along ``axis`` (``op`` is ``"sum"`` or ``"max"``)."""
    ufunc = np.add if op == "sum" else np.maximum
    nd = x.ndim
    if w.regular:
        full = slice(0, w.output_size)
        ordered = sorted(w.slices, key=lambda s: (s[1] != full, s[0]))  # a covering one first
        first = True
        for _, o_sl, i_sl in ordered:
            src = x[_along(axis, i_sl, nd)]
            dst = out[_along(axis, o_sl, nd)]
            if first:
                if o_sl != full:  # no offset covers every output: start from the identity
                    out.fill(0 if op == "sum" else -np.inf)
                    ufunc(dst, src, out=dst)
                else:
                    np.copyto(dst, src)
                first = False
            else:
                ufunc(dst, src, out=dst)
        if first:  # every window is padding only
            out.fill(0 if op == "sum" else -np.inf)
        return
    for j in range(w.kernel_size):
        src = np.take(x, w.positions[:, j], axis=axis)
        if j == 0:
            np.copyto(out, src)  # every bin has at least one element
        elif op == "sum":
            mask = w.valid[:, j].reshape((-1,) + (1,) * (nd - axis - 1))
            np.add(out, src, out=out, where=mask)
        else:
            np.maximum(out, src, out=out)  # clamped positions repeat the bin's last element


def reduce_separable(
    x: np.ndarray, axes: Sequence[AxisWindows], op: str, out: np.ndarray | None = None
) -> np.ndarray:
    """Sum or max of every window of a block of planes ``x`` ``(B, *spatial)``.

    Reduces one spatial dimension at a time, outermost first: rectangular sums and maxima
    are separable, and the outer dimensions' slices are whole contiguous rows. Padding
    contributes nothing (``0`` to sums, ``-inf`` to maxima); NaN propagates through ``max``.
    Returns ``(B, *out)`` (written into ``out`` when given).
    """
    if op not in ("sum", "max"):
        raise ValueError(f"op must be 'sum' or 'max', got {op!r}")
    current = x
    todo = [d for d, w in enumerate(axes) if not w.identity]
    if not todo:
        if out is None:
            return x.copy()
        np.copyto(out, x)
        return out
    for step, d in enumerate(todo):
        w = axes[d]
        shape = current.shape[: d + 1] + (w.output_size,) + current.shape[d + 2:]
        last = step == len(todo) - 1
        target = out if (last and out is not None) else np.empty(shape, x.dtype)
        _reduce_axis(current, d + 1, w, op, target)
        current = target
    return current


def _scatter_axis(g: np.ndarray, axis: int, w: AxisWindows, out: np.ndarray) -> None:
    """Transpose of the windowed sum along ``axis``: ``out[.., i, ..] = sum of g[.., o, ..]``
    over the windows ``o`` that read input ``i``."""
    nd = g.ndim
    if w.regular:
        out.fill(0)
        for _, o_sl, i_sl in w.slices:
            src = g[_along(axis, o_sl, nd)]
            dst = out[_along(axis, i_sl, nd)]
            if w.disjoint:
                np.copyto(dst, src)
            else:
                np.add(dst, src, out=dst)
        return
    # irregular (adaptive) bins: gather through the transposed table, so that no two
    # outputs write the same input element in one step (bins may repeat when out > in)
    positions, valid = _transposed_table(w)
    for m in range(positions.shape[1]):
        src = np.take(g, positions[:, m], axis=axis)
        if m == 0:
            np.copyto(out, src)  # every input lies in at least one bin
        else:
            mask = valid[:, m].reshape((-1,) + (1,) * (nd - axis - 1))
            np.add(out, src, out=out, where=mask)


def _transposed_table(w: AxisWindows) -> tuple[np.ndarray, np.ndarray]:
    """For each input position, the outputs whose (irregular) window contains it."""
    L, K = w.input_size, w.kernel_size
    members = [[] for _ in range(L)]
    for o in range(w.output_size):
        for j in range(K):
            if w.valid[o, j]:
                members[int(w.positions[o, j])].append(o)
    width = max(1, max(len(m) for m in members))
    positions = np.zeros((L, width), dtype=np.int64)
    valid = np.zeros((L, width), dtype=bool)
    for i, m in enumerate(members):
        positions[i, : len(m)] = m
        positions[i, len(m):] = m[-1] if m else 0
        valid[i, : len(m)] = True
    return positions, valid


def scatter_separable(
    g: np.ndarray, axes: Sequence[AxisWindows], out: np.ndarray | None = None
) -> np.ndarray:
    """Backward of :func:`reduce_separable` with ``op="sum"``: ``(B, *out) -> (B, *spatial)``.

    Every input element receives the sum of the gradients of the windows that read it (the
    transpose of the windowed sum), one dimension at a time, innermost first.
    """
    current = g
    todo = [d for d, w in enumerate(axes) if not w.identity]
    if not todo:
        if out is None:
            return g.copy()
        np.copyto(out, g)
        return out
    for step, d in enumerate(reversed(todo)):
        w = axes[d]
        shape = current.shape[: d + 1] + (w.input_size,) + current.shape[d + 2:]
        last = step == len(todo) - 1
        target = out if (last and out is not None) else np.empty(shape, g.dtype)
        _scatter_axis(current, d + 1, w, target)
        current = target
    return current


# --------------------------------------------------------------------------------------------
# Argmax over the product of kernel offsets, and its backward
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offset:
    """One kernel offset of a regular N-d window: its number in scan order, the output region
    that reads a real input element at this offset, and the matching strided input region."""

    k: int
    out: tuple[slice, ...]
    inp: tuple[slice, ...]


def regular_offsets(axes: Sequence[AxisWindows]) -> list[Offset]:
    """Kernel offsets of regular windows in PyTorch's scan order (last dimension fastest)."""
    kernel = [w.kernel_size for w in axes]
    offsets = []
    for combo in itertools.product(*(w.slices for w in axes)):
        k = int(np.ravel_multi_index(tuple(j for j, _, _ in combo), kernel))
        offsets.append(Offset(k, tuple(o for _, o, _ in combo), tuple(i for _, _, i in combo)))
    return offsets


def winner_dtype(kernel_volume: int) -> np.dtype:
    return np.dtype(np.int16 if kernel_volume < 2**15 else np.int32)


def initial_winners(axes: Sequence[AxisWindows]) -> np.ndarray:
    """PyTorch's initial argmax of each window: its first element that is not left padding
    (so an all ``-inf`` window reports that element). ``-1`` marks a (dilated) window that
    reads no input element at all."""
    firsts = []
    for w in axes:
        t = w.table
        first = np.array([t.first_valid(o) for o in range(t.output_size)], dtype=np.int64)
        j = (first - np.asarray(t.starts, dtype=np.int64)) // t.dilation
        ok = (j < t.kernel_size) & (first < t.input_size)
        firsts.append((np.where(ok, j, 0), ok))
    grids = np.meshgrid(*[f for f, _ in firsts], indexing="ij")
    oks = np.meshgrid(*[ok for _, ok in firsts], indexing="ij")
    kernel = [w.kernel_size for w in axes]
    flat = np.ravel_multi_index(tuple(grids), kernel) if grids else np.zeros((), np.int64)
    ok_all = np.logical_and.reduce(oks) if oks else np.ones((), bool)
    return np.where(ok_all, flat, -1).astype(winner_dtype(int(np.prod(kernel))))


def argmax_reduce(
    offsets: Callable[[], Iterator[tuple[int, tuple, np.ndarray]]],
    values: np.ndarray,
    winners: np.ndarray,
) -> None:
    """Max over kernel offsets with the winning offset, PyTorch's tie and NaN rules.

    ``offsets()`` yields ``(k, region, v)`` in scan order: ``v`` holds, for the outputs in
    ``region`` (an index tuple into ``values``), the window element at offset ``k``.
    ``values`` must start at ``-inf`` and ``winners`` at the initial winners; both are updated
    in place. An element replaces the running max when it is strictly greater (so the first
    maximum wins ties) or NaN (so NaN wins, and the last NaN scanned is reported).
    """
    mask = np.empty(values.shape, dtype=bool)
    for k, region, v in offsets():
        m, cur, win = mask[region], values[region], winners[region]
        np.greater(v, cur, out=m)
        np.copyto(win, k, where=m)
        np.maximum(cur, v, out=cur)
    nan_out = np.isnan(values)
    if nan_out.any():  # rare: a second pass so that the last NaN of each window wins
        for k, region, v in offsets():
            m = mask[region]
            # v != v is isnan(v); np.isnan itself writes wrong values into a strided `out`
            # in NumPy 2.4.6 (isnan/isinf/isfinite/signbit), so it is avoided here
            np.not_equal(v, v, out=m)
            np.copyto(winners[region], k, where=m)


def winner_positions(axes: Sequence[AxisWindows], winners: np.ndarray) -> list[np.ndarray]:
    """Per-dimension input position of each winner ``(B, *out)`` (regular or adaptive)."""
    kernel = [w.kernel_size for w in axes]
    safe = np.maximum(winners, 0)
    js = np.unravel_index(safe, kernel)
    nd = len(axes)
    positions = []
    for d, w in enumerate(axes):
        shape = (1,) * (d + 1) + (w.output_size,) + (1,) * (nd - d - 1)
        t = w.table
        starts = np.asarray(t.starts, dtype=np.int64).reshape(shape)
        pos = starts + js[d].astype(np.int64) * t.dilation
        if (winners < 0).any():  # windows of padding only: PyTorch reports its first element
            first = np.array([t.first_valid(o) for o in range(t.output_size)]).reshape(shape)
            pos = np.where(winners < 0, first, pos)
        if not w.regular:  # clamp onto the bin's real elements, as the gather read them
            o_index = np.arange(w.output_size).reshape(shape)
            pos = w.positions[o_index, js[d]]
        positions.append(pos)
    return positions


def winners_to_indices(
    axes: Sequence[AxisWindows], winners: np.ndarray, input_size: Sequence[int],
    table: np.ndarray | None = None,
) -> np.ndarray:
    """Flat index within each input plane (PyTorch's ``return_indices``) of each winner
    ``(B, *out)``; ``table`` from :func:`winner_index_table` turns it into one gather."""
    if table is None:
        table = winner_index_table(axes, input_size)
    n_out = table.shape[1]
    flat = winners.reshape(winners.shape[0], n_out).astype(np.intp) + 1
    return table[flat, np.arange(n_out)].reshape(winners.shape)


def winner_index_table(axes: Sequence[AxisWindows], input_size: Sequence[int]) -> np.ndarray:
    """``(K + 1, prod(out))`` int64: row ``k + 1`` holds, for every output, the flat input
    index its kernel offset ``k`` reads; row 0 the index PyTorch reports for a window that
    reads no input element (winner ``-1``)."""
    kernel = math.prod(w.kernel_size for w in axes)
    out_shape = tuple(w.output_size for w in axes)
    winners = np.broadcast_to(
        np.arange(-1, kernel).reshape((-1,) + (1,) * len(axes)), (kernel + 1,) + out_shape
    )
    positions = winner_positions(axes, winners)
    index = np.zeros(winners.shape, dtype=np.int64)
    for pos, size in zip(positions, input_size, strict=True):
        index *= size
        index += pos
    return index.reshape(kernel + 1, -1)


def scatter_winners(
    g: np.ndarray,
    winners: np.ndarray,
    offsets: Sequence[Offset],
    axes: Sequence[AxisWindows],
    out: np.ndarray,
) -> np.ndarray:
    """Backward of :func:`argmax_reduce` for regular windows: ``out[input of the winner of
    window o] += g[o]``, one kernel offset at a time (a strided slice each), so that
    overlapping windows add up without a scatter-add."""
    out.fill(0)
    disjoint = all(w.disjoint for w in axes)
    mask = np.empty(winners.shape, dtype=bool)
    scratch = np.empty(g.shape, dtype=g.dtype)
    lead = (slice(None),)
    for off in offsets:
        region = lead + off.out
        m = mask[region]
        np.equal(winners[region], off.k, out=m)
        dst = out[lead + off.inp]
        if disjoint:
            np.copyto(dst, g[region], where=m)
        else:
            contrib = scratch[region]
            np.multiply(g[region], m, out=contrib)
            np.add(dst, contrib, out=dst)
    return out


# --------------------------------------------------------------------------------------------
# Every window at once
# --------------------------------------------------------------------------------------------


def sliding_windows(x: np.ndarray, geometry: PoolGeometry, pad_value: float = np.nan) -> np.ndarray:
    """A read-only view ``(..., *out, *kernel)`` of every window of ``x`` ``(..., *spatial)``.

    Padding (and, in ceil mode, the part of a last window past the padding) reads
    ``pad_value``; with padding or ceil overhang the input is first copied into a padded
    buffer. Memory is ``prod(out) * prod(kernel)`` *views*, not copies, so reductions over the
    last ``dims`` axes (``np.nanmax``, ``np.sum``...) are the naive per-window definition.

    >>> import numpy as np
    >>> from poolkit.geometry import pool_geometry
    >>> x = np.arange(1.0, 17.0).reshape(4, 4)
    >>> sliding_windows(x, pool_geometry((4, 4), 2)).max(axis=(-2, -1))
    array([[ 6.,  8.],
           [14., 16.]])
    """
    dims = geometry.dims
    spatial = x.shape[-dims:]
    pads = []
    for d in range(dims):
        t = geometry.windows(d)
        left = geometry.padding[d]
        span_end = t.starts[-1] + (t.kernel_size - 1) * t.dilation + 1  # exclusive
        right = max(0, span_end - spatial[d])
        pads.append((left, right))
    if any(lft or rgt for lft, rgt in pads):
        padded = np.full(
            x.shape[:-dims] + tuple(n + lft + rgt for n, (lft, rgt) in zip(spatial, pads,
                                                                           strict=True)),
            pad_value, dtype=np.result_type(x.dtype, np.float32 if np.isnan(pad_value)
                                            else x.dtype),
        )
        inner = tuple(slice(lft, lft + n) for n, (lft, _) in zip(spatial, pads, strict=True))
        padded[(Ellipsis,) + inner] = x
    else:
        padded = x
    lead_strides = padded.strides[:-dims]
    sp_strides = padded.strides[-dims:]
    shape = padded.shape[:-dims] + geometry.output_size + geometry.kernel_size
    strides = (
        lead_strides
        + tuple(st * s for st, s in zip(sp_strides, geometry.stride, strict=True))
        + tuple(st * d for st, d in zip(sp_strides, geometry.dilation, strict=True))
    )
    return np.lib.stride_tricks.as_strided(padded, shape, strides, writeable=False)


# --------------------------------------------------------------------------------------------
# Whole-array helpers for pooling families built on the primitive
# --------------------------------------------------------------------------------------------


def _planes_and_axes(input, dims, kernel_size, stride, padding, dilation, ceil_mode, fn_name):
    from poolkit.geometry import pool_geometry
    from poolkit.numpy._arrays import to_planes

    planes = to_planes(input, dims, fn_name)
    geometry = pool_geometry(planes.spatial, kernel_size, stride, padding, dilation, ceil_mode,
                             fn_name=fn_name)
    return planes, geometry, axis_windows(geometry)


def _window_reduce(op, input, kernel_size, stride, padding, dilation, ceil_mode, dims):
    planes, geometry, axes = _planes_and_axes(input, dims, kernel_size, stride, padding,
                                              dilation, ceil_mode, f"window_{op}")
    x = planes.array
    out = np.empty((x.shape[0],) + geometry.output_size, x.dtype)
    for blk in plane_blocks(x.shape[0], x[:1].nbytes):
        reduce_separable(x[blk], axes, op, out=out[blk])
    return planes.restore(out)


def window_sum(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               dims: int = 2) -> np.ndarray:
    """Sum of every window of ``input`` ``(N, C, *S)``/``(C, *S)`` (padding adds 0), with
    PyTorch's window geometry (``dims`` spatial dimensions). Average pooling is this divided
    by :func:`poolkit.numpy.avg_divisor`.

    >>> window_sum(np.arange(1.0, 17.0).reshape(1, 4, 4), 2)
    array([[[14., 22.],
            [46., 54.]]])
    """
    return _window_reduce("sum", input, kernel_size, stride, padding, dilation, ceil_mode, dims)


def window_max(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               dims: int = 2) -> np.ndarray:
    """Max of every window (padding is ``-inf``; NaN propagates): max pooling's values."""
    return _window_reduce("max", input, kernel_size, stride, padding, dilation, ceil_mode, dims)


def window_sum_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        dilation=1, ceil_mode=False, *, dims: int = 2) -> np.ndarray:
    """Gradient of :func:`window_sum` with respect to its input (of shape ``input_shape``):
    each input element receives the sum of ``grad_output`` over the windows that read it."""
    grad_output = np.asarray(grad_output)
    planes, geometry, axes = _planes_and_axes(np.empty(input_shape, grad_output.dtype), dims,
                                              kernel_size, stride, padding, dilation,
                                              ceil_mode, "window_sum_backward")
    from poolkit.numpy._arrays import grad_planes

    g = grad_planes(grad_output, planes, geometry.output_size, "window_sum_backward")
    grad_input = np.empty_like(planes.array)
    for blk in plane_blocks(g.shape[0], planes.array[:1].nbytes):
        scatter_separable(g[blk], axes, out=grad_input[blk])
    return planes.restore(grad_input)
