"""TextCNN's convolutions over time as one matrix product, and max-over-time pooling with a sparse
backward pass.

A ``Conv1d(E, F, w)`` over embeddings ``(B, E, T)`` computes, for every filter ``f`` and start
``t``, ``c[b, f, t] = bias_f + sum_k W_f[:, k] . e[b, t + k]``. With the filters of every width
stacked as rows of one matrix (row ``o_w + k F + f`` holds ``W_f[:, k]`` of width ``w``, see
:func:`stack_conv_weights`), one product ``Y = e @ rows^T`` of shape ``(B, T, sum_w w F)``
gives every term ``W_f[:, k] . e[b, s]``, and each width's convolution is a sum of ``w`` shifted
slices of ``Y``:

.. math::

    c^{(w)}[b, t, f] = \\mathrm{bias}_f + \\sum_{k=0}^{w-1} Y[b,\\ t + k,\\ o_w + k F + f].

One large, well-shaped matrix product for all widths instead of three convolutions, no
``(B, E, T)`` transpose copy, and Kim's edge padding costs no extra rows in the product: a
padding position's row of ``Y`` is the padding embedding's (zero for ``padding_idx``), added
where a shifted slice reaches past the text.

Max over time after ReLU needs only each filter's best start ``t*`` in the backward pass: the
gradient reaches one window per ``(b, f)``, so

.. math::

    \\partial W_f[:, k] = \\sum_b g'_{b f}\\, e[b, t^*_{b f} + k], \\qquad
    \\partial e[b, s] = \\sum_{(f, k):\\ t^*_{b f} + k = s} g'_{b f}\\, W_f[:, k],

with :math:`g' = g \\cdot [\\mathrm{pooled} > 0]` (ReLU). Both are weighted gathers, computed by
``embedding_bag(mode="sum", per_sample_weights=...)``: about ``B F w E`` multiply-adds instead
of the ``B T F w E`` of a dense convolution backward.

Shape:
    - embeddings ``(B, T, E)``; ``rows`` ``(sum_w w F, E)``; ``bias`` ``(len(widths) F,)``.
    - :func:`conv_over_time`: one ``(B, F, L_w)`` map per width, ``L_w = lead + T + trail - w + 1``.
    - :func:`conv_max_over_time`: ``(B, len(widths) F)``, widths in order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def stack_conv_weights(weights: list[Tensor]) -> Tensor:
    """``Conv1d`` weights ``(F, E, w)`` of each width -> rows ``(sum_w w F, E)``, row
    ``o_w + k F + f`` = ``weight_w[f, :, k]`` (differentiable: the gradient reaches the convs)."""
    return torch.cat([w.permute(2, 0, 1).reshape(-1, w.shape[1]) for w in weights])


def windows_with_tokens(real: Tensor, widths, lead: int, trail: int) -> list[Tensor]:
    """For each width, ``(B, L_w)`` bool: the window holds at least one real token.

    ``real`` ``(B, T)`` marks real tokens; ``lead``/``trail`` padding positions surround it.
    A running count of real tokens gives every window's count by one subtraction.
    """
    padded = F.pad(real.to(torch.int32), (lead, trail))  # (B, lead + T + trail)
    counts = F.pad(padded.cumsum(1, dtype=torch.int32), (1, 0))  # tokens before each position
    return [(counts[:, w:] - counts[:, :-w]) > 0 for w in widths]  # (B, L_w)


def _edge_term(edge_row: Tensor | None, rows: Tensor) -> Tensor | None:
    """``Y``'s row at a padding position, or ``None`` where the padding embedding is zero."""
    if edge_row is None or not bool(edge_row.any()):
        return None
    return rows @ edge_row  # (D,)


def _products(embedded: Tensor, rows: Tensor) -> Tensor:
    """``Y`` time-last: ``(D, B, T)``, so that each map's time axis is contiguous."""
    B, T, E = embedded.shape
    return torch.mm(rows, embedded.reshape(B * T, E).t()).view(-1, B, T)


