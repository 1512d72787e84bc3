"""Optional compiled kernels (numba) for the RoI ops of :mod:`poolkit.numpy.roi`.

RoI Align runs on the plan the NumPy path builds (per box, the row weights ``ay (K, PH, H)``
and column weights ``ax (K, PW, W)`` of every bin, and each bin's span of non-zero weights):
for each box, channel and bin row, the bin row's input rows are combined into one line
(contiguous, vectorised), then each bin of the row is a short dot product of that line with
its column weights. The backward is the transpose, adding into the box's window of the
gradient. That is ``2 g_h W' + 2 g_w`` multiply-adds per bin and channel instead of the four
per sample (``4 g_h g_w``) of a per-sample loop. RoI pooling is the direct scan of each bin
(the first strictly greater value wins; NaN never does).

Imported (and compiled on first call, cached on disk) only when the numba backend is selected.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "boundscheck": False, "error_model": "numpy"}
_FLT_MAX = float(np.finfo(np.float32).max)


@njit(**_JIT)
def _box_columns(clo, chi, k):
    first, last = 1 << 62, 0
    for pw in range(clo.shape[1]):
        if chi[k, pw] > clo[k, pw]:
            first = min(first, clo[k, pw])
            last = max(last, chi[k, pw])
    return first, last


@njit(**_JIT)
def roi_align_forward(x, batch_index, ay, ax, rlo, rhi, clo, chi, count, out):
    n_boxes, channels, ph_size, pw_size = out.shape
    line = np.zeros(x.shape[3], x.dtype)
    for k in range(n_boxes):
        b = batch_index[k]
        w0, w1 = _box_columns(clo, chi, k)
        for c in range(channels):
            for ph in range(ph_size):
                for w in range(w0, w1):
                    line[w] = 0
                for h in range(rlo[k, ph], rhi[k, ph]):
                    a = ay[k, ph, h]
                    for w in range(w0, w1):
                        line[w] += a * x[b, c, h, w]
                for pw in range(pw_size):
                    total = 0.0
                    for w in range(clo[k, pw], chi[k, pw]):
                        total += ax[k, pw, w] * line[w]
                    out[k, c, ph, pw] = total / count[k]


@njit(**_JIT)
def roi_align_backward(grad, batch_index, ay, ax, rlo, rhi, clo, chi, count, grad_input):
    n_boxes, channels, ph_size, pw_size = grad.shape
    line = np.zeros(grad_input.shape[3], grad_input.dtype)
    for k in range(n_boxes):
        b = batch_index[k]
        w0, w1 = _box_columns(clo, chi, k)
        for c in range(channels):
            for ph in range(ph_size):
                if rhi[k, ph] <= rlo[k, ph]:
                    continue
                for w in range(w0, w1):
                    line[w] = 0
                for pw in range(pw_size):
                    g = grad[k, c, ph, pw] / count[k]
                    for w in range(clo[k, pw], chi[k, pw]):
                        line[w] += g * ax[k, pw, w]
                for h in range(rlo[k, ph], rhi[k, ph]):
                    a = ay[k, ph, h]
                    for w in range(w0, w1):
                        grad_input[b, c, h, w] += a * line[w]


@njit(**_JIT)
def roi_pool_forward(x, batch_index, hs, he, ws, we, out, index):
    n_boxes, channels, ph_size, pw_size = out.shape
    width = x.shape[3]
    for k in range(n_boxes):
        b = batch_index[k]
        for c in range(channels):
            for ph in range(ph_size):
                for pw in range(pw_size):
                    empty = he[k, ph] <= hs[k, ph] or we[k, pw] <= ws[k, pw]
                    best = 0.0 if empty else -_FLT_MAX
                    arg = -1
                    for h in range(hs[k, ph], he[k, ph]):
                        for w in range(ws[k, pw], we[k, pw]):
                            v = x[b, c, h, w]
                            if v > best:
                                best = v
                                arg = h * width + w
                    out[k, c, ph, pw] = best
                    index[k, c, ph, pw] = arg
