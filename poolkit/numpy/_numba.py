"""Optional compiled kernels (numba) for windowed max and average pooling.

Same windows, same semantics as the NumPy path (:mod:`poolkit.numpy.windows`); only the loop
order differs. Each kernel walks one output row at a time: it first reduces the kernel's input
rows into a row buffer (a contiguous, vectorisable loop), then reduces that buffer along the
last dimension, one kernel offset at a time. Input is read once, output written once, and the
buffers stay in L1 -- which is what brings the forward close to the memory-bandwidth limit.

Every kernel works on planes ``(P, D, H, W)``; 1-d and 2-d pooling are run with leading
singleton dimensions (kernel 1, stride 1, no padding). The argmax keeps PyTorch's rules: within
an input row the first maximum wins and the last NaN wins; rows are combined in scan order with
the same rules, which is exactly the row-major scan of the whole window.

Imported (and compiled, on first call; ``cache=True`` keeps the machine code on disk) only when
the numba backend is selected -- never at ``import poolkit.numpy``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from poolkit.geometry import PoolGeometry

_JIT = {"cache": True, "nogil": True, "boundscheck": False}


# --------------------------------------------------------------------------------------------
# Geometry -> small integer tables the kernels read
# --------------------------------------------------------------------------------------------


def _tables(geometry: PoolGeometry):
    """Per dimension (padded to 3 dims): ``ranges`` ``(K, 3)`` int64 rows ``(o_lo, o_hi,
    shift)`` -- offset ``j`` reads input ``o * stride + shift`` for outputs ``o_lo <= o <
    o_hi`` -- plus strides and PyTorch's first-valid positions."""
    ranges, strides, firsts = [], [], []
    for d in range(geometry.dims):
        t = geometry.windows(d)
        table = np.zeros((t.kernel_size, 3), np.int64)
        for j in range(t.kernel_size):
            table[j] = (0, 0, t.starts[0] + j * t.dilation)
        for j, o_lo, o_hi, _ in t.offset_ranges():
            table[j, 0], table[j, 1] = o_lo, o_hi
        ranges.append(table)
        strides.append(t.stride)
        firsts.append(np.array([t.first_valid(o) for o in range(t.output_size)], np.int64))
    while len(ranges) < 3:  # leading singleton dimensions
        ranges.insert(0, np.array([[0, 1, 0]], np.int64))
        strides.insert(0, 1)
        firsts.insert(0, np.zeros(1, np.int64))
    return ranges, strides, firsts


def _as3d(a: np.ndarray, dims: int) -> np.ndarray:
    return a.reshape(a.shape[:1] + (1,) * (3 - dims) + a.shape[1:])


# --------------------------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _max_values(x, out, rD, rH, rW, sD, sH, sW):
    P, D, H, W = x.shape
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    row = np.empty(W, x.dtype)
    acc = np.empty(OW, x.dtype)
    for p in range(P):
        for od in range(OD):
            for oh in range(OH):
                first = True
                for jd in range(rD.shape[0]):
                    if od < rD[jd, 0] or od >= rD[jd, 1]:
                        continue
                    d = od * sD + rD[jd, 2]
                    for jh in range(rH.shape[0]):
                        if oh < rH[jh, 0] or oh >= rH[jh, 1]:
                            continue
                        h = oh * sH + rH[jh, 2]
                        if first:
                            for w in range(W):
                                row[w] = x[p, d, h, w]
                            first = False
                        else:
                            for w in range(W):
                                a = row[w]
                                b = x[p, d, h, w]
                                row[w] = b if (b > a or b != b) else a
                for ow in range(OW):
                    acc[ow] = -np.inf
                if not first:
                    for jw in range(rW.shape[0]):
                        shift = rW[jw, 2]
                        for ow in range(rW[jw, 0], rW[jw, 1]):
                            a = acc[ow]
                            b = row[ow * sW + shift]
                            acc[ow] = b if (b > a or b != b) else a
                for ow in range(OW):
                    out[p, od, oh, ow] = acc[ow]


