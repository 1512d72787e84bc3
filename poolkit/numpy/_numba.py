"""Optional compiled kernels (numba) for windowed max and average pooling.

Same windows, same semantics as the NumPy path (:mod:`poolkit.numpy.windows`); only the loop
order differs. Every kernel works on planes ``(P, D, H, W)`` (1-d and 2-d pooling run with
leading singleton dimensions: kernel 1, stride 1, no padding) and makes one pass over the
input, plane by plane, so that the working set stays in L1/L2:

- **forward values** (:func:`_rows`, max and average): one output row at a time. Up to three
  input rows of the window are combined column by column in one pass (contiguous, vectorised)
  into a row with padding margins, so that the windows along W need no checks; the combined
  row is then reduced along W -- unrolled for the common 2- and 3-wide windows of stride 2,
  whose loads LLVM vectorises -- and, for the average, divided in the same loop. 2x2 windows
  of stride 2 read their four elements straight from the two input rows (no combined row);
- **argmax, streamed** (``return_indices`` and the max backward) for the two common
  downsamplings: :func:`_argmax2x2` (2x2/2 tiling the plane: each window's winner, then each
  gradient row written once, no zeroing) and :func:`_argmax3x3` (3x3/2, padding 0 or 1,
  forward only: the winner of each column over the window's rows, then of each window over
  its columns in PyTorch's row-major order);
- **argmax, general** (:func:`_argmax`, every other window): the plane is first
  split into *phase planes* (:func:`_fill`: element ``(h, w)`` goes to phase ``(h % s_h, w %
  s_w)`` at ``(h // s_h, w // s_w)``, with padding margins), where every kernel offset of every
  window becomes the same flat shift. So each pass over the phase planes is one long
  branch-free loop over all outputs at once, combining four kernel offsets in scan order with
  PyTorch's rule (strictly greater, or NaN, replaces), keeping the winner's position. The
  backward then adds each output's gradient at its winner, into a plane zeroed in cache;
- **average backward** (:func:`_avg_backward`): the transpose: each phase plane gathers
  ``grad / divisor`` from the outputs whose windows read it (four shifts per loop), and
  :func:`_unfill` interleaves the phase planes back into the gradient, written once.

Two details keep the loops vectorised: indices are computed row offsets cast to unsigned
(``U(...)``: numba wraps negative signed indices around, and that check stops LLVM from
vectorising), and a select stored back into the array it was read from (``a[i] = b if c else
a[i]``) becomes an AVX masked store, which is slow on AMD CPUs -- so running maxima go to a
second buffer (ping-pong). ``error_model="numpy"`` lets divisions vectorise (no
ZeroDivisionError check).

Threads: each kernel runs on a range of planes; its ``*_par`` driver splits the ``N * C``
planes into one contiguous chunk per thread (numba ``prange``; the thread count and the size
below which one thread runs are :mod:`poolkit.numpy._backend`'s).

Imported (and compiled, on first call; ``cache=True`` keeps the machine code on disk) only when
the numba backend is selected -- never at ``import poolkit.numpy``. The kernels take the
geometry as small integer arrays, so one compiled version per kernel and dtype serves every
kernel size, stride, padding, dilation and dimensionality: compile time is paid once per
dtype, not per pooling configuration: for float32, 62 s for the serial kernels and 53 s more
for the parallel drivers on the busy 2-core development machine; 3 s from the disk cache.

Sums are exact in the sense PyTorch's are: the same float additions up to their order
(column sums first, then along W); maxima and indices are identical to PyTorch's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba import uintp as U  # unsigned indices: no negative-index wraparound, so loops vectorise

from poolkit.geometry import PoolGeometry

_JIT = {"cache": True, "nogil": True, "boundscheck": False, "error_model": "numpy"}
#: Helpers inlined into their caller at numba's level: LLVM then sees one function, and keeps
#: the arrays' pointers and the loop bounds in registers (called, they ran 2x slower).
_INLINE = {**_JIT, "inline": "always"}

#: Kernel offsets combined per pass over the phase planes (the last group is filled up with
#: reads of a padding-only region).
GROUP = 4

# The geometry array ``geo`` (int64), per dimension D, H, W:
#   0 P | 1-3 input size | 4-6 output size | 7-9 kernel | 10-12 stride | 13-15 dilation |
#   16-18 shift (-padding) | 19-21 phase margin M | 22-24 phase length L | 25 V (elements of
#   one phase plane) | 26 N (flat length of the outputs in phase-plane layout) |
#   27-28 outputs [lo, hi) along W whose whole window lies inside the input


def _plan(geometry: PoolGeometry, n_planes: int):
    """The integer tables the kernels read: ``(geo, shifts, positions, back_starts,
    back_shifts)``.

    Along a dimension, kernel offset ``j`` of output ``o`` reads input ``o * s + c_j`` with
    ``c_j = j * d - p``, i.e. phase ``r_j = c_j mod s`` at position ``o + q_j`` (``q_j = c_j
    // s``) of that phase, stored at ``M + o + q_j`` (``M`` margin elements of padding before
    position 0). With outputs laid out like a phase plane (row length ``L``), offset ``j`` is a
    fixed flat shift for every output: ``shifts[j]``; ``positions[j]`` is its flat input
    position relative to the window's first element.
    """
    lead = 3 - geometry.dims
    size = (1,) * lead + tuple(geometry.input_size)
    out = (1,) * lead + tuple(geometry.output_size)
    kernel = (1,) * lead + tuple(geometry.kernel_size)
    stride = (1,) * lead + tuple(geometry.stride)
    dilation = (1,) * lead + tuple(geometry.dilation)
    shift = (0,) * lead + tuple(-p for p in geometry.padding)
    q, r, margin, length = [], [], [], []
    for d in range(3):
        cols = [shift[d] + j * dilation[d] for j in range(kernel[d])]
        q.append([c // stride[d] for c in cols])
        r.append([c % stride[d] for c in cols])
        margin.append(max(0, -q[d][0]))
        length.append(margin[d] + out[d] + q[d][-1])
    V = length[0] * length[1] * length[2]
    N = ((out[0] - 1) * length[1] + out[1] - 1) * length[2] + out[2]
    n_phases = stride[0] * stride[1] * stride[2]
    shifts, positions, per_phase = [], [], [[] for _ in range(n_phases)]
    for jd in range(kernel[0]):
        for jh in range(kernel[1]):
            for jw in range(kernel[2]):
                phase = (r[0][jd] * stride[1] + r[1][jh]) * stride[2] + r[2][jw]
                within = ((q[0][jd] + margin[0]) * length[1] + q[1][jh] + margin[1]) \
                    * length[2] + q[2][jw] + margin[2]
                shifts.append(phase * V + within)
                per_phase[phase].append(within)
                positions.append((jd * dilation[0] * size[1] + jh * dilation[1]) * size[2]
                                 + jw * dilation[2])
    while len(shifts) % GROUP:  # filler offsets: the padding-only region after the planes
        shifts.append(n_phases * V)
        positions.append(0)
    back_starts, back_shifts = [0], []
    for within in per_phase:  # filler: a shift of -N reads the zeros after the outputs
        back_shifts += within + [-N] * (-len(within) % GROUP)
        back_starts.append(len(back_shifts))
    t = geometry.windows(geometry.dims - 1)
    ranges = t.offset_ranges()
    lo = max((o_lo for _, o_lo, _, _ in ranges), default=0)
    hi = min((o_hi for _, _, o_hi, _ in ranges), default=0)
    if len(ranges) < t.kernel_size or hi <= lo:
        lo = hi = 0  # no output has a full window: the checked loop does them all
    geo = [n_planes, *size, *out, *kernel, *stride, *dilation, *shift, *margin, *length, V, N,
           lo, hi]
    return (np.array(geo, np.int64), np.array(shifts, np.int64),
            np.array(positions, np.int32), np.array(back_starts, np.int64),
            np.array(back_shifts, np.int64))


_NO_INPUT = -(2**40)  # a first position that makes the flat position negative: no gradient


def _firsts(geometry: PoolGeometry, backward: bool = False):
    """PyTorch's initial argmax position of every window, per dimension (padded to 3).

    For the backward pass, a window that reads no input element along a dimension (a dilated
    window of padding only) gets :data:`_NO_INPUT`: its output is ``-inf`` whatever the input,
    so it passes no gradient (PyTorch adds it at its reported index, which lies outside the
    window and can lie outside the plane)."""
    firsts = []
    for t in (geometry.windows(d) for d in range(geometry.dims)):
        first = [t.first_valid(o) for o in range(t.output_size)]
        if backward:
            first = [f if t.valid_positions(o) else _NO_INPUT for o, f in enumerate(first)]
        firsts.append(np.array(first, np.int64))
    while len(firsts) < 3:
        firsts.insert(0, np.zeros(1, np.int64))
    return firsts


def _counts3(counts, dtype):
    counts = [np.asarray(c, dtype) for c in counts]
    while len(counts) < 3:
        counts.insert(0, np.ones(1, dtype))
    return counts


# --------------------------------------------------------------------------------------------
# Forward values: max and average pooling, one output row at a time
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _pick(e, v):
    """PyTorch's running max: ``e`` replaces ``v`` if strictly greater, or NaN."""
    return e if (e > v) | (e != e) else v


