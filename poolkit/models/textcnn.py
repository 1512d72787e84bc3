"""TextCNN (Kim, 2014): one convolution layer over word embeddings, pooling over time, a linear
classifier.

    Y. Kim. Convolutional Neural Networks for Sentence Classification. EMNLP 2014.

For each filter width :math:`w` and filter :math:`j`,

.. math::

    c_{j,t} = \\mathrm{ReLU}\\Big(b_j + \\sum_{k=0}^{w-1} W_{j,k} \\cdot e_{t+k}\\Big), \\qquad
    z_j = \\mathrm{pool}_t(c_{j,t})

with :math:`e_t \\in \\mathbb{R}^E` the embedding of token :math:`t`; max over time by default,
any pool of :func:`poolkit.nn.create_pool` by name. The features of all widths are concatenated,
dropped out and classified by a linear layer whose class weight vectors are rescaled to an l2
norm of at most ``max_norm`` after each step (Kim's constraint; :meth:`TextCNN.apply_constraints`,
which the trainer calls).

The convolution is a ``Conv1d`` over the embedding with the embedding dimensions as channels
(its weights are ``nn.Conv1d`` parameters), not the common tutorial's ``Conv2d`` with a ``(w, E)``
kernel over ``(B, 1, T, E)``. It is computed by :mod:`poolkit.models._time_conv`: the filters of
every width stacked into one matrix product (over the batch's distinct tokens for max over time,
whose backward pass then touches only each filter's winning window).
``benchmarks/bench_textcnn.py`` measures the difference against the tutorial's formulation.

Padding. As in Kim's code, both ends of every text get ``max(filter_widths) - 1`` padding tokens
(``padding_idx``, whose embedding is zero), so each window that touches the text occurs once and
a one-word text still fills every filter (``edge_padding=False``: only texts shorter than the
widest filter are padded, on the right). Windows made only of padding are zeroed after the ReLU,
so with max pooling (after ReLU every value is >= 0) a text's logits do not depend on how far its
batch is padded — one text alone and the same text in a batch give the same logits. Every other
pool (average, LSE, SoftPool, attention, ...) pools each text over its own windows that hold a
token (:func:`pool_real_windows`), so the same holds for all of them (texts padded on the
right, as :mod:`poolkit.data` pads them).

Shape:
    - input_ids: ``(B, T)`` token ids, ``T >= 1``.
    - output: ``(B, num_classes)`` logits.

Example:
    >>> import torch
    >>> model = TextCNN(TextCNNConfig(vocab_size=50, embed_dim=16, num_filters=4))
    >>> model(torch.randint(1, 50, (3, 2))).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from poolkit.models._pools import make_pool
from poolkit.models._time_conv import (
    conv_max_over_time,
    conv_over_time,
    distinct_tokens,
    stack_conv_weights,
    windows_with_tokens,
)
from poolkit.models.pretrained import PretrainedMixin
from poolkit.models.registry import register_model
from poolkit.nn.basic import AvgPool1d, MaxPool1d

#: Pools over time whose features do not change when zero windows are appended to the
#: (ReLU, so non-negative) maps: maxima (the first maximum wins ties; ``poolkit explain`` reads
#: their winners' positions), sums of powers, and stochastic pooling (a zero is never drawn
#: unless all are zero). They pool the zero-masked maps as they are.
_ZERO_WINDOW_SAFE = ("max", "kmax", "dynamic_kmax", "lp", "lp_abs", "stochastic")


def pool_real_windows(pool: nn.Module, maps: torch.Tensor, has_token: torch.Tensor
                      ) -> torch.Tensor:
    """``pool`` over each text's windows that hold a token, in order: ``(B, F, L)`` maps and a
    ``(B, L)`` mask -> ``(B, F * feat_mult)``, the same for a text alone or in any batch.

    The real windows are moved to the front (a stable sort of the mask), and texts with the
    same number of them are pooled together, one pool call per distinct count (few with
    length-grouped batches).
    """
    counts = has_token.sum(1)  # (B,)
    B, F_, L = maps.shape
    if bool((counts == L).all()):
        return pool(maps)
    if type(pool) is AvgPool1d and pool.is_global and pool.flatten:
        # the mean of the zero-masked maps, rescaled from L windows to the text's own
        scale = L / counts.clamp_min(1).to(maps.dtype)
        return pool(maps) * scale.unsqueeze(1)
    order = torch.argsort((~has_token).to(torch.int8), dim=1, stable=True)  # real ones first
    compact = maps.gather(2, order.unsqueeze(1).expand(B, F_, L))
    parts, rows_of = [], []
    for count in counts.unique().tolist():
        rows = (counts == count).nonzero().squeeze(1)
        # a text without tokens pools one (zero) window
        parts.append(pool(compact[rows, :, : max(int(count), 1)]))
        rows_of.append(rows)
    out = torch.cat(parts)  # rows grouped by count
    inverse = torch.empty(B, dtype=torch.long, device=maps.device)
    inverse[torch.cat(rows_of)] = torch.arange(B, device=maps.device)
    return out[inverse]


@dataclass
class TextCNNConfig:
    """Settings of a :class:`TextCNN` (all JSON-ready; saved as the checkpoint's config).

    Attributes:
        vocab_size: number of token ids, padding included (rows of the embedding); required,
            a positive integer.
        num_classes: number of classes, the width of the logits (default 2).
        embed_dim: E, the width of a word embedding (default 300, word2vec's, as in Kim 2014).
        filter_widths: window widths w in tokens, one convolution per width (default
            ``(3, 4, 5)``); positive integers.
        num_filters: F, feature maps per width (default 100).
        dropout: dropout probability on the pooled features before the classifier, in
            ``[0, 1)`` (default 0.5).
        pool: the pooling over time, a name of :func:`poolkit.nn.list_pools` in its global 1-D
            form (default ``"max"``, Kim's); a windowed form is refused when the model runs.
        pool_kwargs: extra arguments of that pool (e.g. ``{"k": 2}`` for ``kmax``); no size
            argument, the pool covers all of time (default ``{}``).
        max_norm: cap on the l2 norm of each class weight vector, applied after every
            optimizer step by :meth:`TextCNN.apply_constraints` (default 3.0, Kim's; ``None``:
            no cap); positive.
        padding_idx: the token id of padding, whose embedding stays zero; in
            ``[0, vocab_size)`` (default 0).
        embed_init: ``a`` of the uniform ``U(-a, a)`` initialisation of the embeddings (default
            0.25, Kim's CNN-rand).
        freeze_embedding: do not train the embeddings (Kim's CNN-static, with vectors loaded by
            :meth:`TextCNN.load_embeddings`; default False).
        edge_padding: pad both ends of every text with ``max(filter_widths) - 1`` padding
            tokens, as Kim's code does (default True); False pads only texts shorter than the
            widest filter, on the right.
    """

    vocab_size: int
    num_classes: int = 2
    embed_dim: int = 300
    filter_widths: tuple[int, ...] = (3, 4, 5)
    num_filters: int = 100  # feature maps per width
    dropout: float = 0.5
    pool: str = "max"  # pooling over time, a name of poolkit.nn.list_pools()
    pool_kwargs: dict = field(default_factory=dict)
    max_norm: float | None = 3.0  # l2 cap on each class weight vector (None: off)
    padding_idx: int = 0
    embed_init: float = 0.25  # embeddings ~ U(-a, a) as in Kim's CNN-rand
    freeze_embedding: bool = False  # "CNN-static" with loaded vectors
    edge_padding: bool = True  # pad both ends with max(filter_widths) - 1 pads, as Kim does

    def __post_init__(self) -> None:
        self.filter_widths = tuple(int(w) for w in self.filter_widths)
        for name in ("vocab_size", "num_classes", "embed_dim", "num_filters"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be a positive integer")
        if not self.filter_widths or min(self.filter_widths) < 1:
            raise ValueError(f"filter_widths ({self.filter_widths}) must be positive integers")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")
        if self.max_norm is not None and self.max_norm <= 0:
            raise ValueError(f"max_norm ({self.max_norm}) must be positive or None")
        if not 0 <= self.padding_idx < self.vocab_size:
            raise ValueError(
                f"padding_idx ({self.padding_idx}) must be in [0, vocab_size={self.vocab_size})"
            )


class TextCNN(PretrainedMixin, nn.Module):
    r"""TextCNN (Kim, EMNLP 2014): embeddings, one convolution per filter width, a pool over
    time, dropout and a linear classifier.

    For filter width :math:`w`, filter :math:`j` and window start :math:`t`, with
    :math:`e_t \in \mathbb{R}^E` the embedding of token :math:`t`,

    .. math::

        c_{j,t} = \mathrm{ReLU}\Big(b_j + \sum_{k=0}^{w-1} W_{j,k} \cdot e_{t+k}\Big),
        \qquad z_j = \mathrm{pool}_t(c_{j,t}) \ \ (\max_t c_{j,t} \text{ by default}),

    the pool taken over the windows that hold a token (see the module docstring for the
    padding), and the logits are :math:`W_o\, \mathrm{dropout}([z^{(w_1)}; z^{(w_2)}; \dots])
    + b_o`, the features of all widths concatenated.

    Args:
        config: a :class:`TextCNNConfig`.

    Shape:
        - input_ids: ``(B, T)`` token ids (int64), ``T >= 1``, padded with ``padding_idx``.
        - pooled features: ``(B, len(filter_widths) * num_filters * feat_mult)`` (``feat_mult``
          1 for max, ``k`` for ``kmax``).
        - output: ``(B, num_classes)`` logits.

    Example:
        >>> model = TextCNN(TextCNNConfig(vocab_size=50, embed_dim=16, num_filters=4))
        >>> model(torch.tensor([[5, 7, 9, 0], [3, 0, 0, 0]])).shape
        torch.Size([2, 2])
        >>> model.classifier.in_features  # 3 widths x 4 filters
        12
    """

    def __init__(self, config: TextCNNConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=c.padding_idx)
        nn.init.uniform_(self.embedding.weight, -c.embed_init, c.embed_init)
        with torch.no_grad():
            self.embedding.weight[c.padding_idx].zero_()
        self.embedding.weight.requires_grad_(not c.freeze_embedding)
        self.convs = nn.ModuleList(
            nn.Conv1d(c.embed_dim, c.num_filters, width) for width in c.filter_widths
        )
        # one pool per width, so that learnable pools do not share weights across widths
        self.pools = nn.ModuleList(
            make_pool(c.pool, 1, c.num_filters, **c.pool_kwargs) for _ in c.filter_widths
        )
        features = sum(c.num_filters * pool.feat_mult() for pool in self.pools)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(features, c.num_classes)
        self.min_length = max(c.filter_widths)
        #: Plain global max pools run as one fused max over time with a sparse backward,
        #: which does not call the pool modules (nor their hooks). Set False to run each pool
        #: module (same values): ``poolkit explain`` does, to read the maps they see.
        self.fused_max = True
        self._plain_max = all(
            type(pool) is MaxPool1d and pool.is_global and pool.flatten for pool in self.pools
        )
        # max and k-max ignore trailing zero windows (ReLU >= 0, first maximum wins ties), and
        # `poolkit explain` reads their winners' positions: they pool the maps as they are;
        # every other pool (an average, a softmax, bins...) pools each text's own windows
        self._pools_real_windows = c.pool not in _ZERO_WINDOW_SAFE

    def pools_used(self) -> dict[str, str]:
        """The pooling of each role in this model (recorded by ``poolkit compare``)."""
        return {"time": self.config.pool}

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        c = self.config
        if not c.edge_padding and input_ids.shape[1] < self.min_length:
            input_ids = F.pad(input_ids, (0, self.min_length - input_ids.shape[1]),
                              value=c.padding_idx)
        # Kim: every window that touches the text, exactly once; the edge padding is not
        # embedded, the convolution adds the padding embedding's terms where it reaches past
        edge = self.min_length - 1 if c.edge_padding else 0
        real = input_ids != c.padding_idx  # (B, T)
        rows = stack_conv_weights([conv.weight for conv in self.convs])  # (sum_w w F, E)
        bias = torch.cat([conv.bias for conv in self.convs])  # (len(widths) F,)
        if self._max_over_time():
            tokens, where = distinct_tokens(input_ids, c.padding_idx)
            h = conv_max_over_time(self.embedding(tokens), where, rows, bias, real,
                                   c.filter_widths, c.num_filters, edge, edge)  # (B, nF)
            return self.classifier(self.dropout(h))
        x = self.embedding(input_ids)  # (B, T, E)
        pad_row = self.embedding.weight[c.padding_idx] if edge else None
        maps = conv_over_time(x, rows, bias, c.filter_widths, c.num_filters, edge, edge, pad_row)
        features = []
        for conv_maps, has_token, pool in zip(
            maps, windows_with_tokens(real, c.filter_widths, edge, edge), self.pools, strict=True
        ):
            # windows made of padding only would give ReLU(bias); zero them so that a text's
            # features do not depend on how far its batch is padded
            activations = F.relu(conv_maps) * has_token.unsqueeze(1)  # (B, F, L_w)
            if self._pools_real_windows:
                features.append(pool_real_windows(pool, activations, has_token))
            else:
                features.append(pool(activations))  # (B, F * feat_mult)
        if features[0].ndim != 2:
            raise ValueError(
                f"pool {c.pool!r} with {c.pool_kwargs} is windowed; TextCNN "
                "pools over all of time: drop the size argument to get the global form"
            )
        h = self.dropout(torch.cat(features, dim=1))  # (B, sum_w F * feat_mult)
        return self.classifier(h)  # (B, num_classes)

    def _max_over_time(self) -> bool:
        """Plain global max pools and :attr:`fused_max` on: the fused max with the sparse
        backward (the pool modules are not called)."""
        return self._plain_max and self.fused_max

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Rescale each class weight vector to l2 norm <= ``max_norm`` (Kim's constraint)."""
        if self.config.max_norm is None:
            return
        weight = self.classifier.weight  # (num_classes, features)
        norms = weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
        weight.mul_((self.config.max_norm / norms).clamp(max=1.0))

    @torch.no_grad()
    def load_embeddings(self, vectors: torch.Tensor, freeze: bool | None = None) -> None:
        """Copy pretrained vectors ``(vocab_size, embed_dim)`` into the embedding (CNN-static /
        CNN-non-static of Kim); the padding row stays zero."""
        vectors = torch.as_tensor(vectors, dtype=self.embedding.weight.dtype)
        if tuple(vectors.shape) != tuple(self.embedding.weight.shape):
            raise ValueError(
                f"vectors shape {tuple(vectors.shape)} must be "
                f"{tuple(self.embedding.weight.shape)} (vocab_size, embed_dim)"
            )
        self.embedding.weight.copy_(vectors)
        self.embedding.weight[self.config.padding_idx].zero_()
        if freeze is not None:
            self.config.freeze_embedding = freeze
            self.embedding.weight.requires_grad_(not freeze)


register_model("textcnn", TextCNN, TextCNNConfig)
