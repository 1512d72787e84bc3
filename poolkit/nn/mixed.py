r"""Mixed, gated and tree pooling: learned or random blends of max and average pooling.

- Mixed pooling (D. Yu, H. Wang, P. Chen, Z. Wei, "Mixed Pooling for Convolutional Neural
  Networks", RSKT 2014): :math:`\lambda \max + (1 - \lambda)\,\mathrm{avg}`, with
  :math:`\lambda` fixed, learned, or drawn at random in training.
- Gated and tree pooling (C.-Y. Lee, P. W. Gallagher, Z. Tu, "Generalizing Pooling Functions in
  Convolutional Neural Networks: Mixed, Gated, and Tree", AISTATS 2016): the mix is chosen per
  window by a learned gating mask (responsive to the window's content); tree pooling learns the
  pooling filters themselves (leaves) and combines them with learned gates (internal nodes).

Everything is a composition of ``max_pool``, ``avg_pool`` and one strided convolution (the gate
and leaf responses :math:`\omega^\top x_w` of all windows at once), never a copy of the windows.
Padding: max and average take no part of padding positions; the learned masks see zeros there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from poolkit.nn import _traceable
from poolkit.nn._base import WindowPoolNd, bind_dims
from poolkit.nn._utils import (
    AVG_POOL,
    CONV,
    MAX_POOL,
    avg_pool_transpose,
    check_choice,
    check_unit,
    mix,
    resolve_window,
)


def _max_and_avg(input: Tensor, kernel, stride, padding, dims: int) -> tuple[Tensor, Tensor]:
    maximum = MAX_POOL[dims](input, kernel, stride, padding)
    mean = AVG_POOL[dims](input, kernel, stride, padding, False, False)  # padding excluded
    return maximum, mean


class _MixedPool(torch.autograd.Function):
    r"""``y = alpha * max + (1 - alpha) * avg`` with a hand-written backward.

    :math:`\nabla x = (1-\alpha) \operatorname{avg}^\top(g)
    + \alpha\, \text{scatter}_{\arg\max}(g)`,
    :math:`\nabla \alpha = \sum g (\max - \operatorname{avg})`: one input-sized buffer (the
    gradient itself), where autograd would hold one per branch plus their sum.
    """

    @staticmethod
    def forward(ctx, input, alpha, kernel, stride, padding, dims):
        with torch.no_grad():
            maximum, index = MAX_POOL[dims](input, kernel, stride, padding, return_indices=True)
            mean = AVG_POOL[dims](input, kernel, stride, padding, False, False)
            out = mix(maximum, mean, alpha)
        ctx.save_for_backward(input, alpha, index, maximum, mean)
        ctx.window = (kernel, stride, padding, dims)
        ctx.mark_non_differentiable(index)
        return out

    @staticmethod
    def backward(ctx, grad):
        input, alpha, index, maximum, mean = ctx.saved_tensors
        kernel, stride, padding, dims = ctx.window
        grad_input = grad_alpha = None
        if ctx.needs_input_grad[0]:
            grad_input = avg_pool_transpose(grad * (1 - alpha), input, kernel, stride, padding,
                                            dims, count_include_pad=False)
            winners = (grad * alpha).expand_as(index)
            grad_input.flatten(2).scatter_add_(2, index.flatten(2), winners.flatten(2))
        if ctx.needs_input_grad[1]:
            grad_alpha = (grad * (maximum - mean)).sum_to_size(alpha.shape)
        return grad_input, grad_alpha, None, None, None, None


def mixed_pool(
    input: Tensor, kernel_size=None, stride=None, padding=0, alpha: float | Tensor = 0.5, *,
    dims: int,
) -> Tensor:
    r"""Mixed max-average pooling (Yu et al. 2014; Lee et al. 2016) with weight :math:`\alpha`.

    .. math:: y_w = \alpha \max_{i\in w} x_i + (1 - \alpha) \frac{1}{|w|}\sum_{i\in w} x_i

    ``alpha`` is a number in ``[0, 1]`` or a tensor broadcastable to the output (per channel
    ``(1, C, 1, ...)``, per sample ``(N, C, 1, ...)``); gradients flow to a tensor ``alpha``.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`; global
          :math:`(N, C, 1, ...)`.

    Example::

        >>> mixed_pool1d(torch.tensor([[[0., 4.]]]), 2, alpha=0.25)   # 0.25*4 + 0.75*2
        tensor([[[2.5000]]])
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims)
    if not isinstance(alpha, Tensor):
        alpha = torch.tensor(check_unit(alpha, "alpha"), dtype=input.dtype, device=input.device)
    if _traceable.capturing():
        return _traceable.mixed_pool(input, alpha.to(input.dtype), kernel, step, pad, dims,
                                     kernel_size is None)
    return _MixedPool.apply(input, alpha.to(input.dtype), kernel, step, pad, dims)


def gated_pool(
    input: Tensor, gate_weight: Tensor, kernel_size=None, stride=None, padding=0, *, dims: int
) -> Tensor:
    r"""Gated max-average pooling (Lee, Gallagher & Tu 2016), responsive to each window.

    .. math::
        g_w = \sigma(\omega^\top x_w), \qquad
        y_w = g_w \max_{i\in w} x_i + (1 - g_w) \frac{1}{|w|}\sum_{i\in w} x_i

    ``gate_weight`` is the gating mask :math:`\omega`: shape ``(1, *kernel)`` (one mask shared
    by all channels, the paper's default) or ``(C, 1, *kernel)`` (one per channel).

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`.
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims, global_ok=False)
    responses = _window_responses(input, gate_weight, step, pad, dims, kernel)
    if responses.shape[2] != 1:
        raise ValueError(f"gate_weight ({tuple(gate_weight.shape)}) must hold one mask (M = 1)")
    gate = torch.sigmoid(responses[:, :, 0])  # (N, C, *out)
    maximum, mean = _max_and_avg(input, kernel, step, pad, dims)
    return mix(maximum, mean, gate)


