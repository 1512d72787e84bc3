"""Token reducers: fewer tokens between transformer layers, padding-aware. Pure torch.

Each reducer takes token states ``(B, T, H)``, the attention mask ``(B, T)`` (nonzero = real
token) and optionally the token *sizes* ``(B, T)`` (how many original tokens each one already
stands for; ``None`` = 1 per real token) and returns a :class:`Reduced` triple
``(states (B, T', H), attention_mask (B, T') bool, sizes (B, T'))``. Every output token is a
size-weighted reduction of a group of input tokens:

.. math:: y_g = \\frac{\\sum_{i \\in g} s_i x_i}{\\sum_{i \\in g} s_i},
          \\qquad s_g = \\sum_{i \\in g} s_i

(``strided`` with ``mode="max"`` takes :math:`\\max_{i \\in g} x_i` instead), so after any chain of
reductions a token is the exact average of the original tokens it stands for, and the sizes of a
row always sum to its number of real tokens. The reducers differ only in how they form groups:

- :func:`strided_reduce` (Funnel-Transformer, Dai et al. 2020): windows of ``ratio`` adjacent
  real tokens;
- :func:`merge_tokens` (ToMe, Bolya et al. 2023): bipartite soft matching on a metric (the
  attention keys): the free tokens alternate into sets A and B, each A token finds its most
  cosine-similar B token, and the ``r`` A tokens with the most similar partners merge into them;
- :func:`prune_tokens` (EViT, Liang et al. 2022): keep the ``keep`` fraction of tokens with the
  highest importance (the attention CLS pays them) and fuse the rest into one token.

Rules shared by all three:

* padding never joins a group with real tokens, and the output is always *right*-padded with
  the kept tokens in their original order, so left and right padding give identical outputs;
* the first real token (CLS) and the last one (SEP) of each row are never merged (``cls`` and
  ``sep`` turn that off); for a decoder, protect the last token only;
* reductions are per row and depend only on the row, never on the rest of the batch; a row with
  too few tokens to reach its target (fewer than 2 free tokens for ``merge``, a fused group of one
  token for ``prune``) keeps them all;
* gradients flow to ``states`` (the grouping is a discrete choice, made without gradient).

:func:`attention_bias` turns the mask and the sizes into ToMe's *proportional attention* bias:
adding :math:`\\log s_j` to the attention scores makes a token of size :math:`s_j` count as
:math:`s_j` copies of itself in every softmax.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "REDUCERS",
    "Reduced",
    "attention_bias",
    "pool_reduced",
    "merge_tokens",
    "protected_tokens",
    "prune_tokens",
    "reduce_into_slots",
    "strided_reduce",
]

REDUCERS: tuple[str, ...] = ("strided", "merge", "prune")
"""The reducer kinds (the names used by schedules, ``poolkit.models.reduce_tokens``)."""

STRIDED_MODES: tuple[str, ...] = ("mean", "max")


class Reduced(NamedTuple):
    """What a reducer returns. Shapes: ``(B, T', H)``, ``(B, T')`` bool, ``(B, T')`` float."""

    states: Tensor
    attention_mask: Tensor
    sizes: Tensor


# ---------------------------------------------------------------------------------------------
# Checks


def _check_inputs(states: Tensor, attention_mask: Tensor | None, sizes: Tensor | None):
    """``(mask bool (B, T), sizes float (B, T), zero at pads)`` after checking the shapes."""
    if not isinstance(states, Tensor) or states.dim() != 3 or not states.is_floating_point():
        shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(f"states must be a floating-point tensor (B, T, H), got {shape}")
    batch, length, _ = states.shape
    if attention_mask is None:
        mask = torch.ones(batch, length, dtype=torch.bool, device=states.device)
    else:
        _check_shape("attention_mask", attention_mask, (batch, length))
        mask = attention_mask != 0
    if sizes is None:
        return mask, mask.to(states.dtype)
    _check_shape("sizes", sizes, (batch, length))
    return mask, torch.where(mask, sizes.to(states.dtype), 0.0)


def _check_shape(name: str, tensor: Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(tensor, Tensor) or tuple(tensor.shape) != shape:
        got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
        raise ValueError(f"{name} must have shape {shape} (as states' first dims), got {got}")


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} ({value!r}) must be an integer >= {low}")
    return value


# ---------------------------------------------------------------------------------------------
# The primitive: every reducer is a choice of output slot per token


def protected_tokens(attention_mask: Tensor, cls: bool = True, sep: bool = True) -> tuple[
    Tensor, Tensor
]:
    """``(first, last)`` bool ``(B, T)``: the protected first and last real token of each row.

    ``first`` marks the first real token when ``cls``; ``last`` the last real token when ``sep``
    (and it is not also the first: a one-token row has one protected token).
    """
    mask = attention_mask != 0
    rank = mask.long().cumsum(1)  # 1..n at real tokens
    count = rank[:, -1:]
    first = mask & (rank == 1) & cls
    last = mask & (rank == count) & ~first & sep
    return first, last


def reduce_into_slots(
    states: Tensor, sizes: Tensor, slots: Tensor, num_slots: int, mode: str = "mean"
) -> Reduced:
    """Reduce every token into its output slot: ``slots (B, T)`` in ``[0, num_slots)``, or -1
    for a token that is dropped (a pad). A slot's state is the size-weighted mean (or the max)
    of its tokens, its size their total size; a slot no token reached is padding (zeros, size
    0, mask False)."""
    batch, _, hidden = states.shape
    index = torch.where(slots < 0, num_slots, slots)  # pads go to a spare slot, cut below
    expanded = index.unsqueeze(-1).expand(-1, -1, hidden)
    new_sizes = sizes.new_zeros(batch, num_slots + 1).scatter_add(1, index, sizes)
    filled = (slots >= 0).to(sizes.dtype)
    new_mask = sizes.new_zeros(batch, num_slots + 1).scatter_add(1, index, filled) > 0
    if mode == "mean":
        total = states.new_zeros(batch, num_slots + 1, hidden)
        total = total.scatter_add(1, expanded, states * sizes.unsqueeze(-1))
        reduced = total / torch.where(new_mask, new_sizes, 1.0).unsqueeze(-1)
    else:
        floor = states.new_full((batch, num_slots + 1, hidden), torch.finfo(states.dtype).min)
        reduced = floor.scatter_reduce(1, expanded, states, "amax", include_self=False)
    reduced = torch.where(new_mask.unsqueeze(-1), reduced, 0.0)
    return Reduced(reduced[:, :num_slots], new_mask[:, :num_slots], new_sizes[:, :num_slots])


def _slots_of_kept(kept: Tensor) -> tuple[Tensor, int]:
    """Compact slots for the kept tokens in their order (-1 elsewhere) and the output width."""
    slots = kept.long().cumsum(1) - 1
    width = int(kept.sum(1).max()) if kept.numel() else 0
    return torch.where(kept, slots, -1), width


def attention_bias(
    attention_mask: Tensor, sizes: Tensor | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Additive attention bias ``(B, 1, 1, T)``: :math:`\\log s_j` for a real key (0 when
    ``sizes`` is None: plain masking), the dtype's smallest value for a pad key."""
    mask = attention_mask != 0
    if sizes is None:
        bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    else:
        bias = torch.where(mask, sizes.to(dtype), 1.0).log()
    bias = bias.masked_fill(~mask, torch.finfo(dtype).min)
    return bias[:, None, None, :]


# ---------------------------------------------------------------------------------------------
# The reducers


def strided_reduce(
    states: Tensor,
    attention_mask: Tensor | None = None,
    sizes: Tensor | None = None,
    *,
    ratio: int = 2,
    mode: str = "mean",
    cls: bool = True,
    sep: bool = True,
) -> Reduced:
    """Funnel pooling: windows of ``ratio`` adjacent real tokens, CLS and SEP kept apart.

    A row's free tokens (real, not protected) :math:`x_1..x_n` become
    :math:`\\lceil n / \\text{ratio} \\rceil` tokens; the last window may be shorter. Example,
    ``ratio=2``, one row ``[CLS, a, b, c, SEP]`` -> ``[CLS, (a+b)/2, c, SEP]`` with sizes
    ``[1, 2, 1, 1]``.
    """
    mask, sizes = _check_inputs(states, attention_mask, sizes)
    ratio = _check_int("ratio", ratio, 1)
    if mode not in STRIDED_MODES:
        raise ValueError(f"mode ({mode!r}) must be one of {list(STRIDED_MODES)}")
    first, last = protected_tokens(mask, cls, sep)
    free = mask & ~first & ~last
    group = (free.long().cumsum(1) - 1).div(ratio, rounding_mode="floor")
    groups = (free.sum(1, keepdim=True) + ratio - 1).div(ratio, rounding_mode="floor")
    offset = first.any(1, keepdim=True).long()
    slots = torch.where(free, offset + group, -1)
    slots = torch.where(first, 0, torch.where(last, offset + groups, slots))
    width = int((offset + groups + last.any(1, keepdim=True)).max()) if mask.numel() else 0
    return reduce_into_slots(states, sizes, slots, width, mode)


def _positions_of(members: Tensor) -> tuple[Tensor, Tensor]:
    """Positions of the marked tokens of each row in order, right-padded: ``(positions (B, K),
    valid (B, K))`` with K the largest count in the batch."""
    length = members.shape[1]
    position = torch.arange(length, device=members.device).expand_as(members)
    order = torch.where(members, position, position + length).argsort(dim=1)
    width = int(members.sum(1).max()) if members.numel() else 0
    positions = order[:, :width]
    return positions, members.gather(1, positions)


def _rows(values: Tensor, positions: Tensor) -> Tensor:
    """``values (B, T, C)`` at ``positions (B, K)`` -> ``(B, K, C)``."""
    return values.gather(1, positions.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


def _merge_count(free: Tensor, r: int | None, rate: float | None) -> Tensor:
    """Merges wanted per row ``(B, 1)``: ``r``, or ``floor(rate * free tokens)``."""
    if (r is None) == (rate is None):
        raise ValueError(f"give exactly one of r ({r!r}) and rate ({rate!r})")
    if r is not None:
        return torch.full_like(free[:, :1], _check_int("r", r, 0), dtype=torch.long)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 0.5:
        raise ValueError(f"rate ({rate!r}) must be a fraction in [0, 0.5] (bipartite matching "
                         "merges at most half the tokens)")
    count = free.sum(1, keepdim=True).to(torch.float64)
    return torch.floor(count * rate + 1e-9).long()


def merge_tokens(
    states: Tensor,
    attention_mask: Tensor | None,
    metric: Tensor,
    r: int | None = None,
    sizes: Tensor | None = None,
    *,
    rate: float | None = None,
    cls: bool = True,
    sep: bool = True,
) -> Reduced:
    """ToMe bipartite soft matching: merge ``r`` tokens of each row into their nearest partner.

    The free tokens of a row alternate into A (1st, 3rd, ...) and B (2nd, 4th, ...). Each A
    token's score is its best cosine similarity :math:`\\max_{b} \\cos(m_a, m_b)` on ``metric``
    ``(B, T, C)`` (ToMe uses the attention keys, averaged over heads); the
    :math:`\\min(r, \\lfloor n/2 \\rfloor)` A tokens with the highest scores (ties: the earlier
    token) are merged into their partners by size-weighted average; all other tokens stay.
    Give ``rate`` in [0, 0.5] instead of ``r`` to merge :math:`\\lfloor \\text{rate} \\cdot n
    \\rfloor` tokens of a row with n free tokens (the same fraction for short and long rows).
    """
    mask, sizes = _check_inputs(states, attention_mask, sizes)
    if not isinstance(metric, Tensor) or metric.dim() != 3 or metric.shape[:2] != mask.shape:
        got = tuple(metric.shape) if isinstance(metric, Tensor) else type(metric).__name__
        raise ValueError(f"metric must have shape (B, T, C) with (B, T) = {tuple(mask.shape)}, "
                         f"got {got}")
    first, last = protected_tokens(mask, cls, sep)
    free = mask & ~first & ~last
    parity = (free.long().cumsum(1) - 1) % 2
    a_pos, a_valid = _positions_of(free & (parity == 0))
    b_pos, b_valid = _positions_of(free & (parity == 1))
    merges = torch.minimum(b_valid.sum(1, keepdim=True), _merge_count(free, r, rate))  # (B, 1)
    r = int(merges.max()) if merges.numel() else 0
    if r == 0 or b_pos.shape[1] == 0:
        slots, width = _slots_of_kept(mask)
        return reduce_into_slots(states, sizes, slots, width)
    with torch.no_grad():
        unit = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        scores = _rows(unit, a_pos) @ _rows(unit, b_pos).transpose(1, 2)  # (B, |A|, |B|)
        valid = a_valid.unsqueeze(2) & b_valid.unsqueeze(1)
        scores = scores.masked_fill(~valid, -math.inf)
        best, partner = scores.max(2)  # (B, |A|)
        order = best.argsort(dim=1, descending=True, stable=True)
        count = min(r, order.shape[1])
        chosen = order[:, :count]  # indices into A
        active = torch.arange(count, device=mask.device) < merges  # (B, count)
        length = mask.shape[1]
        src = torch.where(active, a_pos.gather(1, chosen), length)  # inactive -> spare column
        dst = b_pos.gather(1, partner.gather(1, chosen))
        merged = mask.new_zeros(mask.shape[0], length + 1).scatter(1, src, True)[:, :length]
        target = torch.zeros_like(merged, dtype=torch.long)
        target = torch.cat([target, target[:, :1]], 1).scatter(1, src, dst)[:, :length]
        slots, width = _slots_of_kept(mask & ~merged)
        slots = torch.where(merged, slots.gather(1, target), slots)
    return reduce_into_slots(states, sizes, slots, width)


def prune_tokens(
    states: Tensor,
    attention_mask: Tensor | None,
    importance: Tensor,
    keep: float,
    sizes: Tensor | None = None,
    *,
    cls: bool = True,
    sep: bool = True,
) -> Reduced:
    """EViT: keep the :math:`\\lceil \\text{keep} \\cdot n \\rceil` most important free tokens
    of each row (``importance (B, T)``, e.g. the attention CLS pays each token, averaged over
    heads; ties: the earlier token), fuse the others into one size-weighted token placed at the
    end of the row. A row that would fuse fewer than 2 tokens keeps them all.
    """
    mask, sizes = _check_inputs(states, attention_mask, sizes)
    _check_shape("importance", importance, tuple(mask.shape))
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0.0 < keep <= 1.0:
        raise ValueError(f"keep ({keep!r}) must be a fraction in (0, 1]")
    first, last = protected_tokens(mask, cls, sep)
    free = mask & ~first & ~last
    with torch.no_grad():
        count = free.sum(1, keepdim=True)
        kept_count = torch.ceil(count.to(torch.float64) * keep).long()
        kept_count = torch.where(count - kept_count >= 2, kept_count, count)
        key = importance.detach().to(torch.float64).masked_fill(~free, -math.inf)
        order = key.argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
        chosen = free & (rank < kept_count)
        fused = free & ~chosen
        slots, width = _slots_of_kept(mask & ~fused)
        kept = (mask & ~fused).sum(1, keepdim=True)
        slots = torch.where(fused, kept.expand_as(slots), slots)
        width = int((kept + fused.any(1, keepdim=True)).max()) if mask.numel() else 0
    return reduce_into_slots(states, sizes, slots, width)


# ---------------------------------------------------------------------------------------------
# Pooling reduced tokens


_SIZE_WEIGHTED_MODES = ("mean", "mean_sqrt_len")


def pool_reduced(pool, states: Tensor, attention_mask: Tensor, sizes: Tensor | None) -> Tensor:
    """A :class:`~poolkit.nn.SequencePool` over reduced tokens, each weighted by its size.

    ``mean`` becomes :math:`\\sum_t s_t x_t / \\sum_t s_t` and ``mean_sqrt_len``
    :math:`\\sum_t s_t x_t / \\sqrt{\\sum_t s_t}`: since a merged token is the size-weighted mean
    of its originals, mean pooling after ``merge`` or mean-``strided`` equals mean pooling of the
    original tokens at that layer (ToMe's ``patch/mae.py`` does the same). The other modes
    (max, cls, last, kmax, learned) read the reduced tokens as they are; ``weighted_mean`` ranks
    the reduced tokens. ``sizes=None``: plain ``pool(states, attention_mask)``.
    """
    pooled = pool(states, attention_mask)
    if sizes is None:
        return pooled
    mask = attention_mask != 0
    weights = torch.where(mask, sizes.to(states.dtype), 0.0)
    total = torch.bmm(weights.unsqueeze(1), states).squeeze(1)  # (B, H)
    count = weights.sum(1, keepdim=True).clamp_min(1.0)
    hidden, pieces, start = states.shape[-1], [], 0
    for part in pool.modes:
        width = hidden * (pool.options.get("k", 1) if part == "kmax" else
                          pool.options.get("num_queries", 1) if part == "attention" else 1)
        if part in _SIZE_WEIGHTED_MODES:
            divisor = count if part == "mean" else count.sqrt()
            pieces.append((total / divisor).to(pooled.dtype))
        else:
            pieces.append(pooled[:, start : start + width])
        start += width
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)
