"""``reduce_tokens(model, schedule)``: token reducers between the layers of a BERT encoder.

A schedule is one string, parsed by :func:`parse_schedule`:

- ``none``: the model as loaded (no patch; outputs bit-identical);
- ``merge:r=8[,start=2]``: ToMe, inside every layer from ``start`` (0-based) on, between the
  attention and the MLP: merge ``r`` tokens of each row by bipartite matching on that layer's
  keys (averaged over heads); ``merge:rate=0.15`` merges that fraction of each row's tokens
  per layer instead (the same relative cut for a 10-token and a 500-token text);
- ``strided:after=2[,ratio=2][,mode=mean|max]``: Funnel pooling of windows of ``ratio`` adjacent
  tokens on the output of layer ``after`` (1-based: after that many full layers);
- ``prune:keep=0.7,after=3``: EViT, on the output of layer ``after``, keep the ``keep`` fraction
  of tokens that CLS attended to most in that layer (mean over heads), fuse the rest into one.

Every schedule also takes ``prop=0`` to turn off proportional attention (on by default: each
layer after a reduction adds :math:`\\log s_j` to its attention scores, so a token that stands
for :math:`s_j` originals weighs as much as they did). CLS and SEP (the first and last real
tokens) are never merged. The mask and the token sizes travel through the remaining layers; the
model's output then carries them (``output.attention_mask``, ``output.token_sizes``) and the
pooling of :class:`~poolkit.models.embedder.Embedder` and
:class:`~poolkit.models.transformer.TransformerClassifier` weighs each token by its size.

Supported: BERT-architecture encoders (``model_type`` in :data:`SUPPORTED_MODEL_TYPES`, e.g.
all-MiniLM-L6-v2, bert-base), also with LoRA adapters. The patch swaps the class of the
backbone instance (as ToMe does) and keeps every parameter and state-dict key, so weights load
the same with or without reduction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, is_dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from poolkit.nn.token_reduction import (
    REDUCERS,
    STRIDED_MODES,
    Reduced,
    attention_bias,
    merge_tokens,
    protected_tokens,
    prune_tokens,
    strided_reduce,
)

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "ReducedEncoderOutput",
    "ReductionSchedule",
    "parse_schedule",
    "reduce_tokens",
]

SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("bert",)
"""``config.model_type`` values whose layers the patch knows (BertModel's layout)."""

SCHEDULE_KINDS: tuple[str, ...] = ("none", *REDUCERS)
_KEYS: dict[str, tuple[str, ...]] = {
    "none": (),
    "merge": ("r", "rate", "start", "prop"),
    "strided": ("after", "ratio", "mode", "prop"),
    "prune": ("keep", "after", "prop"),
}
_EXAMPLES = {"merge": "merge:r=8", "strided": "strided:after=2,ratio=2",
             "prune": "prune:keep=0.7,after=3"}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "none": (), "merge": (), "strided": ("after",), "prune": ("keep", "after"),
}


@dataclass(frozen=True)
class ReductionSchedule:
    """A parsed schedule; ``str(schedule)`` gives its canonical string back."""

    kind: str = "none"
    r: int = 0
    rate: float = 0.0
    start: int = 0
    after: int = 0
    ratio: int = 2
    mode: str = "mean"
    keep: float = 1.0
    prop: bool = True

    def __str__(self) -> str:
        if self.kind == "none":
            return "none"
        default = ReductionSchedule()
        parts = [f"{name}={_format(getattr(self, name))}" for name in _KEYS[self.kind]
                 if name in _REQUIRED[self.kind] or getattr(self, name) != getattr(default, name)]
        return f"{self.kind}:{','.join(parts)}"

    def check_model(self, num_layers: int, max_length: int) -> None:
        """Raise ``ValueError`` when the schedule cannot run on a model of ``num_layers`` layers
        and sequences of up to ``max_length`` tokens."""
        if self.kind == "merge":
            if self.start >= num_layers:
                raise ValueError(f"start ({self.start}) must be below the number of layers "
                                 f"({num_layers})")
            if self.rate == 0 and self.r > max_length // 2:
                raise ValueError(
                    f"r ({self.r}) is larger than the sequence allows: bipartite matching merges "
                    f"at most half the tokens of a layer, {max_length // 2} of max_length "
                    f"{max_length}")
        if self.kind in ("strided", "prune") and not 1 <= self.after < num_layers:
            raise ValueError(f"after ({self.after}) must be in [1, {num_layers - 1}]: a number "
                             f"of full layers before the reduction (the model has {num_layers})")


def _format(value: Any) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