@njit(**_INLINE)
def _vertical(x, a, b, c, n, line, M, W, is_max):
    """``line[M:M + W]`` = the ``n`` (1 to 3) input rows starting at ``a, b, c`` combined
    column by column, in one pass (``is_max`` is tested outside the loops, which then
    vectorise)."""
    if n == 1:
        for w in range(W):
            line[U(M + w)] = x[U(a + w)]
    elif n == 2 and is_max:
        for w in range(W):
            line[U(M + w)] = _pick(x[U(b + w)], x[U(a + w)])
    elif n == 2:
        for w in range(W):
            line[U(M + w)] = x[U(a + w)] + x[U(b + w)]
    elif is_max:
        for w in range(W):
            line[U(M + w)] = _pick(x[U(c + w)], _pick(x[U(b + w)], x[U(a + w)]))
    else:
        for w in range(W):
            line[U(M + w)] = x[U(a + w)] + x[U(b + w)] + x[U(c + w)]


@njit(**_INLINE)
def _more_rows(x, rows, n, line, line2, M, W, is_max):
    """Rows ``rows[3:n]`` combined into the combined row ``line``, one pass each into the
    buffer not read (ping-pong: a select stored in place is a masked store); returns the
    buffer holding the result."""
    src = line
    for i in range(3, n):
        dst = line2 if i % 2 == 1 else line
        r = rows[i]
        if is_max:
            for w in range(W):
                dst[U(M + w)] = _pick(x[U(r + w)], src[U(M + w)])
        else:
            for w in range(W):
                dst[U(M + w)] = src[U(M + w)] + x[U(r + w)]
        src = dst
    return src


