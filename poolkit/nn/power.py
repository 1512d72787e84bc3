r"""Power-mean pools: GeM (generalised mean) and Lp pooling of ``|x|``.

Both are ``(sum_pool(a^p) / K)^(1/p)`` of a non-negative ``a`` (``clamp(x, eps)`` for GeM,
``|x|`` for Lp), so they ride on the sum pool, never on a copy of the windows. The backward is
written by hand next to the forward (recomputing ``a^p``) so that only the input and the pooled
tensors are kept. ``a`` is divided by its plane maximum ``s`` before the power
(:math:`y = s\,(\frac1K \sum (a/s)^p)^{1/p}`, exact) so that ``a^p`` never overflows, and
float16/bfloat16 are computed in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from poolkit.nn import _traceable
from poolkit.nn._base import WindowPoolNd, bind_dims
from poolkit.nn._utils import (
    as_planes,
    check_positive,
    compute_dtype,
    plane_chunks,
    pooled_empty,
    resolve_window,
    safe_ratio_,
    sum_pool,
    sum_pool_transpose,
    window_count,
)


def _base(input: Tensor, mode: str, eps: float) -> Tensor:
    """The non-negative base ``a`` of the power: ``clamp(x, eps)`` or ``|x|``."""
    return input.clamp_min(eps) if mode == "clamp" else input.abs()


def _exponents(p: Tensor, n: int, c: int, dims: int) -> float | Tensor:
    """A single ``p`` as a Python number (PyTorch's fast paths for integer powers), else the
    per-plane exponents ``(N*C, 1, ...)``."""
    if p.numel() == 1:
        return float(p)
    return p.expand(n, c, *([1] * dims)).reshape(-1, *([1] * (dims + 1)))


def _part(power: float | Tensor, part: slice) -> float | Tensor:
    return power if isinstance(power, float) else power[part]


class _PowerMeanPool(torch.autograd.Function):
    r"""``y_w = s (S_w / K_w)^{1/p}``, :math:`S_w = \sum_{i\in w} (a_i/s)^p`.

    Backward: :math:`\partial y_w/\partial a_i = \frac{y_w}{s S_w} (a_i/s)^{p-1}`, so
    :math:`\nabla a = (a/s)^{p-1} \odot T(g\,y / (s S))` (``T``: transpose of the sum pool), times
    :math:`\partial a/\partial x` (``[x > eps]`` or ``sign(x)``). For ``p``:
    :math:`\partial y_w/\partial p = y_w\big(-\log(S_w/K_w)/p^2 +
    \sum_{i\in w} (a_i/s)^p \log(a_i/s) / (p S_w)\big)`. Both passes run over groups of planes.
    """

    @staticmethod
    def forward(ctx, input, p, mode, eps, divide, kernel, stride, padding, dims):
        n, c = input.shape[:2]
        x = as_planes(input)
        power = _exponents(p, n, c, dims)
        with torch.no_grad():
            # the scale comes from the finite values: a NaN or inf decides only its own windows
            flat = input.detach().flatten(2)
            finite = torch.isfinite(flat)
            scale = _base(torch.where(finite, flat, -torch.inf).amax(-1), mode, eps)
            if mode == "abs":  # the max of |x| needs the min too
                low = torch.where(finite, flat, torch.inf).amin(-1).abs()
                scale = torch.maximum(scale, low)
            scale = torch.where(torch.isfinite(scale) & (scale > 0), scale, torch.ones_like(scale))
            scale = scale.reshape(n, c, *([1] * dims))
            s = scale.reshape(-1, *([1] * (dims + 1)))
            total = pooled_empty(x, kernel, stride, padding, dims)
            for part in plane_chunks(x):
                base = _base(x[part], mode, eps).div_(s[part]).pow_(_part(power, part))
                total[part] = sum_pool(base, kernel, stride, padding, dims)
                del base
            total = total.view(n, c, *total.shape[2:])
            count = window_count(input, kernel, stride, padding, dims) if divide else 1.0
            keep = (total > 0) | total.isnan()  # NaN propagates, as through torch's max pool
            safe_total = torch.where(keep, total, torch.ones_like(total))
            out = torch.where(keep, (safe_total / count).pow(1.0 / p), 0.0).mul_(scale)
        ctx.save_for_backward(input, p, scale, total, out)
        ctx.config = (mode, eps, divide, kernel, stride, padding, dims)
        return out

    @staticmethod
    def backward(ctx, grad):
        input, p, scale, total, out = ctx.saved_tensors
        mode, eps, divide, kernel, stride, padding, dims = ctx.config
        n, c = input.shape[:2]
        x = as_planes(input)
        power = _exponents(p, n, c, dims)
        s = scale.reshape(-1, *([1] * (dims + 1)))
        need_input, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_p = None
        g, y, t = as_planes(grad), as_planes(out), as_planes(total)
        grad_input = torch.empty_like(x) if need_input else None
        log_sum = pooled_empty(x, kernel, stride, padding, dims) if need_p else None
        for part in plane_chunks(x):
            base = _base(x[part], mode, eps).div_(s[part])  # a / s, in [0, 1]
            # clamp mode: base >= eps / s > 0; abs mode: 0 ** (p - 1) is replaced by 0
            positive_base = None if mode == "clamp" else base > 0
            exponent = _part(power, part)
            if need_input:
                factor = safe_ratio_(g[part] * y[part], t[part] * s[part])  # g y / (s S)
                a = sum_pool_transpose(factor, x[part], kernel, stride, padding, dims)
                slope = base.pow(exponent - 1)
                if positive_base is not None:
                    slope.mul_(positive_base).mul_(x[part].sign())
                else:
                    slope.masked_fill_(x[part] <= eps, 0.0)
                torch.mul(a, slope, out=grad_input[part])
                del a, slope
            if need_p:
                weighted_log = base.pow(exponent).mul_(base.log())
                if positive_base is not None:
                    weighted_log.masked_fill_(~positive_base, 0.0)
                log_sum[part] = sum_pool(weighted_log, kernel, stride, padding, dims)
        if need_input:
            grad_input = grad_input.view_as(input)
        if need_p:
            positive = total > 0
            safe_total = torch.where(positive, total, torch.ones_like(total))
            count = window_count(input, kernel, stride, padding, dims) if divide else 1.0
            log_sum = log_sum.view_as(total)
            d_out = out * (-(safe_total / count).log() / p**2 + log_sum / (p * safe_total))
            grad_p = torch.where(positive, grad * d_out, 0.0).sum_to_size(p.shape)
        return grad_input, grad_p, None, None, None, None, None, None, None


def _as_power(p, input: Tensor, dims: int, dtype: torch.dtype, name: str) -> Tensor:
    """``p`` (a number, a 0-d tensor or a ``(C,)`` tensor) as a broadcastable tensor > 0."""
    if isinstance(p, Tensor):
        if p.dim() == 0:
            power = p.reshape(1, 1, *([1] * dims))
        elif p.dim() == 1 and p.numel() in (1, input.shape[1]):
            power = p.reshape(1, -1, *([1] * dims))
        else:
            raise ValueError(
                f"{name} tensor must be a scalar or have shape ({input.shape[1]},), "
                f"got {tuple(p.shape)}"
            )
        if not _traceable.capturing() and not bool((p.detach() > 0).all()):
            raise ValueError(f"{name} ({p.detach().tolist()}) must be > 0")
        return power.to(dtype)
    value = check_positive(p, name)
    return torch.full((1, 1, *([1] * dims)), value, dtype=dtype, device=input.device)


def _power_mean(input, p, mode, eps, divide, kernel, stride, padding, dims, name, whole):
    dtype = compute_dtype(input)
    power = _as_power(p, input, dims, dtype, name)
    if _traceable.capturing():
        return _traceable.power_mean_pool(input, power, mode, eps, divide, kernel, stride,
                                          padding, dims, whole)
    out = _PowerMeanPool.apply(
        input.to(dtype), power, mode, eps, divide, kernel, stride, padding, dims
    )
    return out.to(input.dtype)


def gem_pool(
    input: Tensor, kernel_size=None, stride=None, padding=0, p=3.0, eps: float = 1e-6, *,
    dims: int,
) -> Tensor:
    r"""Generalised-mean (GeM) pooling (Radenović, Tolias & Chum, TPAMI 2018).

    .. math:: y_w = \Big(\frac{1}{|w|} \sum_{i \in w} \max(x_i, \epsilon)^{p}\Big)^{1/p}

    ``p = 1`` is average pooling, ``p \to \infty`` max pooling (of the clamped input). ``p`` is a
    number, a scalar tensor or a per-channel ``(C,)`` tensor (learnable: gradients flow to it).
    :math:`|w|` counts real positions only (padding takes no part). ``kernel_size=None`` pools each
    whole plane (the retrieval descriptor of the paper).

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`; global
          :math:`(N, C, 1, ...)`.

    Example::

        >>> gem_pool1d(torch.tensor([[[1., 2.]]]), p=2.0)   # sqrt((1 + 4) / 2)
        tensor([[[1.5811]]])
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims)
    eps = check_positive(eps, "eps")
    return _power_mean(input, p, "clamp", eps, True, kernel, step, pad, dims, "p",
                       kernel_size is None)


def lp_abs_pool(
    input: Tensor, norm_type=2.0, kernel_size=None, stride=None, padding=0, *, dims: int
) -> Tensor:
    r"""Lp pooling of the magnitudes: safe on signed input, for any real ``p > 0``.

    .. math:: y_w = \Big(\sum_{i \in w} |x_i|^{p}\Big)^{1/p}

    Unlike :func:`torch.nn.functional.lp_pool2d` (which raises negative values to a fractional
    power, NaN) this pools :math:`|x|`: the p-norm of each window (Boureau, Ponce & LeCun 2010).
    An all-zero window gives 0 with zero gradient. ``kernel_size=None``: the p-norm of each plane.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`.

    Example::

        >>> lp_abs_pool1d(torch.tensor([[[3., -4.]]]), 2.0, 2)
        tensor([[[5.]]])
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims)
    return _power_mean(input, norm_type, "abs", 0.0, False, kernel, step, pad, dims, "norm_type",
                       kernel_size is None)