def parse_schedule(text: str | ReductionSchedule | None) -> ReductionSchedule:
    """``"merge:r=8,start=2"`` -> :class:`ReductionSchedule`; ``None`` or ``""`` -> none.

    Raises ``ValueError`` naming the unknown kind or key, or the bad value, and what is allowed.
    ``merge:r=0``, ``strided:...,ratio=1`` and ``prune:keep=1`` reduce nothing and parse to
    ``none``.
    """
    if isinstance(text, ReductionSchedule):
        return text
    text = (text or "none").strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"unknown token-reduction schedule {text!r}: the kind must be one of "
                         f"{list(SCHEDULE_KINDS)}, e.g. 'merge:r=8', 'strided:after=2,ratio=2', "
                         "'prune:keep=0.7,after=3'")
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, raw = (piece.strip() for piece in item.partition("="))
        if not equals or key not in _KEYS[kind]:
            raise ValueError(f"schedule {text!r}: {item!r} is not one of the keys of {kind!r} "
                             f"({', '.join(f'{k}=...' for k in _KEYS[kind]) or 'none'})")
        if key in values:
            raise ValueError(f"schedule {text!r} gives {key} twice")
        values[key] = _parse_value(text, key, raw)
    if kind == "merge" and ("r" in values) == ("rate" in values):
        raise ValueError(f"schedule {text!r} needs exactly one of r (tokens per layer) and rate "
                         "(a fraction of each row's tokens per layer), e.g. 'merge:r=8'")
    missing = [key for key in _REQUIRED[kind] if key not in values]
    if missing:
        raise ValueError(f"schedule {text!r} needs {', '.join(missing)} "
                         f"(e.g. {_EXAMPLES[kind]!r})")
    schedule = ReductionSchedule(kind, **values)
    removes_nothing = {"merge": schedule.r == 0 and schedule.rate == 0,
                       "strided": schedule.ratio == 1, "prune": schedule.keep == 1.0}
    return ReductionSchedule() if removes_nothing.get(kind, True) else schedule


def _parse_value(text: str, key: str, raw: str) -> Any:
    if key == "mode":
        if raw not in STRIDED_MODES:
            raise ValueError(f"schedule {text!r}: mode ({raw!r}) must be one of "
                             f"{list(STRIDED_MODES)}")
        return raw
    if key in ("keep", "rate"):
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        low, high = (0.0, 1.0) if key == "keep" else (0.0, 0.5)
        if not (low < value <= high if key == "keep" else low <= value <= high):
            interval = "(0, 1]" if key == "keep" else "[0, 0.5]"
            raise ValueError(f"schedule {text!r}: {key} ({raw!r}) must be a fraction in "
                             f"{interval}")
        return value
    low = {"r": 0, "start": 0, "after": 1, "ratio": 1, "prop": 0}[key]
    if not raw.isdigit() or int(raw) < low or (key == "prop" and int(raw) > 1):
        allowed = "0 or 1" if key == "prop" else f"an integer >= {low}"
        raise ValueError(f"schedule {text!r}: {key} ({raw!r}) must be {allowed}")
    return bool(int(raw)) if key == "prop" else int(raw)


# ---------------------------------------------------------------------------------------------
# The patched BERT forward


@dataclass
class ReducedEncoderOutput:
    """What a patched encoder returns: the reduced states ``(B, T', H)``, their mask
    ``(B, T')`` (bool) and sizes ``(B, T')`` (originals per token)."""

    last_hidden_state: Tensor
    attention_mask: Tensor
    token_sizes: Tensor

    def __getitem__(self, index: int) -> Tensor:
        return (self.last_hidden_state, self.attention_mask, self.token_sizes)[index]


def bert_attention(
    attention: nn.Module, states: Tensor, bias: Tensor, first: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """A ``BertAttention`` block run with an additive key bias ``(B, 1, 1, T)``.

    Returns ``(output (B, T, H), keys (B, heads, T, d), importance)`` where importance
    ``(B, T)`` is the attention the token at ``first`` (``(B,)`` positions; CLS) pays each
    token, averaged over heads (``None`` when ``first`` is None).
    """
    block = attention.self
    batch, length, _ = states.shape
    heads, head_dim = block.num_attention_heads, block.attention_head_size
    scale = getattr(block, "scaling", head_dim ** -0.5)

    def split(projected: Tensor) -> Tensor:  # (B, T, heads * d) -> (B, heads, T, d)
        return projected.view(batch, length, heads, head_dim).transpose(1, 2)

    query, key, value = split(block.query(states)), split(block.key(states)), split(
        block.value(states))
    dropout = block.dropout.p if block.training else 0.0
    context = F.scaled_dot_product_attention(
        query, key, value, attn_mask=bias, dropout_p=dropout, scale=scale)
    context = context.transpose(1, 2).reshape(batch, length, heads * head_dim)
    output = attention.output(context, states)
    importance = None
    if first is not None:
        cls_query = query[torch.arange(batch, device=states.device), :, first]  # (B, heads, d)
        scores = cls_query.unsqueeze(2) @ key.transpose(2, 3) * scale + bias  # (B, heads, 1, T)
        importance = scores.softmax(-1).mean(1).squeeze(1)
    return output, key, importance


def bert_layer(
    layer: nn.Module, states: Tensor, reduced: Reduced, schedule: ReductionSchedule, index: int
) -> Reduced:
    """One ``BertLayer`` on ``reduced = (states, mask, sizes)``, reducing where ``schedule``
    says (``index`` is the 0-based layer number)."""
    _, mask, sizes = reduced
    bias = attention_bias(mask, sizes if schedule.prop else None, states.dtype)
    prune_here = schedule.kind == "prune" and index + 1 == schedule.after
    first = protected_tokens(mask)[0].long().argmax(1) if prune_here else None
    attended, keys, importance = bert_attention(layer.attention, states, bias, first)
    if schedule.kind == "merge" and index >= schedule.start:
        r, rate = (None, schedule.rate) if schedule.rate else (schedule.r, None)
        attended, mask, sizes = merge_tokens(attended, mask, keys.mean(1), r, sizes, rate=rate)
    output = layer.output(layer.intermediate(attended), attended)
    if schedule.kind == "strided" and index + 1 == schedule.after:
        return strided_reduce(output, mask, sizes, ratio=schedule.ratio, mode=schedule.mode)
    if prune_here:
        return prune_tokens(output, mask, importance, schedule.keep, sizes)
    return Reduced(output, mask, sizes)


def _reduced_bert_forward(
    self,
    input_ids: Tensor | None = None,
    attention_mask: Tensor | None = None,
    token_type_ids: Tensor | None = None,
    position_ids: Tensor | None = None,
    inputs_embeds: Tensor | None = None,
    use_cache: bool | None = None,
    **unused: Any,
) -> ReducedEncoderOutput:
    """BertModel's forward with the token reducers of ``self.token_reduction`` in it."""
    states = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds)
    if attention_mask is None:
        attention_mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
    mask = attention_mask != 0
    reduced = Reduced(states, mask, mask.to(states.dtype))
    for index, layer in enumerate(self.encoder.layer):
        reduced = bert_layer(layer, reduced.states, reduced, self.token_reduction, index)
    return ReducedEncoderOutput(*reduced)


