r"""Stochastic pooling (Zeiler & Fergus, ICLR 2013).

M. D. Zeiler, R. Fergus, "Stochastic Pooling for Regularization of Deep Convolutional Neural
Networks", ICLR 2013. In training each window outputs **one** of its (non-negative) activations,
drawn with probability proportional to its value; at test time the probability-weighted average.

Sampling rides on max pooling (the Gumbel-max trick in its ratio form, the "exponential race"):
with :math:`u_i \sim U(0, 1)` and :math:`E_i = -\log u_i \sim \operatorname{Exp}(1)`,
:math:`\arg\max_i a_i / E_i` (:math:`= \arg\max_i \log a_i - \log E_i`, a Gumbel perturbation)
is distributed as :math:`a_i / \sum_j a_j`, so one ``max_pool(..., return_indices=True)`` of
the keys picks every window's sample at once, without copying windows. The noise is drawn per
input position, so the samples of two *overlapping* windows are correlated (each window's own
distribution is exact).
"""

from __future__ import annotations

import torch
from torch import Tensor

from poolkit.nn._base import WindowPoolNd, bind_dims
from poolkit.nn._traceable import window_sum
from poolkit.nn._utils import (
    MAX_POOL,
    as_planes,
    compute_dtype,
    plane_chunks,
    resolve_window,
)