def _window_responses(input: Tensor, weight: Tensor, stride, padding, dims, kernel) -> Tensor:
    """:math:`w_m^\\top x_w` for every window and mask: ``(N, C, M, *out)``.

    ``weight`` is ``(M, *kernel)`` (masks shared by all channels, one strided convolution of the
    ``(N*C, 1, *S)`` view) or ``(C, M, *kernel)`` (per channel, a depthwise convolution).
    """
    n, c = input.shape[:2]
    shared = isinstance(weight, Tensor) and weight.dim() == dims + 1
    per_channel = isinstance(weight, Tensor) and weight.dim() == dims + 2 and weight.shape[0] == c
    if not (shared or per_channel) or tuple(weight.shape[-dims:]) != tuple(kernel):
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(
            f"mask weight ({got}) must have shape (M, *kernel_size) or (C={c}, M, *kernel_size) "
            f"with kernel_size {tuple(kernel)}"
        )
    if shared:
        out = CONV[dims](input.reshape(n * c, 1, *input.shape[2:]), weight.unsqueeze(1), None,
                         stride, padding)
        return out.view(n, c, weight.shape[0], *out.shape[2:])
    masks = weight.shape[1]
    out = CONV[dims](input, weight.reshape(c * masks, 1, *kernel), None, stride, padding, 1, c)
    return out.view(n, c, masks, *out.shape[2:])


