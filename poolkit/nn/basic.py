"""Max, average and Lp pooling (PyTorch's), their global forms, avg+max mixes and identity.

The windowed forms call PyTorch's kernels unchanged; what poolkit adds is the global form
(``kernel_size=None``), ``feat_mult`` and the ``avgmax``/``catavgmax`` heads (as in timm's
``adaptive_avgmax_pool``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from poolkit.geometry import check_dims, check_divisor_override, normalize_window
from poolkit.nn._base import PoolModule, WindowPoolNd, bind_dims
from poolkit.nn._utils import AVG_POOL, MAX_POOL, check_fits, check_input, check_positive

_LP_POOL = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}


def _global_shape(input: Tensor, dims: int) -> tuple[int, ...]:
    return (*input.shape[:2], *([1] * dims))


def _batched(input: object, dims: int, integer_ok: bool = False) -> tuple[Tensor, bool]:
    """``(input as (N, C, *S), whether it was unbatched (C, *S))``, like torch's pools.

    ``integer_ok``: integer input is allowed (torch's max and windowed average pooling take it).
    """
    if isinstance(input, Tensor) and input.dim() == dims + 1:
        input, unbatched = input.unsqueeze(0), True
    else:
        unbatched = False
    if integer_ok and isinstance(input, Tensor) and not input.is_floating_point() \
            and input.dtype != torch.bool and not input.is_complex():
        if input.dim() != dims + 2:
            check_input(input.float(), dims)  # the shape error
        return input, unbatched
    return check_input(input, dims), unbatched


def _unbatch(output, unbatched: bool):
    """Drop the batch dim added by :func:`_batched` (from each tensor of a tuple too)."""
    if not unbatched:
        return output
    if isinstance(output, tuple):
        return tuple(t.squeeze(0) for t in output)
    return output.squeeze(0)


def _global_max(input: Tensor, dims: int, return_indices: bool):
    flat = input.flatten(2)
    if not return_indices:
        return flat.amax(-1).reshape(_global_shape(input, dims))
    values, indices = flat.max(-1)  # the first maximum; NaN wins (as max_pool)
    shape = _global_shape(input, dims)
    return values.reshape(shape), indices.reshape(shape)


def max_pool(
    input: Tensor, kernel_size=None, stride=None, padding=0, dilation=1, ceil_mode=False,
    return_indices=False, *, dims,
):
    r"""Max pooling; ``kernel_size=None`` is the global max ``(N, C, 1, ...)``.

    .. math:: y_{n,c,w} = \max_{i \in w} x_{n,c,i}

    The windowed form is :func:`torch.nn.functional.max_pool{dims}d` (same arguments, in its
    order). Unbatched ``(C, *S)`` and integer input are accepted as torch accepts them;
    ``return_indices`` also returns the flat index of each maximum in its input plane (the
    global form too: the first maximum, NaN wins).
    """
    check_dims(dims)
    input, unbatched = _batched(input, dims, integer_ok=True)
    if kernel_size is None:
        return _unbatch(_global_max(input, dims, bool(return_indices)), unbatched)
    kernel, step, pad, dil = normalize_window(kernel_size, stride, padding, dilation, dims=dims)
    output = MAX_POOL[dims](input, kernel, step, pad, dil, ceil_mode,
                            return_indices=bool(return_indices))
    return _unbatch(output, unbatched)


def avg_pool(
    input: Tensor, kernel_size=None, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True, divisor_override=None, *, dims,
) -> Tensor:
    r"""Average pooling; ``kernel_size=None`` is the global mean ``(N, C, 1, ...)``.

    .. math:: y_{n,c,w} = \frac{1}{|w|} \sum_{i \in w} x_{n,c,i}

    The windowed form is :func:`torch.nn.functional.avg_pool{dims}d` (same arguments, in its
    order; ``divisor_override`` replaces :math:`|w|`). Unbatched ``(C, *S)`` input is accepted,
    integer input in the windowed form (as torch's).
    """
    check_dims(dims)
    input, unbatched = _batched(input, dims, integer_ok=kernel_size is not None)
    divisor_override = check_divisor_override(divisor_override)
    if kernel_size is None:
        total = input.flatten(2)
        mean = total.mean(-1) if divisor_override is None else total.sum(-1) / divisor_override
        return _unbatch(mean.reshape(_global_shape(input, dims)), unbatched)
    kernel, step, pad, _ = normalize_window(kernel_size, stride, padding, dims=dims)
    if dims == 1 and divisor_override is not None:  # not in avg_pool1d: 2-D on (N, C, 1, L)
        output = F.avg_pool2d(input.unsqueeze(2), (1, kernel[0]), (1, step[0]), (0, pad[0]),
                              ceil_mode, count_include_pad, divisor_override).squeeze(2)
    elif divisor_override is None:
        output = AVG_POOL[dims](input, kernel, step, pad, ceil_mode, count_include_pad)
    else:
        output = AVG_POOL[dims](input, kernel, step, pad, ceil_mode, count_include_pad,
                                divisor_override)
    return _unbatch(output, unbatched)


def lp_pool(
    input: Tensor, norm_type: float = 2.0, kernel_size=None, stride=None, ceil_mode=False, *, dims
) -> Tensor:
    r"""PyTorch's power-average pooling; ``kernel_size=None`` pools the whole plane.

    .. math:: y_{n,c,w} = \Big(\sum_{i \in w} x_{n,c,i}^{p}\Big)^{1/p}

    Exactly :func:`torch.nn.functional.lp_pool{dims}d`: :math:`x^p` of a negative ``x`` with a
    fractional ``p`` is NaN and a negative window sum is clipped to 0. For signed input use
    :func:`poolkit.nn.functional.lp_abs_pool2d`, which pools :math:`|x|`.
    """
    check_dims(dims)
    input, unbatched = _batched(input, dims)
    p = check_positive(norm_type, "norm_type")
    if kernel_size is None:  # torch's formula over the plane (no kernel of the input's size)
        total = input.pow(p).flatten(2).sum(-1).reshape(_global_shape(input, dims))
        return _unbatch((torch.sign(total) * torch.relu(total.abs())).pow(1.0 / p), unbatched)
    kernel, step, _, _ = normalize_window(kernel_size, stride, dims=dims)
    check_fits(input, kernel, (0,) * dims, dims)
    if dims == 1:  # lp_pool1d wants ints
        return _unbatch(F.lp_pool1d(input, p, kernel[0], step[0], ceil_mode), unbatched)
    return _unbatch(_LP_POOL[dims](input, p, kernel, step, ceil_mode), unbatched)


def avgmax_pool(input: Tensor, kernel_size=None, stride=None, padding=0, *, dims) -> Tensor:
    r"""Mean of average and max pooling (timm's ``avgmax``).

    .. math:: y_w = \tfrac12 \big(\max_{i\in w} x_i + \tfrac{1}{|w|}\sum_{i\in w} x_i\big)

    Padding positions take part in neither term (``count_include_pad=False``).
    """
    maximum = max_pool(input, kernel_size, stride, padding, dims=dims)
    mean = avg_pool(input, kernel_size, stride, padding, count_include_pad=False, dims=dims)
    return 0.5 * (maximum + mean)


def catavgmax_pool(input: Tensor, kernel_size=None, stride=None, padding=0, *, dims) -> Tensor:
    r"""Average and max pooling concatenated along channels: ``(N, 2C, *out)`` (timm's order).

    .. math:: y = \big[\operatorname{avg}(x);\ \max(x)\big]
    """
    maximum = max_pool(input, kernel_size, stride, padding, dims=dims)
    mean = avg_pool(input, kernel_size, stride, padding, count_include_pad=False, dims=dims)
    return torch.cat([mean, maximum], dim=1)


max_pool1d, max_pool2d, max_pool3d = (bind_dims(max_pool, f"max_pool{d}d", d) for d in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (bind_dims(avg_pool, f"avg_pool{d}d", d) for d in (1, 2, 3))
lp_pool1d, lp_pool2d, lp_pool3d = (bind_dims(lp_pool, f"lp_pool{d}d", d) for d in (1, 2, 3))
avgmax_pool1d, avgmax_pool2d, avgmax_pool3d = (
    bind_dims(avgmax_pool, f"avgmax_pool{d}d", d) for d in (1, 2, 3)
)
catavgmax_pool1d, catavgmax_pool2d, catavgmax_pool3d = (
    bind_dims(catavgmax_pool, f"catavgmax_pool{d}d", d) for d in (1, 2, 3)
)


class _MaxPoolNd(WindowPoolNd):
    """torch's ``MaxPoolNd`` arguments in torch's order, then ``flatten`` (global form)."""

    def __init__(
        self, kernel_size=None, stride=None, padding=0, dilation=1, return_indices=False,
        ceil_mode=False, flatten=True,
    ):
        super().__init__(kernel_size, stride, padding, flatten, dilation=dilation)
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def _pool(self, input: Tensor, function):
        output = function(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode, self.return_indices)
        unbatched = input.dim() == self.dims + 1
        if self.return_indices:
            return tuple(self._finish(t, unbatched) for t in output)
        return self._finish(output, unbatched)


class MaxPool1d(_MaxPoolNd):
    r"""Max pooling over ``(N, C, L)``; ``kernel_size=None`` is the global max.

    .. math:: y_{n,c,j} = \max_{i \in w_j} x_{n,c,i}

    Shape:
        - Input: :math:`(N, C, L)`
        - Output: :math:`(N, C, L_{out})`, :math:`L_{out} = \lfloor (L + 2p - d(k-1) - 1)/s
          \rfloor + 1`; global: :math:`(N, C)` (``flatten=False``: :math:`(N, C, 1)`).

    Example::

        >>> MaxPool1d(2)(torch.tensor([[[1., 3., 2., 0.]]]))
        tensor([[[3., 2.]]])
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._pool(input, max_pool1d)


class MaxPool2d(_MaxPoolNd):
    r"""Max pooling over ``(N, C, H, W)``; ``kernel_size=None`` is the global max.

    .. math:: y_{n,c,h,w} = \max_{(i,j) \in w_{h,w}} x_{n,c,i,j}

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, H_{out}, W_{out})` with PyTorch's formula; global
          :math:`(N, C)`.

    Example::

        >>> MaxPool2d()(torch.arange(8.).view(1, 2, 2, 2))
        tensor([[3., 7.]])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._pool(input, max_pool2d)


class MaxPool3d(_MaxPoolNd):
    r"""Max pooling over ``(N, C, D, H, W)``; ``kernel_size=None`` is the global max.

    .. math:: y_{n,c,v} = \max_{i \in w_v} x_{n,c,i}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`,
          global :math:`(N, C)`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._pool(input, max_pool3d)


class _AvgPoolNd(WindowPoolNd):
    """torch's ``AvgPoolNd`` arguments in torch's order, then ``flatten`` (global form)."""

    def __init__(
        self, kernel_size=None, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
        divisor_override=None, flatten=True,
    ):
        super().__init__(kernel_size, stride, padding, flatten)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = check_divisor_override(divisor_override)


class AvgPool1d(_AvgPoolNd):
    r"""Average pooling over ``(N, C, L)``; ``kernel_size=None`` is the global mean.

    .. math:: y_{n,c,j} = \frac{1}{|w_j|} \sum_{i \in w_j} x_{n,c,i}

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, \lfloor (L + 2p - k)/s \rfloor + 1)`,
          global :math:`(N, C)`.

    Example::

        >>> AvgPool1d(2)(torch.tensor([[[1., 3., 2., 0.]]]))
        tensor([[[2., 1.]]])
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(avg_pool1d(input, self.kernel_size, self.stride, self.padding,
                                       self.ceil_mode, self.count_include_pad,
                                       self.divisor_override), input.dim() == self.dims + 1)


class AvgPool2d(_AvgPoolNd):
    r"""Average pooling over ``(N, C, H, W)``; ``kernel_size=None`` is the global mean.

    .. math:: y_{n,c,h,w} = \frac{1}{|w|} \sum_{(i,j) \in w_{h,w}} x_{n,c,i,j}

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`, global
          :math:`(N, C)`.
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                                       self.ceil_mode, self.count_include_pad,
                                       self.divisor_override), input.dim() == self.dims + 1)


class AvgPool3d(_AvgPoolNd):
    r"""Average pooling over ``(N, C, D, H, W)``; ``kernel_size=None`` is the global mean.

    .. math:: y_{n,c,v} = \frac{1}{|w_v|} \sum_{i \in w_v} x_{n,c,i}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`,
          global :math:`(N, C)`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(avg_pool3d(input, self.kernel_size, self.stride, self.padding,
                                       self.ceil_mode, self.count_include_pad,
                                       self.divisor_override), input.dim() == self.dims + 1)


class _LPPoolNd(WindowPoolNd):
    def __init__(self, norm_type=2.0, kernel_size=None, stride=None, ceil_mode=False, flatten=True):
        super().__init__(kernel_size, stride, 0, flatten)
        self.norm_type = check_positive(norm_type, "norm_type")
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self) -> str:
        return f"norm_type={self.norm_type}, " + super().extra_repr()


class LPPool1d(_LPPoolNd):
    r"""PyTorch's power-average pooling (see :func:`lp_pool`) with a global form.

    .. math:: y_j = \Big(\sum_{i \in w_j} x_i^{p}\Big)^{1/p}

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, \lfloor (L - k)/s \rfloor + 1)`,
          global :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(
            lp_pool1d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode),
            input.dim() == self.dims + 1,
        )


class LPPool2d(_LPPoolNd):
    r"""PyTorch's power-average pooling (see :func:`lp_pool`) with a global form.

    .. math:: y_w = \Big(\sum_{i \in w} x_i^{p}\Big)^{1/p}

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`, global
          :math:`(N, C)`.
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(
            lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode),
            input.dim() == self.dims + 1,
        )


class LPPool3d(_LPPoolNd):
    r"""PyTorch's power-average pooling (see :func:`lp_pool`) with a global form.

    .. math:: y_w = \Big(\sum_{i \in w} x_i^{p}\Big)^{1/p}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`,
          global :math:`(N, C)`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(
            lp_pool3d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode),
            input.dim() == self.dims + 1,
        )


class _AvgMaxPoolNd(WindowPoolNd):
    pass


class AvgMaxPool1d(_AvgMaxPoolNd):
    r"""Mean of average and max pooling, see :func:`avgmax_pool`.

    .. math:: y_w = \tfrac12 \big(\max_{i\in w} x_i + \operatorname{mean}_{i\in w} x_i\big)

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`, global :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(avgmax_pool1d(input, self.kernel_size, self.stride, self.padding))


class AvgMaxPool2d(_AvgMaxPoolNd):
    r"""Mean of average and max pooling, see :func:`avgmax_pool`.

    .. math:: y_w = \tfrac12 \big(\max_{i\in w} x_i + \operatorname{mean}_{i\in w} x_i\big)

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`, global
          :math:`(N, C)`.

    Example::

        >>> AvgMaxPool2d()(torch.tensor([[[[0., 2.], [4., 6.]]]]))
        tensor([[4.5000]])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(avgmax_pool2d(input, self.kernel_size, self.stride, self.padding))


class AvgMaxPool3d(_AvgMaxPoolNd):
    r"""Mean of average and max pooling, see :func:`avgmax_pool`.

    .. math:: y_w = \tfrac12 \big(\max_{i\in w} x_i + \operatorname{mean}_{i\in w} x_i\big)

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`,
          global :math:`(N, C)`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(avgmax_pool3d(input, self.kernel_size, self.stride, self.padding))


class _CatAvgMaxPoolNd(WindowPoolNd):
    def feat_mult(self) -> int:
        return 2


class CatAvgMaxPool1d(_CatAvgMaxPoolNd):
    r"""Average and max pooling concatenated on channels, see :func:`catavgmax_pool`.

    .. math:: y = [\operatorname{avg}(x);\ \max(x)]

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, 2C, L_{out})`, global :math:`(N, 2C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(catavgmax_pool1d(input, self.kernel_size, self.stride, self.padding))


class CatAvgMaxPool2d(_CatAvgMaxPoolNd):
    r"""Average and max pooling concatenated on channels, see :func:`catavgmax_pool`.

    .. math:: y = [\operatorname{avg}(x);\ \max(x)]

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, 2C, H_{out}, W_{out})`, global
          :math:`(N, 2C)` (``feat_mult() == 2``).

    Example::

        >>> CatAvgMaxPool2d()(torch.tensor([[[[0., 2.], [4., 6.]]]]))
        tensor([[3., 6.]])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(catavgmax_pool2d(input, self.kernel_size, self.stride, self.padding))


class CatAvgMaxPool3d(_CatAvgMaxPoolNd):
    r"""Average and max pooling concatenated on channels, see :func:`catavgmax_pool`.

    .. math:: y = [\operatorname{avg}(x);\ \max(x)]

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, 2C, D_{out}, H_{out}, W_{out})`,
          global :math:`(N, 2C)`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(catavgmax_pool3d(input, self.kernel_size, self.stride, self.padding))


class Identity(PoolModule):
    r"""No pooling: returns its input unchanged (the factory's ``''`` / ``"identity"``).

    .. math:: y = x

    Shape:
        - Input: any; Output: the same.
    """

    def __init__(self, dims: int = 2) -> None:
        super().__init__()
        self.dims = check_dims(dims)

    def is_identity(self) -> bool:
        return True

    def forward(self, input: Tensor) -> Tensor:
        return input
