r"""Attention pooling over spatial positions (a learned query, multi-head).

A learned query attends to the ``H*W`` positions of a feature map (keys and values are linear
maps of the position features, plus an optional learned positional embedding), as in the
attention-pooling head of CLIP's ResNets (A. Radford et al., "Learning Transferable Visual Models
From Natural Language Supervision", ICML 2021), where the query is the mean token instead of a
learned one (``query="mean"`` here). Multi-head attention: A. Vaswani et al., NeurIPS 2017.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poolkit.geometry import normalize_sizes
from poolkit.nn._base import PoolModule
from poolkit.nn._utils import check_choice, check_input

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


class _AttentionPoolNd(PoolModule):
    def __init__(
        self, channels: int, num_heads: int = 1, out_features: int | None = None,
        spatial_size: int | Sequence[int] | None = None, query: str = "learned",
        flatten: bool = True, *, device=None, dtype=None,
    ):
        super().__init__()
        for name, value in (("channels", channels), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be an int >= 1")
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        out_features = channels if out_features is None else out_features
        if isinstance(out_features, bool) or not isinstance(out_features, int) or (
            out_features < 1 or out_features % channels
        ):
            raise ValueError(
                f"out_features ({out_features!r}) must be a positive multiple of channels "
                f"({channels}) so that the output is (N, C * feat_mult)"
            )
        self.channels, self.num_heads, self.out_features = channels, num_heads, out_features
        self.query_mode = check_choice(query, "query", ("learned", "mean"))
        self.flatten = bool(flatten)
        scale = channels**-0.5
        self.query = nn.Parameter(torch.randn(channels) * scale) if query == "learned" else None
        self.q_proj = nn.Linear(channels, channels)
        self.k_proj = nn.Linear(channels, channels)
        self.v_proj = nn.Linear(channels, channels)
        self.out_proj = nn.Linear(channels, out_features)
        if spatial_size is None:
            self.pos_embed = None
        else:
            size = normalize_sizes(spatial_size, self.dims, "spatial_size")
            self.pos_embed = nn.Parameter(torch.randn(channels, *size) * scale)
        self._place(device, dtype)

    def feat_mult(self) -> int:
        return self.out_features // self.channels

    def forward(self, input: Tensor) -> Tensor:
        check_input(input, self.dims)
        n, c = input.shape[:2]
        if c != self.channels:
            raise ValueError(f"input has {c} channels, the layer was built for {self.channels}")
        if self.pos_embed is not None:
            pos = self.pos_embed
            if tuple(pos.shape[1:]) != tuple(input.shape[2:]):  # other sizes: interpolate
                pos = F.interpolate(pos[None], size=input.shape[2:],
                                    mode=_INTERPOLATION[self.dims], align_corners=False)[0]
            input = input + pos
        tokens = input.flatten(2).transpose(1, 2)  # (N, L, C)
        if self.query_mode == "learned":
            query = self.query.expand(n, 1, c)  # (N, 1, C)
        else:  # CLIP: the mean token queries the positions and itself
            query = tokens.mean(1, keepdim=True)
            tokens = torch.cat([query, tokens], 1)
        heads, width = self.num_heads, c // self.num_heads
        q = self.q_proj(query).view(n, 1, heads, width).transpose(1, 2)  # (N, h, 1, d)
        length = tokens.shape[1]  # not -1: an empty batch must keep its shape
        k = self.k_proj(tokens).view(n, length, heads, width).transpose(1, 2)  # (N, h, L, d)
        v = self.v_proj(tokens).view(n, length, heads, width).transpose(1, 2)
        pooled = F.scaled_dot_product_attention(q, k, v).reshape(n, c)  # (N, C)
        out = self.out_proj(pooled)
        return out if self.flatten else out.reshape(n, -1, *([1] * self.dims))

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_heads={self.num_heads}, "
                f"out_features={self.out_features}, query={self.query_mode!r}, "
                f"pos_embed={self.pos_embed is not None}")


class AttentionPool1d(_AttentionPoolNd):
    r"""Attention pooling over the time steps of ``(N, C, L)``, see :class:`AttentionPool2d`.

    .. math:: y = W_o \operatorname{MHA}(q, W_k x, W_v x)

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C_{out})`.
    """

    dims = 1


class AttentionPool2d(_AttentionPoolNd):
    r"""Attention pooling over the ``H*W`` positions: a learned query, multi-head.

    .. math::
        \operatorname{head}_h = \operatorname{softmax}\Big(\frac{(W_q q)_h (W_k X)_h^\top}
        {\sqrt{d}}\Big) (W_v X)_h, \qquad y = W_o [\operatorname{head}_1; \dots;
        \operatorname{head}_H]

    with :math:`X` the position features (plus a learned positional embedding when
    ``spatial_size`` is given; interpolated for other sizes, CLIP-style). ``query="mean"`` uses
    the mean feature as the query (CLIP's ``AttentionPool2d``). Global only.

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C_{out})` with ``out_features``
          (default ``C``, a multiple of ``C``); ``flatten=False``: :math:`(N, C_{out}, 1, 1)`.

    Example::

        >>> AttentionPool2d(64, num_heads=4, spatial_size=7)(torch.randn(2, 64, 7, 7)).shape
        torch.Size([2, 64])
    """

    dims = 2


class AttentionPool3d(_AttentionPoolNd):
    r"""Attention pooling over the positions of ``(N, C, D, H, W)``, see :class:`AttentionPool2d`.

    .. math:: y = W_o \operatorname{MHA}(q, W_k x, W_v x)

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C_{out})`.
    """

    dims = 3
