"""Optional compiled kernels (numba) for windowed max and average pooling.

Same windows, same semantics as the NumPy path (:mod:`poolkit.numpy.windows`); only the loop
order differs. Each kernel walks one output row at a time: it first reduces the kernel's input
rows into a row buffer (a contiguous, vectorisable loop), then reduces that buffer along the
last dimension, one kernel offset at a time. Input is read once, output written once, and the
buffers stay in L1 -- which is what brings the forward close to the memory-bandwidth limit.

Every kernel works on planes ``(P, D, H, W)``; 1-d and 2-d pooling are run with leading
singleton dimensions (kernel 1, stride 1, no padding). Kernels index flat arrays with computed
row offsets cast to unsigned (``U(...)``): numba wraps negative signed indices around,
and that per-access check stops LLVM from vectorising the loops (4x slower here). Along W,
outputs whose whole window lies inside the input (the "interior") take a branch-free loop --
unrolled for the common 2- and 3-wide windows of stride 2, which LLVM vectorises -- and the few
border outputs a checked one.
The argmax keeps PyTorch's rules: within an input row the first maximum wins and the last NaN
wins; rows are combined in scan order with the same rules, which is exactly the row-major scan
of the whole window.

Imported (and compiled, on first call; ``cache=True`` keeps the machine code on disk) only when
the numba backend is selected -- never at ``import poolkit.numpy``.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import uintp as U  # unsigned indices: no negative-index wraparound, so loops vectorise

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


def _w_table(geometry: PoolGeometry) -> np.ndarray:
    """The last dimension as ``[k, stride, dilation, shift0, interior_lo, interior_hi]``:
    output ``o`` reads ``o * stride + shift0 + j * dilation``; outputs in ``[interior_lo,
    interior_hi)`` read only real input elements."""
    t = geometry.windows(geometry.dims - 1)
    ranges = t.offset_ranges()
    lo = max((o_lo for _, o_lo, _, _ in ranges), default=0)
    hi = min((o_hi for _, _, o_hi, _ in ranges), default=0)
    if len(ranges) < t.kernel_size or hi <= lo:
        lo = hi = 0  # no output has a full window: the checked loop does them all
    return np.array([t.kernel_size, t.stride, t.dilation, t.starts[0], lo, hi], np.int64)


def _as3d(a: np.ndarray, dims: int) -> np.ndarray:
    return a.reshape(a.shape[:1] + (1,) * (3 - dims) + a.shape[1:])



# --------------------------------------------------------------------------------------------
# One row of the last dimension: max, sum, argmax, and the transpose of the sum
# --------------------------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def _later_wins(a, b):
    """Running max with PyTorch's rule: ``b`` (later in scan order) replaces ``a`` when it is
    greater or NaN. Bitwise ``|`` keeps it branch-free, so loops over it vectorise."""
    return b if ((b > a) | (b != b)) else a


@njit(inline="always", **_JIT)
def _row_max(row, W, dst, dst0, OW, wg):
    """``dst[dst0 + ow]`` = max over window ``ow`` of ``row[:W]``."""
    k, s, d, shift0, ilo, ihi = wg[0], wg[1], wg[2], wg[3], wg[4], wg[5]
    if k == 2 and s == 2 and d == 1:
        for ow in range(ilo, ihi):
            base = 2 * ow + shift0
            dst[U(dst0 + ow)] = _later_wins(row[U(base)], row[U(base + 1)])
    elif k == 3 and s == 2 and d == 1:
        for ow in range(ilo, ihi):
            base = 2 * ow + shift0
            first_two = _later_wins(row[U(base)], row[U(base + 1)])
            dst[U(dst0 + ow)] = _later_wins(first_two, row[U(base + 2)])
    else:
        for ow in range(ilo, ihi):
            base = ow * s + shift0
            m = row[U(base)]
            for j in range(1, k):
                m = _later_wins(m, row[U(base + j * d)])
            dst[U(dst0 + ow)] = m
    for part in range(2):  # the border outputs: [0, ilo) then [ihi, OW)
        for ow in range(0 if part == 0 else ihi, ilo if part == 0 else OW):
            m = -np.inf
            for j in range(k):
                w = ow * s + shift0 + j * d
                if 0 <= w < W:
                    m = _later_wins(m, row[U(w)])
            dst[U(dst0 + ow)] = m


@njit(inline="always", **_JIT)
def _row_sum(row, W, dst, dst0, OW, wg):
    """``dst[dst0 + ow]`` = sum over window ``ow`` of ``row[:W]`` (padding adds nothing)."""
    k, s, d, shift0, ilo, ihi = wg[0], wg[1], wg[2], wg[3], wg[4], wg[5]
    if k == 2 and s == 2 and d == 1:
        for ow in range(ilo, ihi):
            base = 2 * ow + shift0
            dst[U(dst0 + ow)] = row[U(base)] + row[U(base + 1)]
    elif k == 3 and s == 2 and d == 1:
        for ow in range(ilo, ihi):
            base = 2 * ow + shift0
            dst[U(dst0 + ow)] = row[U(base)] + row[U(base + 1)] + row[U(base + 2)]
    else:
        for ow in range(ilo, ihi):
            base = ow * s + shift0
            acc = row[U(base)]
            for j in range(1, k):
                acc += row[U(base + j * d)]
            dst[U(dst0 + ow)] = acc
    for part in range(2):  # the border outputs: [0, ilo) then [ihi, OW)
        for ow in range(0 if part == 0 else ihi, ilo if part == 0 else OW):
            acc = row[0]  # (its value is not used: sets the type; row[0] * 0 is NaN for inf)
            started = False
            for j in range(k):
                w = ow * s + shift0 + j * d
                if 0 <= w < W:
                    acc = acc + row[U(w)] if started else row[U(w)]
                    started = True
            if started:
                dst[U(dst0 + ow)] = acc
            else:
                dst[U(dst0 + ow)] = 0


@njit(inline="always", **_JIT)
def _row_argmax(src, src0, W, best, at, OW, wg):
    """``best[ow]``, ``at[ow]``: max of window ``ow`` in the row ``src[src0:src0 + W]`` and its
    position in the row (-1 when the window has no element above -inf)."""
    k, s, d, shift0, ilo, ihi = wg[0], wg[1], wg[2], wg[3], wg[4], wg[5]
    if k == 2 and s == 2 and d == 1:
        for ow in range(ilo, ihi):
            base = 2 * ow + shift0
            a = src[U(src0 + base)]
            b = src[U(src0 + base + 1)]
            take = (b > a) | (b != b)
            best[ow] = b if take else a
            at[ow] = base + 1 if take else base
    elif k == 3 and s == 2 and d == 1:
        for ow in range(ilo, ihi):  # the first two elements, then the third: simple loops
            base = 2 * ow + shift0
            a = src[U(src0 + base)]
            b = src[U(src0 + base + 1)]
            take = (b > a) | (b != b)
            best[ow] = b if take else a
            at[ow] = base + 1 if take else base
        for ow in range(ilo, ihi):
            base = 2 * ow + shift0 + 2
            c = src[U(src0 + base)]
            m = best[ow]
            take = (c > m) | (c != c)
            best[ow] = c if take else m
            at[ow] = base if take else at[ow]
    else:
        for ow in range(ilo, ihi):
            base = ow * s + shift0
            m = src[U(src0 + base)]
            where = base
            for j in range(1, k):  # selects, not branches: random data mispredicts
                w = base + j * d
                b = src[U(src0 + w)]
                take = (b > m) | (b != b)
                m = b if take else m
                where = w if take else where
            best[ow] = m
            at[ow] = where
    for part in range(2):  # the border outputs: [0, ilo) then [ihi, OW)
        for ow in range(0 if part == 0 else ihi, ilo if part == 0 else OW):
            m = -np.inf
            where = -1  # stays -1 when every real element is -inf: the initial index is kept
            for j in range(k):
                w = ow * s + shift0 + j * d
                if 0 <= w < W:
                    b = src[U(src0 + w)]
                    if (b > m) | (b != b):
                        m = b
                        where = w
            best[ow] = m
            at[ow] = where


@njit(inline="always", **_JIT)
def _row_scatter(share, OW, row, W, wg):
    """``row[U(w)] += share[ow]`` for every element ``w`` of window ``ow`` (row pre-zeroed)."""
    k, s, d, shift0, ilo, ihi = wg[0], wg[1], wg[2], wg[3], wg[4], wg[5]
    if k == 2 and s == 2 and d == 1:
        for ow in range(ilo, ihi):
            base = 2 * ow + shift0
            v = share[ow]
            row[U(base)] += v
            row[U(base + 1)] += v
    else:
        for ow in range(ilo, ihi):
            base = ow * s + shift0
            v = share[ow]
            for j in range(k):
                row[U(base + j * d)] += v
    for part in range(2):  # the border outputs: [0, ilo) then [ihi, OW)
        for ow in range(0 if part == 0 else ihi, ilo if part == 0 else OW):
            v = share[ow]
            for j in range(k):
                w = ow * s + shift0 + j * d
                if 0 <= w < W:
                    row[U(w)] += v


# --------------------------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _max_values(x, out, P, D, H, W, OD, OH, OW, rD, rH, sD, sH, wg):
    """``x`` ``(P*D*H*W,)`` and ``out`` ``(P*OD*OH*OW,)`` flat."""
    row = np.empty(W, x.dtype)
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
                        src0 = ((p * D + d) * H + oh * sH + rH[jh, 2]) * W
                        if first:
                            for w in range(W):
                                row[U(w)] = x[U(src0 + w)]
                            first = False
                        else:
                            for w in range(W):
                                row[U(w)] = _later_wins(row[U(w)], x[U(src0 + w)])
                dst0 = ((p * OD + od) * OH + oh) * OW
                if first:  # the window reads only padding rows
                    for ow in range(OW):
                        out[U(dst0 + ow)] = -np.inf
                else:
                    _row_max(row, W, out, dst0, OW, wg)


@njit(**_JIT)
def _max_argmax(x, out, index, grad, grad_input, backward, P, D, H, W, OD, OH, OW,
                rD, rH, sD, sH, wg, fD, fH, fW):
    """Values and PyTorch indices into the flat ``out``/``index``; with ``backward``, scatter
    the flat ``grad`` to the argmax in the flat ``grad_input`` instead.

    Rows of a window are combined in scan order with the same rule as within a row (strictly
    greater or NaN replaces), which is the row-major scan of the whole window."""
    best = np.empty(OW, x.dtype)
    best_at = np.empty(OW, np.int64)
    row_best = np.empty(OW, x.dtype)
    row_at = np.empty(OW, np.int64)
    plane = D * H * W
    for p in range(P):
        if backward:  # zero this plane here, not all of grad_input upfront: it stays in cache
            for i in range(plane):
                grad_input[U(p * plane + i)] = 0
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
                        base = (d * H + h) * W
                        _row_argmax(x, p * plane + base, W, row_best, row_at, OW, wg)
                        for ow in range(OW):  # branch-free, so it vectorises
                            b = row_best[ow]
                            a = best[ow]
                            take = (row_at[ow] >= 0) & ((b > a) | (b != b))
                            best[ow] = b if take else a
                            best_at[ow] = base + row_at[ow] if take else best_at[ow]
                o0 = ((p * OD + od) * OH + oh) * OW
                if backward:
                    for ow in range(OW):
                        at = best_at[ow]
                        if 0 <= at < plane:  # a window of padding only has no input
                            grad_input[U(p * plane + at)] += grad[U(o0 + ow)]
                else:
                    for ow in range(OW):
                        out[U(o0 + ow)] = best[ow]
                        index[U(o0 + ow)] = best_at[ow]


def _sizes(x3: np.ndarray, out3_shape) -> tuple:
    return tuple(x3.shape) + tuple(out3_shape[1:])


def max_pool(x: np.ndarray, geometry: PoolGeometry, out: np.ndarray, return_indices: bool):
    """Max pooling of planes ``x`` ``(P, *S)`` into ``out`` ``(P, *out)``; indices or None."""
    dims = geometry.dims
    (rD, rH, _), (sD, sH, _), (fD, fH, fW) = _tables(geometry)
    wg = _w_table(geometry)
    sizes = _sizes(_as3d(x, dims), _as3d(out, dims).shape)
    if not return_indices:
        _max_values(x.reshape(-1), out.reshape(-1), *sizes, rD, rH, sD, sH, wg)
        return None
    index = np.empty(out.shape, np.int64)
    none = np.empty(0, x.dtype)
    _max_argmax(x.reshape(-1), out.reshape(-1), index.reshape(-1), none, none, False, *sizes,
                rD, rH, sD, sH, wg, fD, fH, fW)
    return index


def max_pool_backward(g: np.ndarray, x: np.ndarray, geometry: PoolGeometry,
                      grad_input: np.ndarray) -> None:
    """Scatter ``g`` to the argmax of every window (recomputed from ``x``)."""
    dims = geometry.dims
    (rD, rH, _), (sD, sH, _), (fD, fH, fW) = _tables(geometry)
    wg = _w_table(geometry)
    sizes = _sizes(_as3d(x, dims), _as3d(g, dims).shape)
    _max_argmax(x.reshape(-1), np.empty(0, x.dtype), np.empty(0, np.int64), g.reshape(-1),
                grad_input.reshape(-1), True, *sizes, rD, rH, sD, sH, wg, fD, fH, fW)


# --------------------------------------------------------------------------------------------
# Average pooling (window sums divided by a per-dimension product of counts)
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _avg(x, out, P, D, H, W, OD, OH, OW, rD, rH, sD, sH, wg, cD, cH, cW):
    row = np.empty(W, x.dtype)
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
                        src0 = ((p * D + d) * H + oh * sH + rH[jh, 2]) * W
                        if first:
                            for w in range(W):
                                row[U(w)] = x[U(src0 + w)]
                            first = False
                        else:
                            for w in range(W):
                                row[U(w)] += x[U(src0 + w)]
                dst0 = ((p * OD + od) * OH + oh) * OW
                if first:
                    for ow in range(OW):
                        out[U(dst0 + ow)] = 0
                else:
                    _row_sum(row, W, out, dst0, OW, wg)
                c = cD[od] * cH[oh]
                for ow in range(OW):
                    out[U(dst0 + ow)] = out[U(dst0 + ow)] / (c * cW[ow])


@njit(**_JIT)
def _avg_backward(g, grad_input, P, D, H, W, OD, OH, OW, rD, rH, sD, sH, wg, cD, cH, cW):
    row = np.empty(W, grad_input.dtype)
    share = np.empty(OW, grad_input.dtype)
    plane = D * H * W
    for p in range(P):
        for i in range(plane):  # zero this plane here, not all upfront: it stays in cache
            grad_input[U(p * plane + i)] = 0
        for od in range(OD):
            for oh in range(OH):
                c = cD[od] * cH[oh]
                g0 = ((p * OD + od) * OH + oh) * OW
                for ow in range(OW):
                    share[ow] = g[g0 + ow] / (c * cW[ow])
                for w in range(W):
                    row[U(w)] = 0
                _row_scatter(share, OW, row, W, wg)
                for jd in range(rD.shape[0]):
                    if od < rD[jd, 0] or od >= rD[jd, 1]:
                        continue
                    d = od * sD + rD[jd, 2]
                    for jh in range(rH.shape[0]):
                        if oh < rH[jh, 0] or oh >= rH[jh, 1]:
                            continue
                        dst0 = ((p * D + d) * H + oh * sH + rH[jh, 2]) * W
                        for w in range(W):
                            grad_input[U(dst0 + w)] += row[U(w)]


def _counts3(counts, dtype):
    counts = [np.asarray(c, dtype) for c in counts]
    while len(counts) < 3:
        counts.insert(0, np.ones(1, dtype))
    return counts


def avg_pool(x: np.ndarray, geometry: PoolGeometry, out: np.ndarray, counts) -> None:
    """Window sums of ``x`` divided by ``counts[0][o0] * counts[1][o1] * ...``."""
    dims = geometry.dims
    (rD, rH, _), (sD, sH, _), _ = _tables(geometry)
    cD, cH, cW = _counts3(counts, x.dtype)
    sizes = _sizes(_as3d(x, dims), _as3d(out, dims).shape)
    _avg(x.reshape(-1), out.reshape(-1), *sizes, rD, rH, sD, sH, _w_table(geometry), cD, cH, cW)


def avg_pool_backward(g: np.ndarray, geometry: PoolGeometry, grad_input: np.ndarray,
                      counts) -> None:
    """Transpose of :func:`avg_pool`: each input gets the sum of ``g / divisor`` of its
    windows."""
    dims = geometry.dims
    (rD, rH, _), (sD, sH, _), _ = _tables(geometry)
    cD, cH, cW = _counts3(counts, g.dtype)
    sizes = _sizes(_as3d(grad_input, dims), _as3d(g, dims).shape)
    _avg_backward(g.reshape(-1), grad_input.reshape(-1), *sizes, rD, rH, sD, sH,
                  _w_table(geometry), cD, cH, cW)
