"""Exponentially weighted pools: SoftPool, LIP and log-sum-exp (LSE) pooling.

All three are ratios (or logs) of **sum pools** of ``exp`` terms, so none of them copies the
windows (no ``unfold``): a window's softmax-weighted average is
``sum_pool(v * e^l) / sum_pool(e^l)``. Their backward passes are written by hand next to the
forward (a custom ``autograd.Function``) so that only the input and the small pooled tensors are
kept between forward and backward; ``exp`` is recomputed.

Numerical safety: the exponent is shifted by the plane maximum (an upper bound of every window's
maximum), so nothing overflows; float16/bfloat16 are computed in float32, and a call in which
a window's weights underflowed (plane range beyond ~87) is redone in float64. A window whose
weights still all underflow (a range beyond ~700) falls back to its max (SoftPool/LIP: the value
at the largest logit; LSE: ``max - log(|w|)/r``). NaN and infinite inputs affect only their
own windows (NaN propagates as through torch's max pool, see :func:`_nonfinite_limits`), and an
empty batch gives an empty result.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from poolkit.geometry import check_dims
from poolkit.nn import _traceable
from poolkit.nn._base import WindowPoolNd, bind_dims
from poolkit.nn._utils import (
    MAX_POOL,
    as_planes,
    check_positive,
    plane_chunks,
    plane_max,
    pooled_empty,
    resolve_window,
    safe_ratio_,
    sum_pool,
    sum_pool_transpose,
    window_count,
)


def _exp_dtypes(input: Tensor) -> tuple[torch.dtype, ...]:
    """Computation dtypes to try: float32 (also for half types), then float64.

    The float64 retry happens only when some window's weight sum is not a normal float32 (the
    window lies ~87 below its plane's max), which a cheap check on the pooled sums detects.
    """
    if input.dtype == torch.float64:
        return (torch.float64,)
    return (torch.float32, torch.float64)


def _well_scaled(den: Tensor) -> bool:
    """Every window's weight sum is a normal number (so its largest weight kept its precision)."""
    return bool((den >= torch.finfo(den.dtype).tiny).all())


class _ExpWeightedPool(torch.autograd.Function):
    r"""``y_w = sum_{i in w} v_i e^{l_i - m} / sum_{i in w} e^{l_i - m}`` (``logits=None``: l = v).

    Backward, with :math:`S_w = \sum_{i\in w} e^{l_i-m}`, :math:`A = T(g/S)`,
    :math:`B = T(g\,y/S)` (``T`` = transpose of the sum pool, i.e. each position collects the
    windows containing it):
    :math:`\partial/\partial v_i = e_i A_i`, :math:`\partial/\partial l_i = e_i (v_i A_i - B_i)`;
    SoftPool (l = v): :math:`e_i((1 + v_i) A_i - B_i)`. Both passes run over groups of planes
    (``plane_chunks``), so the ``exp`` weights, ``A`` and ``B`` never exist at full size.
    """

    @staticmethod
    def forward(ctx, values, logits, shift, kernel, stride, padding, dims):
        v = as_planes(values)  # (P, 1, *S)
        l = v if logits is None else as_planes(logits)
        m = shift.reshape(-1, *([1] * (dims + 1)))
        den = pooled_empty(v, kernel, stride, padding, dims)  # (P, 1, *out)
        out = torch.empty_like(den)
        with torch.no_grad():
            chunks = plane_chunks(v)
            buffer = v.new_empty((chunks[0].stop - chunks[0].start, *v.shape[1:]))
            for part in chunks:
                weights = buffer[: part.stop - part.start]  # one buffer for every chunk
                torch.sub(l[part], m[part], out=weights).exp_()  # in (0, 1]
                den[part] = sum_pool(weights, kernel, stride, padding, dims)
                num = sum_pool(weights.mul_(v[part]), kernel, stride, padding, dims)
                out[part] = safe_ratio_(num, den[part])  # 0/0 -> 0 (fixed by the caller)
            del buffer
        den = den.view(*values.shape[:2], *den.shape[2:])
        out = out.view_as(den)
        ctx.save_for_backward(values, logits, shift, den, out)
        ctx.window = (kernel, stride, padding, dims)
        ctx.mark_non_differentiable(den)
        return out, den

    @staticmethod
    def backward(ctx, grad, _grad_den):
        values, logits, shift, den, out = ctx.saved_tensors
        kernel, stride, padding, dims = ctx.window
        v = as_planes(values)
        l = None if logits is None else as_planes(logits)
        m = shift.reshape(-1, *([1] * (dims + 1)))
        g, s, y = as_planes(grad), as_planes(den), as_planes(out)
        grad_v = torch.empty_like(v) if ctx.needs_input_grad[0] else None
        grad_l = None if l is None else torch.empty_like(l)
        if grad_v is None and grad_l is None:
            return None, None, None, None, None, None, None
        for part in plane_chunks(v):
            g_over_s = safe_ratio_(g[part].clone(), s[part])
            a = sum_pool_transpose(g_over_s, v[part], kernel, stride, padding, dims)
            b = sum_pool_transpose(g_over_s.mul_(y[part]), v[part], kernel, stride, padding,
                                   dims)
            # the weights e are computed straight into a gradient's storage (no temporary)
            if l is None:  # SoftPool: e * ((1 + v) * A - B)
                weights = torch.sub(v[part], m[part], out=grad_v[part]).exp_()
                weights.mul_(a.addcmul_(v[part], a).sub_(b))
                continue
            weights = torch.sub(l[part], m[part], out=grad_l[part]).exp_()
            if grad_v is not None:
                torch.mul(a, weights, out=grad_v[part])
            weights.mul_(a.mul_(v[part]).sub_(b))  # dl = e * (v A - B)
        grad_v = None if grad_v is None else grad_v.view_as(values)
        grad_l = None if grad_l is None else grad_l.view_as(logits)
        return grad_v, grad_l, None, None, None, None, None


