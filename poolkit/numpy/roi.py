r"""Region-of-interest pooling: RoI pooling, RoI Align and position-sensitive RoI Align.

Each box of a feature map ``input`` ``(N, C, H, W)`` becomes a fixed ``(C, PH, PW)`` feature,
with ``torchvision.ops``' names, arguments and semantics (its C++ CPU kernels):

``roi_pool(input, boxes, output_size, spatial_scale=1.0)`` (Girshick, Fast R-CNN, 2015)
    box corners rounded to the nearest cell (half away from zero), the box of
    ``max(x2 - x1 + 1, 1)`` cells split into ``PH x PW`` bins ``[floor(i * b), ceil((i+1) * b))``
    and the maximum taken over each bin; an empty bin gives 0, an index of -1 and no gradient.
``roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False)``
    (He et al., Mask R-CNN, 2017) no rounding: each bin is the mean of ``g_h x g_w`` bilinear
    samples at the centres of a regular grid (``g = sampling_ratio``, or ``ceil(roi / P)``
    when ``sampling_ratio <= 0``); ``aligned=True`` shifts the box by half a pixel so that
    pixel centres sit at ``i + 0.5``; ``aligned=False`` stretches boxes to at least 1 x 1.
``ps_roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1)``
    (Dai et al., R-FCN, 2016, with RoI Align's sampling) bin ``(i, j)`` of output channel ``c``
    reads input channel ``(c * PH + i) * PW + j``; always half-pixel, never stretched.

A sample at ``(y, x)`` outside ``[-1, H] x [-1, W]`` contributes 0; one inside is clamped to
the map (``y <= 0 -> 0``; at or past the last row it is that row) and bilinearly
interpolated. Boxes are a ``(K, 5)`` array of ``[batch_index, x1, y1, x2, y2]`` or a list of
``N`` arrays ``(K_i, 4)`` (one per image); coordinates are in the input image's frame and are
multiplied by ``spatial_scale`` to reach the feature map's.

The bilinear weights of every bin factor into a row part and a column part, so the engine
builds, per box, two small weight matrices ``A_y (PH, H)`` and ``A_x (PW, W)`` (the sum of
the bins' samples' interpolation weights) and computes ``A_y X A_x^T / count`` -- two matrix
products per box in pure NumPy, or a numba loop over each bin's non-zero rows and columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poolkit.geometry import RoIArgs, roi_args
from poolkit.numpy import _backend
from poolkit.numpy._arrays import as_float_array, compute_dtype

#: Elements of the dense intermediate of :meth:`AlignPlan.entries` per chunk of boxes.
_ENTRY_CHUNK = 1 << 22
#: torchvision's initial maximum of RoI pooling, whatever the dtype (C's ``FLT_MAX``).
FLT_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class RoIs:
    """Boxes in one layout: ``batch_index`` ``(K,)`` int64, ``boxes`` ``(K, 4)``
    ``[x1, y1, x2, y2]`` in the compute dtype."""

    batch_index: np.ndarray
    boxes: np.ndarray


def _real_array(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def as_rois(boxes, batch_size: int, dtype=np.float64) -> RoIs:
    """Validate ``boxes`` (a ``(K, 5)`` array or a list of ``batch_size`` ``(K_i, 4)``
    arrays) against a batch of ``batch_size`` images; ``ValueError`` naming what is wrong."""
    if isinstance(boxes, (list, tuple)):
        if len(boxes) != batch_size:
            raise ValueError(
                f"boxes is a list of {len(boxes)} arrays but the input has batch size "
                f"{batch_size}; give one (K_i, 4) array per image"
            )
        parts = [_real_array(b, f"boxes[{i}]") for i, b in enumerate(boxes)]
        for i, part in enumerate(parts):
            if part.ndim != 2 or part.shape[1] != 4:
                raise ValueError(
                    f"boxes[{i}] must have shape (K, 4) [x1, y1, x2, y2], got {part.shape}"
                )
        index = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)]
                               + [np.zeros(0, np.int64)])
        coords = np.concatenate([p.astype(dtype) for p in parts] + [np.zeros((0, 4), dtype)])
    else:
        array = _real_array(boxes, "boxes")
        if array.ndim != 2 or array.shape[1] != 5:
            hint = (" (a (K, 4) array must be given as a list with one array per image)"
                    if array.ndim == 2 and array.shape[1] == 4 else "")
            raise ValueError(
                f"boxes must be a (K, 5) array [batch_index, x1, y1, x2, y2] or a list of "
                f"(K_i, 4) arrays, got an array of shape {array.shape}{hint}"
            )
        first = array[:, 0].astype(np.float64)
        bad = ~np.isfinite(first) | (first != np.floor(first)) | (first < 0) \
            | (first >= batch_size)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(
                f"boxes[{k}, 0] (batch index {array[k, 0]!r}) must be an integer in "
                f"[0, {batch_size}) (the input's batch size is {batch_size})"
            )
        index = first.astype(np.int64)
        coords = array[:, 1:].astype(dtype)
    finite = np.isfinite(coords).all(axis=1)
    if not finite.all():
        k = int(np.argmin(finite))
        raise ValueError(f"box {k} has a NaN or infinite coordinate: {coords[k].tolist()}")
    return RoIs(index, coords)


def _prepare(input, boxes, output_size, spatial_scale, sampling_ratio, fn_name: str):
    """``(x, rois, args)``: the input as a C-contiguous ``(N, C, H, W)`` array in the compute
    dtype, the boxes in that dtype, the scalar arguments."""
    array = as_float_array(input)
    if array.ndim != 4:
        raise ValueError(f"input of {fn_name} must be 4-d (N, C, H, W), got shape {array.shape}")
    if array.shape[2] == 0 or array.shape[3] == 0:
        raise ValueError(f"input of {fn_name} must have H, W >= 1, got shape {array.shape}")
    args = roi_args(output_size, spatial_scale, sampling_ratio)
    x = np.ascontiguousarray(array, dtype=compute_dtype(array.dtype))
    return x, as_rois(boxes, array.shape[0], x.dtype), args


# --------------------------------------------------------------------------------------------
# RoI Align: separable sampling weights
# --------------------------------------------------------------------------------------------


def _sample_coords(start, length, pooled: int, sampling_ratio: int):
    """Along one axis: ``(coord (K, pooled, G), used (K, 1, G), grid (K,))``: the sample
    coordinates of every bin (``used`` marks the first ``grid`` of the ``G`` slots), evaluated
    in the compute dtype in the C++ kernels' order; ``grid`` is torchvision's
    ``roi_bin_grid``, possibly <= 0 (no samples)."""
    dtype = start.dtype.type
    bin_size = length / dtype(pooled)
    if sampling_ratio > 0:
        grid = np.full(len(start), sampling_ratio, np.int64)
    else:
        grid = np.ceil(length / dtype(pooled)).astype(np.int64)
    steps = np.clip(grid, 0, None)
    i = np.arange(int(steps.max(initial=0)))
    offset = (i + 0.5).astype(dtype)[None, :] * bin_size[:, None] \
        / np.maximum(steps, 1).astype(dtype)[:, None]
    base = start[:, None] + np.arange(pooled).astype(dtype)[None, :] * bin_size[:, None]
    coord = base[:, :, None] + offset[:, None, :]
    return coord, (i < steps[:, None])[:, None, :], grid


def _axis_weights(start, length, pooled: int, size: int, sampling_ratio: int):
    """Along one axis: ``(weights (K, pooled, size), grid (K,))``. ``weights[k, p, i]`` sums
    the interpolation weights that bin ``p``'s samples give position ``i``."""
    dtype = start.dtype.type
    n_boxes = len(start)
    coord, used, grid = _sample_coords(start, length, pooled, sampling_ratio)
    if coord.shape[2] == 0:
        return np.zeros((n_boxes, pooled, size), dtype), grid
    valid = used & (coord >= -1) & (coord <= size)
    coord = np.clip(coord, 0, size)  # samples in [-1, 0] read position 0
    low = coord.astype(np.int64)
    at_end = low >= size - 1
    low = np.where(at_end, size - 1, low)
    frac = np.where(at_end, dtype(0), coord - low.astype(dtype)) * valid
    rows = (np.arange(n_boxes)[:, None, None] * pooled + np.arange(pooled)[None, :, None]) * size
    flat = np.concatenate([(rows + low).ravel(), (rows + np.minimum(low + 1, size - 1)).ravel()])
    mass = np.concatenate([((1 - frac) * valid).ravel(), frac.ravel()])
    weights = np.bincount(flat, weights=mass, minlength=n_boxes * pooled * size)
    return weights.reshape(n_boxes, pooled, size).astype(dtype), grid


