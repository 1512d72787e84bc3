r"""Context modules for dense prediction: PSPNet's pyramid pooling and DeepLab's ASPP.

- :class:`PyramidPooling` (Zhao, Shi, Qi, Wang & Jia, "Pyramid Scene Parsing Network", CVPR
  2017): pool the map into ``b x b`` bins for each ``b`` in ``bins`` (1, 2, 3, 6), reduce each
  pooled map with a 1x1 conv + norm + ReLU, upsample it back (bilinear) and concatenate the
  branches with the input: every position sees the whole map at four scales.
- :class:`ASPPPooling` (Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for
  Semantic Image Segmentation", 2017): the image-level branch, a global pool, 1x1 conv + norm +
  ReLU, broadcast back to every position.
- :class:`ASPP`: the whole atrous spatial pyramid pooling module of DeepLab v3, a 1x1 branch, one
  3x3 branch per atrous rate and the image-level branch, concatenated and projected by a 1x1 conv.

The pooling of each bin is any pooling type of the zoo with a global form, by name (``"avg"`` by
default, as in both papers; ``"max"``, ``"gem"``, ``"softpool"``…): bin ``i`` of ``b`` over a
size ``S`` covers :math:`[\lfloor iS/b \rfloor, \lceil (i+1)S/b \rceil)` like adaptive pooling.
``"avg"`` and ``"max"`` take PyTorch's adaptive kernels; other names pool each bin with the
family's global form.

All three keep the spatial size; they work on 1-D, 2-D and 3-D maps (linear, bilinear, trilinear
upsampling).

Example::

    >>> ppm = PyramidPooling(64)               # bins (1, 2, 3, 6), 16 channels per bin
    >>> ppm(torch.randn(2, 64, 13, 11)).shape  # input + 4 x 16 channels
    torch.Size([2, 128, 13, 11])
    >>> ASPP(64, atrous_rates=(1, 2, 3), out_channels=32)(torch.randn(2, 64, 8, 8)).shape
    torch.Size([2, 32, 8, 8])
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poolkit.nn._base import PoolModule, keep_memory_format
from poolkit.nn._utils import ADAPTIVE_AVG, ADAPTIVE_MAX, check_choice, check_dims, check_input

NORMS = ("batch", "none")
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_UPSAMPLE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} ({value!r}) must be an int >= 1")
    return value


def _int_sequence(values: object, name: str, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = (values,)
    if isinstance(values, str) or not isinstance(values, Sequence) or not values or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values
    ):
        raise ValueError(f"{name} ({values!r}) must be a non-empty sequence of ints >= {minimum}")
    return tuple(values)


def bin_bounds(size: int, bins: int) -> list[tuple[int, int]]:
    r"""``[(start, stop), ...]`` of the ``bins`` adaptive bins over ``size`` positions:
    :math:`[\lfloor iS/b \rfloor, \lceil (i+1)S/b \rceil)` (PyTorch's adaptive pooling)."""
    return [((i * size) // bins, -(-(i + 1) * size // bins)) for i in range(bins)]


def adaptive_pool(input: Tensor, bins: int, pool: nn.Module | str = "avg", *, dims: int) -> Tensor:
    """Pool ``input`` ``(N, C, *S)`` into ``bins`` adaptive bins per spatial dim with ``pool``.

    ``pool`` is ``"avg"``/``"max"`` (PyTorch's adaptive kernels) or a global pooling module of
    the zoo (``create_pool(name, dims, flatten=False)``), applied to each bin's region; the output
    is ``(N, C * pool.feat_mult(), bins, ..., bins)``.
    """
    if pool == "avg":
        return ADAPTIVE_AVG[dims](input, bins)
    if pool == "max":
        return ADAPTIVE_MAX[dims](input, bins)
    bounds = [bin_bounds(size, bins) for size in input.shape[2:]]
    pooled = []
    for cell in itertools.product(*bounds):
        region = input[(..., *(slice(start, stop) for start, stop in cell))]
        pooled.append(pool(region).flatten(1))  # (N, C * feat_mult)
    return torch.stack(pooled, dim=-1).unflatten(-1, (bins,) * dims)


# pool name, dims, channels, kwargs -> the pool's global form, unflattened. Set by
# poolkit.nn.factory (set_bin_pool_builder): the factory imports this module for its classes,
# so this module cannot import the factory back.
_BIN_POOL_BUILDER: Callable[[str, int, int, dict], nn.Module] | None = None


def set_bin_pool_builder(builder: Callable[[str, int, int, dict], nn.Module]) -> None:
    """How a context module turns a pool name into the global pooling of its bins
    (:mod:`poolkit.nn.factory` installs ``create_pool``'s global form)."""
    global _BIN_POOL_BUILDER
    _BIN_POOL_BUILDER = builder


class _ConvNormReLU(nn.Sequential):
    """``k``-size conv (no bias when followed by batch norm) + norm + ReLU."""

    def __init__(self, dims, in_channels, out_channels, norm, kernel_size=1, dilation=1):
        conv = _CONV[dims](in_channels, out_channels, kernel_size, padding=dilation * (
            kernel_size // 2), dilation=dilation, bias=norm == "none")
        layers = [conv] + ([_BATCH_NORM[dims](out_channels)] if norm == "batch" else [])
        super().__init__(*layers, nn.ReLU(inplace=False))


class _ContextModule(PoolModule):
    """Shared arguments: channels, dims, the bin pooling by name, the norm."""

    dims = 2  # the 1d/3d subclasses fix another default

    def __init__(self, channels: int, dims: int | None, pool: str, pool_kwargs: dict | None,
                 norm: str):
        super().__init__()
        self.dims = check_dims(type(self).dims if dims is None else dims)
        self.in_channels = _positive_int(channels, "channels")
        self.norm = check_choice(norm, "norm", NORMS)
        self.pool_name = pool
        if pool in ("avg", "max") and not pool_kwargs:
            self.bin_pool: nn.Module | str = pool
            self.pool_mult = 1
        else:
            self.bin_pool = self._global_pool(pool, pool_kwargs or {})
            self.pool_mult = int(self.bin_pool.feat_mult())

    def _global_pool(self, pool: str, pool_kwargs: dict) -> nn.Module:
        if not isinstance(pool, str):
            raise TypeError(f"pool must be a pooling type's name, got {pool!r}")
        if _BIN_POOL_BUILDER is None:  # poolkit.nn imports the factory, which sets it
            raise RuntimeError("poolkit.nn.factory is not loaded: import poolkit.nn first")
        return _BIN_POOL_BUILDER(pool, self.dims, self.in_channels, dict(pool_kwargs))

    def feat_mult(self) -> int | float:
        """``out_channels / channels`` (an int when it divides)."""
        ratio = self.out_channels / self.in_channels
        return int(ratio) if ratio.is_integer() else ratio

    def _check(self, input: Tensor) -> None:
        check_input(input, self.dims)
        if input.shape[1] != self.in_channels:
            raise ValueError(
                f"input has {input.shape[1]} channels; the module was built for channels "
                f"({self.in_channels})"
            )

    def _upsample(self, pooled: Tensor, size: Sequence[int]) -> Tensor:
        return F.interpolate(pooled, size=tuple(size), mode=_UPSAMPLE[self.dims],
                             align_corners=self.align_corners)


class PyramidPooling(_ContextModule):
    r"""PSPNet's pyramid pooling module (Zhao et al., CVPR 2017).

    .. math::
        y = \big[\,x;\ \operatorname{up}\big(\operatorname{ReLU}(\operatorname{BN}(
        W_b * \operatorname{pool}_{b \times b}(x)))\big)\big]_{b \in \text{bins}}

    Args:
        channels: input channels ``C``.
        bins: pooled grid sizes (PSPNet: 1, 2, 3, 6).
        branch_channels: output channels of each branch's 1x1 conv (default
            ``max(1, C // len(bins))``, PSPNet's ``C / 4``).
        pool: pooling type of the bins by name (any zoo type with a global form; ``"avg"``).
        pool_kwargs: arguments of that pooling type (``p`` for GeM…).
        norm: ``"batch"`` (conv without bias, then batch norm) or ``"none"`` (conv with bias).
        align_corners: of the upsampling (``False``: half-pixel centres, like ``F.interpolate``).
        dims: spatial dims (1, 2 or 3; default 2, or the ``1d``/``3d`` subclass's).

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C + |\text{bins}| \cdot
          \text{branch\_channels}, *S)`; ``out_channels`` holds that width.

    Example::

        >>> PyramidPooling(8, bins=(1, 2), branch_channels=4)(torch.randn(2, 8, 5, 7)).shape
        torch.Size([2, 16, 5, 7])
    """

    def __init__(
        self, channels: int, bins: Sequence[int] = (1, 2, 3, 6), branch_channels: int | None = None,
        pool: str = "avg", pool_kwargs: dict | None = None, norm: str = "batch",
        align_corners: bool = False, dims: int | None = None, device=None, dtype=None,
    ):
        super().__init__(channels, dims, pool, pool_kwargs, norm)
        self.bins = _int_sequence(bins, "bins")
        if branch_channels is None:
            branch_channels = max(1, channels // len(self.bins))
        self.branch_channels = _positive_int(branch_channels, "branch_channels")
        self.align_corners = bool(align_corners)
        self.branches = nn.ModuleList(
            _ConvNormReLU(self.dims, channels * self.pool_mult, self.branch_channels, norm)
            for _ in self.bins
        )
        self.out_channels = channels + len(self.bins) * self.branch_channels
        self._place(device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        self._check(input)
        size = input.shape[2:]
        outputs = [input]
        for bins, branch in zip(self.bins, self.branches, strict=True):
            pooled = adaptive_pool(input, bins, self.bin_pool, dims=self.dims)
            outputs.append(self._upsample(branch(pooled), size))
        return keep_memory_format(torch.cat(outputs, dim=1), input)

    def extra_repr(self) -> str:
        return (f"channels={self.in_channels}, bins={self.bins}, "
                f"branch_channels={self.branch_channels}, pool={self.pool_name!r}, "
                f"norm={self.norm!r}")


class ASPPPooling(_ContextModule):
    r"""DeepLab v3's image-level branch: global pool, 1x1 conv + norm + ReLU, broadcast back.

    .. math:: y_{:, s} = \operatorname{ReLU}(\operatorname{BN}(W * \operatorname{pool}(x)))
       \quad \text{for every position } s

    Args:
        channels: input channels ``C``; ``out_channels`` (default ``C``): output channels.
        pool, pool_kwargs, norm, dims: as :class:`PyramidPooling`.

    With ``norm="batch"`` training needs more than one image per batch (batch norm of a
    ``1 x 1`` map), as in torchvision's ``ASPPPooling``.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, \text{out\_channels}, *S)`.
    """

    def __init__(
        self, channels: int, out_channels: int | None = None, pool: str = "avg",
        pool_kwargs: dict | None = None, norm: str = "batch", dims: int | None = None,
        device=None, dtype=None,
    ):
        super().__init__(channels, dims, pool, pool_kwargs, norm)
        self.out_channels = _positive_int(
            channels if out_channels is None else out_channels, "out_channels")
        self.branch = _ConvNormReLU(self.dims, channels * self.pool_mult, self.out_channels, norm)
        self._place(device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        self._check(input)
        pooled = adaptive_pool(input, 1, self.bin_pool, dims=self.dims)
        # upsampling a 1x1 map is a broadcast: every position gets the image-level feature
        return keep_memory_format(self.branch(pooled).expand(-1, -1, *input.shape[2:]), input)

    def extra_repr(self) -> str:
        return (f"channels={self.in_channels}, out_channels={self.out_channels}, "
                f"pool={self.pool_name!r}, norm={self.norm!r}")


class ASPP(_ContextModule):
    r"""DeepLab v3's atrous spatial pyramid pooling: 1x1 conv, one 3x3 conv per atrous rate,
    and :class:`ASPPPooling`, concatenated, then a 1x1 projection (+ norm, ReLU, dropout).

    .. math::
        y = \operatorname{dropout}\Big(\operatorname{CBR}_{1 \times 1}\big(\big[
        \operatorname{CBR}_{1 \times 1}(x);\ \operatorname{CBR}_{3 \times 3,\, r}(x)
        \ (r \in \text{atrous\_rates});\ \operatorname{ASPPPooling}(x)\big]\big)\Big)

    with :math:`\operatorname{CBR}_{k, r}` a ``k``-size conv at dilation ``r`` + norm + ReLU.

    Args:
        channels: input channels ``C``.
        atrous_rates: dilations of the 3x3 branches (DeepLab v3 at output stride 16: 6, 12, 18).
        out_channels: channels of every branch and of the output (default ``C``).
        dropout: after the projection (DeepLab v3: 0.5; default 0).
        pool, pool_kwargs, norm, dims: as :class:`PyramidPooling` (the image-level branch's pool).

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, \text{out\_channels}, *S)`.
    """

    def __init__(
        self, channels: int, atrous_rates: Sequence[int] = (6, 12, 18),
        out_channels: int | None = None, dropout: float = 0.0, pool: str = "avg",
        pool_kwargs: dict | None = None, norm: str = "batch", dims: int | None = None,
        device=None, dtype=None,
    ):
        super().__init__(channels, dims, pool, pool_kwargs, norm)
        self.atrous_rates = _int_sequence(atrous_rates, "atrous_rates")
        self.out_channels = _positive_int(
            channels if out_channels is None else out_channels, "out_channels")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout ({dropout!r}) must be in [0, 1)")
        width = self.out_channels
        self.branches = nn.ModuleList(
            [_ConvNormReLU(self.dims, channels, width, norm)]
            + [_ConvNormReLU(self.dims, channels, width, norm, 3, rate)
               for rate in self.atrous_rates]
        )
        self.image_pool = ASPPPooling(channels, width, pool, pool_kwargs, norm, self.dims)
        branches = len(self.atrous_rates) + 2
        self.project = nn.Sequential(
            _ConvNormReLU(self.dims, branches * width, width, norm), nn.Dropout(dropout)
        )
        self._place(device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        self._check(input)
        outputs = [branch(input) for branch in self.branches]
        outputs.append(self.image_pool(input))
        return keep_memory_format(self.project(torch.cat(outputs, dim=1)), input)

    def extra_repr(self) -> str:
        return (f"channels={self.in_channels}, atrous_rates={self.atrous_rates}, "
                f"out_channels={self.out_channels}, pool={self.pool_name!r}")


_MAP_SHAPES = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _with_dims(base: type, dims: int) -> type:
    """``base`` with another default ``dims`` (the factory's per-dims classes)."""
    name = f"{base.__name__}{dims}d"
    shape = _MAP_SHAPES[dims]
    doc = (f"{base.__name__} over {dims}-D maps (``dims={dims}``); see :class:`{base.__name__}` "
           f"for the formula and arguments.\n\n    Shape: ``{shape}`` -> "
           f"``{shape.replace('C', 'out_channels')}`` (the spatial size kept).\n")
    return type(name, (base,), {"dims": dims, "__doc__": doc, "__module__": __name__})


PyramidPooling1d, PyramidPooling2d, PyramidPooling3d = (_with_dims(PyramidPooling, d)
                                                        for d in (1, 2, 3))
ASPPPooling1d, ASPPPooling2d, ASPPPooling3d = (_with_dims(ASPPPooling, d) for d in (1, 2, 3))
ASPP1d, ASPP2d, ASPP3d = (_with_dims(ASPP, d) for d in (1, 2, 3))
