r"""Anti-aliased downsampling: BlurPool and MaxBlurPool (Zhang, ICML 2019).

R. Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019. Strided pooling
aliases; low-pass filtering with a binomial kernel before subsampling restores much of the
shift invariance. ``MaxBlurPool`` = max pooling with stride 1 (dense max), then blur + subsample.
The blur is one strided convolution of the ``(N*C, 1, *S)`` view with a separable binomial kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from poolkit.geometry import check_dims, normalize_sizes
from poolkit.nn._base import PoolModule, bind_dims
from poolkit.nn._utils import CONV, MAX_POOL, check_choice, check_input

_PADDING_MODES = ("reflect", "replicate", "zeros")


def binomial_filter(size: int, dims: int = 2, dtype=torch.float32, device=None) -> Tensor:
    r"""Normalised binomial kernel of ``size`` taps (1-7) per dim, shape ``(size,) * dims``.

    .. math:: b_k = \binom{n-1}{k} / 2^{n-1}, \qquad B = b \otimes \dots \otimes b

    Example::

        >>> binomial_filter(3, dims=1)
        tensor([0.2500, 0.5000, 0.2500])
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 7:
        raise ValueError(f"kernel_size ({size!r}) must be an int from 1 to 7 (binomial filter)")
    taps = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=dtype, device=device)
    taps = taps / taps.sum()
    kernel = taps
    for _ in range(dims - 1):
        kernel = kernel.unsqueeze(-1) * taps
    return kernel


def blur_pool(
    input: Tensor, kernel_size: int = 3, stride=2, padding_mode: str = "reflect", *, dims: int
) -> Tensor:
    r"""BlurPool (Zhang 2019): binomial low-pass filter, then subsample by ``stride``.

    .. math:: y = \big(\operatorname{pad}(x) * B_k\big)[\,s\,i\,],\quad
        B_k = \text{normalised binomial kernel with } k \text{ taps per dim}

    Padding: :math:`\lfloor (k-1)/2 \rfloor` before and :math:`\lceil (k-1)/2 \rceil` after in
    every dim (``padding_mode`` ``"reflect"`` as in the paper, ``"replicate"`` or ``"zeros"``).
    Reflect padding needs every spatial size larger than the padding.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, \lceil S / s \rceil)` per dim.

    Example::

        >>> blur_pool1d(torch.tensor([[[0., 0., 4., 0.]]]), 3, 2)
        tensor([[[0., 2.]]])
    """
    check_dims(dims)
    check_input(input, dims)
    check_choice(padding_mode, "padding_mode", _PADDING_MODES)
    step = normalize_sizes(stride, dims, "stride")
    kernel = binomial_filter(kernel_size, dims, input.dtype, input.device)
    before, after = (kernel_size - 1) // 2, kernel_size // 2
    if padding_mode == "reflect" and min(input.shape[2:]) <= after:
        raise ValueError(
            f"reflect padding ({after}) must be smaller than every spatial size "
            f"{tuple(input.shape[2:])}; use padding_mode='replicate' or a smaller kernel_size"
        )
    padded = F.pad(
        input, [before, after] * dims, mode="constant" if padding_mode == "zeros" else padding_mode
    )
    n, c = input.shape[:2]
    out = CONV[dims](padded.reshape(n * c, 1, *padded.shape[2:]), kernel[None, None], None, step)
    return out.squeeze(1).unflatten(0, (n, c))  # (not view: an exported size stays symbolic)


def max_blur_pool(
    input: Tensor, kernel_size=2, stride=2, blur_size: int = 3, padding_mode: str = "reflect", *,
    dims: int,
) -> Tensor:
    r"""MaxBlurPool (Zhang 2019): dense max pooling (stride 1), then :func:`blur_pool`.

    .. math:: y = \operatorname{BlurPool}_{b, s}\big(\operatorname{MaxPool}_{k, 1}(x)\big)

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, \lceil (S - k + 1) / s \rceil)`.

    Example::

        >>> max_blur_pool2d(torch.randn(1, 3, 8, 8), 2, 2).shape
        torch.Size([1, 3, 4, 4])
    """
    check_dims(dims)
    check_input(input, dims)
    kernel = normalize_sizes(kernel_size, dims, "kernel_size")
    for d in range(dims):
        if input.shape[2 + d] < kernel[d]:
            raise ValueError(
                f"kernel_size ({kernel[d]}) is larger than the input ({input.shape[2 + d]}) "
                f"in dim {d}"
            )
    dense = MAX_POOL[dims](input, kernel, 1)
    return blur_pool(dense, blur_size, stride, padding_mode, dims=dims)