def _spans(weights):
    """First and one-past-last position of non-zero weight along the last axis (0, 0 if
    none): ``(lo, hi)`` of shape ``weights.shape[:-1]``."""
    nonzero = weights != 0
    size = weights.shape[-1]
    any_ = nonzero.any(axis=-1)
    lo = np.where(any_, np.argmax(nonzero, axis=-1), 0)
    hi = np.where(any_, size - np.argmax(nonzero[..., ::-1], axis=-1), 0)
    return lo.astype(np.int64), hi.astype(np.int64)


@dataclass(frozen=True)
class AlignPlan:
    """Everything about the boxes of an RoI Align call that is shared by all channels."""

    batch_index: np.ndarray  # (K,)
    ay: np.ndarray  # (K, PH, H) row weights of each bin
    ax: np.ndarray  # (K, PW, W) column weights of each bin
    count: np.ndarray  # (K,) samples per bin (the divisor), compute dtype
    rows: tuple[np.ndarray, np.ndarray]  # (K, PH) non-zero row span of each bin row
    cols: tuple[np.ndarray, np.ndarray]  # (K, PW) non-zero column span of each bin column

    def box_span(self, k: int):
        """``(r0, r1, c0, c1)``: the rows and columns box ``k`` reads (empty if r1 <= r0)."""
        (rlo, rhi), (clo, chi) = self.rows, self.cols
        rows = rhi[k] > rlo[k]
        cols = chi[k] > clo[k]
        if not rows.any() or not cols.any():
            return 0, 0, 0, 0
        return (int(rlo[k][rows].min()), int(rhi[k][rows].max()),
                int(clo[k][cols].min()), int(chi[k][cols].max()))


    def entries(self):
        """The plan as a sparse matrix from the input, channels last ``(N * H * W, C)``, to the
        output ``(K * PH * PW, C)``: ``(row, column, weight)``, sorted by row then column, each
        weight ``ay[h] ax[w] / count`` (zero-count bins have no entries). Built in chunks of
        boxes so that the dense intermediate stays under ~4M elements."""
        (rlo, rhi), (clo, chi) = self.rows, self.cols
        tall = np.maximum(rhi - rlo, 0).max(axis=1, initial=0)
        wide = np.maximum(chi - clo, 0).max(axis=1, initial=0)
        per_box = self.ay.shape[1] * self.ax.shape[1] * np.maximum(tall * wide, 1)
        parts, start = [], 0
        for end in np.flatnonzero(np.diff(np.cumsum(per_box) // _ENTRY_CHUNK, append=-1)) + 1:
            parts.append(self._entries(start, int(end)))
            start = int(end)
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, self.ay.dtype)
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))

    def _entries(self, first: int, last: int):
        ay, ax, count = self.ay[first:last], self.ax[first:last], self.count[first:last]
        (rlo, rhi), (clo, chi) = ((a[first:last], b[first:last]) for a, b in (self.rows,
                                                                             self.cols))
        (n_boxes, ph, height), (pw, width) = ay.shape, ax.shape[1:]
        tall, wide = int((rhi - rlo).max(initial=0)), int((chi - clo).max(initial=0))
        h = rlo[:, :, None] + np.arange(tall)  # (k, PH, tall)
        w = clo[:, :, None] + np.arange(wide)  # (k, PW, wide)
        h_in, w_in = h < rhi[:, :, None], w < chi[:, :, None]
        h, w = np.minimum(h, height - 1), np.minimum(w, width - 1)
        wy = np.take_along_axis(ay, h, axis=2) * h_in
        wx = np.take_along_axis(ax, w, axis=2) * w_in
        count = np.where(count == 0, np.inf, count)
        weight = wy[:, :, None, :, None] * wx[:, None, :, None, :] \
            / count[:, None, None, None, None]  # (k, PH, PW, tall, wide)
        image = self.batch_index[first:last, None, None, None, None]
        column = (image * height + h[:, :, None, :, None]) * width + w[:, None, :, None, :]
        row = np.arange(first * ph * pw, last * ph * pw).reshape(n_boxes, ph, pw, 1, 1)
        keep = weight != 0
        return (np.broadcast_to(row, keep.shape)[keep], np.broadcast_to(column, keep.shape)[keep],
                weight[keep])