def _exp_weighted_pool(values: Tensor, logits: Tensor | None, kernel, stride, padding, dims):
    if values.numel() == 0:  # an empty batch: an empty result of the right shape
        return MAX_POOL[dims](values, kernel, stride, padding)
    limits = _nonfinite_limits(values, logits, kernel, stride, padding, dims)
    if limits is not None:
        values, logits, apply_limits = limits
    out = _finite_exp_weighted_pool(values, logits, kernel, stride, padding, dims)
    return out if limits is None else apply_limits(out)


def _nonfinite_limits(values: Tensor, logits: Tensor | None, kernel, stride, padding, dims):
    """Finite stand-ins for NaN and infinite inputs, and a function that gives the windows
    holding them their limit value; ``None`` when every input is finite.

    A window with a NaN value (or a NaN or ``+inf`` logit) gives NaN, as through torch's max
    pool; one with ``+inf`` values gives ``+inf``. SoftPool gives ``-inf`` values weight
    ``e^-inf = 0`` (the limit of ``x e^x`` is 0, as in ``torch.softmax``): the window's
    softmax-weighted average of its other values, and a window of only ``-inf`` gives ``-inf``.
    LIP, whose weights do not come from the values, gives ``-inf`` for ``-inf`` values and NaN
    for a window holding both infinities.
    """
    nan_v, pos_v, neg_v = values.isnan(), values.isposinf(), values.isneginf()
    bad_l = None if logits is None else logits.isnan() | logits.isposinf()
    if not (nan_v.any() or pos_v.any() or neg_v.any() or (bad_l is not None and bad_l.any())):
        return None

    def windows(mask: Tensor) -> Tensor:
        return MAX_POOL[dims](mask.to(torch.float32), kernel, stride, padding) > 0

    nan_w, pos_w = windows(nan_v if bad_l is None else nan_v | bad_l), windows(pos_v)
    if logits is None:  # SoftPool: a -inf value becomes a -inf logit (weight 0) of value 0
        neg_w = ~windows(~neg_v)  # the windows of only -inf
        if neg_v.any():
            logits = torch.where(nan_v | pos_v, 0.0, values)
            bad_l = torch.zeros_like(nan_v)
    else:
        neg_w = windows(neg_v)
    clean_values = torch.where(nan_v | pos_v | neg_v, 0.0, values)
    clean_logits = None if logits is None else torch.where(bad_l, 0.0, logits)

    def apply_limits(out: Tensor) -> Tensor:
        out = torch.where(pos_w, torch.inf, torch.where(neg_w, -torch.inf, out))
        return torch.where(nan_w | (pos_w & neg_w), torch.nan, out)

    return clean_values, clean_logits, apply_limits


