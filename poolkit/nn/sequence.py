"""Masked sequence pooling: token states ``(B, T, H)`` + attention mask ``(B, T)`` -> ``(B, D)``.

Every mode works on the set of *real* tokens of each row, found from the mask, so left padding,
right padding and no padding give the same answer, and so does any other placement of the pad
positions (a non-contiguous mask is read as "these tokens, in this order"). With the real
tokens :math:`x_1..x_n` of a row:

- ``mean``: :math:`\\frac1n \\sum_i x_i` (width H);
- ``max`` / ``min``: :math:`\\max_i x_{i,h}` / :math:`\\min_i x_{i,h}` per feature (H);
- ``cls`` / ``first``: :math:`x_1`, the first *real* token, not position 0 (H);
- ``last``: :math:`x_n`, the last real token, not position ``sum(mask) - 1`` (H);
- ``weighted_mean``: :math:`\\sum_i i\\,x_i / \\sum_i i` with :math:`i` the rank among the real
  tokens, so the weights do not depend on padding (H);
- ``mean_sqrt_len``: :math:`\\frac1{\\sqrt n} \\sum_i x_i` (H);
- ``kmax``: the k largest :math:`x_{i,h}` per feature, kept in token order (k*H);
- ``attention``: PMA (Lee et al., 2019), q learned queries attend to the real tokens (q*H);
- ``latent_attention``: NV-Embed (Lee et al., 2024), every token attends to r learned latents,
  then an MLP, then the masked mean (H).

Modes concatenate with ``+`` (``"mean+max"`` gives ``[mean, max]``, width ``2H``).

Guarantees, all tested in ``tests/test_sequence_pool.py``:

* the caller's tensors are never written to (masked max works on an out-of-place
  ``masked_fill`` with the dtype's smallest finite value, never ``-1e9`` written in place);
* a row without any real token pools to zeros in every mode (no NaN, no inf);
* float16 / bfloat16 input: sums and softmaxes accumulate in float32, the result is cast back;
* ``exclude_mask`` removes tokens (an instruction or prompt) from pooling only: they still took
  part in the transformer's attention that produced ``hidden_states``;
* no Python loop over the batch.

Values at padded positions must be finite: the mean-type modes multiply them by zero (a NaN
times zero is NaN); every other mode never reads them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from poolkit.pools import (  # noqa: F401  (the modes are pure data, shared with poolkit.keras)
    LEARNED_MODES,
    POOLING_MODES,
    SENTENCE_TRANSFORMERS_MODES,
    ST_ONLY_NAMES,
    parse_mode,
    positive_int,
    resolve_sequence_options,
    sequence_part_mult,
)

__all__ = [
    "LEARNED_MODES",
    "POOLING_MODES",
    "SENTENCE_TRANSFORMERS_MODES",
    "mode_from_sentence_transformers",
    "sentence_transformers_config",
    "SequencePool",
    "first_token",
    "last_token",
    "masked_kmax",
    "masked_max",
    "masked_mean",
    "masked_min",
    "masked_weighted_mean",
    "prompt_exclude_mask",
    "sequence_mask",
]


_HALF_DTYPES = (torch.float16, torch.bfloat16)


# ---------------------------------------------------------------------------------------------
# Inputs


def sequence_mask(
    hidden_states: Tensor, attention_mask: Tensor | None = None, exclude_mask: Tensor | None = None
) -> Tensor:
    """Check the inputs and return the boolean ``(B, T)`` mask of the tokens to pool.

    ``attention_mask`` nonzero = real token (``None``: every token is real); ``exclude_mask``
    nonzero = a real token to leave out of pooling (a prompt or instruction). Neither input is
    modified. Raises ``TypeError``/``ValueError`` naming the argument for wrong types or shapes.
    """
    if not isinstance(hidden_states, Tensor):
        raise TypeError(f"hidden_states must be a torch.Tensor, got {type(hidden_states).__name__}")
    if hidden_states.dim() != 3:
        raise ValueError(
            f"hidden_states must have shape (B, T, H), got {tuple(hidden_states.shape)} "
            f"({hidden_states.dim()} dims)"
        )
    if not hidden_states.is_floating_point():
        raise TypeError(f"hidden_states must be a floating-point tensor, got {hidden_states.dtype}")
    batch, length = hidden_states.shape[:2]
    mask = _as_bool_mask("attention_mask", attention_mask, batch, length, hidden_states.device)
    if mask is None:
        mask = torch.ones(batch, length, dtype=torch.bool, device=hidden_states.device)
    excluded = _as_bool_mask("exclude_mask", exclude_mask, batch, length, hidden_states.device)
    if excluded is not None:
        mask = mask & ~excluded
    return mask


def _as_bool_mask(name: str, mask: Tensor | None, batch: int, length: int, device) -> Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(mask).__name__}")
    if tuple(mask.shape) != (batch, length):
        raise ValueError(
            f"{name} shape {tuple(mask.shape)} must be (B, T) = ({batch}, {length}), "
            "the first two dims of hidden_states"
        )
    if mask.is_complex():
        raise TypeError(f"{name} must be bool, integer or float, got {mask.dtype}")
    return (mask != 0).to(device)  # a new tensor: the caller's mask is never touched


def prompt_exclude_mask(attention_mask: Tensor, prompt_lengths: Tensor | list[int]) -> Tensor:
    """Mark the first ``prompt_lengths[b]`` *real* tokens of each row, for ``exclude_mask``.

    Counting real tokens (not positions) makes it right under left padding too: with
    ``attention_mask = [[0, 0, 1, 1, 1]]`` and ``prompt_lengths = [2]`` the result is
    ``[[False, False, True, True, False]]``.

    Shape: ``attention_mask (B, T)``, ``prompt_lengths (B,)`` -> bool ``(B, T)``.
    """
    mask = attention_mask != 0
    lengths = torch.as_tensor(prompt_lengths, device=mask.device)
    if lengths.dim() != 1 or lengths.shape[0] != mask.shape[0]:
        raise ValueError(
            f"prompt_lengths must have one entry per row ({mask.shape[0]}), "
            f"got shape {tuple(lengths.shape)}"
        )
    rank = mask.long().cumsum(1)  # 1..n at real tokens
    return mask & (rank <= lengths.unsqueeze(1))


# ---------------------------------------------------------------------------------------------
# Functional forms: hidden_states (B, T, H), mask bool (B, T) from `sequence_mask`.


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in _HALF_DTYPES else dtype


def _weighted_sum(hidden_states: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """``sum_t w_t x_t`` and ``sum_t w_t`` in the accumulation dtype.

    A batched ``(B, 1, T) @ (B, T, H)`` product reads the states once and writes nothing of
    size ``B*T*H`` (the mask-multiply formulation materialises ``x * mask`` first).
    """
    dtype = _accumulate_dtype(hidden_states.dtype)
    weights = weights.to(dtype)
    total = torch.bmm(weights.unsqueeze(1), hidden_states.to(dtype)).squeeze(1)  # (B, H)
    return total, weights.sum(1, keepdim=True)  # (B, H), (B, 1)


def masked_mean(hidden_states: Tensor, mask: Tensor) -> Tensor:
    """Mean over real tokens: :math:`\\sum_t m_t x_t / \\max(1, \\sum_t m_t)`.

    Example: states ``[[1], [3], [5]]``, mask ``[1, 1, 0]`` -> ``(1 + 3) / 2 = 2``.
    """
    total, count = _weighted_sum(hidden_states, mask)
    return (total / count.clamp_min(1)).to(hidden_states.dtype)


def masked_mean_sqrt_len(hidden_states: Tensor, mask: Tensor) -> Tensor:
    """:math:`\\sum_t m_t x_t / \\sqrt{\\max(1, n)}` (sentence-transformers' mean_sqrt_len)."""
    total, count = _weighted_sum(hidden_states, mask)
    return (total / count.clamp_min(1).sqrt()).to(hidden_states.dtype)


def masked_weighted_mean(hidden_states: Tensor, mask: Tensor) -> Tensor:
    """Position-weighted mean, weight = rank of the token among the real tokens (1..n).

    Unlike weights taken from the absolute position, these do not change with the amount or
    the side of the padding. Example: states ``[[1], [3]]`` real, left-padded by any number of
    pads -> ``(1*1 + 2*3) / (1 + 2) = 7/3``.
    """
    rank = mask.long().cumsum(1) * mask  # (B, T): 1..n at real tokens, 0 at pads
    total, weight_sum = _weighted_sum(hidden_states, rank)
    return (total / weight_sum.clamp_min(1)).to(hidden_states.dtype)


def masked_max(hidden_states: Tensor, mask: Tensor) -> Tensor:
    """Per-feature maximum over real tokens; a row without real tokens gives zeros.

    Pads are replaced out of place by the dtype's smallest finite value (not ``-1e9``, which
    overflows float16 and is not small enough for large activations).
    """
    filled = hidden_states.masked_fill(~mask.unsqueeze(-1), torch.finfo(hidden_states.dtype).min)
    return _zero_empty_rows(filled.amax(1), mask)


def masked_min(hidden_states: Tensor, mask: Tensor) -> Tensor:
    """Per-feature minimum over real tokens; a row without real tokens gives zeros."""
    filled = hidden_states.masked_fill(~mask.unsqueeze(-1), torch.finfo(hidden_states.dtype).max)
    return _zero_empty_rows(filled.amin(1), mask)


def _first_index(mask: Tensor) -> Tensor:
    """Position of the first nonzero of each row (0 for an empty row): the argmax of the mask
    weighted ``T, T-1, ..., 1``. Shape ``(B, T) -> (B,)``."""
    length = mask.shape[1]
    return (mask * torch.arange(length, 0, -1, device=mask.device)).argmax(1)


def _last_index(mask: Tensor) -> Tensor:
    """Position of the last nonzero of each row (0 for an empty row): the argmax of the mask
    weighted ``1, 2, ..., T``. Shape ``(B, T) -> (B,)``."""
    length = mask.shape[1]
    return (mask * torch.arange(1, length + 1, device=mask.device)).argmax(1)


def first_token(hidden_states: Tensor, mask: Tensor) -> Tensor:
    """The state of the first real token of each row (CLS for BERT-like encoders).

    With left padding the first *position* is a pad; the first real token is where the mask
    first becomes nonzero.
    """
    rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
    return _zero_empty_rows(hidden_states[rows, _first_index(mask)], mask)


def last_token(hidden_states: Tensor, mask: Tensor) -> Tensor:
    """The state of the last real token of each row (the usual pooling for decoder LLMs).

    Found as the largest position where the mask is nonzero. ``sum(mask) - 1`` is wrong under
    left padding (it points into the sentence, or at a pad), and searching for the first EOS
    in ``input_ids`` is wrong when pad == eos.
    """
    rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
    return _zero_empty_rows(hidden_states[rows, _last_index(mask)], mask)


def masked_kmax(hidden_states: Tensor, mask: Tensor, k: int) -> Tensor:
    """k-max pooling over real tokens (Kalchbrenner et al., 2014), ``(B, T, H) -> (B, k*H)``.

    For every feature the k largest values over the real tokens are kept *in token order*.
    A row with fewer than k real tokens keeps all of them, in order, followed by zeros.
    The output is k blocks of H: block j holds, for every feature, its j-th kept value.
    """
    batch, length, hidden = hidden_states.shape
    taken = min(k, length)
    if taken == 0:
        return hidden_states.new_zeros(batch, k * hidden)
    filled = hidden_states.masked_fill(~mask.unsqueeze(-1), torch.finfo(hidden_states.dtype).min)
    top = filled.topk(taken, dim=1).indices  # (B, k, H) token positions
    real = mask.unsqueeze(-1).expand(batch, length, hidden).gather(1, top)  # (B, k, H)
    # Token order for real picks, pads (rows with < k real tokens) sorted to the end.
    order = (top + (~real).long() * length).argsort(dim=1)
    top, real = top.gather(1, order), real.gather(1, order)
    values = torch.where(real, hidden_states.gather(1, top), 0)  # (B, k, H)
    if taken < k:
        values = torch.cat([values, values.new_zeros(batch, k - taken, hidden)], 1)
    return values.reshape(batch, k * hidden)


def _zero_empty_rows(pooled: Tensor, mask: Tensor) -> Tensor:
    """Rows whose mask has no real token pool to zeros (``where``, so no ``inf * 0``)."""
    has_token = mask.any(1, keepdim=True)  # (B, 1)
    return torch.where(has_token, pooled, torch.zeros((), dtype=pooled.dtype, device=pooled.device))


_FUNCTIONS = {
    "mean": masked_mean,
    "max": masked_max,
    "min": masked_min,
    "cls": first_token,
    "first": first_token,
    "last": last_token,
    "weighted_mean": masked_weighted_mean,
    "mean_sqrt_len": masked_mean_sqrt_len,
}


# ---------------------------------------------------------------------------------------------
# Learned modes


class _MaskedMultiHeadAttention(nn.Module):
    """Scaled dot-product attention with a key mask, softmax in float32.

    .. math:: \\mathrm{head}_j = \\mathrm{softmax}\\big(Q W^Q_j (K W^K_j)^\\top / \\sqrt{d}
              + \\log m\\big) V W^V_j, \\quad \\mathrm{out} = [\\mathrm{head}_1..] W^O

    A query whose keys are all masked gets a zero output (not NaN).
    Shape: queries ``(B, Q, H)``, keys_values ``(B, S, H)`` or ``(1, S, H)`` (shared by every
    row, broadcast), key_mask ``(B, S)`` -> ``(B, Q, H)``.
    """

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def _split(self, x: Tensor) -> Tensor:  # (B, S, H) -> (B, heads, S, H / heads)
        batch, length, hidden = x.shape
        return x.view(batch, length, self.num_heads, hidden // self.num_heads).transpose(1, 2)

    def forward(self, queries: Tensor, keys_values: Tensor, key_mask: Tensor | None) -> Tensor:
        q = self._split(self.query(queries))  # (B, h, Q, d)
        k = self._split(self.key(keys_values))  # (B, h, S, d)
        v = self._split(self.value(keys_values))
        scores = q @ k.transpose(-1, -2)  # (B, h, Q, S)
        scores = scores.to(_accumulate_dtype(scores.dtype)) / math.sqrt(q.shape[-1])
        if key_mask is not None:
            keep = key_mask[:, None, None, :]  # (B, 1, 1, S)
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
            weights = scores.softmax(-1) * keep  # all-masked rows: uniform * 0 = 0
        else:
            weights = scores.softmax(-1)
        heads = weights.to(v.dtype) @ v  # (B, h, Q, H / h)
        batch, _, num_queries, _ = heads.shape
        return self.out(heads.transpose(1, 2).reshape(batch, num_queries, -1))


class _PoolingByMultiheadAttention(nn.Module):
    """PMA, Set Transformer (Lee et al., ICML 2019), as in the authors' code (no LayerNorm):

    .. math:: H = S W^Q + \\mathrm{MHA}(S, X, X), \\quad
              \\mathrm{PMA}(X) = H + \\mathrm{relu}(H W + b)

    with learned seed vectors :math:`S \\in \\mathbb{R}^{q \\times H}` and the pads masked out
    of the keys. Shape: ``(B, T, H)``, mask ``(B, T)`` -> ``(B, q*H)``.
    """

    def __init__(self, hidden_size: int, num_heads: int, num_queries: int):
        super().__init__()
        self.seeds = nn.Parameter(torch.empty(1, num_queries, hidden_size))
        nn.init.xavier_uniform_(self.seeds)
        self.attention = _MaskedMultiHeadAttention(hidden_size, num_heads)
        self.feed_forward = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: Tensor, mask: Tensor) -> Tensor:
        batch = hidden_states.shape[0]
        seeds = self.seeds.expand(batch, -1, -1)  # (B, q, H)
        pooled = self.attention.query(seeds) + self.attention(seeds, hidden_states, mask)
        pooled = pooled + torch.relu(self.feed_forward(pooled))  # (B, q, H)
        return _zero_empty_rows(pooled.reshape(batch, -1), mask)


class _LatentAttention(nn.Module):
    """NV-Embed latent attention (Lee et al., 2024, arXiv:2405.17428):

    .. math:: O = X + \\mathrm{MHA}(X, L, L), \\quad O' = O + \\mathrm{MLP}(O), \\quad
              p = \\frac1n \\sum_{i\\,\\mathrm{real}} O'_i

    every token (query) attends to a learned latent array :math:`L \\in \\mathbb{R}^{r \\times
    H}` (keys = values), then a GELU MLP, then the masked mean. The residual connections follow
    the released NV-Embed model; with them the layer starts close to mean pooling.
    Shape: ``(B, T, H)``, mask ``(B, T)`` -> ``(B, H)``.
    """

    def __init__(self, hidden_size: int, num_heads: int, num_latents: int, mlp_dim: int):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, num_latents, hidden_size) / hidden_size**0.5)
        self.attention = _MaskedMultiHeadAttention(hidden_size, num_heads)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, hidden_size)
        )

    def forward(self, hidden_states: Tensor, mask: Tensor) -> Tensor:
        # The latents' keys and values are the same for every row: project them once, (1, r, H),
        # and let the attention's matmuls broadcast over the batch (B times fewer FLOPs than
        # expanding the latents to (B, r, H) first).
        attended = hidden_states + self.attention(hidden_states, self.latents, None)  # (B, T, H)
        attended = attended + self.mlp(attended)
        return masked_mean(attended, mask)