def _scaled_boxes(rois: RoIs, args: RoIArgs, aligned: bool, position_sensitive: bool):
    """``(x1, y1, roi_width, roi_height)`` on the map, in the kernels' coordinates (where an
    integer is a pixel centre): scaled, shifted by -0.5 when half-pixel, and stretched to at
    least 1 x 1 for RoI Align without ``aligned``."""
    dtype = rois.boxes.dtype.type
    offset = dtype(0.5 if aligned or position_sensitive else 0.0)
    b = rois.boxes * dtype(args.spatial_scale) - offset
    width, height = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    if not aligned and not position_sensitive:  # malformed boxes are forced to 1 x 1
        width, height = np.maximum(width, dtype(1)), np.maximum(height, dtype(1))
    return b[:, 0], b[:, 1], width, height


def align_samples(rois: RoIs, args: RoIArgs, aligned: bool, position_sensitive: bool = False):
    """Where RoI Align samples: ``(ys (K, PH, G_h), xs (K, PW, G_w))`` in the kernels'
    coordinates, NaN in unused slots (the sample grid of bin ``(i, j)`` is ``ys[k, i] x
    xs[k, j]``), and the divisor ``count`` ``(K,)``."""
    x1, y1, width, height = _scaled_boxes(rois, args, aligned, position_sensitive)
    (ph, pw) = args.output_size
    ys, used_y, grid_h = _sample_coords(y1, height, ph, args.sampling_ratio)
    xs, used_x, grid_w = _sample_coords(x1, width, pw, args.sampling_ratio)
    count = grid_h * grid_w if position_sensitive else np.maximum(grid_h * grid_w, 1)
    return np.where(used_y, ys, np.nan), np.where(used_x, xs, np.nan), count