def _real_rows(k: int, lead: int, T: int, first: int, count: int) -> tuple[int, int]:
    """Local starts ``[q0, q1)`` (start ``p = first + q``) whose ``k``-th position is a row of
    the text, ``p + k - lead`` in ``[0, T)``; the others are edge padding."""
    q0 = min(max(lead - k - first, 0), count)
    return q0, max(min(lead - k + T - first, count), q0)


def _shifted_sums(yt: Tensor, y_edge: Tensor | None, bias: Tensor, widths, num_filters: int,
                  lead: int, firsts, out: list[Tensor]) -> None:
    """Fill ``out[i]`` ``(F, B, n_i)`` with width ``i``'s convolution at starts
    ``firsts[i] + q`` (padded coordinates) from ``Y`` ``(D, B, T)``."""
    T = yt.shape[2]
    offset = 0
    for i, (w, first, maps) in enumerate(zip(widths, firsts, out, strict=True)):
        maps.copy_(bias[i * num_filters:(i + 1) * num_filters, None, None].expand_as(maps))
        for k in range(w):
            block = slice(offset + k * num_filters, offset + (k + 1) * num_filters)
            q0, q1 = _real_rows(k, lead, T, first, maps.shape[2])
            row = first + k - lead  # the text row of local start 0
            if q1 > q0:
                maps[:, :, q0:q1].add_(yt[block, :, q0 + row:q1 + row])
            if y_edge is not None:  # starts reaching into the edge padding
                edge = y_edge[block, None, None]
                maps[:, :, :q0].add_(edge)
                maps[:, :, q1:].add_(edge)
        offset += w * num_filters


class _ConvOverTime(torch.autograd.Function):
    """Every width's convolution maps ``(F, B, L_w)`` from ``Y = rows @ e^T`` (module doc).

    Backward: ``Y``'s gradient is each map's gradient shifted back into its row block (every
    ``(block, row)`` of ``Y`` feeds exactly one map position, or none near the ends without
    edge padding); then the two products of a matrix multiply.
    """

    @staticmethod
    def forward(ctx, embedded, rows, bias, edge_row, widths, num_filters, lead, trail):
        B, T, E = embedded.shape
        yt = _products(embedded, rows)  # (D, B, T)
        y_edge = _edge_term(edge_row, rows)
        maps = [yt.new_empty(num_filters, B, lead + T + trail - w + 1) for w in widths]
        _shifted_sums(yt, y_edge, bias, widths, num_filters, lead, [0] * len(widths), maps)
        ctx.save_for_backward(embedded, rows, edge_row if y_edge is not None else None)
        ctx.setup = (widths, num_filters, lead)
        return tuple(maps)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_maps):
        embedded, rows, edge_row = ctx.saved_tensors
        widths, num_filters, lead = ctx.setup
        B, T, E = embedded.shape
        grad_yt = embedded.new_empty(rows.shape[0], B, T)
        grad_bias = []
        grad_edge = rows.new_zeros(rows.shape[0]) if edge_row is not None else None
        offset = 0
        for w, g in zip(widths, grad_maps, strict=True):  # g: (F, B, L_w)
            grad_bias.append(g.sum((1, 2)))
            for k in range(w):
                block = slice(offset + k * num_filters, offset + (k + 1) * num_filters)
                q0, q1 = _real_rows(k, lead, T, 0, g.shape[2])
                if q1 > q0:
                    r0, r1 = q0 + k - lead, q1 + k - lead  # the rows these starts read
                    grad_yt[block, :, :r0] = 0
                    grad_yt[block, :, r1:] = 0
                    grad_yt[block, :, r0:r1] = g[:, :, q0:q1]
                else:
                    grad_yt[block] = 0
                if grad_edge is not None:
                    grad_edge[block] += g[:, :, :q0].sum((1, 2)) + g[:, :, q1:].sum((1, 2))
            offset += w * num_filters
        grad_y2d = grad_yt.view(-1, B * T)  # (D, B T)
        grad_embedded = None
        if ctx.needs_input_grad[0]:
            grad_embedded = torch.mm(grad_y2d.t(), rows).view(B, T, E)
        grad_rows = torch.mm(grad_y2d, embedded.reshape(B * T, E))
        if grad_edge is not None:
            grad_rows.addr_(grad_edge, edge_row)
        return grad_embedded, grad_rows, torch.cat(grad_bias), None, None, None, None, None


