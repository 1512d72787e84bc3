r"""Fractional max pooling (Graham 2014), 1-D to 3-D, seedable, disjoint or overlapping regions.

B. Graham, "Fractional Max-Pooling", arXiv:1412.6071, 2014. The output is smaller than the
input by a non-integer ratio :math:`\alpha = N_{in}/N_{out}`; pooling regions come from an
increasing integer sequence :math:`0 = a_0 < a_1 < \dots < a_{N_{out}} = N_{in}` per dim:

- **pseudo-random**: :math:`a_i = \lfloor \alpha (i + u) \rfloor - \lfloor \alpha u \rfloor`,
  :math:`u \in [0, 1)`;
- **random**: the increments :math:`a_i - a_{i-1} \in \{\lfloor\alpha\rfloor,
  \lceil\alpha\rceil\}` in a random order.

Regions are :math:`[a_{i-1}, a_i - 1]` (**disjoint**, ``overlapping=False``) or
:math:`[a_{i-1}, a_i]` (``overlapping=True``, clipped at the border). With ``kernel_size`` the
function is PyTorch's variant instead (fixed-size windows at pseudo-random starts), called
through :func:`torch.nn.functional.fractional_max_pool2d`/``3d`` (1-D through the 2-D kernel).

All variants take a ``generator`` or explicit ``samples`` (``(N, C, dims)`` in ``[0, 1)``, the
same as PyTorch's ``_random_samples``), so draws are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from poolkit import geometry
from poolkit.geometry import check_dims, normalize_sizes
from poolkit.nn import _traceable
from poolkit.nn._base import PoolModule, bind_dims
from poolkit.nn._utils import check_input


def fractional_output_size(
    input_size: Sequence[int], output_size=None, output_ratio=None
) -> tuple[int, ...]:
    """Output size per dim from ``output_size`` or ``output_ratio``, parsed by
    :func:`poolkit.geometry.fractional_output_size` (as the NumPy engine does: ``output_size``
    wins when both are given, as in PyTorch's functional form; a ratio r gives ``int(S * r)``);
    every output size must be in ``[1, S]``.
    """
    sizes = geometry.fractional_output_size(tuple(input_size), output_size, output_ratio)
    for d in range(len(sizes)):
        if not 1 <= sizes[d] <= input_size[d]:
            raise ValueError(
                f"output size ({sizes[d]}) must be between 1 and the input size "
                f"({input_size[d]}) in dim {d}"
            )
    return sizes


def fractional_sequence(input_size: int, output_size: int, samples: Tensor) -> Tensor:
    r"""Pseudo-random region boundaries :math:`a_0..a_{N_{out}}`: ``(*B, N_out + 1)`` int64.

    .. math:: a_i = \lfloor \alpha (i + u) \rfloor - \lfloor \alpha u \rfloor,\quad
        \alpha = N_{in} / N_{out}

    ``samples`` ``(*B,)`` are the offsets :math:`u \in [0, 1)`. Increments are
    :math:`\lfloor\alpha\rfloor` or :math:`\lceil\alpha\rceil` and :math:`a_{N_{out}} = N_{in}`.

    Example::

        >>> fractional_sequence(5, 3, torch.tensor([0.5]))   # alpha = 5/3
        tensor([[0, 2, 4, 5]])
    """
    alpha = input_size / output_size
    steps = torch.arange(output_size + 1, dtype=torch.float64, device=samples.device)
    u = samples.to(torch.float64).unsqueeze(-1)
    bounds = torch.floor(alpha * (steps + u)) - torch.floor(alpha * u)
    bounds[..., -1] = input_size  # exact in real arithmetic; guards float rounding
    return bounds.long()


def random_fractional_sequence(input_size: int, output_size: int, keys: Tensor) -> Tensor:
    r"""Random region boundaries: increments :math:`\lfloor\alpha\rfloor`/:math:`\lceil\alpha
    \rceil` in a random order, ``(*B, N_out + 1)`` int64.

    ``keys`` ``(*B, N_out)`` (uniforms) order the increments: the
    :math:`N_{in} - N_{out}\lfloor\alpha\rfloor` smallest keys get the larger increment.
    """
    small = input_size // output_size
    large_count = input_size - small * output_size
    ranks = keys.argsort(-1).argsort(-1)
    increments = small + (ranks < large_count).long()
    return F.pad(increments.cumsum(-1), (1, 0))


def _region_argmax(
    input: Tensor, bounds: list[Tensor], overlapping: bool
) -> Tensor:
    """Flat index (in each input plane) of the max of every region, ``(N, C, *out)``.

    Separable: reduce dim by dim, trying each offset within the widest region; earlier
    positions win ties and NaN wins (PyTorch's max-pooling rules).
    """
    dims = len(bounds)
    spatial = input.shape[2:]
    values = input.detach()
    coords: list[Tensor] = []  # argmax coordinate of each reduced dim, shaped like ``values``
    for d in range(dims):
        axis = 2 + d
        starts = bounds[d][..., :-1]  # (N, C, out_d)
        ends = bounds[d][..., 1:] if overlapping else bounds[d][..., 1:] - 1
        ends = ends.clamp_max(spatial[d] - 1)
        # every increment is floor(alpha) or ceil(alpha): a bound known without reading the
        # data (offsets past a region's end repeat its end, which never changes the max); an
        # empty batch needs no special case
        longest = -(-spatial[d] // starts.shape[-1]) + int(overlapping)
        width = min(longest, spatial[d])
        view = [*starts.shape[:2]] + [1] * dims
        view[axis] = starts.shape[-1]
        target = list(values.shape)
        target[axis] = starts.shape[-1]
        best_value = best_index = None
        for offset in range(width):
            index = torch.minimum(starts + offset, ends).view(view).expand(target)
            candidate = values.gather(axis, index)
            if best_value is None:
                best_value, best_index = candidate, index
                continue
            better = (candidate > best_value) | (candidate.isnan() & ~best_value.isnan())
            best_value = torch.where(better, candidate, best_value)
            best_index = torch.where(better, index, best_index)
        coords = [c.gather(axis, best_index) for c in coords] + [best_index]
        values = best_value
    flat = torch.zeros_like(coords[0])
    for d in range(dims):
        flat = flat * spatial[d] + coords[d]
    return flat


def fractional_max_pool(
    input: Tensor, kernel_size=None, output_size=None, output_ratio=None,
    return_indices: bool = False, generator: torch.Generator | None = None,
    samples: Tensor | None = None, overlapping: bool = False, pseudo_random: bool = True, *,
    dims: int,
):
    r"""Fractional max pooling (Graham 2014).

    .. math::
        y_{n,c,i} = \max_{j \in P_i} x_{n,c,j},\quad
        P_i = [a_{i-1}, a_i - 1] \text{ (disjoint) or } [a_{i-1}, a_i] \text{ (overlapping)}

    per dim, with :math:`a` from :func:`fractional_sequence` (``pseudo_random=True``) or
    :func:`random_fractional_sequence`. With ``kernel_size`` it is PyTorch's variant (windows of
    ``kernel_size`` at pseudo-random starts). ``samples`` ``(N, C, dims)`` in ``[0, 1)`` fix the
    pseudo-random offsets; random draws (offsets, or the random order) use ``generator``. Ties
    go to the first position, NaN wins; indices are flat per plane. The gradient flows to the
    selected positions.

    Shape:
        - Input: :math:`(N, C, *S)`; Output: :math:`(N, C, *S_{out})` from ``output_size`` or
          :math:`S_{out} = \lfloor S \cdot r \rfloor` from ``output_ratio``.

    Example::

        >>> x = torch.arange(25.).view(1, 1, 5, 5)
        >>> fractional_max_pool2d(x, output_size=3, samples=torch.full((1, 1, 2), .5))
        tensor([[[[ 6.,  8.,  9.],
                  [16., 18., 19.],
                  [21., 23., 24.]]]])
    """
    check_dims(dims)
    check_input(input, dims)
    sizes = fractional_output_size(input.shape[2:], output_size, output_ratio)
    n, c = input.shape[:2]
    if samples is None:
        samples = torch.rand((n, c, dims), generator=generator, dtype=torch.float64,
                             device=input.device)
    elif not isinstance(samples, Tensor) or tuple(samples.shape) != (n, c, dims):
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        raise ValueError(f"samples ({got}) must have shape (N, C, dims) = {(n, c, dims)}")
    elif not _traceable.capturing() and not bool(((samples >= 0) & (samples < 1)).all()):
        raise ValueError("samples must lie in [0, 1)")
    if kernel_size is not None:
        return _torch_fractional(input, kernel_size, sizes, return_indices, samples, dims)
    if pseudo_random:
        bounds = [
            fractional_sequence(input.shape[2 + d], sizes[d], samples[..., d]) for d in range(dims)
        ]
    else:
        bounds = [
            random_fractional_sequence(
                input.shape[2 + d], sizes[d],
                torch.rand((n, c, sizes[d]), generator=generator, device=input.device),
            )
            for d in range(dims)
        ]
    index = _region_argmax(input, bounds, overlapping)
    output = input.flatten(2).gather(2, index.flatten(2)).view_as(index)
    return (output, index) if return_indices else output


def _torch_fractional(input, kernel_size, sizes, return_indices, samples, dims):
    kernel = normalize_sizes(kernel_size, dims, "kernel_size")
    # PyTorch's rule, checked as the NumPy engine does (the 1-D form runs the 2-D kernel)
    geometry.check_fractional_sizes(tuple(input.shape[2:]), kernel, sizes)
    # PyTorch's 2-D kernel reads the samples as (w, h); the 3-D one as (t, h, w).
    samples = (samples.flip(-1) if dims <= 2 else samples).to(input.dtype)
    if dims == 1:  # through the 2-D kernel on a (N, C, 1, L) view
        samples2 = torch.cat([samples, torch.zeros_like(samples)], -1)
        out = F.fractional_max_pool2d(
            input.unsqueeze(2), (1, kernel[0]), output_size=(1, sizes[0]),
            return_indices=return_indices, _random_samples=samples2,
        )
        if return_indices:
            return out[0].squeeze(2), out[1].squeeze(2)
        return out.squeeze(2)
    function = F.fractional_max_pool2d if dims == 2 else F.fractional_max_pool3d
    return function(input, kernel, output_size=sizes, return_indices=return_indices,
                    _random_samples=samples)


fractional_max_pool1d, fractional_max_pool2d, fractional_max_pool3d = (
    bind_dims(fractional_max_pool, f"fractional_max_pool{d}d", d) for d in (1, 2, 3)
)


class _FractionalMaxPoolNd(PoolModule):
    def __init__(
        self, kernel_size=None, output_size=None, output_ratio=None,
        return_indices: bool = False, overlapping: bool = False, pseudo_random: bool = True,
        generator: torch.Generator | None = None, deterministic_eval: bool = True,
    ):
        super().__init__()
        if (output_size is None) == (output_ratio is None):
            raise ValueError(
                f"exactly one of output_size ({output_size!r}) and output_ratio "
                f"({output_ratio!r}) must be given"
            )
        self.kernel_size = None if kernel_size is None else normalize_sizes(
            kernel_size, self.dims, "kernel_size"
        )
        self.output_size, self.output_ratio = output_size, output_ratio
        self.return_indices = bool(return_indices)
        self.overlapping, self.pseudo_random = bool(overlapping), bool(pseudo_random)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
        self.generator = generator
        self.deterministic_eval = bool(deterministic_eval)

    def _samples(self, input: Tensor) -> Tensor | None:
        """Fixed mid-point samples in eval (a deterministic pooling grid), else random."""
        if self.training or not self.deterministic_eval:
            return None
        return torch.full((*input.shape[:2], self.dims), 0.5, dtype=torch.float64,
                          device=input.device)

    def _pool(self, input: Tensor, function):
        unbatched = isinstance(input, Tensor) and input.dim() == self.dims + 1  # (C, *S)
        if unbatched:
            input = input.unsqueeze(0)
        output = function(
            input, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
            self.generator, self._samples(input), self.overlapping,
            self.pseudo_random or not self.training,
        )
        if not unbatched:
            return output
        return tuple(t.squeeze(0) for t in output) if self.return_indices else output.squeeze(0)

    def extra_repr(self) -> str:
        size = f"output_size={self.output_size}" if self.output_size is not None else \
            f"output_ratio={self.output_ratio}"
        variant = f"kernel_size={self.kernel_size}" if self.kernel_size is not None else \
            f"overlapping={self.overlapping}, pseudo_random={self.pseudo_random}"
        return f"{size}, {variant}"


class FractionalMaxPool1d(_FractionalMaxPoolNd):
    r"""Fractional max pooling (Graham 2014) over ``(N, C, L)``, see
    :func:`fractional_max_pool`.

    .. math:: y_i = \max_{j \in P_i} x_j

    Shape:
        - Input: :math:`(N, C, L)`; Output: :math:`(N, C, L_{out})`.
    """

    dims = 1

    def forward(self, input: Tensor):
        return self._pool(input, fractional_max_pool1d)


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    r"""Fractional max pooling (Graham 2014): disjoint/overlapping regions or PyTorch's windows.

    .. math:: y_{i,j} = \max_{(h, w) \in P_i \times Q_j} x_{h,w}

    ``kernel_size=None`` (default) uses Graham's regions (``overlapping``, ``pseudo_random``);
    with ``kernel_size`` it is PyTorch's ``FractionalMaxPool2d``. Training draws new regions
    each call (``generator`` seeds them); eval uses the fixed mid-point grid (samples 0.5,
    pseudo-random) unless ``deterministic_eval=False``.

    Shape:
        - Input: :math:`(N, C, H, W)`; Output: :math:`(N, C, H_{out}, W_{out})`.

    Example::

        >>> FractionalMaxPool2d(output_ratio=0.7)(torch.randn(1, 3, 10, 10)).shape
        torch.Size([1, 3, 7, 7])
    """

    dims = 2

    def forward(self, input: Tensor):
        return self._pool(input, fractional_max_pool2d)


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    r"""Fractional max pooling (Graham 2014) over ``(N, C, D, H, W)``, see
    :class:`FractionalMaxPool2d`.

    .. math:: y_v = \max_{j \in P_v} x_j

    Shape:
        - Input: :math:`(N, C, D, H, W)`; Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`.
    """

    dims = 3

    def forward(self, input: Tensor):
        return self._pool(input, fractional_max_pool3d)