gem_pool1d, gem_pool2d, gem_pool3d = (bind_dims(gem_pool, f"gem_pool{d}d", d) for d in (1, 2, 3))
lp_abs_pool1d, lp_abs_pool2d, lp_abs_pool3d = (
    bind_dims(lp_abs_pool, f"lp_abs_pool{d}d", d) for d in (1, 2, 3)
)


class _GeMPoolNd(WindowPoolNd):
    def __init__(
        self, kernel_size=None, stride=None, padding=0, p: float = 3.0, eps: float = 1e-6,
        learnable: bool = True, channels: int | None = None, flatten: bool = True, *,
        device=None, dtype=None,
    ):
        super().__init__(kernel_size, stride, padding, flatten)
        value = check_positive(p, "p")
        self.eps = check_positive(eps, "eps")
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
        ):
            raise ValueError(f"channels ({channels!r}) must be None or an int >= 1")
        shape = () if channels is None else (channels,)
        initial = torch.full(shape, value)
        if learnable:
            self.p = nn.Parameter(initial)
        else:
            self.register_buffer("p", initial)
        self._place(device, dtype)

    def extra_repr(self) -> str:
        p = self.p.detach()
        shown = f"{p.item():.4g}" if p.dim() == 0 else f"per-channel({p.numel()})"
        learnable = isinstance(self.p, nn.Parameter)
        return f"p={shown}, learnable={learnable}, eps={self.eps}, " + super().extra_repr()


