r"""Masked sequence pooling as a Keras 3 layer: the twin of :class:`poolkit.nn.SequencePool`.

``SequencePool(mode)(hidden_states, attention_mask)`` pools ``(B, T, H)`` token states over the
real tokens of each row into ``(B, H * feat_mult)``. The mask comes from ``attention_mask``
(nonzero = real token) or from Keras masking (an ``Embedding(mask_zero=True)`` before it): the
layer ``supports_masking`` and consumes the mask. Every mode works on the set of real tokens,
so left and right padding give the same result; a row without real tokens pools to zeros.
Modes and formulas are :mod:`poolkit.nn.sequence`'s: ``mean``, ``max``, ``min``, ``cls`` /
``first``, ``last``, ``weighted_mean``, ``mean_sqrt_len``, ``kmax``, ``attention`` (PMA) and
``latent_attention`` (NV-Embed), joined with ``+``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from poolkit.keras._base import copy_torch_weights
from poolkit.keras.pooling import _register
from poolkit.pools import (
    LEARNED_MODES,
    parse_mode,
    positive_int,
    resolve_sequence_options,
    sequence_part_mult,
)

# ---------------------------------------------------------------------------------------------
# Functional forms on (B, T, H) states and a float 0/1 mask (B, T)


def dtype_name(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def dtype_limit(x, largest: bool) -> float:
    """The dtype's largest (or most negative) finite value, written out of place at pads."""
    name = dtype_name(x)
    top = 3.3895313892515355e38 if name == "bfloat16" else float(np.finfo(name).max)
    return top if largest else -top


def _accumulate(x):
    return ops.cast(x, "float32") if dtype_name(x) in ("float16", "bfloat16") else x


def _weighted_sum(x, weights):
    """``(sum_t w_t x_t, sum_t w_t)``: ``(B, H)`` and ``(B, 1)``."""
    xs = _accumulate(x)
    weights = ops.cast(weights, xs.dtype)
    total = ops.einsum("bt,bth->bh", weights, xs)
    return total, ops.sum(weights, axis=1, keepdims=True)


def masked_mean(x, mask):
    total, count = _weighted_sum(x, mask)
    return ops.cast(total / ops.maximum(count, 1.0), x.dtype)


def masked_mean_sqrt_len(x, mask):
    total, count = _weighted_sum(x, mask)
    return ops.cast(total / ops.sqrt(ops.maximum(count, 1.0)), x.dtype)


def masked_weighted_mean(x, mask):
    """Weights = rank among the real tokens (1..n), so padding does not move them."""
    rank = ops.cumsum(mask, axis=1) * mask
    total, weight_sum = _weighted_sum(x, rank)
    return ops.cast(total / ops.maximum(weight_sum, 1.0), x.dtype)


def _zero_empty_rows(pooled, mask):
    has_token = ops.any(mask > 0, axis=1, keepdims=True)
    return ops.where(has_token, pooled, ops.zeros_like(pooled))


def _fill_pads(x, mask, value):
    return ops.where(ops.expand_dims(mask > 0, -1), x, ops.full_like(x, value))


def masked_max(x, mask):
    return _zero_empty_rows(ops.max(_fill_pads(x, mask, dtype_limit(x, False)), axis=1),
                            mask)


def masked_min(x, mask):
    return _zero_empty_rows(ops.min(_fill_pads(x, mask, dtype_limit(x, True)), axis=1),
                            mask)


def _token_at(x, mask, weights):
    index = ops.argmax(mask * weights[None, :], axis=1)  # (B,)
    chosen = ops.take_along_axis(x, ops.reshape(index, (-1, 1, 1)), axis=1)[:, 0]
    return _zero_empty_rows(chosen, mask)


def first_token(x, mask):
    length = int(x.shape[1])
    return _token_at(x, mask, ops.convert_to_tensor(np.arange(length, 0, -1), mask.dtype))


def last_token(x, mask):
    length = int(x.shape[1])
    return _token_at(x, mask, ops.convert_to_tensor(np.arange(1, length + 1), mask.dtype))