def _finite_exp_weighted_pool(values: Tensor, logits: Tensor | None, kernel, stride, padding,
                              dims) -> Tensor:
    for dtype in _exp_dtypes(values):
        v = values.to(dtype)
        l = None if logits is None else logits.to(dtype)
        shift = plane_max(v if l is None else l, dims)
        out, den = _ExpWeightedPool.apply(v, l, shift, kernel, stride, padding, dims)
        if _well_scaled(den):
            break
    if not bool((den > 0).all()):  # all weights of a window underflowed even in float64
        _, index = MAX_POOL[dims](
            v if l is None else l, kernel, stride, padding, return_indices=True
        )
        winner = v.flatten(2).gather(2, index.flatten(2)).view_as(index)
        out = torch.where(den > 0, out, winner)
    return out.to(values.dtype)


def soft_pool(input: Tensor, kernel_size=None, stride=None, padding=0, *, dims: int) -> Tensor:
    r"""SoftPool (Stergiou, Poppe & Kalliatakis, ICCV 2021): softmax-weighted window average.

    .. math::
        y_w = \frac{\sum_{i \in w} x_i e^{x_i}}{\sum_{i \in w} e^{x_i}}
            = \frac{\operatorname{avgpool}(x e^{x})}{\operatorname{avgpool}(e^{x})}

    Lies between the window's mean and max; differentiable everywhere; large inputs are safe
    (the exponent is shifted, see the module docstring). ``kernel_size=None`` pools each whole
    plane. Padding positions get zero weight (they never take part). A ``-inf`` value has
    weight ``e^-inf = 0`` (as in :func:`torch.softmax`): the window gives the weighted average
    of its other values, and a window of only ``-inf`` gives ``-inf``.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`,
          :math:`S_{out} = \lfloor (S + 2p - k)/s \rfloor + 1`; global :math:`(N, C, 1, ...)`.

    Example::

        >>> soft_pool2d(torch.tensor([[[[0., 0.], [0., 0.6931]]]]), 2)  # (2 ln 2) / (1+1+1+2)
        tensor([[[[0.2772]]]])
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims)
    if _traceable.capturing():
        whole = kernel_size is None
        return _traceable.exp_weighted_pool(input, None, kernel, step, pad, dims, whole)
    return _exp_weighted_pool(input, None, kernel, step, pad, dims)


def lip_pool(
    input: Tensor, logits: Tensor, kernel_size=None, stride=None, padding=0, *, dims: int
) -> Tensor:
    r"""Local importance-based pooling (Gao, Wang & Wu, ICCV 2019) with given logits.

    .. math::
        y_w = \frac{\sum_{i \in w} x_i e^{\ell_i}}{\sum_{i \in w} e^{\ell_i}}
            = \frac{\operatorname{avgpool}(x e^{\ell})}{\operatorname{avgpool}(e^{\ell})}

    where :math:`\ell = \operatorname{logit}(x)` comes from a learned module (:class:`LIPLogit`).
    Gradients flow to both ``input`` and ``logits``.

    Shape:
        - Input and logits: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`.
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims)
    if not isinstance(logits, Tensor) or logits.shape != input.shape:
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits ({got}) must have the input's shape {tuple(input.shape)}")
    if _traceable.capturing():
        whole = kernel_size is None
        return _traceable.exp_weighted_pool(input, logits, kernel, step, pad, dims, whole)
    return _exp_weighted_pool(input, logits, kernel, step, pad, dims)


class _LSEPool(torch.autograd.Function):
    r"""``y_w = m + log(S_w / K_w) / r``, :math:`S_w = \sum_{i\in w} e^{r(x_i - m)}`.

    Backward: :math:`\partial y_w / \partial x_i = e^{r(x_i - m)} / S_w`, so
    :math:`\nabla x = e^{r(x-m)} \odot T(g / S)`, computed over groups of planes.
    """

    @staticmethod
    def forward(ctx, input, shift, r, kernel, stride, padding, dims):
        x = as_planes(input)
        m = shift.reshape(-1, *([1] * (dims + 1)))
        den = pooled_empty(x, kernel, stride, padding, dims)
        with torch.no_grad():
            for part in plane_chunks(x):
                weights = (x[part] - m[part]).mul_(r).exp_()
                den[part] = sum_pool(weights, kernel, stride, padding, dims)
                del weights
            den = den.view(*input.shape[:2], *den.shape[2:])
            count = window_count(input, kernel, stride, padding, dims)
            out = den.div(count).log_().div_(r).add_(shift)  # -inf where den == 0 (fixed later)
        ctx.save_for_backward(input, shift, den)
        ctx.r, ctx.window = r, (kernel, stride, padding, dims)
        ctx.mark_non_differentiable(den)
        return out, den

    @staticmethod
    def backward(ctx, grad, _grad_den):
        input, shift, den = ctx.saved_tensors
        kernel, stride, padding, dims = ctx.window
        x = as_planes(input)
        m = shift.reshape(-1, *([1] * (dims + 1)))
        g, s = as_planes(grad), as_planes(den)
        grad_input = torch.empty_like(x)
        for part in plane_chunks(x):
            g_over_s = safe_ratio_(g[part].clone(), s[part])
            a = sum_pool_transpose(g_over_s, x[part], kernel, stride, padding, dims)
            torch.mul(a, (x[part] - m[part]).mul_(ctx.r).exp_(), out=grad_input[part])
        return grad_input.view_as(input), None, None, None, None, None, None


def lse_pool(
    input: Tensor, kernel_size=None, stride=None, padding=0, r: float = 1.0, *, dims: int
) -> Tensor:
    r"""Log-sum-exp pooling (Pinheiro & Collobert, CVPR 2015), a smooth max with sharpness r.

    .. math:: y_w = \frac{1}{r} \log\Big(\frac{1}{|w|} \sum_{i \in w} e^{r x_i}\Big)

    :math:`r \to 0` gives the mean, :math:`r \to \infty` the max; always
    :math:`\max_w x - \log(|w|)/r \le y_w \le \max_w x`. Computed stably as
    :math:`m + \frac1r \log \frac{1}{|w|}\sum e^{r(x_i - m)}` with ``m`` the plane max.
    :math:`|w|` counts real positions only (padding takes no part).

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`; global
          :math:`(N, C, 1, ...)`.

    Example::

        >>> lse_pool1d(torch.tensor([[[0., 0.]]]), 2, r=1.0)   # log(mean(1, 1)) = 0
        tensor([[[0.]]])
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims)
    r = check_positive(r, "r")
    if _traceable.capturing():
        return _traceable.lse_pool(input, r, kernel, step, pad, dims, kernel_size is None)
    for dtype in _exp_dtypes(input):
        x = input.to(dtype)
        shift = plane_max(x, dims)
        out, den = _LSEPool.apply(x, shift, r, kernel, step, pad, dims)
        if _well_scaled(den):
            break
    if not bool((den > 0).all()):
        count = window_count(x, kernel, step, pad, dims)
        fallback = MAX_POOL[dims](x, kernel, step, pad) - count.log() / r
        out = torch.where(den > 0, out, fallback)
    return out.to(input.dtype)


