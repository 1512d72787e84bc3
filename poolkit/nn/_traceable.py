r"""Graph-capture forms of the families whose eager path has data-dependent Python control flow.

SoftPool, LIP, LSE, GeM, Lp-of-|x| and mixed pooling run eagerly through hand-written
``autograd.Function``\ s that loop over groups of planes and decide on the values (a float64
retry when a window's weights underflow, ``bool(tensor)`` checks, ``float(p)``). A graph cannot
hold such decisions, so under ``torch.compile``, ``torch.export`` (and so the ONNX exporter) and
``torch.jit.trace`` the families call the functions below instead: the same formulas in plain
differentiable tensor ops, every "if" a ``torch.where``.

Equal to the eager path to float tolerance, with one difference: the graph computes in the
compute dtype only (float32 for float16/bfloat16/float32 input), so a window whose exponential
weights all underflow there (SoftPool/LIP/LSE on a plane whose values span more than ~87)
takes the limit the eager path takes only after its float64 retry also underflows (the value at
the window's largest logit; LSE: ``max - log(|w|)/r``). NaN and infinite inputs give their
windows the eager path's limits (see :func:`poolkit.nn.exponential._nonfinite_limits`), every
window computed, none branched on.

``whole=True`` (the global form) reduces each plane with ``sum``/``amax`` instead of a pooling
kernel, so the exported graph accepts any spatial size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from poolkit.nn._utils import (
    AVG_POOL,
    MAX_POOL,
    compute_dtype,
    mix,
    plane_max,
    sum_pool,
    window_count,
)


def capturing() -> bool:
    """True while ``torch.compile``/``torch.export``/``torch.onnx.export``/``torch.jit`` trace."""
    return bool(
        torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
    )


def _plane_shape(input: Tensor, dims: int) -> tuple:
    return (*input.shape[:2], *([1] * dims))


def window_sum(input: Tensor, kernel, stride, padding, dims: int, whole: bool) -> Tensor:
    """Sum over each window (zero padding); ``whole``: over each plane, ``(N, C, 1, ...)``."""
    if whole:
        return input.flatten(2).sum(-1).reshape(_plane_shape(input, dims))
    return sum_pool(input, kernel, stride, padding, dims)


def window_size(input: Tensor, kernel, stride, padding, dims: int, whole: bool) -> Tensor:
    """Real (non-padding) positions per window, ``(1, 1, *out)`` (a sum of ones, so that an
    exported graph keeps the spatial size symbolic)."""
    if whole:
        return window_sum(torch.ones_like(input[:1, :1]), kernel, stride, padding, dims, True)
    return window_count(input, kernel, stride, padding, dims)


def window_max(input: Tensor, kernel, stride, padding, dims: int, whole: bool) -> Tensor:
    if whole:
        return input.flatten(2).amax(-1).reshape(_plane_shape(input, dims))
    return MAX_POOL[dims](input, kernel, stride, padding)


def window_mean(input: Tensor, kernel, stride, padding, dims: int, whole: bool) -> Tensor:
    """Mean over the real positions of each window (``count_include_pad=False``)."""
    if whole:
        return input.flatten(2).mean(-1).reshape(_plane_shape(input, dims))
    return AVG_POOL[dims](input, kernel, stride, padding, False, False)


def _value_at_max_logit(values, logits, kernel, stride, padding, dims, whole) -> Tensor:
    """Each window's value at its largest logit (the limit of a softmax-weighted average)."""
    if logits is None:  # SoftPool: the logit is the value
        return window_max(values, kernel, stride, padding, dims, whole)
    if whole:
        index = logits.flatten(2).argmax(-1, keepdim=True)
        return values.flatten(2).gather(2, index).reshape(_plane_shape(values, dims))
    _, index = MAX_POOL[dims](logits, kernel, stride, padding, return_indices=True)
    return values.flatten(2).gather(2, index.flatten(2)).view_as(index)


def _nonfinite_windows(values, logits, kernel, stride, padding, dims, whole):
    """Graph form of :func:`poolkit.nn.exponential._nonfinite_limits` (no data-dependent
    branch): finite stand-ins for the inputs, and the windows that hold a NaN (or a NaN or
    ``+inf`` logit), a ``+inf`` value and (LIP only) a ``-inf`` value."""
    nan_v, pos_v = values.isnan(), values.isposinf()
    neg_v = values.isneginf() if logits is not None else torch.zeros_like(nan_v)
    bad_l = None if logits is None else logits.isnan() | logits.isposinf()

    def windows(mask: Tensor) -> Tensor:
        return window_max(mask.to(values.dtype), kernel, stride, padding, dims, whole) > 0

    nan_w = windows(nan_v if bad_l is None else nan_v | bad_l)
    clean_values = torch.where(nan_v | pos_v | neg_v, 0.0, values)
    clean_logits = None if logits is None else torch.where(bad_l, 0.0, logits)
    return clean_values, clean_logits, nan_w, windows(pos_v), windows(neg_v)


