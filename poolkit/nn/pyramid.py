r"""Spatial pyramid pooling (He, Zhang, Ren & Sun, ECCV 2014 / TPAMI 2015).

K. He, X. Zhang, S. Ren, J. Sun, "Spatial Pyramid Pooling in Deep Convolutional Networks for
Visual Recognition". Each level ``l`` adaptively pools the map into an ``l x l`` grid of bins;
the bins of all levels are concatenated into a fixed-length vector, whatever the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from poolkit.geometry import check_dims, pyramid_levels
from poolkit.nn._base import PoolModule, bind_dims, finish_bins
from poolkit.nn._utils import ADAPTIVE_AVG, ADAPTIVE_MAX, check_choice, check_input


def pyramid_bins(levels: Sequence[int], dims: int) -> int:
    """Number of bins of a pyramid: :math:`\\sum_l l^{dims}` (``(1, 2, 4)`` in 2-D: 21)."""
    return sum(level**dims for level in pyramid_levels(levels))


def spatial_pyramid_pool(
    input: Tensor, levels: Sequence[int] = (1, 2, 4), mode: str = "max", *, dims: int
) -> Tensor:
    r"""Spatial pyramid pooling: adaptive max (or avg) pooling at each level, concatenated.

    .. math::
        y_{n,c} = \big[\,\operatorname{pool}_{l \times l}(x_{n,c})\ \text{flattened}\,
        \big]_{l \in \text{levels}}

    Bins of level ``l`` follow PyTorch's adaptive pooling: bin ``i`` of ``l`` over a size ``S``
    covers :math:`[\lfloor iS/l \rfloor, \lceil (i+1)S/l \rceil)`. Levels larger than the input
    give repeated (overlapping) bins, as adaptive pooling does.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, \sum_l l^{d})`, level by level,
          bins in row-major order.

    Example::

        >>> spatial_pyramid_pool2d(torch.randn(2, 8, 13, 9), (1, 2, 4)).shape
        torch.Size([2, 8, 21])
    """
    check_dims(dims)
    check_input(input, dims)
    levels = pyramid_levels(levels)
    check_choice(mode, "mode", ("max", "avg"))
    pool = ADAPTIVE_MAX[dims] if mode == "max" else ADAPTIVE_AVG[dims]
    return torch.cat([pool(input, level).flatten(2) for level in levels], dim=2)


spatial_pyramid_pool1d, spatial_pyramid_pool2d, spatial_pyramid_pool3d = (
    bind_dims(spatial_pyramid_pool, f"spatial_pyramid_pool{d}d", d) for d in (1, 2, 3)
)


class _SpatialPyramidPoolNd(PoolModule):
    def __init__(
        self, levels: Sequence[int] = (1, 2, 4), mode: str = "max", global_pool: bool = False,
        flatten: bool = True,
    ):
        super().__init__()
        self.levels = pyramid_levels(levels)
        self.mode = check_choice(mode, "mode", ("max", "avg"))
        self.is_global = bool(global_pool)
        self.flatten = bool(flatten)

    def feat_mult(self) -> int:
        return pyramid_bins(self.levels, self.dims)

    def _finish(self, pooled: Tensor) -> Tensor:  # (N, C, bins)
        return finish_bins(pooled, self.is_global, self.flatten, self.dims)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}, global_pool={self.is_global}"


class SpatialPyramidPool1d(_SpatialPyramidPoolNd):
    r"""Spatial pyramid pooling over ``(N, C, L)``, see :func:`spatial_pyramid_pool`.

    .. math:: y = [\operatorname{pool}_{l}(x)]_{l \in \text{levels}}

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, \sum_l l)`; ``global_pool=True``:
          :math:`(N, C \sum_l l)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(spatial_pyramid_pool1d(input, self.levels, self.mode))


class SpatialPyramidPool2d(_SpatialPyramidPoolNd):
    r"""Spatial pyramid pooling (He et al. 2014): a fixed-length vector from any image size.

    .. math:: y = [\operatorname{pool}_{l\times l}(x)]_{l \in \text{levels}}

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, \sum_l l^2)` (21 bins for the
          default ``(1, 2, 4)``); ``global_pool=True``: :math:`(N, C \sum_l l^2)` (the
          factory's global ``"spp"``), ``feat_mult() == \sum_l l^2``.

    Example::

        >>> SpatialPyramidPool2d((1, 2), global_pool=True)(torch.randn(2, 8, 7, 5)).shape
        torch.Size([2, 40])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(spatial_pyramid_pool2d(input, self.levels, self.mode))


class SpatialPyramidPool3d(_SpatialPyramidPoolNd):
    r"""Spatial pyramid pooling over ``(N, C, D, H, W)``, see :func:`spatial_pyramid_pool`.

    .. math:: y = [\operatorname{pool}_{l\times l\times l}(x)]_{l \in \text{levels}}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, \sum_l l^3)`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(spatial_pyramid_pool3d(input, self.levels, self.mode))