soft_pool1d, soft_pool2d, soft_pool3d = (
    bind_dims(soft_pool, f"soft_pool{d}d", d) for d in (1, 2, 3)
)
lip_pool1d, lip_pool2d, lip_pool3d = (bind_dims(lip_pool, f"lip_pool{d}d", d) for d in (1, 2, 3))
lse_pool1d, lse_pool2d, lse_pool3d = (bind_dims(lse_pool, f"lse_pool{d}d", d) for d in (1, 2, 3))


class _SoftPoolNd(WindowPoolNd):
    pass


class SoftPool1d(_SoftPoolNd):
    r"""SoftPool (Stergiou et al., ICCV 2021) over ``(N, C, L)``, see :func:`soft_pool`.

    .. math:: y_w = \sum_{i \in w} x_i e^{x_i} \Big/ \sum_{i \in w} e^{x_i}

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, \lfloor (L + 2p - k)/s \rfloor + 1)`;
          ``kernel_size=None``: :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(soft_pool1d(input, self.kernel_size, self.stride, self.padding))


class SoftPool2d(_SoftPoolNd):
    r"""SoftPool (Stergiou et al., ICCV 2021) over ``(N, C, H, W)``, see :func:`soft_pool`.

    .. math:: y_w = \sum_{i \in w} x_i e^{x_i} \Big/ \sum_{i \in w} e^{x_i}

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`,
          :math:`H_{out} = \lfloor (H + 2p - k)/s \rfloor + 1`; ``kernel_size=None``:
          :math:`(N, C)`.

    Example::

        >>> SoftPool2d(2)(torch.zeros(1, 1, 4, 4)).shape
        torch.Size([1, 1, 2, 2])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(soft_pool2d(input, self.kernel_size, self.stride, self.padding))


class SoftPool3d(_SoftPoolNd):
    r"""SoftPool (Stergiou et al., ICCV 2021) over ``(N, C, D, H, W)``, see :func:`soft_pool`.

    .. math:: y_w = \sum_{i \in w} x_i e^{x_i} \Big/ \sum_{i \in w} e^{x_i}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(soft_pool3d(input, self.kernel_size, self.stride, self.padding))


class _LSEPoolNd(WindowPoolNd):
    def __init__(self, kernel_size=None, stride=None, padding=0, r: float = 1.0, flatten=True):
        super().__init__(kernel_size, stride, padding, flatten)
        self.r = check_positive(r, "r")

    def extra_repr(self) -> str:
        return f"r={self.r}, " + super().extra_repr()


class LSEPool1d(_LSEPoolNd):
    r"""Log-sum-exp pooling (Pinheiro & Collobert 2015), see :func:`lse_pool`.

    .. math:: y_w = \frac1r \log \frac{1}{|w|}\sum_{i\in w} e^{r x_i}

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`; global :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lse_pool1d(input, self.kernel_size, self.stride, self.padding, self.r))