_PATCHED_CLASSES: dict[type, type] = {}


def _patched_class(cls: type) -> type:
    if cls not in _PATCHED_CLASSES:
        _PATCHED_CLASSES[cls] = type(f"TokenReduced{cls.__name__}", (cls,),
                                     {"forward": _reduced_bert_forward, "_token_patch_of": cls})
    return _PATCHED_CLASSES[cls]


# ---------------------------------------------------------------------------------------------
# The one verb


def _encoder_of(model: Any) -> tuple[nn.Module, int | None]:
    """The BERT backbone inside ``model`` (an encoder, a peft wrapper, a classifier or an
    embedder) and the longest sequence the caller feeds it."""
    max_length = None
    if hasattr(model, "backbone") and isinstance(model, nn.Module):  # TransformerClassifier
        max_length, model = model.config.max_length, model.backbone
    elif hasattr(model, "encode") and hasattr(model, "model"):  # Embedder
        max_length, model = model.max_length, model.model
    get_base = getattr(model, "get_base_model", None)  # peft
    model = get_base() if callable(get_base) else model
    if not isinstance(model, nn.Module):
        raise TypeError(f"reduce_tokens needs a transformers encoder, a TransformerClassifier or "
                        f"an Embedder, got {type(model).__name__}")
    return model, max_length


def reduce_tokens(model: Any, schedule: str | ReductionSchedule | None) -> Any:
    """Insert the token reducers of ``schedule`` into ``model`` in place; returns ``model``.

    ``model`` is a BERT-architecture ``transformers`` encoder (``BertModel``), a
    :class:`~poolkit.models.transformer.TransformerClassifier` (its ``config.reduce`` is set,
    so a checkpoint remembers the schedule) or an :class:`~poolkit.models.embedder.Embedder`
    (its ``reduce`` attribute is set). Calling it again replaces the schedule; ``"none"`` puts
    the original forward back. Raises ``ValueError`` for an unknown or impossible schedule and
    for an architecture other than :data:`SUPPORTED_MODEL_TYPES`.
    """
    parsed = parse_schedule(schedule)
    encoder, max_length = _encoder_of(model)
    original = getattr(type(encoder), "_token_patch_of", type(encoder))
    if parsed.kind == "none":
        encoder.__class__ = original
    else:
        model_type = getattr(getattr(encoder, "config", None), "model_type", None)
        layers = getattr(getattr(encoder, "encoder", None), "layer", None)
        if model_type not in SUPPORTED_MODEL_TYPES or not isinstance(layers, nn.ModuleList):
            raise ValueError(
                f"token reduction does not support architecture {model_type!r} "
                f"({original.__name__}); supported: {', '.join(SUPPORTED_MODEL_TYPES)} "
                "(BertModel encoders such as all-MiniLM-L6-v2)")
        longest = max_length or getattr(encoder.config, "max_position_embeddings", 512)
        parsed.check_model(len(layers), longest)
        encoder.token_reduction = parsed
        encoder.__class__ = _patched_class(original)
    if is_dataclass(getattr(model, "config", None)) and hasattr(model.config, "reduce"):
        model.config.reduce = str(parsed)
    elif hasattr(model, "encode"):
        model.reduce = str(parsed)
    return model