class GeMPool1d(_GeMPoolNd):
    r"""GeM pooling (Radenović et al. 2018) over ``(N, C, L)``, see :func:`gem_pool`.

    .. math:: y_w = \Big(\frac{1}{|w|}\sum_{i\in w} \max(x_i,\epsilon)^p\Big)^{1/p}

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`; global :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(gem_pool1d(input, self.kernel_size, self.stride, self.padding,
                                       self.p, self.eps))


class GeMPool2d(_GeMPoolNd):
    r"""GeM pooling (Radenović, Tolias & Chum 2018), learnable ``p`` (optionally per channel).

    .. math:: y_w = \Big(\frac{1}{|w|}\sum_{i\in w} \max(x_i,\epsilon)^p\Big)^{1/p}

    ``GeMPool2d()`` is the global retrieval head (``p`` initialised to 3 and learned);
    ``channels=C`` learns one ``p`` per channel; ``learnable=False`` fixes it.

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`; global
          :math:`(N, C)`.

    Example::

        >>> GeMPool2d()(torch.rand(2, 8, 7, 7)).shape
        torch.Size([2, 8])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(gem_pool2d(input, self.kernel_size, self.stride, self.padding,
                                       self.p, self.eps))


class GeMPool3d(_GeMPoolNd):
    r"""GeM pooling (Radenović et al. 2018) over ``(N, C, D, H, W)``, see :func:`gem_pool`.

    .. math:: y_w = \Big(\frac{1}{|w|}\sum_{i\in w} \max(x_i,\epsilon)^p\Big)^{1/p}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(gem_pool3d(input, self.kernel_size, self.stride, self.padding,
                                       self.p, self.eps))


class _LpAbsPoolNd(WindowPoolNd):
    def __init__(self, norm_type=2.0, kernel_size=None, stride=None, padding=0, flatten=True):
        super().__init__(kernel_size, stride, padding, flatten)
        self.norm_type = check_positive(norm_type, "norm_type")

    def extra_repr(self) -> str:
        return f"norm_type={self.norm_type}, " + super().extra_repr()


class LpAbsPool1d(_LpAbsPoolNd):
    r"""Lp pooling of :math:`|x|` over ``(N, C, L)``, see :func:`lp_abs_pool`.

    .. math:: y_w = \Big(\sum_{i\in w} |x_i|^p\Big)^{1/p}

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`; global :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lp_abs_pool1d(input, self.norm_type, self.kernel_size, self.stride,
                                          self.padding))


class LpAbsPool2d(_LpAbsPoolNd):
    r"""Lp pooling of :math:`|x|` (safe for signed input and fractional ``p``).

    .. math:: y_w = \Big(\sum_{i\in w} |x_i|^p\Big)^{1/p}

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`; global
          :math:`(N, C)`.

    Example::

        >>> LpAbsPool2d(1.5, 2)(-torch.ones(1, 1, 2, 2))   # 4 ** (1 / 1.5)
        tensor([[[[2.5198]]]])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lp_abs_pool2d(input, self.norm_type, self.kernel_size, self.stride,
                                          self.padding))


class LpAbsPool3d(_LpAbsPoolNd):
    r"""Lp pooling of :math:`|x|` over ``(N, C, D, H, W)``, see :func:`lp_abs_pool`.

    .. math:: y_w = \Big(\sum_{i\in w} |x_i|^p\Big)^{1/p}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lp_abs_pool3d(input, self.norm_type, self.kernel_size, self.stride,
                                          self.padding))