@njit(**_INLINE)
def _pairs2x2(x, a, b, out, o0, OW, div, cW, is_max):
    """A row of 2x2, stride-2 windows straight from the input rows at ``a`` and ``b`` (four
    loads an output; no combined row)."""
    if is_max:
        for ow in range(OW):
            e = x[U(a + 2 * ow)]  # loads first: LLVM vectorises the pairs
            f = x[U(a + 2 * ow + 1)]
            g = x[U(b + 2 * ow)]
            h = x[U(b + 2 * ow + 1)]
            out[U(o0 + ow)] = _pick(_pick(h, g), _pick(f, e))  # NaN-propagating: any order
    else:
        for ow in range(OW):
            e = x[U(a + 2 * ow)]
            f = x[U(a + 2 * ow + 1)]
            g = x[U(b + 2 * ow)]
            h = x[U(b + 2 * ow + 1)]
            out[U(o0 + ow)] = ((e + f) + (g + h)) / (div * cW[U(ow)])


@njit(**_INLINE)
def _along_w(src, s0, out, o0, OW, kW, sW, dW, div, cW, is_max):
    """A row of outputs along the combined row ``src``, window ``ow`` starting at ``s0 + ow *
    sW`` (the margins hold padding, so no window needs a check); unrolled for 2- and 3-wide
    windows of stride 2, whose strided loads LLVM vectorises."""
    if kW == 2 and sW == 2 and dW == 1 and is_max:
        for ow in range(OW):
            out[U(o0 + ow)] = _pick(src[U(s0 + 2 * ow + 1)], src[U(s0 + 2 * ow)])
    elif kW == 2 and sW == 2 and dW == 1:
        for ow in range(OW):
            out[U(o0 + ow)] = (src[U(s0 + 2 * ow)] + src[U(s0 + 2 * ow + 1)]) \
                / (div * cW[U(ow)])
    elif kW == 3 and sW == 2 and dW == 1 and is_max:
        for ow in range(OW):
            e = src[U(s0 + 2 * ow)]
            f = src[U(s0 + 2 * ow + 1)]
            g = src[U(s0 + 2 * ow + 2)]
            out[U(o0 + ow)] = _pick(g, _pick(f, e))
    elif kW == 3 and sW == 2 and dW == 1:
        for ow in range(OW):
            e = src[U(s0 + 2 * ow)]
            f = src[U(s0 + 2 * ow + 1)]
            g = src[U(s0 + 2 * ow + 2)]
            out[U(o0 + ow)] = (e + f + g) / (div * cW[U(ow)])
    else:
        for ow in range(OW):
            v = src[U(s0 + ow * sW)]
            for jw in range(1, kW):
                e = src[U(s0 + ow * sW + jw * dW)]
                v = _pick(e, v) if is_max else v + e
            out[U(o0 + ow)] = v if is_max else v / (div * cW[U(ow)])