# ---------------------------------------------------------------------------------------------
# The module


#: The order in which sentence-transformers' legacy ``pooling_mode_*`` keys concatenate.
_ST_LEGACY_KEYS = (
    ("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"), ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_weightedmean_tokens", "weighted_mean"), ("pooling_mode_lasttoken", "last"),
)


def mode_from_sentence_transformers(config: Mapping[str, Any]) -> str | None:
    """The mode of a sentence-transformers ``Pooling`` config (``1_Pooling/config.json``):
    its ``pooling_mode`` (a name or a list, current versions) or its ``pooling_mode_*`` flags
    (older ones, concatenated in sentence-transformers' order). ``None`` when it names none."""
    named = config.get("pooling_mode")
    if isinstance(named, str):
        return "+".join(parse_mode(named))
    if isinstance(named, (list, tuple)) and named:
        return "+".join(parse_mode("+".join(str(part) for part in named)))
    modes = [mode for key, mode in _ST_LEGACY_KEYS if config.get(key) is True]
    return "+".join(modes) or None


def sentence_transformers_config(pool: SequencePool) -> dict[str, Any] | None:
    """The ``1_Pooling/config.json`` of sentence-transformers' own ``Pooling`` for ``pool``, in
    the legacy keys every version reads, or ``None`` where its ``Pooling`` cannot express the
    mode (min, kmax, the learned modes, or a concatenation in another order than
    sentence-transformers' fixed cls, max, mean, mean_sqrt_len, weighted_mean, last)."""
    names = dict((mode, key) for key, mode in _ST_LEGACY_KEYS)
    modes = ["cls" if part == "first" else part for part in pool.modes]
    if pool.hidden_size is None or any(part not in names for part in modes):
        return None
    order = [mode for _, mode in _ST_LEGACY_KEYS if mode in modes]
    if order != modes or len(set(modes)) != len(modes):
        return None
    config: dict[str, Any] = {"word_embedding_dimension": pool.hidden_size}
    config.update({key: mode in modes for key, mode in _ST_LEGACY_KEYS})
    return config