class LSEPool2d(_LSEPoolNd):
    r"""Log-sum-exp pooling (Pinheiro & Collobert 2015), see :func:`lse_pool`.

    .. math:: y_w = \frac1r \log \frac{1}{|w|}\sum_{i\in w} e^{r x_i}

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`; global
          :math:`(N, C)`.
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lse_pool2d(input, self.kernel_size, self.stride, self.padding, self.r))


class LSEPool3d(_LSEPoolNd):
    r"""Log-sum-exp pooling (Pinheiro & Collobert 2015), see :func:`lse_pool`.

    .. math:: y_w = \frac1r \log \frac{1}{|w|}\sum_{i\in w} e^{r x_i}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lse_pool3d(input, self.kernel_size, self.stride, self.padding, self.r))


_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_INSTANCE_NORM = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class LIPLogit(nn.Module):
    r"""The logit module of simplified LIP (Gao et al. 2019): conv, norm, scaled sigmoid.

    .. math:: \ell(x) = c \cdot \sigma\big(\operatorname{norm}(W * x)\big),\quad c = 12

    The convolution (``kernel_size`` 3, same padding, no bias) starts at zero, so a fresh LIP
    layer is an average pool; ``norm`` is ``"instance"`` (affine, as in the paper's simplified
    LIP) or ``"batch"``. The logits lie in ``[0, c]``.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S)`.
    """

    def __init__(
        self, channels: int, dims: int = 2, kernel_size: int = 3, norm: str = "instance",
        coeff: float = 12.0,
    ) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels ({channels!r}) must be an int >= 1")
        check_dims(dims)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"logit kernel_size ({kernel_size!r}) must be an odd int >= 1")
        if norm not in ("instance", "batch"):
            raise ValueError(f"norm ({norm!r}) must be one of ('instance', 'batch')")
        self.coeff = check_positive(coeff, "coeff")
        self.conv = _CONV[dims](channels, channels, kernel_size, padding=kernel_size // 2,
                                bias=False)
        nn.init.zeros_(self.conv.weight)
        norm_cls = _INSTANCE_NORM[dims] if norm == "instance" else _BATCH_NORM[dims]
        self.norm = norm_cls(channels, affine=True)

    def forward(self, input: Tensor) -> Tensor:
        z = self.conv(input)
        if z.shape[0] == 0:  # an empty batch: torch's instance norm refuses it
            return z
        single = all(size == 1 for size in z.shape[2:])  # (not numel: keeps sizes symbolic)
        if single and isinstance(self.norm, nn.modules.instancenorm._InstanceNorm):
            # one position per plane: instance norm gives 0 (x - mean), then its affine shift;
            # torch refuses the single element, so take the limit it defines
            shift = self.norm.bias.view(1, -1, *([1] * (z.ndim - 2)))
            return torch.sigmoid(shift.to(z.dtype)).expand_as(z) * self.coeff
        return torch.sigmoid(self.norm(z)) * self.coeff