def _combine_tree(leaf_values: Tensor, gates: Tensor) -> Tensor:
    """Combine leaves ``(N, C, L, *out)`` bottom-up with gates ``(N, C, L - 1, *out)``.

    Internal nodes are numbered breadth-first (root 0), so a level of ``m`` nodes starts at
    index ``m - 1``; node ``j`` of it mixes children ``2j`` (weight g) and ``2j + 1`` (1 - g).
    """
    level = list(leaf_values.unbind(2))
    while len(level) > 1:
        first = len(level) // 2 - 1
        level = [
            mix(level[2 * j], level[2 * j + 1], gates[:, :, first + j])
            for j in range(len(level) // 2)
        ]
    return level[0]


def tree_pool(
    input: Tensor, leaf_weight: Tensor, gate_weight: Tensor, kernel_size=None, stride=None,
    padding=0, *, dims: int,
) -> Tensor:
    r"""Tree pooling (Lee, Gallagher & Tu 2016): learned pooling filters mixed by learned gates.

    A complete binary tree of depth ``d``: the :math:`2^{d-1}` leaves are pooling filters
    :math:`f_m(x_w) = v_m^\top x_w`; each internal node ``n`` mixes its children with a gate,

    .. math::
        f_n(x_w) = \sigma(\omega_n^\top x_w)\, f_{\text{left}(n)}(x_w)
                 + \big(1 - \sigma(\omega_n^\top x_w)\big)\, f_{\text{right}(n)}(x_w),

    and the output is the root's value. ``leaf_weight`` is ``(2^{d-1}, *kernel)`` and
    ``gate_weight`` ``(2^{d-1} - 1, *kernel)`` (internal nodes in breadth-first order, the root
    first), shared by all channels; or ``(C, 2^{d-1}, *kernel)`` and ``(C, 2^{d-1} - 1, *kernel)``
    per channel.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`.
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims, global_ok=False)
    mask_dim = 0 if leaf_weight.dim() == dims + 1 else 1
    leaves, gates = leaf_weight.shape[mask_dim], gate_weight.shape[mask_dim]
    if leaves < 2 or leaves & (leaves - 1) or gates != leaves - 1:
        raise ValueError(
            f"leaf_weight ({leaves} filters) and gate_weight ({gates} masks) must describe a "
            "complete binary tree: 2^(d-1) leaves (>= 2) and 2^(d-1) - 1 gates"
        )
    responses = _window_responses(
        input, torch.cat([leaf_weight, gate_weight], mask_dim), step, pad, dims, kernel
    )  # (N, C, leaves + gates, *out)
    return _combine_tree(responses[:, :, :leaves], torch.sigmoid(responses[:, :, leaves:]))


mixed_pool1d, mixed_pool2d, mixed_pool3d = (
    bind_dims(mixed_pool, f"mixed_pool{d}d", d) for d in (1, 2, 3)
)
gated_pool1d, gated_pool2d, gated_pool3d = (
    bind_dims(gated_pool, f"gated_pool{d}d", d) for d in (1, 2, 3)
)
tree_pool1d, tree_pool2d, tree_pool3d = (
    bind_dims(tree_pool, f"tree_pool{d}d", d) for d in (1, 2, 3)
)

_MIX_MODES = ("fixed", "learned", "random")


class _MixedPoolNd(WindowPoolNd):
    def __init__(
        self, kernel_size=None, stride=None, padding=0, alpha: float = 0.5, mode: str = "learned",
        channels: int | None = None, flatten: bool = True,
        generator: torch.Generator | None = None, *, device=None, dtype=None,
    ):
        super().__init__(kernel_size, stride, padding, flatten)
        self.mode = check_choice(mode, "mode", _MIX_MODES)
        alpha = check_unit(alpha, "alpha")
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
        ):
            raise ValueError(f"channels ({channels!r}) must be None or an int >= 1")
        shape = (1, 1 if channels is None else channels, *([1] * self.dims))
        if self.mode == "learned":  # alpha = sigmoid(logit), unconstrained parameter
            clipped = min(max(alpha, 1e-4), 1 - 1e-4)
            self.alpha_logit = nn.Parameter(torch.full(shape, math.log(clipped / (1 - clipped))))
        else:
            self.register_buffer("alpha_value", torch.full(shape, alpha))
        self.generator = generator
        self._place(device, dtype)

    def alpha(self, input: Tensor) -> Tensor:
        """The mixing weight for this call: ``(1 or N, 1 or C, 1, ...)``."""
        if self.mode == "learned":
            return torch.sigmoid(self.alpha_logit)
        if self.mode == "random" and self.training:  # lambda in {0, 1}, P(1) = alpha, per (n, c)
            n, c = input.shape[:2]
            draw = torch.rand((n, c, *([1] * self.dims)), generator=self.generator,
                              device=input.device)
            return (draw < self.alpha_value).to(input.dtype)
        return self.alpha_value.to(input.dtype)  # fixed, or random's expectation in eval

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, " + super().extra_repr()


class MixedPool1d(_MixedPoolNd):
    r"""Mixed pooling (Yu et al. 2014) over ``(N, C, L)``, see :class:`MixedPool2d`.

    .. math:: y_w = \alpha \max_{i\in w} x_i + (1-\alpha)\operatorname{mean}_{i\in w} x_i

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`; global :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(mixed_pool1d(input, self.kernel_size, self.stride, self.padding,
                                         self.alpha(input)))


class MixedPool2d(_MixedPoolNd):
    r"""Mixed max-average pooling (Yu et al. 2014; Lee et al. 2016).

    .. math:: y_w = \alpha \max_{i\in w} x_i + (1-\alpha)\operatorname{mean}_{i\in w} x_i

    ``mode``: ``"learned"`` (default; :math:`\alpha = \sigma(\theta)`, one per layer or per
    channel with ``channels=C``, initialised to ``alpha``), ``"fixed"`` (``alpha`` as given), or
    ``"random"`` (Yu et al.: in training :math:`\lambda \in \{0, 1\}` is drawn per sample and
    channel with :math:`P(\lambda = 1) = \alpha`; in eval its expectation :math:`\alpha`).

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`; global
          :math:`(N, C)`.

    Example::

        >>> MixedPool2d(2, alpha=0.5, mode="fixed")(torch.tensor([[[[0., 2.], [4., 6.]]]]))
        tensor([[[[4.5000]]]])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(mixed_pool2d(input, self.kernel_size, self.stride, self.padding,
                                         self.alpha(input)))


class MixedPool3d(_MixedPoolNd):
    r"""Mixed pooling (Yu et al. 2014) over ``(N, C, D, H, W)``, see :class:`MixedPool2d`.

    .. math:: y_w = \alpha \max_{i\in w} x_i + (1-\alpha)\operatorname{mean}_{i\in w} x_i

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(mixed_pool3d(input, self.kernel_size, self.stride, self.padding,
                                         self.alpha(input)))


def _mask_parameter(count: int, kernel, channels: int | None, init: str) -> nn.Parameter:
    """``(count, *kernel)`` masks shared by all channels, or ``(channels, count, *kernel)``."""
    shape = (count, *kernel) if channels is None else (channels, count, *kernel)
    size = math.prod(kernel)
    if init == "zeros":
        return nn.Parameter(torch.zeros(shape))
    data = torch.full(shape, 1.0 / size)  # averaging filters, perturbed so the leaves differ
    return nn.Parameter(data + torch.randn(shape) * (0.5 / size))


class _GatedPoolNd(WindowPoolNd):
    def __init__(
        self, kernel_size, stride=None, padding=0, channels: int | None = None, *, device=None,
        dtype=None,
    ):
        if kernel_size is None:
            raise ValueError("kernel_size is required: gated pooling has no global form")
        super().__init__(kernel_size, stride, padding)
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
        ):
            raise ValueError(f"channels ({channels!r}) must be None or an int >= 1")
        # zero mask: every gate starts at 1/2, i.e. (max + avg) / 2
        self.gate_weight = _mask_parameter(1, self.kernel_size, channels, "zeros")
        self._place(device, dtype)


class GatedPool1d(_GatedPoolNd):
    r"""Gated pooling (Lee et al. 2016) over ``(N, C, L)``, see :class:`GatedPool2d`.

    .. math:: y_w = \sigma(\omega^\top x_w)\max_w x + (1 - \sigma(\omega^\top x_w))
        \operatorname{mean}_w x

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return gated_pool1d(input, self.gate_weight, self.kernel_size, self.stride, self.padding)


class GatedPool2d(_GatedPoolNd):
    r"""Gated max-average pooling (Lee, Gallagher & Tu, AISTATS 2016).

    .. math:: y_w = \sigma(\omega^\top x_w)\max_{i\in w} x_i + \big(1 - \sigma(\omega^\top x_w)
        \big) \frac{1}{|w|}\sum_{i\in w} x_i

    The learned gating mask :math:`\omega` (``kernel_size`` weights; one per layer, or one per
    channel with ``channels=C``) makes the mix *responsive*: each window chooses its own blend.
    The mask starts at zero (gate 1/2).

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`.

    Example::

        >>> GatedPool2d(2)(torch.tensor([[[[0., 2.], [4., 6.]]]]))   # gate 1/2: (6 + 3) / 2
        tensor([[[[4.5000]]]], grad_fn=<AddBackward0>)
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return gated_pool2d(input, self.gate_weight, self.kernel_size, self.stride, self.padding)


class GatedPool3d(_GatedPoolNd):
    r"""Gated pooling (Lee et al. 2016) over ``(N, C, D, H, W)``, see :class:`GatedPool2d`.

    .. math:: y_w = \sigma(\omega^\top x_w)\max_w x + (1 - \sigma(\omega^\top x_w))
        \operatorname{mean}_w x

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return gated_pool3d(input, self.gate_weight, self.kernel_size, self.stride, self.padding)


class _TreePoolNd(WindowPoolNd):
    def __init__(
        self, kernel_size, stride=None, padding=0, depth: int = 2, channels: int | None = None,
        *, device=None, dtype=None,
    ):
        if kernel_size is None:
            raise ValueError("kernel_size is required: tree pooling has no global form")
        super().__init__(kernel_size, stride, padding)
        if depth not in (2, 3):
            raise ValueError(f"depth ({depth!r}) must be 2 or 3 (the paper's trees)")
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
        ):
            raise ValueError(f"channels ({channels!r}) must be None or an int >= 1")
        self.depth = depth
        leaves = 2 ** (depth - 1)
        self.leaf_weight = _mask_parameter(leaves, self.kernel_size, channels, "average")
        self.gate_weight = _mask_parameter(leaves - 1, self.kernel_size, channels, "zeros")
        self._place(device, dtype)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, " + super().extra_repr()