def align_plan(rois: RoIs, args: RoIArgs, spatial: tuple[int, int], aligned: bool,
               position_sensitive: bool = False) -> AlignPlan:
    """The sampling weights of RoI Align (``position_sensitive``: of PS RoI Align, which is
    always half-pixel, keeps degenerate boxes as they are and divides by the raw count)."""
    dtype = rois.boxes.dtype.type
    x1, y1, width, height = _scaled_boxes(rois, args, aligned, position_sensitive)
    (ph, pw), (h, w) = args.output_size, spatial
    ay, grid_h = _axis_weights(y1, height, ph, h, args.sampling_ratio)
    ax, grid_w = _axis_weights(x1, width, pw, w, args.sampling_ratio)
    count = grid_h * grid_w
    if not position_sensitive:
        count = np.maximum(count, 1)
    return AlignPlan(rois.batch_index, ay, ax, count.astype(dtype), _spans(ay), _spans(ax))


def _restore(out: np.ndarray, like) -> np.ndarray:
    return out.astype(np.asarray(like).dtype, copy=False)


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """RoI Align: ``(K, C, PH, PW)``, each bin the mean of bilinear samples (module doc)."""
    x, rois, args = _prepare(input, boxes, output_size, spatial_scale, sampling_ratio,
                             "roi_align")
    plan = align_plan(rois, args, x.shape[2:], bool(aligned))
    out = np.zeros((len(rois.boxes), x.shape[1], *args.output_size), x.dtype)
    if out.size == 0:
        return _restore(out, input)
    if _backend.compiled(x):
        kernels = _backend.roi_kernels()
        last = np.empty(x.transpose(0, 2, 3, 1).shape, x.dtype)  # the input, channels last
        kernels.to_channels_last(x, last)
        kernels.roi_align_forward(last, plan.batch_index, plan.ay, plan.ax, *plan.rows,
                                  *plan.cols, plan.count, out)
        return _restore(out, input)
    c, (ph, pw) = x.shape[1], args.output_size
    for k in range(len(out)):
        r0, r1, c0, c1 = plan.box_span(k)
        if r1 <= r0:
            continue
        patch = x[plan.batch_index[k], :, r0:r1, c0:c1]  # (C, h, w)
        h = r1 - r0
        cols = patch.reshape(c * h, c1 - c0) @ plan.ax[k, :, c0:c1].T  # (C * h, PW)
        rows = plan.ay[k, :, r0:r1] @ cols.reshape(c, h, pw).transpose(1, 0, 2).reshape(h, -1)
        out[k] = rows.reshape(ph, c, pw).transpose(1, 0, 2)
    out /= plan.count[:, None, None, None]
    return _restore(out, input)