class _LIPPoolNd(WindowPoolNd):
    def __init__(
        self, channels: int, kernel_size=None, stride=None, padding=0, flatten=True,
        logit_kernel_size: int = 3, norm: str = "instance", coeff: float = 12.0, *,
        device=None, dtype=None,
    ):
        super().__init__(kernel_size, stride, padding, flatten)
        self.logit = LIPLogit(channels, self.dims, logit_kernel_size, norm, coeff)
        self._place(device, dtype)


class LIPPool1d(_LIPPoolNd):
    r"""LIP (Gao et al. 2019) over ``(N, C, L)`` with its learned :class:`LIPLogit`.

    .. math:: y_w = \sum_{i\in w} x_i e^{\ell_i} \Big/ \sum_{i\in w} e^{\ell_i},\quad
        \ell = \operatorname{logit}(x)

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`; global :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lip_pool1d(input, self.logit(input), self.kernel_size, self.stride,
                                       self.padding))


class LIPPool2d(_LIPPoolNd):
    r"""LIP (Gao, Wang & Wu, ICCV 2019) with its learned :class:`LIPLogit`.

    .. math:: y_w = \sum_{i\in w} x_i e^{\ell_i} \Big/ \sum_{i\in w} e^{\ell_i},\quad
        \ell = 12\,\sigma(\operatorname{IN}(W * x))

    The paper's layer is ``LIPPool2d(C, kernel_size=3, stride=2, padding=1)``; a fresh layer
    equals average pooling (zero-initialised logit convolution).

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`; global
          :math:`(N, C)`.

    Example::

        >>> LIPPool2d(8, kernel_size=3, stride=2, padding=1)(torch.randn(2, 8, 16, 16)).shape
        torch.Size([2, 8, 8, 8])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lip_pool2d(input, self.logit(input), self.kernel_size, self.stride,
                                       self.padding))


class LIPPool3d(_LIPPoolNd):
    r"""LIP (Gao et al. 2019) over ``(N, C, D, H, W)`` with its learned :class:`LIPLogit`.

    .. math:: y_w = \sum_{i\in w} x_i e^{\ell_i} \Big/ \sum_{i\in w} e^{\ell_i}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(lip_pool3d(input, self.logit(input), self.kernel_size, self.stride,
                                       self.padding))


__all__ = [
    "LIPLogit", "LIPPool1d", "LIPPool2d", "LIPPool3d", "LSEPool1d", "LSEPool2d", "LSEPool3d",
    "SoftPool1d", "SoftPool2d", "SoftPool3d", "lip_pool1d", "lip_pool2d", "lip_pool3d",
    "lse_pool1d", "lse_pool2d", "lse_pool3d", "soft_pool1d", "soft_pool2d", "soft_pool3d",
]