class SequencePool(nn.Module):
    """Masked pooling of token states into one vector per sequence.

    .. math:: p = \\mathrm{pool}\\big(\\{x_t : m_t = 1\\}\\big), \\qquad
              x \\in \\mathbb{R}^{B \\times T \\times H},\\ m \\in \\{0, 1\\}^{B \\times T}

    See the module docstring for the formula of each mode; the guarantees (padding side does not
    matter, inputs untouched, empty rows -> zeros, float16/bfloat16, ``exclude_mask``) hold for
    every mode.

    Args:
        mode: one of :data:`POOLING_MODES` or several joined by ``+`` (``"mean+max"``).
        hidden_size: H; required by the learned modes, checked against the input otherwise.
        k: kmax only, number of values kept per feature (default 2).
        num_heads: attention heads of ``attention`` (default 1) / ``latent_attention``
            (default 8, as NV-Embed); must divide ``hidden_size``.
        num_queries: ``attention`` only, learned seed vectors (default 1); width ``q*H``.
        num_latents: ``latent_attention`` only, r learned latents (default 512, as NV-Embed).
        mlp_dim: ``latent_attention`` only, MLP width (default ``4 * hidden_size``).

    Shape:
        - hidden_states: ``(B, T, H)`` floating point
        - attention_mask: ``(B, T)``, nonzero = real token (``None``: all real)
        - exclude_mask: ``(B, T)`` or ``None``, nonzero = leave out of pooling
        - output: ``(B, H * feat_mult())``, dtype of ``hidden_states``

    Example:
        >>> pool = SequencePool("mean+last", hidden_size=4)
        >>> x = torch.arange(12.0).view(1, 3, 4)
        >>> pool(x, torch.tensor([[0, 1, 1]]))  # left-padded: real tokens 1 and 2
        tensor([[ 6.,  7.,  8.,  9.,  8.,  9., 10., 11.]])
        >>> pool.output_dim
        8
    """

    def __init__(self, mode: str = "mean", hidden_size: int | None = None, **kwargs: Any):
        super().__init__()
        self.modes = parse_mode(mode)
        self.mode = "+".join(self.modes)
        if hidden_size is not None:
            hidden_size = positive_int("hidden_size", hidden_size)
        self.hidden_size = hidden_size
        self.options = resolve_sequence_options(self.modes, kwargs)
        self.learned = nn.ModuleDict()
        for part in self.modes:
            if part in LEARNED_MODES:
                self.learned[part] = self._build_learned(part)

    def _build_learned(self, part: str) -> nn.Module:
        if self.hidden_size is None:
            raise ValueError(f"mode {part!r} has learned weights and needs hidden_size (got None)")
        heads = self.options["num_heads"]
        if self.hidden_size % heads:
            raise ValueError(
                f"num_heads ({heads}) must divide hidden_size ({self.hidden_size}) "
                f"for mode {part!r}"
            )
        if part == "attention":
            return _PoolingByMultiheadAttention(
                self.hidden_size, heads, self.options["num_queries"]
            )
        mlp_dim = self.options["mlp_dim"] or 4 * self.hidden_size
        return _LatentAttention(self.hidden_size, heads, self.options["num_latents"], mlp_dim)

    # -- sizes and config (sentence-transformers' Pooling has the same getters) ---------------

    def _part_mult(self, part: str) -> int:
        return sequence_part_mult(part, self.options)

    def feat_mult(self) -> int:
        """Number of H-wide blocks in the output: 1 for ``mean``, 2 for ``mean+max``, k for kmax."""
        return sum(self._part_mult(part) for part in self.modes)

    @property
    def output_dim(self) -> int | None:
        """``hidden_size * feat_mult()``, or ``None`` when ``hidden_size`` was not given."""
        return None if self.hidden_size is None else self.hidden_size * self.feat_mult()

    def get_pooling_mode_str(self) -> str:
        return self.mode

    def pools_used(self) -> dict[str, str]:
        """The pooling of each role (recorded by ``poolkit compare``): ``{"sequence": mode}``."""
        return {"sequence": self.mode}

    def get_config(self) -> dict[str, Any]:
        """JSON-able config; ``SequencePool.from_config(pool.get_config())`` rebuilds it."""
        return {"mode": self.mode, "hidden_size": self.hidden_size, **self.options}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SequencePool:
        """Rebuild from :meth:`get_config`, or from a sentence-transformers ``Pooling`` config
        (``word_embedding_dimension``/``embedding_dimension``, ``pooling_mode`` or the
        ``pooling_mode_*`` flags; ``include_prompt`` is a call-time matter here: pass an
        ``exclude_mask``)."""
        config = dict(config)
        if "mode" not in config:
            mode = mode_from_sentence_transformers(config)
            if mode is None:
                raise ValueError(f"config {config!r} has no 'mode' (nor sentence-transformers' "
                                 "pooling_mode keys)")
            hidden = config.get("embedding_dimension", config.get("word_embedding_dimension"))
            return cls(mode, hidden)
        return cls(config.pop("mode"), config.pop("hidden_size", None), **config)

    def extra_repr(self) -> str:
        extras = "".join(f", {key}={value}" for key, value in self.options.items())
        return f"mode={self.mode!r}, hidden_size={self.hidden_size}{extras}"

    # -- forward ------------------------------------------------------------------------------

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        exclude_mask: Tensor | None = None,
    ) -> Tensor:
        mask = sequence_mask(hidden_states, attention_mask, exclude_mask)
        if self.hidden_size is not None and hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(
                f"hidden_states last dim ({hidden_states.shape[-1]}) must equal hidden_size "
                f"({self.hidden_size})"
            )
        batch, length, hidden = hidden_states.shape
        pieces = []
        for part in self.modes:
            if length == 0:  # nothing to pool: the empty-row rule
                pieces.append(hidden_states.new_zeros(batch, hidden * self._part_mult(part)))
            elif part in _FUNCTIONS:
                pieces.append(_FUNCTIONS[part](hidden_states, mask))
            elif part == "kmax":
                pieces.append(masked_kmax(hidden_states, mask, self.options["k"]))
            else:
                pieces.append(self._learned_forward(part, hidden_states, mask))
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)

    def _learned_forward(self, part: str, hidden_states: Tensor, mask: Tensor) -> Tensor:
        module = self.learned[part]
        param_dtype = next(module.parameters()).dtype
        pooled = module(hidden_states.to(param_dtype), mask)
        return pooled.to(hidden_states.dtype)