def masked_kmax(x, mask, k: int):
    """The k largest values per feature over the real tokens, in token order, zeros after
    them for rows with fewer than k real tokens: ``(B, k * H)`` (k blocks of H)."""
    length, hidden = int(x.shape[1]), int(x.shape[2])
    taken = min(k, length)
    if taken == 0:
        return ops.zeros((ops.shape(x)[0], k * hidden), x.dtype)
    real_token = ops.expand_dims(mask > 0, -1)
    filled = _fill_pads(x, mask, dtype_limit(x, False))
    top = ops.argsort(-ops.stop_gradient(filled), axis=1)[:, :taken]  # (B, taken, H), stable
    real = ops.take_along_axis(ops.broadcast_to(real_token, ops.shape(x)), top, axis=1)
    order = ops.argsort(top + ops.cast(ops.logical_not(real), top.dtype) * length, axis=1)
    top = ops.take_along_axis(top, order, axis=1)
    real = ops.take_along_axis(real, order, axis=1)
    values = ops.where(real, ops.take_along_axis(x, top, axis=1), ops.zeros_like(x[:, :taken]))
    if taken < k:
        values = ops.pad(values, [(0, 0), (0, k - taken), (0, 0)])
    return ops.reshape(values, (-1, k * hidden))


_FUNCTIONS = {
    "mean": masked_mean, "max": masked_max, "min": masked_min, "cls": first_token,
    "first": first_token, "last": last_token, "weighted_mean": masked_weighted_mean,
    "mean_sqrt_len": masked_mean_sqrt_len,
}


# ---------------------------------------------------------------------------------------------
# Learned modes


