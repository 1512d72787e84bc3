"""Tensor checks and small helpers shared by the pooling families of :mod:`poolkit.nn`.

The window arguments (``dims``, ``kernel_size``, ``stride``, ``padding``, ``dilation``) are
parsed and validated by :mod:`poolkit.geometry`, the same functions the NumPy engine calls, so
both raise the same messages; what is here needs a tensor.

Every family validates its arguments here so that a bad call raises a ``ValueError`` (or
``TypeError``) that names the argument, the value received and what is allowed, and never an
IndexError or a cryptic kernel error from deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from poolkit.geometry import (  # noqa: F401  (argument checks shared with poolkit.keras)
    check_choice,
    check_dims,
    check_positive,
    check_unit,
    normalize_window,
    pool_output_size,
)

_HALF_TYPES = (torch.float16, torch.bfloat16)


def check_input(input: object, dims: int, name: str = "input") -> Tensor:
    """``input`` must be a floating tensor ``(N, C, *spatial)`` with ``dims`` spatial dims."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    if input.dim() != dims + 2:
        raise ValueError(
            f"{name} must have shape (N, C, *spatial) with {dims} spatial dim(s), i.e. "
            f"{dims + 2} dims, got shape {tuple(input.shape)}"
        )
    if not input.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {input.dtype}")
    return input


def check_fits(input: Tensor, kernel: Sequence[int], padding: Sequence[int], dims: int) -> None:
    """The (padded) input must hold at least one window in every spatial dim."""
    spatial = input.shape[-dims:]
    for d in range(dims):
        if spatial[d] + 2 * padding[d] < kernel[d]:
            raise ValueError(
                f"kernel_size ({kernel[d]}) is larger than the padded input "
                f"({spatial[d]} + 2*{padding[d]}) in dim {d}"
            )


# The primitives every family is composed from, by number of spatial dims.
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}


def global_window(input: Tensor, dims: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple]:
    """``(kernel, stride, padding)`` of one window covering the whole plane."""
    spatial = tuple(input.shape[-dims:])
    return spatial, spatial, (0,) * dims


def compute_dtype(input: Tensor) -> torch.dtype:
    """float16/bfloat16 are computed in float32 (exp and powers overflow there); others as is."""
    return torch.float32 if input.dtype in _HALF_TYPES else input.dtype


def sum_pool(input: Tensor, kernel, stride, padding, dims: int) -> Tensor:
    """Sum over each window (zero padding).

    Small windows: a strided convolution of the ``(P, 1, *S)`` view with a kernel of ones (about
    twice as fast as average pooling on CPU); large ones (global pools): average pooling with
    ``divisor_override=1``.
    """
    if math.prod(kernel) <= 64:
        shape = input.shape
        ones = input.new_ones((1, 1, *kernel))
        out = CONV[dims](input.reshape(-1, 1, *shape[2:]), ones, None, stride, padding)
        return out.view(*shape[:2], *out.shape[2:])
    if dims == 1:  # avg_pool1d has no divisor_override
        return F.avg_pool2d(
            input.unsqueeze(-2), (1, kernel[0]), (1, stride[0]), (0, padding[0]),
            divisor_override=1,
        ).squeeze(-2)
    return AVG_POOL[dims](input, kernel, stride, padding, divisor_override=1)


def sum_pool_transpose(grad: Tensor, like: Tensor, kernel, stride, padding, dims: int) -> Tensor:
    """Adjoint of :func:`sum_pool`: each input position receives the sum of its windows' grads.

    Implemented with the average-pooling backward kernel (a scatter-add, no window copies).
    """
    return avg_pool_transpose(grad, like, kernel, stride, padding, dims, True, 1)


def avg_pool_transpose(
    grad: Tensor, like: Tensor, kernel, stride, padding, dims: int,
    count_include_pad: bool = True, divisor_override: int | None = None,
) -> Tensor:
    """The gradient of ``avg_pool`` (no ceil mode) w.r.t. its input ``like``, for ``grad``."""
    if dims == 1:
        return torch.ops.aten.avg_pool2d_backward(
            grad.unsqueeze(-2), like.unsqueeze(-2), (1, kernel[0]), (1, stride[0]),
            (0, padding[0]), False, count_include_pad, divisor_override,
        ).squeeze(-2)
    backward = {2: torch.ops.aten.avg_pool2d_backward, 3: torch.ops.aten.avg_pool3d_backward}
    return backward[dims](grad, like, kernel, stride, padding, False, count_include_pad,
                          divisor_override)