@njit(**_JIT)
def _rows(x, out, geo, cD, cH, cW, is_max, p0, p1):
    """Max (``is_max``) or average pooling of planes ``p0:p1`` of the flat ``x`` into the
    flat ``out``; the average divides by ``cD[od] * cH[oh] * cW[ow]``."""
    D, H, W, OD, OH, OW = geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    kD, kH, kW, sD, sH, sW = geo[7], geo[8], geo[9], geo[10], geo[11], geo[12]
    dD, dH, dW, pD, pH, pW = geo[13], geo[14], geo[15], geo[16], geo[17], geo[18]
    M = -pW  # margins of padding around the combined rows: windows along W need no checks
    R = max(0, (OW - 1) * sW + (kW - 1) * dW + pW - (W - 1))
    pad = np.full(1, -np.inf if is_max else 0.0, x.dtype)[0]  # in the input's dtype
    line = np.full(M + W + R, pad, x.dtype)
    line2 = line.copy()
    rows = np.empty(kD * kH, np.int64)
    direct = kW == 2 and sW == 2 and dW == 1 and M == 0 and R == 0  # 2x2/2 from the input
    for p in range(p0, p1):
        for od in range(OD):
            for oh in range(OH):
                n = 0  # the window's input rows inside the input, in scan order
                for jd in range(kD):
                    d = od * sD + pD + jd * dD
                    for jh in range(kH):
                        h = oh * sH + pH + jh * dH
                        if 0 <= d < D and 0 <= h < H:
                            rows[n] = ((p * D + d) * H + h) * W
                            n += 1
                o0 = ((p * OD + od) * OH + oh) * OW
                div = cD[od] * cH[oh]
                # the first rows as scalars, and ``line`` itself (not a phi of the buffers):
                # LLVM then knows what aliases what, and vectorises without checks
                a = rows[0] if n > 0 else 0
                b = rows[1] if n > 1 else 0
                c = rows[2] if n > 2 else 0
                if n == 2 and direct:
                    _pairs2x2(x, a, b, out, o0, OW, div, cW, is_max)
                elif n <= 3:
                    if n > 0:
                        _vertical(x, a, b, c, n, line, M, W, is_max)
                    else:  # a dilated window of padding only
                        for w in range(W):
                            line[U(M + w)] = pad
                    _along_w(line, 0, out, o0, OW, kW, sW, dW, div, cW, is_max)
                else:
                    _vertical(x, a, b, c, 3, line, M, W, is_max)
                    src = _more_rows(x, rows, n, line, line2, M, W, is_max)
                    _along_w(src, 0, out, o0, OW, kW, sW, dW, div, cW, is_max)