def conv_over_time(embedded: Tensor, rows: Tensor, bias: Tensor, widths, num_filters: int,
                   lead: int = 0, trail: int = 0, edge_row: Tensor | None = None) -> list[Tensor]:
    """Each width's convolution over time, ``(B, F, L_w)`` (contiguous), equal to
    ``Conv1d(E, F, w)`` over the embeddings padded with ``lead``/``trail`` rows of ``edge_row``
    (``None``: zeros). ``rows``/``bias`` stack every width's weights (:func:`stack_conv_weights`).
    """
    maps = _ConvOverTime.apply(embedded, rows, bias, _detached(edge_row), tuple(widths),
                               num_filters, lead, trail)
    return [m.transpose(0, 1).contiguous() for m in maps]


def _detached(edge_row: Tensor | None) -> Tensor | None:
    # the padding embedding never learns (nn.Embedding's padding_idx); it only shifts Y's rows
    return None if edge_row is None else edge_row.detach()


def distinct_tokens(input_ids: Tensor, padding_idx: int) -> tuple[Tensor, Tensor]:
    """``(tokens, where)``: the batch's distinct ids followed by ``padding_idx`` ``(U + 1,)``,
    and each position's row in it ``(B, T)`` (row ``U`` stands for the edge padding).

    The products ``W_f[:, k] . e`` depend on the token only, so they are computed once per
    distinct token (real text repeats words and padding: ~550 distinct ids in a batch of 50 MR
    sentences padded to 40).
    """
    tokens, where = torch.unique(input_ids, return_inverse=True)
    return torch.cat([tokens, tokens.new_full((1,), padding_idx)]), where


def _window_rows(where: Tensor, edge: int, width: int, block: int, blocks: int, lead: int,
                 trail: int, first: int, count: int) -> Tensor:
    """``(count B, width)``: for each start ``first + q`` (padded coordinates; bags in order
    ``(q, b)``) the rows of the ``(rows of P) * blocks`` table that its ``width`` terms read."""
    padded = F.pad(where, (lead, trail), value=edge)  # (B, lead + T + trail)
    windows = padded[:, first:first + count + width - 1].unfold(1, width, 1)  # (B, n, w)
    k = torch.arange(block, block + width, device=where.device)
    return (windows * blocks + k).transpose(0, 1).reshape(count * where.shape[0], width)


def _max_over_time(x, where, rows, bias, real, widths, num_filters, lead, trail,
                   with_index: bool):
    """``(pooled (B, nF), first best starts (B, nF) or None)``, see :func:`conv_max_over_time`."""
    B, T = where.shape
    blocks = rows.shape[0] // num_filters
    table = torch.mm(x, rows.t()).view(-1, num_filters)  # ((U + 1) blocks, F): P[u, block]
    token_windows = windows_with_tokens(real, widths, lead, trail)
    pooled, starts = [], []
    block = 0
    for w, has_token in zip(widths, token_windows, strict=True):
        # only the starts whose window reaches into the text: the others hold padding only
        first, last = max(lead - w + 1, 0), min(lead + T, lead + T + trail - w + 1)
        index = _window_rows(where, x.shape[0] - 1, w, block, blocks, lead, trail, first,
                             last - first)
        sums = F.embedding_bag(index, table, mode="sum").view(last - first, B, num_filters)
        has_token = has_token[:, first:last].t()  # (n, B)
        if not bool(has_token.all()):  # in-batch padding: its windows would give relu(bias)
            penalty = torch.zeros_like(has_token, dtype=sums.dtype)
            sums.add_(penalty.masked_fill_(~has_token, -math.inf).unsqueeze(-1))
        if with_index:
            values, index = sums.max(dim=0)  # (B, F): first maximum on ties, NaN wins
            starts.append(index.add_(first))
        else:
            values = sums.amax(dim=0)
        pooled.append(values)
        block += w
    # the bias is constant over time: max(c + b) = max(c) + b; relu after max = max after relu
    pooled = torch.cat(pooled, 1).add_(bias).clamp_min_(0)
    return pooled, torch.cat(starts, 1) if with_index else None