def roi_align_backward(grad_output, input, boxes, output_size, spatial_scale=1.0,
                       sampling_ratio=-1, aligned=False):
    """Gradient of :func:`roi_align` with respect to ``input``."""
    x, rois, args = _prepare(input, boxes, output_size, spatial_scale, sampling_ratio,
                             "roi_align")
    grad = _grad(grad_output, (len(rois.boxes), x.shape[1], *args.output_size), x.dtype,
                 "roi_align")
    plan = align_plan(rois, args, x.shape[2:], bool(aligned))
    grad_input = np.zeros_like(x)
    if grad.size == 0:
        return _restore(grad_input, input)
    if _backend.compiled(x):
        kernels = _backend.roi_kernels()
        last = np.zeros(x.transpose(0, 2, 3, 1).shape, x.dtype)  # channels last
        kernels.roi_align_backward(grad, plan.batch_index, plan.ay, plan.ax, *plan.rows,
                                   *plan.cols, plan.count, last)
        kernels.to_channels_first(last, grad_input)
        return _restore(grad_input, input)
    c, (ph, pw) = x.shape[1], args.output_size
    for k in range(len(grad)):
        r0, r1, c0, c1 = plan.box_span(k)
        if r1 <= r0:
            continue
        g = (grad[k] / plan.count[k]).transpose(1, 0, 2).reshape(ph, c * pw)
        rows = plan.ay[k, :, r0:r1].T @ g  # (h, C * PW)
        h = r1 - r0
        cols = rows.reshape(h * c, pw) @ plan.ax[k, :, c0:c1]  # (h * C, w)
        grad_input[plan.batch_index[k], :, r0:r1, c0:c1] += \
            cols.reshape(h, c, c1 - c0).transpose(1, 0, 2)
    return _restore(grad_input, input)