class MaskedMultiHeadAttention(keras.layers.Layer):
    r"""Scaled dot-product attention with a key mask, softmax in float32:
    :math:`\mathrm{softmax}(QW^Q (KW^K)^\top/\sqrt d + \log m)\,VW^V`, then :math:`W^O`.
    A query whose keys are all masked gets a zero output."""

    def __init__(self, hidden_size: int, num_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.num_heads = hidden_size, num_heads
        for name in ("query", "key", "value", "out"):
            dense = keras.layers.Dense(hidden_size, name=name)
            dense.build((None, hidden_size))
            setattr(self, name, dense)

    def _split(self, x):  # (B, S, H) -> (B, h, S, d)
        width = self.hidden_size // self.num_heads
        return ops.transpose(ops.reshape(x, (-1, int(x.shape[1]), self.num_heads, width)),
                             (0, 2, 1, 3))

    def call(self, queries, keys_values, key_mask=None):
        q, k, v = (self._split(self.query(queries)), self._split(self.key(keys_values)),
                   self._split(self.value(keys_values)))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        scores = _accumulate(scores) / math.sqrt(int(q.shape[-1]))
        if key_mask is not None:
            keep = ops.reshape(key_mask > 0, (-1, 1, 1, int(key_mask.shape[1])))
            scores = ops.where(keep, scores, ops.full_like(scores, dtype_limit(scores, False)))
            weights = ops.softmax(scores, axis=-1) * ops.cast(keep, scores.dtype)
        else:
            weights = ops.softmax(scores, axis=-1)
        heads = ops.matmul(ops.cast(weights, v.dtype), v)  # (B, h, Q, d)
        merged = ops.reshape(ops.transpose(heads, (0, 2, 1, 3)),
                             (-1, int(heads.shape[2]), self.hidden_size))
        return self.out(merged)

    def torch_weight_map(self, prefix: str):
        mapping = {}
        for name in ("query", "key", "value", "out"):
            dense = getattr(self, name)
            mapping[f"{prefix}{name}.weight"] = (dense.kernel, lambda a: a.T)
            mapping[f"{prefix}{name}.bias"] = (dense.bias, lambda a: a)
        return mapping


class PoolingByMultiheadAttention(keras.layers.Layer):
    r"""PMA (Set Transformer, Lee et al. 2019): :math:`H = SW^Q + \mathrm{MHA}(S, X, X)`,
    :math:`\mathrm{PMA}(X) = H + \mathrm{relu}(HW + b)` with learned seeds S: ``(B, q*H)``."""

    def __init__(self, hidden_size, num_heads, num_queries, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seeds = self.add_weight(
            name="seeds", shape=(1, num_queries, hidden_size),
            initializer=keras.initializers.GlorotUniform(seed=seed))
        self.attention = MaskedMultiHeadAttention(hidden_size, num_heads, name="attention")
        self.feed_forward = keras.layers.Dense(hidden_size, name="feed_forward")
        self.feed_forward.build((None, hidden_size))

    def call(self, x, mask):
        seeds = ops.zeros_like(x[:, :1, :1]) + ops.cast(self.seeds, x.dtype)  # (B, q, H)
        pooled = self.attention.query(seeds) + self.attention(seeds, x, mask)
        pooled = pooled + ops.relu(self.feed_forward(pooled))
        return _zero_empty_rows(ops.reshape(pooled, (-1, int(pooled.shape[1]) *
                                                     int(pooled.shape[2]))), mask)

    def torch_weight_map(self, prefix: str):
        mapping = {f"{prefix}seeds": (self.seeds, lambda a: a),
                   f"{prefix}feed_forward.weight": (self.feed_forward.kernel, lambda a: a.T),
                   f"{prefix}feed_forward.bias": (self.feed_forward.bias, lambda a: a)}
        mapping.update(self.attention.torch_weight_map(f"{prefix}attention."))
        return mapping


class LatentAttention(keras.layers.Layer):
    r"""NV-Embed latent attention (Lee et al. 2024): :math:`O = X + \mathrm{MHA}(X, L, L)`,
    :math:`O' = O + \mathrm{MLP}(O)`, then the masked mean: ``(B, H)``."""

    def __init__(self, hidden_size, num_heads, num_latents, mlp_dim, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.latents = self.add_weight(
            name="latents", shape=(1, num_latents, hidden_size),
            initializer=keras.initializers.RandomNormal(stddev=hidden_size ** -0.5, seed=seed))
        self.attention = MaskedMultiHeadAttention(hidden_size, num_heads, name="attention")
        self.mlp_in = keras.layers.Dense(mlp_dim, name="mlp_in")
        self.mlp_in.build((None, hidden_size))
        self.mlp_out = keras.layers.Dense(hidden_size, name="mlp_out")
        self.mlp_out.build((None, mlp_dim))

    def call(self, x, mask):
        latents = ops.zeros_like(x[:, :1, :1]) + ops.cast(self.latents, x.dtype)
        attended = x + self.attention(x, latents, None)
        attended = attended + self.mlp_out(ops.gelu(self.mlp_in(attended), approximate=False))
        return masked_mean(attended, mask)

    def torch_weight_map(self, prefix: str):
        mapping = {f"{prefix}latents": (self.latents, lambda a: a)}
        for index, dense in ((0, self.mlp_in), (2, self.mlp_out)):
            mapping[f"{prefix}mlp.{index}.weight"] = (dense.kernel, lambda a: a.T)
            mapping[f"{prefix}mlp.{index}.bias"] = (dense.bias, lambda a: a)
        mapping.update(self.attention.torch_weight_map(f"{prefix}attention."))
        return mapping


# ---------------------------------------------------------------------------------------------
# The layer


@_register
class SequencePool(keras.layers.Layer):
    """Masked pooling of token states ``(B, T, H)`` into ``(B, H * feat_mult())``.

    Args:
        mode: one of :data:`POOLING_MODES` or several joined by ``+`` (``"mean+max"``).
        hidden_size: H; required by the learned modes, checked against the input otherwise.
        k, num_heads, num_queries, num_latents, mlp_dim: the mode options of
            :class:`poolkit.nn.SequencePool`, with the same defaults.
        seed: seeds the initial weights of the learned modes.

    Call: ``layer(hidden_states, attention_mask=None, exclude_mask=None)``; a Keras mask
    (``mask_zero=True``) is used when no ``attention_mask`` is given.
    """

    def __init__(self, mode="mean", hidden_size=None, seed=None, **options):
        layer_keys = {"name", "dtype", "trainable", "autocast"}
        layer_kwargs = {key: options.pop(key) for key in list(options) if key in layer_keys}
        super().__init__(**layer_kwargs)
        self.supports_masking = True
        self.modes = parse_mode(mode)
        self.mode = "+".join(self.modes)
        self.hidden_size = None if hidden_size is None else positive_int("hidden_size",
                                                                         hidden_size)
        self.seed = seed
        self.options = resolve_sequence_options(self.modes, options)
        for part in self.modes:
            if part in LEARNED_MODES:
                setattr(self, f"{part}_pool", self._build_learned(part))

    def _build_learned(self, part):
        if self.hidden_size is None:
            raise ValueError(f"mode {part!r} has learned weights and needs hidden_size (got None)")
        heads = self.options["num_heads"]
        if self.hidden_size % heads:
            raise ValueError(f"num_heads ({heads}) must divide hidden_size ({self.hidden_size}) "
                             f"for mode {part!r}")
        if part == "attention":
            return PoolingByMultiheadAttention(self.hidden_size, heads,
                                               self.options["num_queries"], seed=self.seed,
                                               name="attention")
        mlp_dim = self.options["mlp_dim"] or 4 * self.hidden_size
        return LatentAttention(self.hidden_size, heads, self.options["num_latents"], mlp_dim,
                               seed=self.seed, name="latent_attention")

    def _part_mult(self, part: str) -> int:
        return sequence_part_mult(part, self.options)

    def feat_mult(self) -> int:
        return sum(self._part_mult(part) for part in self.modes)

    @property
    def output_dim(self):
        return None if self.hidden_size is None else self.hidden_size * self.feat_mult()

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, hidden_size=self.hidden_size, seed=self.seed,
                      **self.options)
        return config

    def compute_mask(self, inputs, mask=None):
        return None  # the sequence axis is gone

    def call(self, hidden_states, attention_mask=None, exclude_mask=None, mask=None):
        x = ops.convert_to_tensor(hidden_states)
        if len(x.shape) != 3:
            raise ValueError(f"hidden_states must have shape (B, T, H), got {tuple(x.shape)}")
        if self.hidden_size is not None and int(x.shape[-1]) != self.hidden_size:
            raise ValueError(f"hidden_states last dim ({x.shape[-1]}) must equal hidden_size "
                             f"({self.hidden_size})")
        given = attention_mask if attention_mask is not None else mask
        keep = ops.ones(ops.shape(x)[:2], "float32") if given is None else \
            ops.cast(ops.not_equal(ops.convert_to_tensor(given), 0), "float32")
        if exclude_mask is not None:
            keep = keep * (1.0 - ops.cast(ops.not_equal(exclude_mask, 0), "float32"))
        hidden, length = int(x.shape[-1]), int(x.shape[1])
        pieces = []
        for part in self.modes:
            if length == 0:
                pieces.append(ops.zeros((ops.shape(x)[0], hidden * self._part_mult(part)),
                                        x.dtype))
            elif part in _FUNCTIONS:
                pieces.append(_FUNCTIONS[part](x, keep))
            elif part == "kmax":
                pieces.append(masked_kmax(x, keep, self.options["k"]))
            else:
                pieces.append(ops.cast(getattr(self, f"{part}_pool")(x, keep), x.dtype))
        return pieces[0] if len(pieces) == 1 else ops.concatenate(pieces, axis=1)

    def torch_weight_map(self):
        mapping = {}
        for part in self.modes:
            if part in LEARNED_MODES:
                layer = getattr(self, f"{part}_pool")
                mapping.update(layer.torch_weight_map(f"learned.{part}."))
        return mapping

    def load_torch_weights(self, module_or_state):
        """Copy the weights of a :class:`poolkit.nn.SequencePool` (module or ``state_dict``)."""
        copy_torch_weights(self.torch_weight_map(), module_or_state)
