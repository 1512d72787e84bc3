"""k-max and dynamic k-max pooling (Kalchbrenner, Grefenstette & Blunsom 2014).

N. Kalchbrenner, E. Grefenstette, P. Blunsom, "A Convolutional Neural Network for Modelling
Sentences", ACL 2014. k-max pooling keeps the ``k`` largest activations of each feature over time
**in their original order**; the dynamic variant chooses ``k`` from the sentence length and the
layer's depth.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from poolkit.geometry import (  # noqa: F401  (check_dims, dynamic_k: public here too)
    check_count,
    check_dims,
    check_dynamic_layer,
    dynamic_k,
)
from poolkit.nn import _traceable
from poolkit.nn._base import PoolModule, finish_bins
from poolkit.nn._utils import check_input


def kmax_pool(input: Tensor, k: int, dim: int = -1) -> Tensor:
    r"""The ``k`` largest values along ``dim``, kept in their original order.

    .. math::
        y = \big(x_{i_1}, \dots, x_{i_k}\big), \quad i_1 < \dots < i_k,\quad
        \{i_1..i_k\} = \operatorname{argtop}_k(x)

    Ties go to the earlier position (a stable sort). When the dimension is shorter than ``k`` the
    result is padded with zeros at the end (short sentences in a padded batch still give a fixed
    width). The gradient flows to the selected positions only.

    Shape:
        - Input: :math:`(*, L, *)`; Output: :math:`(*, k, *)`.

    Example::

        >>> kmax_pool(torch.tensor([1., 5., 2., 4., 3.]), 3)
        tensor([5., 4., 3.])
    """
    k = check_count(k, "k")
    length = input.shape[dim]
    if _traceable.capturing():  # ONNX has no stable sort; TopK keeps the earlier of ties
        top = input.detach().topk(min(k, length), dim=dim).indices
    else:
        order = input.detach().sort(dim=dim, descending=True, stable=True).indices
        top = order.narrow(dim, 0, min(k, length))
    chosen = top.sort(dim=dim).values  # back to time order
    output = input.gather(dim, chosen)
    if length < k:
        dim = dim % input.dim()
        pad = [0, 0] * (input.dim() - 1 - dim) + [0, k - length]
        output = F.pad(output, pad)
    return output


def dynamic_kmax_pool1d(input: Tensor, k_top: int, layer: int, num_layers: int) -> Tensor:
    r"""k-max pooling over time with :math:`k = \max(k_{top}, \lceil (L-l)/L \cdot s \rceil)`.

    Shape:
        - Input: :math:`(N, C, s)`; Output: :math:`(N, C, k)` with ``k`` from :func:`dynamic_k`.
    """
    check_input(input, 1)
    return kmax_pool(input, dynamic_k(input.shape[-1], k_top, layer, num_layers), dim=-1)


def kmax_pool1d(input: Tensor, k: int) -> Tensor:
    """k-max pooling over time of ``(N, C, L)`` -> ``(N, C, k)``; see :func:`kmax_pool`."""
    check_input(input, 1)
    return kmax_pool(input, k, dim=-1)


def global_kmax_pool(input: Tensor, k: int, *, dims: int) -> Tensor:
    """k-max over all spatial positions (row-major order kept): ``(N, C, *sp)`` -> ``(N, C, k)``."""
    check_dims(dims)
    check_input(input, dims)
    return kmax_pool(input.flatten(2), k, dim=-1)


class _KMaxPoolNd(PoolModule):
    def __init__(self, k: int = 1, global_pool: bool = True, flatten: bool = True) -> None:
        super().__init__()
        self.k = check_count(k, "k")
        self.is_global = bool(global_pool)
        if not self.is_global and self.dims != 1:
            raise ValueError(
                f"global_pool (False) is allowed only for 1-D k-max pooling, got dims={self.dims}"
            )
        self.flatten = bool(flatten)

    def feat_mult(self) -> int:
        return self.k

    def _finish(self, pooled: Tensor) -> Tensor:  # pooled: (N, C, k)
        return finish_bins(pooled, self.is_global, self.flatten, self.dims)

    def extra_repr(self) -> str:
        return f"k={self.k}, global_pool={self.is_global}, flatten={self.flatten}"


class KMaxPool1d(_KMaxPoolNd):
    r"""k-max pooling over time (Kalchbrenner et al. 2014), order kept.

    .. math:: y_{n,c} = \big(x_{n,c,i_1}, \dots, x_{n,c,i_k}\big),\ i_1<\dots<i_k \text{ the top-}k

    With ``global_pool=True`` (the factory's default) the ``k`` values of each channel are
    flattened channel-major to ``(N, C*k)``; ``global_pool=False`` keeps ``(N, C, k)`` to feed a
    next convolution.

    Shape:
        - Input: :math:`(N, C, L)`
        - Output: :math:`(N, C \cdot k)` (global), :math:`(N, C k, 1)` (``flatten=False``) or
          :math:`(N, C, k)` (``global_pool=False``). Zero-padded when :math:`L < k`.

    Example::

        >>> KMaxPool1d(2, global_pool=False)(torch.tensor([[[1., 5., 2., 4.]]]))
        tensor([[[5., 4.]]])
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(global_kmax_pool(input, self.k, dims=1))


class KMaxPool2d(_KMaxPoolNd):
    r"""Global k-max pooling over the ``H*W`` positions (row-major order kept).

    .. math:: y_{n,c} = \text{top-}k\{x_{n,c,h,w}\} \text{ in row-major order}

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C k)` (``flatten=False``:
          :math:`(N, C k, 1, 1)`).
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(global_kmax_pool(input, self.k, dims=2))


class KMaxPool3d(_KMaxPoolNd):
    r"""Global k-max pooling over the ``D*H*W`` positions (row-major order kept).

    .. math:: y_{n,c} = \text{top-}k\{x_{n,c,v}\} \text{ in row-major order}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C k)`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(global_kmax_pool(input, self.k, dims=3))


class DynamicKMaxPool1d(PoolModule):
    r"""Dynamic k-max pooling (Kalchbrenner et al. 2014).

    .. math:: k_l = \max\Big(k_{top}, \Big\lceil \frac{L - l}{L} s \Big\rceil\Big)

    for layer ``l`` of ``num_layers`` :math:`L` on a sequence of length :math:`s`. Without
    ``layer``/``num_layers`` it is the top layer (:math:`k = k_{top}`), the global form with
    ``feat_mult() == k_top``.

    Shape:
        - Input: :math:`(N, C, s)`
        - Output: :math:`(N, C, k_l)` (with ``layer``); global :math:`(N, C k_{top})`.

    Example::

        >>> DynamicKMaxPool1d(k_top=2, layer=1, num_layers=2)(torch.arange(6.).view(1, 1, 6))
        tensor([[[3., 4., 5.]]])
    """

    dims = 1

    def __init__(
        self, k_top: int = 1, layer: int | None = None, num_layers: int | None = None,
        flatten: bool = True,
    ) -> None:
        super().__init__()
        self.k_top = check_count(k_top, "k_top")
        self.is_global = check_dynamic_layer(self.k_top, layer, num_layers)
        self.layer, self.num_layers = layer, num_layers
        self.flatten = bool(flatten)

    def feat_mult(self) -> int:
        return self.k_top

    def forward(self, input: Tensor) -> Tensor:
        if not self.is_global:
            return dynamic_kmax_pool1d(input, self.k_top, self.layer, self.num_layers)
        pooled = kmax_pool1d(input, self.k_top)
        return pooled.flatten(1) if self.flatten else pooled.reshape(pooled.shape[0], -1, 1)

    def extra_repr(self) -> str:
        return f"k_top={self.k_top}, layer={self.layer}, num_layers={self.num_layers}"