def _grad(grad_output, shape, dtype, fn_name: str) -> np.ndarray:
    grad = as_float_array(grad_output, "grad_output")
    if grad.shape != tuple(shape):
        raise ValueError(
            f"grad_output of {fn_name} must have the forward output's shape {tuple(shape)}, "
            f"got {grad.shape}"
        )
    return np.ascontiguousarray(grad, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Position-sensitive RoI Align
# --------------------------------------------------------------------------------------------


def _ps_prepare(input, boxes, output_size, spatial_scale, sampling_ratio):
    x, rois, args = _prepare(input, boxes, output_size, spatial_scale, sampling_ratio,
                             "ps_roi_align")
    bins = args.output_size[0] * args.output_size[1]
    if x.shape[1] % bins:
        raise ValueError(
            f"input channels ({x.shape[1]}) of ps_roi_align must be a multiple of "
            f"output_size[0] * output_size[1] ({bins})"
        )
    return x, rois, args, align_plan(rois, args, x.shape[2:], True, position_sensitive=True)


def ps_roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1):
    """Position-sensitive RoI Align: ``(K, C / (PH * PW), PH, PW)`` (module doc)."""
    x, rois, args, plan = _ps_prepare(input, boxes, output_size, spatial_scale, sampling_ratio)
    (ph, pw), c_out = args.output_size, x.shape[1] // (args.output_size[0] * args.output_size[1])
    out = np.zeros((len(rois.boxes), c_out, ph, pw), x.dtype)
    for k in range(len(out)):
        r0, r1, c0, c1 = plan.box_span(k)
        if r1 <= r0:
            continue
        patch = x[plan.batch_index[k], :, r0:r1, c0:c1].reshape(c_out, ph, pw, r1 - r0, c1 - c0)
        by_row = np.einsum("cpqhw,qw->cpqh", patch, plan.ax[k, :, c0:c1])
        out[k] = np.einsum("cpqh,ph->cpq", by_row, plan.ay[k, :, r0:r1])
    with np.errstate(divide="ignore", invalid="ignore"):  # no samples: 0 / 0, as torchvision
        out /= plan.count[:, None, None, None]
    return _restore(out, input)


def ps_roi_align_backward(grad_output, input, boxes, output_size, spatial_scale=1.0,
                          sampling_ratio=-1):
    """Gradient of :func:`ps_roi_align` with respect to ``input``."""
    x, rois, args, plan = _ps_prepare(input, boxes, output_size, spatial_scale, sampling_ratio)
    (ph, pw), c_out = args.output_size, x.shape[1] // (args.output_size[0] * args.output_size[1])
    grad = _grad(grad_output, (len(rois.boxes), c_out, ph, pw), x.dtype, "ps_roi_align")
    grad_input = np.zeros_like(x)
    count = np.where(plan.count == 0, 1, plan.count)  # no samples, no gradient
    for k in range(len(grad)):
        r0, r1, c0, c1 = plan.box_span(k)
        if r1 <= r0:
            continue
        g = grad[k] / count[k]  # (C_out, PH, PW)
        ay, ax = plan.ay[k, :, r0:r1], plan.ax[k, :, c0:c1]
        spread = g[..., None, None] * ay[None, :, None, :, None] * ax[None, None, :, None, :]
        grad_input[plan.batch_index[k], :, r0:r1, c0:c1] += spread.reshape(-1, r1 - r0, c1 - c0)
    return _restore(grad_input, input)


# --------------------------------------------------------------------------------------------
# RoI pooling
# --------------------------------------------------------------------------------------------


def round_half_away(value: np.ndarray) -> np.ndarray:
    """C's ``round``: halves away from zero (NumPy's ``round`` goes to even)."""
    whole = np.trunc(value)
    return (whole + np.sign(value) * (np.abs(value - whole) >= 0.5)).astype(np.int64)


def pool_bins(rois: RoIs, args: RoIArgs, spatial: tuple[int, int]):
    """RoI pooling's bins, clipped to the map: ``(hstart, hend)`` ``(K, PH)`` and
    ``(wstart, wend)`` ``(K, PW)`` (a bin is empty when end <= start)."""
    dtype = rois.boxes.dtype.type
    corners = round_half_away(rois.boxes * dtype(args.spatial_scale))  # x1, y1, x2, y2
    bins = []
    for axis, pooled, size in ((1, args.output_size[0], spatial[0]),
                               (0, args.output_size[1], spatial[1])):
        start = corners[:, axis]
        length = np.maximum(corners[:, axis + 2] - start + 1, 1)
        bin_size = length.astype(dtype) / dtype(pooled)
        i = np.arange(pooled).astype(dtype)
        lo = np.floor(i[None, :] * bin_size[:, None]).astype(np.int64)
        hi = np.ceil((i + 1)[None, :] * bin_size[:, None]).astype(np.int64)
        bins.append((np.clip(lo + start[:, None], 0, size), np.clip(hi + start[:, None], 0, size)))
    return bins


