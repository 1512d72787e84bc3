"""Optional compiled kernels (numba) for the RoI ops of :mod:`poolkit.numpy.roi`.

RoI Align runs on the plan the NumPy path builds (per box, the row weights ``ay (K, PH, H)``
and column weights ``ax (K, PW, W)`` of every bin, and each bin's span of non-zero weights) and
on a channels-last copy of the input: each bin adds, for each of its non-zero positions
``(h, w)`` (about ``(g_h + 1)(g_w + 1)``, where a per-sample loop reads ``4 g_h g_w``), the
weight ``ay[h] ax[w]`` times the contiguous channel vector at ``(h, w)`` -- one long
vectorised loop instead of a scalar one per channel. The backward is the transpose, into a
channels-last gradient. Each transpose costs one pass over the map. RoI pooling is the direct
scan of each bin (the first strictly greater value wins; NaN never does).

Imported (and compiled on first call, cached on disk) only when the numba backend is selected.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "boundscheck": False, "error_model": "numpy"}
_FLT_MAX = float(np.finfo(np.float32).max)


@njit(**_JIT)
def roi_align_forward(x, batch_index, ay, ax, rlo, rhi, clo, chi, count, out):
    """``x`` channels-last ``(N, H, W, C)``, ``out`` ``(K, C, PH, PW)``: each bin adds its
    non-zero ``ay[h] * ax[w]`` times the channel vector at ``(h, w)`` into a per-box buffer
    ``(PH, PW, C)`` that stays in cache, written out transposed once per box."""
    n_boxes, channels, ph_size, pw_size = out.shape
    acc = np.empty((ph_size, pw_size, channels), out.dtype)
    for k in range(n_boxes):
        b = batch_index[k]
        inverse = 1 / count[k]
        for ph in range(ph_size):
            for pw in range(pw_size):
                line = acc[ph, pw]
                for c in range(channels):
                    line[c] = 0
                for h in range(rlo[k, ph], rhi[k, ph]):
                    for w in range(clo[k, pw], chi[k, pw]):
                        weight = ay[k, ph, h] * ax[k, pw, w]
                        if weight != 0:
                            column = x[b, h, w]
                            for c in range(channels):
                                line[c] += weight * column[c]
        for c in range(channels):
            for ph in range(ph_size):
                for pw in range(pw_size):
                    out[k, c, ph, pw] = acc[ph, pw, c] * inverse


@njit(**_JIT)
def roi_align_backward(grad, batch_index, ay, ax, rlo, rhi, clo, chi, count, grad_input):
    """The transpose: ``grad`` ``(K, C, PH, PW)``, ``grad_input`` channels-last
    ``(N, H, W, C)``, boxes in order (no two writers)."""
    n_boxes, channels, ph_size, pw_size = grad.shape
    g = np.empty((ph_size, pw_size, channels), grad.dtype)
    for k in range(n_boxes):
        b = batch_index[k]
        inverse = 1 / count[k]
        for c in range(channels):
            for ph in range(ph_size):
                for pw in range(pw_size):
                    g[ph, pw, c] = grad[k, c, ph, pw] * inverse
        for ph in range(ph_size):
            for pw in range(pw_size):
                line = g[ph, pw]
                for h in range(rlo[k, ph], rhi[k, ph]):
                    for w in range(clo[k, pw], chi[k, pw]):
                        weight = ay[k, ph, h] * ax[k, pw, w]
                        if weight != 0:
                            column = grad_input[b, h, w]
                            for c in range(channels):
                                column[c] += weight * line[c]


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


@njit(**_JIT)
def to_channels_last(x, out):
    """``out[n, h, w, c] = x[n, c, h, w]``, one ``(C, W)`` block (in cache) per row."""
    n_images, channels, height, width = x.shape
    for n in range(n_images):
        for h in range(height):
            for c in range(channels):
                for w in range(width):
                    out[n, h, w, c] = x[n, c, h, w]


@njit(**_JIT)
def to_channels_first(x, out):
    """``out[n, c, h, w] = x[n, h, w, c]``, one ``(W, C)`` block per row."""
    n_images, height, width, channels = x.shape
    for n in range(n_images):
        for h in range(height):
            for c in range(channels):
                for w in range(width):
                    out[n, c, h, w] = x[n, h, w, c]