class _ConvMaxOverTime(torch.autograd.Function):
    """``relu(max_t c[b, f, t])`` over the windows that hold a real token (0 if none), with the
    sparse backward of the module docstring (``t*`` = first best start)."""

    @staticmethod
    def forward(ctx, x, where, rows, bias, real, widths, num_filters, lead, trail):
        pooled, starts = _max_over_time(x, where, rows, bias, real, widths, num_filters, lead,
                                        trail, with_index=True)
        ctx.save_for_backward(x, where, rows, starts, pooled)
        ctx.setup = (widths, num_filters, lead, trail)
        return pooled

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, where, rows, starts, pooled = ctx.saved_tensors
        widths, num_filters, lead, trail = ctx.setup
        B = where.shape[0]
        g = grad * (pooled > 0)  # (B, nF): ReLU; a window of padding only has pooled 0
        padded = F.pad(where, (lead, trail), value=x.shape[0] - 1)  # (B, lead + T + trail)
        # entries (width, k, f, b) in the row order of `rows` (row o_w + k F + f), sample b:
        # the token row each best window reads at its k-th position, and its weight g'
        tokens, weights = [], []
        for i, w in enumerate(widths):
            cols = slice(i * num_filters, (i + 1) * num_filters)
            for k in range(w):
                tokens.append(padded.gather(1, starts[:, cols] + k).t().reshape(-1))  # (F B,)
                weights.append(g[:, cols].t().reshape(-1))
        token = torch.cat(tokens)  # (D B,)
        weight = torch.cat(weights)
        D = rows.shape[0]

        # dW: bag d (row of `rows`) = its B samples' tokens, weighted by g'
        bags = torch.arange(0, D * B, B, device=g.device)
        grad_rows = F.embedding_bag(token, x, bags, mode="sum", per_sample_weights=weight)

        grad_x = None
        if ctx.needs_input_grad[0]:
            # de_u: bag u = the rows of `rows` whose best window reads token u, weighted by g'
            keep = weight != 0
            destination = token[keep]
            order = destination.argsort()
            source = torch.arange(D, device=g.device).repeat_interleave(B)[keep]
            counts = torch.bincount(destination, minlength=x.shape[0])
            grad_x = F.embedding_bag(
                source[order], rows, counts.cumsum(0) - counts, mode="sum",
                per_sample_weights=weight[keep][order],
            )
        return grad_x, None, grad_rows, g.sum(0), None, None, None, None, None


def conv_max_over_time(x: Tensor, where: Tensor, rows: Tensor, bias: Tensor, real: Tensor,
                       widths, num_filters: int, lead: int = 0, trail: int = 0) -> Tensor:
    """``relu`` then max over time of each width's convolution, ``(B, len(widths) F)``.

    ``x`` ``(U + 1, E)`` embeds the distinct tokens and, last, the padding token;
    ``where`` ``(B, T)`` gives each position's row of ``x`` (:func:`distinct_tokens`). Equal to
    ``max_t(relu(conv_over_time(...)[i]) * has_token)`` concatenated over widths, where
    ``has_token`` (from ``real`` ``(B, T)``, true at real tokens) zeroes windows of padding
    only; its backward touches only each filter's best window.
    """
    if torch.is_autocast_enabled(x.device.type):  # the sparse kernel runs in float32
        with torch.autocast(x.device.type, enabled=False):
            return conv_max_over_time(x.float(), where, rows.float(), bias.float(), real,
                                      widths, num_filters, lead, trail)
    args = (x, where, rows, bias, real, tuple(widths), num_filters, lead, trail)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, rows, bias)):
        return _ConvMaxOverTime.apply(*args)
    return _max_over_time(*args, with_index=False)[0]  # inference: no indices