@njit(**_JIT)
def _max_argmax(x, out, index, grad, grad_input, rD, rH, rW, sD, sH, sW, fD, fH, fW):
    """Values and PyTorch indices; with ``grad`` non-empty, scatter it to the argmax instead."""
    P, D, H, W = x.shape
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    backward = grad.shape[0] > 0
    best = np.empty(OW, x.dtype)
    best_at = np.empty(OW, np.int64)
    row_best = np.empty(OW, x.dtype)
    row_at = np.empty(OW, np.int64)
    for p in range(P):
        for od in range(OD):
            for oh in range(OH):
                for ow in range(OW):
                    best[ow] = -np.inf
                    best_at[ow] = (fD[od] * H + fH[oh]) * W + fW[ow]
                for jd in range(rD.shape[0]):
                    if od < rD[jd, 0] or od >= rD[jd, 1]:
                        continue
                    d = od * sD + rD[jd, 2]
                    for jh in range(rH.shape[0]):
                        if oh < rH[jh, 0] or oh >= rH[jh, 1]:
                            continue
                        h = oh * sH + rH[jh, 2]
                        for ow in range(OW):
                            row_best[ow] = -np.inf
                            row_at[ow] = -1
                        for jw in range(rW.shape[0]):
                            shift = rW[jw, 2]
                            for ow in range(rW[jw, 0], rW[jw, 1]):
                                w = ow * sW + shift
                                b = x[p, d, h, w]
                                if b > row_best[ow] or b != b:
                                    row_best[ow] = b
                                    row_at[ow] = w
                        base = (d * H + h) * W
                        for ow in range(OW):
                            b = row_best[ow]
                            if row_at[ow] >= 0 and (b > best[ow] or b != b):
                                best[ow] = b
                                best_at[ow] = base + row_at[ow]
                if backward:
                    for ow in range(OW):
                        at = best_at[ow]
                        if 0 <= at < D * H * W:  # a window of padding only has no input
                            dd = at // (H * W)
                            hh = (at // W) % H
                            grad_input[p, dd, hh, at % W] += grad[p, od, oh, ow]
                else:
                    for ow in range(OW):
                        out[p, od, oh, ow] = best[ow]
                        index[p, od, oh, ow] = best_at[ow]


def max_pool(x: np.ndarray, geometry: PoolGeometry, out: np.ndarray, return_indices: bool):
    """Max pooling of planes ``x`` ``(P, *S)`` into ``out`` ``(P, *out)``; indices or None."""
    dims = geometry.dims
    (rD, rH, rW), (sD, sH, sW), (fD, fH, fW) = _tables(geometry)
    x3, out3 = _as3d(x, dims), _as3d(out, dims)
    if not return_indices:
        _max_values(x3, out3, rD, rH, rW, sD, sH, sW)
        return None
    index = np.empty(out.shape, np.int64)
    none = np.empty((0, 1, 1, 1), x.dtype)
    _max_argmax(x3, out3, _as3d(index, dims), none, none, rD, rH, rW, sD, sH, sW, fD, fH, fW)
    return index


def max_pool_backward(g: np.ndarray, x: np.ndarray, geometry: PoolGeometry,
                      grad_input: np.ndarray) -> None:
    """Scatter ``g`` to the argmax of every window (recomputed from ``x``)."""
    dims = geometry.dims
    (rD, rH, rW), (sD, sH, sW), (fD, fH, fW) = _tables(geometry)
    grad_input.fill(0)
    g3 = _as3d(g, dims)
    no_index = np.empty((0, 1, 1, 1), np.int64)
    # ``g3`` also stands in for ``out``: in backward mode the kernel only reads its shape
    _max_argmax(_as3d(x, dims), g3, no_index, g3, _as3d(grad_input, dims),
                rD, rH, rW, sD, sH, sW, fD, fH, fW)


# --------------------------------------------------------------------------------------------
# Average pooling (window sums divided by a per-dimension product of counts)
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _avg(x, out, rD, rH, rW, sD, sH, sW, cD, cH, cW):
    P, D, H, W = x.shape
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    row = np.empty(W, x.dtype)
    acc = np.empty(OW, x.dtype)
    for p in range(P):
        for od in range(OD):
            for oh in range(OH):
                for w in range(W):
                    row[w] = 0
                for jd in range(rD.shape[0]):
                    if od < rD[jd, 0] or od >= rD[jd, 1]:
                        continue
                    d = od * sD + rD[jd, 2]
                    for jh in range(rH.shape[0]):
                        if oh < rH[jh, 0] or oh >= rH[jh, 1]:
                            continue
                        h = oh * sH + rH[jh, 2]
                        for w in range(W):
                            row[w] += x[p, d, h, w]
                for ow in range(OW):
                    acc[ow] = 0
                for jw in range(rW.shape[0]):
                    shift = rW[jw, 2]
                    for ow in range(rW[jw, 0], rW[jw, 1]):
                        acc[ow] += row[ow * sW + shift]
                c = cD[od] * cH[oh]
                for ow in range(OW):
                    out[p, od, oh, ow] = acc[ow] / (c * cW[ow])


@njit(**_JIT)
def _avg_backward(g, grad_input, rD, rH, rW, sD, sH, sW, cD, cH, cW):
    P, D, H, W = grad_input.shape
    OD, OH, OW = g.shape[1], g.shape[2], g.shape[3]
    row = np.empty(W, grad_input.dtype)
    share = np.empty(OW, grad_input.dtype)
    for p in range(P):
        for od in range(OD):
            for oh in range(OH):
                c = cD[od] * cH[oh]
                for ow in range(OW):
                    share[ow] = g[p, od, oh, ow] / (c * cW[ow])
                for w in range(W):
                    row[w] = 0
                for jw in range(rW.shape[0]):
                    shift = rW[jw, 2]
                    for ow in range(rW[jw, 0], rW[jw, 1]):
                        row[ow * sW + shift] += share[ow]
                for jd in range(rD.shape[0]):
                    if od < rD[jd, 0] or od >= rD[jd, 1]:
                        continue
                    d = od * sD + rD[jd, 2]
                    for jh in range(rH.shape[0]):
                        if oh < rH[jh, 0] or oh >= rH[jh, 1]:
                            continue
                        h = oh * sH + rH[jh, 2]
                        for w in range(W):
                            grad_input[p, d, h, w] += row[w]


def _counts3(counts, dtype):
    counts = [np.asarray(c, dtype) for c in counts]
    while len(counts) < 3:
        counts.insert(0, np.ones(1, dtype))
    return counts


def avg_pool(x: np.ndarray, geometry: PoolGeometry, out: np.ndarray, counts) -> None:
    """Window sums of ``x`` divided by ``counts[0][o0] * counts[1][o1] * ...``."""
    dims = geometry.dims
    (rD, rH, rW), (sD, sH, sW), _ = _tables(geometry)
    cD, cH, cW = _counts3(counts, x.dtype)
    _avg(_as3d(x, dims), _as3d(out, dims), rD, rH, rW, sD, sH, sW, cD, cH, cW)


def avg_pool_backward(g: np.ndarray, geometry: PoolGeometry, grad_input: np.ndarray,
                      counts) -> None:
    """Transpose of :func:`avg_pool`: each input gets the sum of ``g / divisor`` of its
    windows."""
    dims = geometry.dims
    (rD, rH, rW), (sD, sH, sW), _ = _tables(geometry)
    cD, cH, cW = _counts3(counts, g.dtype)
    grad_input.fill(0)
    _avg_backward(_as3d(g, dims), _as3d(grad_input, dims), rD, rH, rW, sD, sH, sW, cD, cH, cW)