def stochastic_indices(
    input: Tensor, kernel_size=None, stride=None, padding=0, generator=None, noise=None, *,
    dims: int,
) -> Tensor:
    r"""The sampled position of each window (flat index in the input plane, like max pooling's).

    ``noise`` (uniform in ``(0, 1)``, the input's shape) makes the draw reproducible across
    engines; otherwise it is drawn with ``generator``. A window without a positive activation
    returns one of its positions (its value is 0 after the ReLU).
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims)
    if noise is not None and (not isinstance(noise, Tensor) or noise.shape != input.shape):
        got = tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
        raise ValueError(f"noise ({got}) must have the input's shape {tuple(input.shape)}")
    dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    tiny = torch.finfo(dtype).tiny
    one_below = 1.0 - torch.finfo(dtype).eps / 2  # the largest float below 1
    planes = as_planes(input.detach())
    if planes.numel() == 0:  # an empty batch: no window, no draw
        index = MAX_POOL[dims](planes.to(dtype), kernel, step, pad, return_indices=True)[1]
        return index.view(*input.shape[:2], *index.shape[2:])
    uniforms = None if noise is None else as_planes(noise)
    indices = []
    with torch.no_grad():  # by groups of planes: the keys never exist at full size
        for part in plane_chunks(planes):
            if uniforms is None:
                u = torch.rand(planes[part].shape, generator=generator, dtype=dtype,
                               device=input.device)
            else:
                u = uniforms[part].to(dtype, copy=True)
            # keys a / E, E = -log u ~ Exp(1): argmax ~ a / sum(a) (the exponential race, the
            # Gumbel-max trick without its logs); a == 0 gives 0, never chosen over a > 0
            exponential = u.clamp_(tiny, one_below).log_().neg_()
            keys = planes[part].to(dtype).clamp_min(0.0).div_(exponential)
            indices.append(MAX_POOL[dims](keys, kernel, step, pad, return_indices=True)[1])
    index = torch.cat(indices)
    return index.view(*input.shape[:2], *index.shape[2:])


def stochastic_pool(
    input: Tensor, kernel_size=None, stride=None, padding=0, training: bool = True,
    generator: torch.Generator | None = None, noise: Tensor | None = None, *, dims: int,
) -> Tensor:
    r"""Stochastic pooling (Zeiler & Fergus 2013) of :math:`a = \max(x, 0)`.

    .. math::
        p_i = \frac{a_i}{\sum_{j \in w} a_j}, \qquad
        y_w^{\text{train}} = a_{l},\ l \sim \operatorname{Categorical}(p), \qquad
        y_w^{\text{eval}} = \sum_{i \in w} p_i a_i = \frac{\sum_{i\in w} a_i^2}{\sum_{i\in w} a_i}

    A window without a positive activation gives 0 in both modes. In training the gradient flows
    to the sampled position only (like max pooling); ``generator`` seeds the draw and ``noise``
    (uniforms of the input's shape, see :func:`stochastic_indices`) fixes it. Padding positions
    are never sampled and count as zeros.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})`,
          :math:`S_{out} = \lfloor (S + 2p - k)/s \rfloor + 1`; global :math:`(N, C, 1, ...)`.

    Example::

        >>> x = torch.tensor([[[[1., 3.], [0., 0.]]]])
        >>> stochastic_pool2d(x, 2, training=False)   # (1 + 9) / (1 + 3)
        tensor([[[[2.5000]]]])
    """
    kernel, step, pad = resolve_window(input, kernel_size, stride, padding, dims)
    if training:
        index = stochastic_indices(input, kernel, step, pad, generator, noise, dims=dims)
        sampled = input.flatten(2).gather(2, index.flatten(2)).view_as(index)
        return sampled.clamp_min(0.0)
    positive = input.to(compute_dtype(input)).clamp_min(0.0)  # a^2 overflows float16 past 256
    whole = kernel_size is None  # a plane sum, not a kernel as large as the input (export)
    total = window_sum(positive, kernel, step, pad, dims, whole)
    squares = window_sum(positive * positive, kernel, step, pad, dims, whole)
    keep = (total > 0) | total.isnan()  # NaN propagates, as through torch's max pool
    out = torch.where(keep, squares / torch.where(keep, total, 1.0), 0.0)
    return out.to(input.dtype)


stochastic_pool1d, stochastic_pool2d, stochastic_pool3d = (
    bind_dims(stochastic_pool, f"stochastic_pool{d}d", d) for d in (1, 2, 3)
)


class _StochasticPoolNd(WindowPoolNd):
    def __init__(
        self, kernel_size=None, stride=None, padding=0, flatten: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__(kernel_size, stride, padding, flatten)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
        self.generator = generator


class StochasticPool1d(_StochasticPoolNd):
    r"""Stochastic pooling (Zeiler & Fergus 2013) over ``(N, C, L)``, see
    :func:`stochastic_pool`: a sample in training, the weighted average in eval.

    .. math:: y^{\text{train}} = a_l,\ l \sim a / \textstyle\sum a;\qquad
        y^{\text{eval}} = \sum a^2 / \sum a

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`; global :math:`(N, C)`.
    """

    dims = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(stochastic_pool1d(input, self.kernel_size, self.stride, self.padding,
                                              self.training, self.generator))


class StochasticPool2d(_StochasticPoolNd):
    r"""Stochastic pooling (Zeiler & Fergus, ICLR 2013), see :func:`stochastic_pool`.

    .. math:: y^{\text{train}}_w = a_l,\ l \sim \frac{a_i}{\sum_{j\in w} a_j};\qquad
        y^{\text{eval}}_w = \frac{\sum_{i\in w} a_i^2}{\sum_{i\in w} a_i},\quad a = \max(x, 0)

    ``generator`` (a ``torch.Generator``) seeds the training-time draws; eval mode is
    deterministic.

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`; global
          :math:`(N, C)`.

    Example::

        >>> pool = StochasticPool2d(2, generator=torch.Generator().manual_seed(0))
        >>> pool(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 4, 4])
    """

    dims = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(stochastic_pool2d(input, self.kernel_size, self.stride, self.padding,
                                              self.training, self.generator))


class StochasticPool3d(_StochasticPoolNd):
    r"""Stochastic pooling (Zeiler & Fergus 2013) over ``(N, C, D, H, W)``.

    .. math:: y^{\text{train}} = a_l,\ l \sim a / \textstyle\sum a;\qquad
        y^{\text{eval}} = \sum a^2 / \sum a

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor) -> Tensor:
        return self._finish(stochastic_pool3d(input, self.kernel_size, self.stride, self.padding,
                                              self.training, self.generator))