blur_pool1d, blur_pool2d, blur_pool3d = (
    bind_dims(blur_pool, f"blur_pool{d}d", d) for d in (1, 2, 3)
)
max_blur_pool1d, max_blur_pool2d, max_blur_pool3d = (
    bind_dims(max_blur_pool, f"max_blur_pool{d}d", d) for d in (1, 2, 3)
)


class _BlurPoolNd(PoolModule):
    def __init__(self, kernel_size: int = 3, stride=2, padding_mode: str = "reflect"):
        super().__init__()
        binomial_filter(kernel_size, 1)  # validates kernel_size
        self.kernel_size = kernel_size
        self.stride = normalize_sizes(stride, self.dims, "stride")
        self.padding_mode = check_choice(padding_mode, "padding_mode", _PADDING_MODES)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, " \
               f"padding_mode={self.padding_mode!r}"


class BlurPool1d(_BlurPoolNd):
    r"""BlurPool (Zhang 2019) over ``(N, C, L)``, see :func:`blur_pool`.

    .. math:: y = (\operatorname{pad}(x) * b_k)[s i]

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, \lceil L / s \rceil)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return blur_pool1d(input, self.kernel_size, self.stride, self.padding_mode)


class BlurPool2d(_BlurPoolNd):
    r"""BlurPool (Zhang, ICML 2019): anti-aliased downsampling with a binomial filter.

    .. math:: y = (\operatorname{pad}(x) * B_k)[s i, s j]

    ``kernel_size`` is the filter's number of taps (1-7: box of 1, [1 1], [1 2 1], ...).

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, \lceil H/s \rceil, \lceil W/s \rceil)`.

    Example::

        >>> BlurPool2d(3, stride=2)(torch.randn(1, 4, 9, 9)).shape
        torch.Size([1, 4, 5, 5])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return blur_pool2d(input, self.kernel_size, self.stride, self.padding_mode)


class BlurPool3d(_BlurPoolNd):
    r"""BlurPool (Zhang 2019) over ``(N, C, D, H, W)``, see :func:`blur_pool`.

    .. math:: y = (\operatorname{pad}(x) * B_k)[s v]

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, \lceil S / s \rceil)` per dim.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return blur_pool3d(input, self.kernel_size, self.stride, self.padding_mode)


class _MaxBlurPoolNd(PoolModule):
    def __init__(
        self, kernel_size=2, stride=2, blur_size: int = 3, padding_mode: str = "reflect"
    ):
        super().__init__()
        self.kernel_size = normalize_sizes(kernel_size, self.dims, "kernel_size")
        self.stride = normalize_sizes(stride, self.dims, "stride")
        binomial_filter(blur_size, 1)  # validates
        self.blur_size = blur_size
        self.padding_mode = check_choice(padding_mode, "padding_mode", _PADDING_MODES)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, " \
               f"blur_size={self.blur_size}, padding_mode={self.padding_mode!r}"


class MaxBlurPool1d(_MaxBlurPoolNd):
    r"""MaxBlurPool (Zhang 2019) over ``(N, C, L)``, see :func:`max_blur_pool`.

    .. math:: y = \operatorname{BlurPool}_{b,s}(\operatorname{MaxPool}_{k,1}(x))

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, \lceil (L - k + 1)/s \rceil)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return max_blur_pool1d(input, self.kernel_size, self.stride, self.blur_size,
                               self.padding_mode)


class MaxBlurPool2d(_MaxBlurPoolNd):
    r"""MaxBlurPool (Zhang, ICML 2019): dense max pooling, then blur and subsample.

    .. math:: y = \operatorname{BlurPool}_{b,s}(\operatorname{MaxPool}_{k,1}(x))

    Replaces ``MaxPool2d(k, s)``; ``blur_size`` is the binomial filter's taps.

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, \lceil (H-k+1)/s \rceil,
          \lceil (W-k+1)/s \rceil)`.

    Example::

        >>> MaxBlurPool2d(2, stride=2)(torch.randn(1, 4, 8, 8)).shape
        torch.Size([1, 4, 4, 4])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return max_blur_pool2d(input, self.kernel_size, self.stride, self.blur_size,
                               self.padding_mode)


class MaxBlurPool3d(_MaxBlurPoolNd):
    r"""MaxBlurPool (Zhang 2019) over ``(N, C, D, H, W)``, see :func:`max_blur_pool`.

    .. math:: y = \operatorname{BlurPool}_{b,s}(\operatorname{MaxPool}_{k,1}(x))

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, \lceil (S-k+1)/s \rceil)`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return max_blur_pool3d(input, self.kernel_size, self.stride, self.blur_size,
                               self.padding_mode)