def window_count(input: Tensor, kernel, stride, padding, dims: int) -> Tensor:
    """Number of real (non-padding) positions in each window, shape ``(1, 1, *out)``.

    Obtained by pooling a tensor of ones (the way Flax and tinygrad get the divisor).
    """
    ones = input.new_ones((1, 1, *input.shape[-dims:]))
    return sum_pool(ones, kernel, stride, padding, dims)


def plane_max(input: Tensor, dims: int) -> Tensor:
    """Maximum of the finite values of each ``(n, c)`` plane, shape ``(N, C, 1, ...)``,
    detached (0 for a plane without finite values).

    An upper bound of every window's maximum: subtracting it before ``exp`` keeps every
    exponent ``<= 0`` so nothing overflows in any dtype.
    """
    flat = input.detach().flatten(2)
    m = torch.where(torch.isfinite(flat), flat, -torch.inf).amax(-1)  # of the finite values
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return m.reshape(*m.shape, *([1] * dims))


# Hand-written backward passes work on groups of (n, c) planes so that their full-size
# temporaries (exp weights, transposed pools) are a fraction of the input, not copies of it.
_CHUNK_BYTES = 2 * 2**20


def as_planes(tensor: Tensor) -> Tensor:
    """``(N, C, *S)`` -> ``(N*C, 1, *S)`` (a view for contiguous input)."""
    return tensor.reshape(-1, 1, *tensor.shape[2:])


def plane_chunks(planes: Tensor, parts: int = 16) -> list[slice]:
    """Slices of the plane dim of ``(P, 1, *S)``: about ``parts`` groups, none under ~2 MiB."""
    total = planes.shape[0]
    plane_bytes = max(1, planes[:1].numel() * planes.element_size())
    size = max(math.ceil(total / parts), _CHUNK_BYTES // plane_bytes, 1)
    return [slice(start, min(start + size, total)) for start in range(0, total, size)]


def pooled_empty(planes: Tensor, kernel, stride, padding, dims: int) -> Tensor:
    """An uninitialised ``(P, 1, *out)`` tensor for the pooled planes (filled chunk by chunk)."""
    out = [
        pool_output_size(planes.shape[2 + d], kernel[d], stride[d], padding[d]).size
        for d in range(dims)
    ]
    return planes.new_empty((planes.shape[0], 1, *out))


def mix(first: Tensor, second: Tensor, weight: Tensor) -> Tensor:
    """``weight * first + (1 - weight) * second``: mixed, gated and tree pooling's blend.

    Written out rather than ``torch.lerp(second, first, weight)``, whose
    ``second + weight * (first - second)`` turns a window of ``+inf`` (both terms infinite)
    into NaN; this form gives ``+inf``, as the NumPy engine does.
    """
    return weight * first + (1 - weight) * second


def safe_ratio_(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` in place, 0 where ``den`` is 0 (and where the ratio overflows)."""
    return num.div_(den).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def resolve_window(
    input: Tensor, kernel_size, stride, padding, dims: int, global_ok: bool = True
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Validate ``input`` and the window arguments of a pooling call; ``(kernel, stride,
    padding)`` as tuples of ``dims`` ints. ``kernel_size=None`` pools each whole plane (the
    global form) unless ``global_ok`` is false."""
    check_dims(dims)
    check_input(input, dims)
    if kernel_size is None:
        if not global_ok:
            raise ValueError("kernel_size is required (this pool has no global form)")
        if stride is not None or padding not in (0, None):
            raise ValueError("stride and padding need kernel_size (kernel_size=None is global)")
        return global_window(input, dims)
    kernel, step, pad, _ = normalize_window(kernel_size, stride, padding, dims=dims)
    check_fits(input, kernel, pad, dims)
    return kernel, step, pad