def roi_pool(input, boxes, output_size, spatial_scale=1.0, *, return_indices=False):
    """RoI (max) pooling: ``(K, C, PH, PW)``; with ``return_indices`` also the argmax, the flat
    position ``h * W + w`` in the box's image plane (-1 for an empty bin), int64."""
    x, rois, args = _prepare(input, boxes, output_size, spatial_scale, -1, "roi_pool")
    (hs, he), (ws, we) = pool_bins(rois, args, x.shape[2:])
    out = np.zeros((len(rois.boxes), x.shape[1], *args.output_size), x.dtype)
    index = np.full(out.shape, -1, np.int64)
    if out.size and _backend.compiled(x):
        _backend.roi_kernels().roi_pool_forward(x, rois.batch_index, hs, he, ws, we, out, index)
    elif out.size:
        _roi_pool_numpy(x, rois.batch_index, hs, he, ws, we, out, index)
    out = _restore(out, input)
    return (out, index) if return_indices else out


def _roi_pool_numpy(x, batch_index, hs, he, ws, we, out, index):
    """Max over each bin, separably: each bin column's max per row, then over the bin's rows
    (the first maximum in row-major order wins, as in torchvision's scan)."""
    width = x.shape[3]
    for k in range(len(out)):
        r0, r1 = int(hs[k].min()), int(he[k].max())
        c0, c1 = int(ws[k].min()), int(we[k].max())
        if r1 <= r0 or c1 <= c0:
            continue
        patch = x[batch_index[k], :, r0:r1, :]
        patch = np.where(np.isnan(patch), -np.inf, patch)  # NaN never beats the running max
        col_max = np.full((x.shape[1], r1 - r0, out.shape[3]), -np.inf, x.dtype)
        col_arg = np.zeros(col_max.shape, np.int64)
        for j in range(out.shape[3]):
            if we[k, j] > ws[k, j]:
                window = patch[:, :, ws[k, j]:we[k, j]]
                col_arg[:, :, j] = np.argmax(window, axis=2) + ws[k, j]
                col_max[:, :, j] = np.max(window, axis=2)
        for i in range(out.shape[2]):
            if he[k, i] <= hs[k, i]:
                continue
            rows = col_max[:, hs[k, i] - r0:he[k, i] - r0]
            best = np.argmax(rows, axis=1)  # (C, PW)
            value = np.take_along_axis(rows, best[:, None], 1)[:, 0]
            col = np.take_along_axis(col_arg[:, hs[k, i] - r0:he[k, i] - r0], best[:, None], 1)
            found = (value > -FLT_MAX) & (we[k] > ws[k])[None, :]
            out[k, :, i] = np.where(found, value, np.where(we[k] > ws[k], -FLT_MAX, 0))
            index[k, :, i] = np.where(found, (best + hs[k, i]) * width + col[:, 0], -1)


def roi_pool_backward(grad_output, input, boxes, output_size, spatial_scale=1.0, *,
                      indices=None):
    """Gradient of :func:`roi_pool`: each bin's gradient goes to its argmax (``indices`` from
    ``roi_pool(..., return_indices=True)``, recomputed when ``None``)."""
    x, rois, args = _prepare(input, boxes, output_size, spatial_scale, -1, "roi_pool")
    shape = (len(rois.boxes), x.shape[1], *args.output_size)
    grad = _grad(grad_output, shape, x.dtype, "roi_pool")
    if indices is None:
        _, indices = roi_pool(x, boxes, output_size, spatial_scale, return_indices=True)
    indices = np.asarray(indices)
    if indices.shape != shape:
        raise ValueError(f"indices of roi_pool must have shape {shape}, got {indices.shape}")
    n, c, h, w = x.shape
    planes = rois.batch_index[:, None] * c + np.arange(c)[None, :]  # (K, C)
    flat = planes[:, :, None, None] * (h * w) + indices
    used = indices >= 0
    grad_input = np.bincount(flat[used], weights=grad[used], minlength=n * c * h * w)
    return _restore(grad_input.reshape(x.shape).astype(x.dtype), input)