class TreePool1d(_TreePoolNd):
    r"""Tree pooling (Lee et al. 2016) over ``(N, C, L)``, see :class:`TreePool2d`.

    .. math:: f_n = \sigma(\omega_n^\top x_w) f_{\text{left}} + (1 - \sigma(\omega_n^\top x_w))
        f_{\text{right}},\quad f_{\text{leaf } m} = v_m^\top x_w

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return tree_pool1d(input, self.leaf_weight, self.gate_weight, self.kernel_size,
                           self.stride, self.padding)


class TreePool2d(_TreePoolNd):
    r"""Tree pooling (Lee, Gallagher & Tu, AISTATS 2016): learned filters, learned gates.

    .. math:: f_n(x_w) = \sigma(\omega_n^\top x_w) f_{\text{left}(n)}(x_w)
        + \big(1 - \sigma(\omega_n^\top x_w)\big) f_{\text{right}(n)}(x_w),
        \quad f_{\text{leaf } m}(x_w) = v_m^\top x_w

    ``depth=2`` (2 leaves, 1 gate) or ``3`` (4 leaves, 3 gates); filters shared by all channels
    (the paper) or per channel with ``channels=C``. Leaves start as perturbed averaging filters,
    gates at 1/2.

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`.

    Example::

        >>> TreePool2d(3, stride=2, depth=3)(torch.randn(2, 4, 9, 9)).shape
        torch.Size([2, 4, 4, 4])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return tree_pool2d(input, self.leaf_weight, self.gate_weight, self.kernel_size,
                           self.stride, self.padding)


class TreePool3d(_TreePoolNd):
    r"""Tree pooling (Lee et al. 2016) over ``(N, C, D, H, W)``, see :class:`TreePool2d`.

    .. math:: f_n = \sigma(\omega_n^\top x_w) f_{\text{left}} + (1 - \sigma(\omega_n^\top x_w))
        f_{\text{right}}

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return tree_pool3d(input, self.leaf_weight, self.gate_weight, self.kernel_size,
                           self.stride, self.padding)