# --------------------------------------------------------------------------------------------
# Phase planes
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _fill(x, x0, geo, ph):
    """Copy the plane at ``x[x0:]`` into its phase planes ``ph``: only the positions that
    hold input elements are written (the rest was filled with padding once, per call)."""
    D, H, W = geo[1], geo[2], geo[3]
    sD, sH, sW = geo[10], geo[11], geo[12]
    MD, MH, MW, LD, LH, LW, V = geo[19], geo[20], geo[21], geo[22], geo[23], geo[24], geo[25]
    n = min(W // sW, LW - MW)  # columns where every phase lies inside the row
    for d in range(min(D, (LD - MD) * sD)):
        for h in range(min(H, (LH - MH) * sH)):
            row = ((d % sD) * sH + h % sH) * sW * V + ((d // sD + MD) * LH + h // sH + MH) * LW
            src = x0 + (d * H + h) * W
            if sW == 2:
                for c in range(n):  # both loads first: LLVM vectorises the pair
                    even = x[U(src + 2 * c)]
                    odd = x[U(src + 2 * c + 1)]
                    ph[U(row + MW + c)] = even
                    ph[U(row + V + MW + c)] = odd
                if W % 2 == 1 and MW + n < LW:  # the last column of an odd row
                    ph[U(row + MW + n)] = x[U(src + W - 1)]
            else:
                for rW in range(sW):
                    for c in range(min((W - rW + sW - 1) // sW, LW - MW)):
                        ph[U(row + rW * V + MW + c)] = x[U(src + c * sW + rW)]


@njit(**_JIT)
def _unfill(pg, geo, out, o0):
    """Transpose of :func:`_fill`: ``out[o0:]`` (one plane) gets each input's phase-plane
    element (0 where no phase position holds it)."""
    D, H, W = geo[1], geo[2], geo[3]
    sD, sH, sW = geo[10], geo[11], geo[12]
    MD, MH, MW, LD, LH, LW, V = geo[19], geo[20], geo[21], geo[22], geo[23], geo[24], geo[25]
    n = min(W // sW, LW - MW)
    covered = min(W, (LW - MW) * sW)  # columns that some phase position holds
    for d in range(D):
        for h in range(H):
            dst = o0 + (d * H + h) * W
            a = d // sD + MD
            b = h // sH + MH
            start = 0  # columns from here on get 0
            if a < LD and b < LH:
                row = ((d % sD) * sH + h % sH) * sW * V + (a * LH + b) * LW
                start = covered
                if sW == 2:
                    for c in range(n):
                        even = pg[U(row + MW + c)]
                        odd = pg[U(row + V + MW + c)]
                        out[U(dst + 2 * c)] = even
                        out[U(dst + 2 * c + 1)] = odd
                    if covered % 2 == 1:  # the last column of an odd row
                        out[U(dst + covered - 1)] = pg[U(row + MW + n)]
                else:
                    for rW in range(sW):
                        for c in range((covered - rW + sW - 1) // sW):
                            out[U(dst + c * sW + rW)] = pg[U(row + rW * V + MW + c)]
            for w in range(start, W):
                out[U(dst + w)] = 0


# --------------------------------------------------------------------------------------------
# Argmax: max pooling with indices, and its backward
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _argmax(x, out, index, g, grad_input, backward, geo, shifts, positions, fD, fH, fW, p0,
            p1):
    """Values and PyTorch indices of planes ``p0:p1`` into the flat ``out``/``index``; with
    ``backward``, add the flat ``grad`` at each window's winner in the flat ``grad_input``
    instead."""
    D, H, W, OD, OH, OW = geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    sD, sH, sW, pD, pH, pW = geo[10], geo[11], geo[12], geo[16], geo[17], geo[18]
    LH, LW, V, N = geo[23], geo[24], geo[25], geo[26]
    n_ph = sD * sH * sW * V
    ph = np.empty(n_ph + N, x.dtype)
    for i in range(n_ph + N):  # padding, and the filler offsets' region: never a winner
        ph[U(i)] = -np.inf
    none = np.empty(N, np.int32)
    for i in range(N):
        none[U(i)] = -1  # nothing taken yet: PyTorch's initial index
    best = np.empty(N, x.dtype)
    best2 = np.empty(N, x.dtype)
    at = np.empty(N, np.int32)
    at2 = np.empty(N, np.int32)
    plane = D * H * W
    for p in range(p0, p1):
        _fill(x, p * plane, geo, ph)
        src = ph[n_ph:]
        src_at = none
        for j in range(0, shifts.shape[0], 4):
            s0, s1, s2, s3 = shifts[j], shifts[j + 1], shifts[j + 2], shifts[j + 3]
            q0, q1, q2, q3 = positions[j], positions[j + 1], positions[j + 2], positions[j + 3]
            even = (j // 4) % 2 == 0
            dst = best if even else best2
            dst_at = at if even else at2
            for i in range(N):  # in scan order: strictly greater, or NaN, replaces
                m = src[U(i)]
                k = src_at[U(i)]
                e = ph[U(s0 + i)]
                take = (e > m) | (e != e)
                m = e if take else m
                k = q0 if take else k
                e = ph[U(s1 + i)]
                take = (e > m) | (e != e)
                m = e if take else m
                k = q1 if take else k
                e = ph[U(s2 + i)]
                take = (e > m) | (e != e)
                m = e if take else m
                k = q2 if take else k
                e = ph[U(s3 + i)]
                take = (e > m) | (e != e)
                dst[U(i)] = e if take else m
                dst_at[U(i)] = q3 if take else k
            src = dst
            src_at = dst_at
        if backward:  # zero this plane here, not all of grad_input upfront: it stays in cache
            for i in range(plane):
                grad_input[U(p * plane + i)] = 0
        for od in range(OD):
            for oh in range(OH):
                r0 = (od * LH + oh) * LW
                o0 = ((p * OD + od) * OH + oh) * OW
                base = ((od * sD + pD) * H + oh * sH + pH) * W + pW
                first = (fD[od] * H + fH[oh]) * W
                if backward:
                    for ow in range(OW):
                        k = src_at[U(r0 + ow)]
                        where = base + ow * sW + k if k >= 0 else first + fW[U(ow)]
                        if 0 <= where < plane:  # a window of padding only has no input
                            grad_input[U(p * plane + where)] += g[U(o0 + ow)]
                else:
                    for ow in range(OW):
                        k = src_at[U(r0 + ow)]
                        f = first + fW[U(ow)]
                        out[U(o0 + ow)] = src[U(r0 + ow)]
                        index[U(o0 + ow)] = base + ow * sW + k if k >= 0 else f


@njit(**_JIT)
def _argmax2x2(x, out, index, g, grad_input, backward, geo, p0, p1):
    """:func:`_argmax` for 2x2 windows of stride 2 that tile the plane exactly (no padding,
    even sizes; 3-d: depth kernel and stride 1): every input element in exactly one window,
    so the backward writes each gradient element once (no zeroing, no phase planes)."""
    D, H, W, OH, OW = geo[1], geo[2], geo[3], geo[5], geo[6]
    zero = np.zeros(1, x.dtype)[0]
    won = np.empty(OW, np.int32)  # the winners of one row of windows
    for p in range(p0, p1):
        for d in range(D):
            for oh in range(OH):
                a = ((p * D + d) * H + 2 * oh) * W  # the window's two input rows
                b = a + W
                o0 = ((p * D + d) * OH + oh) * OW
                i0 = (d * H + 2 * oh) * W  # the first row's index within the plane
                if backward:  # winners first, then each gradient row in one stream
                    for ow in range(OW):
                        won[U(ow)] = _winner4(x[U(a + 2 * ow)], x[U(a + 2 * ow + 1)],
                                              x[U(b + 2 * ow)], x[U(b + 2 * ow + 1)])[1]
                    for row in range(2):
                        r = a if row == 0 else b
                        for ow in range(OW):
                            k = won[U(ow)] - 2 * row
                            v = g[U(o0 + ow)]
                            grad_input[U(r + 2 * ow)] = v if k == 0 else zero
                            grad_input[U(r + 2 * ow + 1)] = v if k == 1 else zero
                else:
                    for ow in range(OW):
                        m, k = _winner4(x[U(a + 2 * ow)], x[U(a + 2 * ow + 1)],
                                        x[U(b + 2 * ow)], x[U(b + 2 * ow + 1)])
                        out[U(o0 + ow)] = m
                        index[U(o0 + ow)] = i0 + 2 * ow + (k & 1) + (k >> 1) * W


@njit(**_INLINE)
def _winner4(e0, e1, e2, e3):
    """PyTorch's max of a 2x2 window in scan order and its position 0-3: the first element
    to start with, then strictly greater, or NaN, replaces (selects, no branches)."""
    t = (e1 > e0) | (e1 != e1)
    m = e1 if t else e0
    k = 1 if t else 0
    t = (e2 > m) | (e2 != e2)
    m = e2 if t else m
    k = 2 if t else k
    t = (e3 > m) | (e3 != e3)
    m = e3 if t else m
    k = 3 if t else k
    return m, k


@njit(**_INLINE)
def _load_row(x, a, ok, row, M, W, pad):
    """``row[M:M + W]`` = the input row at ``a`` if ``ok``, else padding."""
    if ok:
        for w in range(W):
            row[U(M + w)] = x[U(a + w)]
    else:
        for w in range(W):
            row[U(M + w)] = pad


@njit(**_INLINE)
def _column_winners(r0, r1, r2, first, vm, vr, M, W):
    """Per column of three padded rows, PyTorch's running max from the top (strictly
    greater, or NaN, replaces; padding rows are -inf, never taken) and its row, starting from
    the first real row ``first``: ``vm[M:M + W]``, ``vr[M:M + W]``."""
    for i in range(M, M + W):
        m = r0[U(i)]
        r = first
        e = r1[U(i)]
        t = (e > m) | (e != e)
        m = e if t else m
        r = 1 if t else r
        e = r2[U(i)]
        t = (e > m) | (e != e)
        vm[U(i)] = e if t else m
        vr[U(i)] = 2 if t else r


@njit(**_INLINE)
def _beats(e, re, m, rm):
    """Whether column winner ``(e, row re)`` replaces the window's ``(m, row rm)`` in
    PyTorch's row-major scan, columns taken left to right: a NaN if it comes later (row
    ``re >= rm``) or beats a number; a number if no NaN is held and it is greater, or equal
    and earlier (smaller row). Padding columns have row 100: never earlier, never NaN."""
    return ((e != e) & ((m == m) | (re >= rm))) | \
        ((m == m) & ((e > m) | ((e == m) & (re < rm))))


@njit(**_JIT)
def _argmax3x3(x, out, index, geo, p0, p1):
    """Values and PyTorch indices (as :func:`_argmax`) for 3x3 windows of stride 2, padding 0
    or 1 (3-d: depth kernel and stride 1), streamed by output rows: the window's three input
    rows are copied into rows with -inf margins; then each column's winner over the rows,
    and each window's over its three columns (:func:`_beats` keeps PyTorch's row-major scan
    order). (The backward stays on the phase planes: measured faster there, 35 against 45 ms
    on the benchmark's tensor.)"""
    D, H, W, OH, OW, pH, pW = geo[1], geo[2], geo[3], geo[5], geo[6], geo[17], geo[18]
    M = -pW
    L = max(M + W, 2 * OW + 1)  # margins: every window inside the padded rows
    pad = np.full(1, -np.inf, x.dtype)[0]
    r0, r1, r2 = np.full(L, pad, x.dtype), np.full(L, pad, x.dtype), np.full(L, pad, x.dtype)
    vm = np.full(L, pad, x.dtype)
    vr = np.full(L, 100, np.int32)  # padding columns: never a winner
    for p in range(p0, p1):
        for d in range(D):
            base = (p * D + d) * H * W
            for oh in range(OH):
                h0 = 2 * oh + pH  # the window's first row (-1: padding)
                _load_row(x, base + h0 * W, 0 <= h0 < H, r0, M, W, pad)
                _load_row(x, base + (h0 + 1) * W, h0 + 1 < H, r1, M, W, pad)
                _load_row(x, base + (h0 + 2) * W, h0 + 2 < H, r2, M, W, pad)
                _column_winners(r0, r1, r2, 1 if h0 < 0 else 0, vm, vr, M, W)
                o0 = ((p * D + d) * OH + oh) * OW
                for ow in range(OW):
                    c = 2 * ow
                    m, rm, j = vm[U(c)], vr[U(c)], 0
                    e, re = vm[U(c + 1)], vr[U(c + 1)]
                    t = _beats(e, re, m, rm)
                    m, rm, j = (e if t else m), (re if t else rm), (1 if t else j)
                    e, re = vm[U(c + 2)], vr[U(c + 2)]
                    t = _beats(e, re, m, rm)
                    m, rm, j = (e if t else m), (re if t else rm), (2 if t else j)
                    out[U(o0 + ow)] = m
                    index[U(o0 + ow)] = (d * H + h0 + rm) * W + c + pW + j


# --------------------------------------------------------------------------------------------
# Average backward
# --------------------------------------------------------------------------------------------


@njit(**_JIT)
def _avg_backward(g, grad_input, geo, back_starts, back_shifts, cD, cH, cW, p0, p1):
    """Transpose of the average forward, planes ``p0:p1``: every input gets ``g / divisor``
    of each window that reads it."""
    D, H, W, OD, OH, OW = geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    LH, LW, V, N = geo[23], geo[24], geo[25], geo[26]
    n_phases = geo[10] * geo[11] * geo[12]
    pg = np.empty(n_phases * V, g.dtype)
    share = np.empty(V + N + V, g.dtype)  # g / divisor at V + output; zeros around it
    for i in range(V + N + V):
        share[U(i)] = 0
    plane = D * H * W
    for p in range(p0, p1):
        for od in range(OD):
            for oh in range(OH):
                r0 = V + (od * LH + oh) * LW
                o0 = ((p * OD + od) * OH + oh) * OW
                c = cD[od] * cH[oh]
                for ow in range(OW):
                    share[U(r0 + ow)] = g[U(o0 + ow)] / (c * cW[U(ow)])
        for phase in range(n_phases):
            dst = phase * V
            lo, hi = back_starts[phase], back_starts[phase + 1]
            if lo == hi:  # no window reads this phase
                for t in range(V):
                    pg[U(dst + t)] = 0
            for j in range(lo, hi, 4):
                s0, s1, s2, s3 = V - back_shifts[j], V - back_shifts[j + 1], \
                    V - back_shifts[j + 2], V - back_shifts[j + 3]
                if j == lo:
                    for t in range(V):
                        pg[U(dst + t)] = share[U(s0 + t)] + share[U(s1 + t)] \
                            + share[U(s2 + t)] + share[U(s3 + t)]
                else:
                    for t in range(V):
                        pg[U(dst + t)] = pg[U(dst + t)] + share[U(s0 + t)] \
                            + share[U(s1 + t)] + share[U(s2 + t)] + share[U(s3 + t)]
        _unfill(pg, geo, grad_input, p * plane)


# --------------------------------------------------------------------------------------------
# Threads: each driver splits the planes into ``n`` contiguous chunks, one per prange
# iteration (every chunk allocates its own buffers inside the serial kernel)
# --------------------------------------------------------------------------------------------

_PAR = {**_JIT, "parallel": True}


@njit(**_PAR)
def _rows_par(x, out, geo, cD, cH, cW, is_max, n):
    P = geo[0]
    for c in prange(n):
        _rows(x, out, geo, cD, cH, cW, is_max, P * c // n, P * (c + 1) // n)


@njit(**_PAR)
def _argmax_par(x, out, index, g, grad_input, backward, geo, shifts, positions, fD, fH, fW,
                n):
    P = geo[0]
    for c in prange(n):
        _argmax(x, out, index, g, grad_input, backward, geo, shifts, positions, fD, fH, fW,
                P * c // n, P * (c + 1) // n)


@njit(**_PAR)
def _argmax2x2_par(x, out, index, g, grad_input, backward, geo, n):
    P = geo[0]
    for c in prange(n):
        _argmax2x2(x, out, index, g, grad_input, backward, geo, P * c // n, P * (c + 1) // n)


@njit(**_PAR)
def _argmax3x3_par(x, out, index, geo, n):
    P = geo[0]
    for c in prange(n):
        _argmax3x3(x, out, index, geo, P * c // n, P * (c + 1) // n)


@njit(**_PAR)
def _avg_backward_par(g, grad_input, geo, back_starts, back_shifts, cD, cH, cW, n):
    P = geo[0]
    for c in prange(n):
        _avg_backward(g, grad_input, geo, back_starts, back_shifts, cD, cH, cW, P * c // n,
                      P * (c + 1) // n)


# --------------------------------------------------------------------------------------------
# Entry points (planes (P, *spatial) in, results written into the given arrays)
# --------------------------------------------------------------------------------------------


def _tiles2x2(geometry: PoolGeometry) -> bool:
    """2x2 windows of stride 2 that tile the last two dimensions exactly (the common
    downsampling), with depth kernel and stride 1 in 3-d: :func:`_argmax2x2` applies."""
    lead = geometry.dims - 2
    last = zip(geometry.kernel_size[lead:], geometry.stride[lead:], geometry.padding[lead:],
               geometry.dilation[lead:], geometry.input_size[lead:],
               geometry.output_size[lead:], strict=True)
    if geometry.dims < 2 or any((k, s, p, d, n) != (2, 2, 0, 1, 2 * o)
                                for k, s, p, d, n, o in last):
        return False
    return lead == 0 or (geometry.kernel_size[0], geometry.stride[0], geometry.padding[0],
                         geometry.dilation[0]) == (1, 1, 0, 1)


def _windows3x3(geometry: PoolGeometry) -> bool:
    """3x3 windows of stride 2, padding 0 or 1, in the last two dimensions (depth kernel and
    stride 1 in 3-d): :func:`_argmax3x3` applies."""
    if geometry.dims < 2:
        return False
    lead = geometry.dims - 2
    if lead and (geometry.kernel_size[0], geometry.stride[0], geometry.padding[0],
                 geometry.dilation[0]) != (1, 1, 0, 1):
        return False
    last = zip(geometry.kernel_size[lead:], geometry.stride[lead:], geometry.padding[lead:],
               geometry.dilation[lead:], strict=True)
    return all(k == 3 and s == 2 and p <= 1 and d == 1 for k, s, p, d in last)


def _run(serial, parallel, n_threads, n_planes, *args):
    """``serial`` on every plane (one thread), or ``parallel`` on ``n_threads`` chunks."""
    if n_threads > 1:
        parallel(*args, n_threads)
    else:
        serial(*args, 0, n_planes)


def max_pool(x: np.ndarray, geometry: PoolGeometry, out: np.ndarray, return_indices: bool,
             index: np.ndarray | None = None, n: int = 1):
    """Max pooling of planes ``x`` ``(P, *S)`` into ``out`` ``(P, *out)`` on ``n`` threads;
    indices (into ``index`` when given) or None."""
    geo, shifts, positions, _, _ = _plan(geometry, x.shape[0])
    if not return_indices:
        one = np.ones(1, x.dtype)
        _run(_rows, _rows_par, n, x.shape[0], x.reshape(-1), out.reshape(-1), geo, one, one,
             one, True)
        return None
    index = np.empty(out.shape, np.int64) if index is None else index
    none = np.empty(0, x.dtype)
    if _tiles2x2(geometry):
        _run(_argmax2x2, _argmax2x2_par, n, x.shape[0], x.reshape(-1), out.reshape(-1),
             index.reshape(-1), none, none, False, geo)
        return index
    if _windows3x3(geometry):
        _run(_argmax3x3, _argmax3x3_par, n, x.shape[0], x.reshape(-1), out.reshape(-1),
             index.reshape(-1), geo)
        return index
    fD, fH, fW = _firsts(geometry)
    _run(_argmax, _argmax_par, n, x.shape[0], x.reshape(-1), out.reshape(-1),
         index.reshape(-1), none, none, False, geo, shifts, positions, fD, fH, fW)
    return index


def max_pool_backward(g: np.ndarray, x: np.ndarray, geometry: PoolGeometry,
                      grad_input: np.ndarray, n: int = 1) -> None:
    """Add ``g`` at the argmax of every window (recomputed from ``x``) into ``grad_input``,
    on ``n`` threads."""
    geo, shifts, positions, _, _ = _plan(geometry, x.shape[0])
    if _tiles2x2(geometry):
        _run(_argmax2x2, _argmax2x2_par, n, x.shape[0], x.reshape(-1), np.empty(0, x.dtype),
             np.empty(0, np.int64), g.reshape(-1), grad_input.reshape(-1), True, geo)
        return
    fD, fH, fW = _firsts(geometry, backward=True)
    _run(_argmax, _argmax_par, n, x.shape[0], x.reshape(-1),
         np.empty(0, x.dtype), np.empty(0, np.int64), g.reshape(-1), grad_input.reshape(-1),
         True, geo, shifts, positions, fD, fH, fW)


def avg_pool(x: np.ndarray, geometry: PoolGeometry, out: np.ndarray, counts, n: int = 1):
    """Window sums of ``x`` divided by ``counts[0][o0] * counts[1][o1] * ...``, on ``n``
    threads."""
    cD, cH, cW = _counts3(counts, x.dtype)
    geo = _plan(geometry, x.shape[0])[0]
    _run(_rows, _rows_par, n, x.shape[0], x.reshape(-1), out.reshape(-1), geo, cD, cH, cW,
         False)


def avg_pool_backward(g: np.ndarray, geometry: PoolGeometry, grad_input: np.ndarray,
                      counts, n: int = 1) -> None:
    """Transpose of :func:`avg_pool`: each input gets the sum of ``g / divisor`` of its
    windows, on ``n`` threads."""
    cD, cH, cW = _counts3(counts, g.dtype)
    geo, _, _, back_starts, back_shifts = _plan(geometry, g.shape[0])
    _run(_avg_backward, _avg_backward_par, n, g.shape[0], g.reshape(-1), grad_input.reshape(-1),
         geo, back_starts, back_shifts, cD, cH, cW)