def exp_weighted_pool(
    values: Tensor, logits: Tensor | None, kernel, stride, padding, dims: int, whole: bool
) -> Tensor:
    """``sum_w v e^l / sum_w e^l`` (SoftPool when ``logits`` is None, else LIP), see
    :class:`poolkit.nn.exponential._ExpWeightedPool`; NaN and infinite inputs give their
    windows the eager path's limits."""
    dtype = compute_dtype(values)
    v, l = values.to(dtype), None if logits is None else logits.to(dtype)
    v, l, nan_w, pos_w, neg_w = _nonfinite_windows(v, l, kernel, stride, padding, dims, whole)
    # SoftPool: a -inf value (kept) has weight 0 and adds nothing to the numerator
    logit = v if l is None else l
    weights = torch.exp(logit - plane_max(logit, dims))  # in [0, 1]
    den = window_sum(weights, kernel, stride, padding, dims, whole)
    num = window_sum(torch.where(weights > 0, weights * v, 0.0), kernel, stride, padding, dims,
                     whole)
    positive = den > 0
    ratio = num / torch.where(positive, den, torch.ones_like(den))
    fallback = _value_at_max_logit(v, l, kernel, stride, padding, dims, whole)
    out = torch.where(positive, ratio, fallback)
    out = torch.where(pos_w, torch.inf, torch.where(neg_w, -torch.inf, out))
    return torch.where(nan_w | (pos_w & neg_w), torch.nan, out).to(values.dtype)


def lse_pool(input: Tensor, r: float, kernel, stride, padding, dims: int, whole: bool) -> Tensor:
    """``m + log(mean_w e^{r (x - m)}) / r``, see :class:`poolkit.nn.exponential._LSEPool`."""
    x = input.to(compute_dtype(input))
    shift = plane_max(x, dims)
    den = window_sum(torch.exp((x - shift) * r), kernel, stride, padding, dims, whole)
    count = window_size(x, kernel, stride, padding, dims, whole)
    positive = den > 0
    out = torch.log(torch.where(positive, den, torch.ones_like(den)) / count) / r + shift
    fallback = window_max(x, kernel, stride, padding, dims, whole) - torch.log(count) / r
    return torch.where(positive, out, fallback).to(input.dtype)


def power_mean_pool(
    input: Tensor, power: Tensor, mode: str, eps: float, divide: bool, kernel, stride, padding,
    dims: int, whole: bool,
) -> Tensor:
    """``s (sum_w (a/s)^p / K)^(1/p)``, ``a = clamp(x, eps)`` or ``|x|``, ``s`` the plane max of
    ``a`` (see :class:`poolkit.nn.power._PowerMeanPool`); ``power`` broadcasts to the output."""
    x = input.to(power.dtype)
    base = x.clamp_min(eps) if mode == "clamp" else x.abs()
    # the scale comes from the finite values: a NaN or inf decides only its own windows
    flat = base.detach().flatten(2)
    scale = torch.where(torch.isfinite(flat), flat, -torch.inf).amax(-1)
    scale = scale.reshape(_plane_shape(x, dims))
    scale = torch.where(torch.isfinite(scale) & (scale > 0), scale, torch.ones_like(scale))
    total = window_sum((base / scale).pow(power), kernel, stride, padding, dims, whole)
    count = window_size(x, kernel, stride, padding, dims, whole) if divide else 1.0
    keep = (total > 0) | total.isnan()  # NaN propagates, as through torch's max pool
    mean = torch.where(keep, total, torch.ones_like(total)) / count
    out = torch.where(keep, mean.pow(1.0 / power), torch.zeros_like(mean)) * scale
    return out.to(input.dtype)


def mixed_pool(input: Tensor, alpha: Tensor, kernel, stride, padding, dims: int, whole: bool):
    """``alpha * max + (1 - alpha) * mean``, see :class:`poolkit.nn.mixed._MixedPool`."""
    maximum = window_max(input, kernel, stride, padding, dims, whole)
    mean = window_mean(input, kernel, stride, padding, dims, whole)
    return mix(maximum, mean, alpha)
