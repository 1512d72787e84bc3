r"""The pooling families PyTorch lacks, in NumPy: forward and backward, matching ``poolkit.nn``.

Stochastic, mixed, SoftPool, GeM, LSE, Lp of ``|x|``, k-max and spatial pyramid pooling, each
``f{1,2,3}d(input, ...)`` with ``f{1,2,3}d_backward(grad_output, input, *same arguments)``
returning the gradient with respect to ``input``. They are compositions of this engine's own
pooling ops (:mod:`poolkit.numpy.pooling`, :mod:`poolkit.numpy.adaptive`, which reduce on the
windowing primitive :mod:`poolkit.numpy.windows`): a window's weighted sum is a sum pool
(``avg_pool * |kernel|`` with ``count_include_pad=True``), its transpose the average-pooling
backward. Learned parameters (GeM's ``p``, mixed's :math:`\alpha`) are given as numbers.

Windowed calls take ``kernel_size``/``stride``/``padding`` (padding positions take no part);
``kernel_size=None`` pools each whole plane to ``(N, C, 1, ...)``. Computation is in float64;
the result has the input's dtype. Formulas are those of the matching ``poolkit.nn`` functions
(:func:`poolkit.nn.functional.soft_pool2d` etc.).

Example::

    >>> import numpy as np
    >>> from poolkit.numpy import families as fam
    >>> x = np.array([[[[1.0, 3.0], [0.0, 0.0]]]])
    >>> fam.stochastic_pool2d(x, 2, training=False)   # (1 + 9) / (1 + 3)
    array([[[[2.5]]]])
    >>> fam.mixed_pool2d(x, 2, alpha=0.5)             # (3 + 1) / 2
    array([[[[2.]]]])
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from poolkit.geometry import check_count, normalize_tuple, pyramid_levels
from poolkit.numpy import adaptive, pooling

_AVG = {1: pooling.avg_pool1d, 2: pooling.avg_pool2d, 3: pooling.avg_pool3d}
_AVG_BACKWARD = {
    1: pooling.avg_pool1d_backward, 2: pooling.avg_pool2d_backward,
    3: pooling.avg_pool3d_backward,
}
_MAX = {1: pooling.max_pool1d, 2: pooling.max_pool2d, 3: pooling.max_pool3d}
_MAX_BACKWARD = {
    1: pooling.max_pool1d_backward, 2: pooling.max_pool2d_backward,
    3: pooling.max_pool3d_backward,
}
_ADAPTIVE = {
    "max": {1: adaptive.adaptive_max_pool1d, 2: adaptive.adaptive_max_pool2d,
            3: adaptive.adaptive_max_pool3d},
    "avg": {1: adaptive.adaptive_avg_pool1d, 2: adaptive.adaptive_avg_pool2d,
            3: adaptive.adaptive_avg_pool3d},
}
_ADAPTIVE_BACKWARD = {
    "max": {1: adaptive.adaptive_max_pool1d_backward, 2: adaptive.adaptive_max_pool2d_backward,
            3: adaptive.adaptive_max_pool3d_backward},
    "avg": {1: adaptive.adaptive_avg_pool1d_backward, 2: adaptive.adaptive_avg_pool2d_backward,
            3: adaptive.adaptive_avg_pool3d_backward},
}


# --- shared helpers ---------------------------------------------------------------------------


def _array(input, dims: int, name: str = "input") -> np.ndarray:
    x = np.asarray(input)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    if x.ndim not in (dims + 1, dims + 2):
        raise ValueError(
            f"{name} must have shape (N, C, *spatial) or (C, *spatial) with {dims} spatial "
            f"dim(s), got shape {x.shape}"
        )
    return x


class _Window:
    """A call's window: sum/mean pools and their transposes through the engine's avg pool."""

    def __init__(self, x: np.ndarray, kernel_size, stride, padding, dims: int):
        self.dims = dims
        if kernel_size is None:
            if stride is not None or padding not in (0, None):
                raise ValueError(
                    f"stride ({stride!r}) and padding ({padding!r}) need kernel_size; "
                    "kernel_size=None pools each whole plane"
                )
            self.kernel = tuple(x.shape[-dims:])
            self.stride, self.padding = self.kernel, (0,) * dims
        else:
            self.kernel = normalize_tuple(kernel_size, dims, "kernel_size")
            self.stride = self.kernel if stride is None else normalize_tuple(stride, dims, "stride")
            self.padding = normalize_tuple(padding, dims, "padding")
        self.volume = math.prod(self.kernel)
        self.args = (self.kernel, self.stride, self.padding, False)

    def sum(self, x: np.ndarray) -> np.ndarray:
        """Sum over each window (padding contributes nothing)."""
        return _AVG[self.dims](x, *self.args, True) * self.volume

    def sum_transpose(self, g: np.ndarray, like: np.ndarray) -> np.ndarray:
        return _AVG_BACKWARD[self.dims](g * self.volume, like, *self.args, True)

    def mean(self, x: np.ndarray) -> np.ndarray:
        """Mean over each window's real (non-padding) positions."""
        return _AVG[self.dims](x, *self.args, False)

    def mean_transpose(self, g: np.ndarray, like: np.ndarray) -> np.ndarray:
        return _AVG_BACKWARD[self.dims](g, like, *self.args, False)

    def max(self, x: np.ndarray, return_indices: bool = False):
        kernel, stride, padding, _ = self.args
        return _MAX[self.dims](x, kernel, stride, padding, 1, False, return_indices)

    def max_transpose(self, g: np.ndarray, like: np.ndarray) -> np.ndarray:
        kernel, stride, padding, _ = self.args
        return _MAX_BACKWARD[self.dims](g, like, kernel, stride, padding)


def _plane_max(x: np.ndarray, dims: int) -> np.ndarray:
    """Max of each plane (kept dims), 0 where it is not finite: the exp shift."""
    axes = tuple(range(x.ndim - dims, x.ndim))
    m = np.max(x, axis=axes, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0)


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} ({value!r}) must be a finite number > 0")
    return float(value)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den != 0``, else 0."""
    ok = den != 0
    with np.errstate(invalid="ignore"):  # inf / inf: a window of infinities, NaN on purpose
        return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def _bind(nd_function, name: str, dims: int):
    def function(*args, **kwargs):
        return nd_function(*args, dims=dims, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"{dims}-D form of :func:`{nd_function.__name__}`.\n\n" + (
        nd_function.__doc__ or ""
    )
    return function


# --- SoftPool ---------------------------------------------------------------------------------


def soft_pool(input, kernel_size=None, stride=None, padding=0, *, dims: int) -> np.ndarray:
    r"""SoftPool (Stergiou et al. 2021): :math:`y_w = \sum_w x e^{x} / \sum_w e^{x}`.

    Exponent shifted by the plane max; a window whose weights all underflow gives its max.
    As in ``poolkit.nn``: a window holding NaN gives NaN, one holding ``+inf`` gives ``+inf``,
    and a ``-inf`` value has weight 0 (a window of only ``-inf`` gives ``-inf``).
    """
    x = _array(input, dims)
    w = _Window(x, kernel_size, stride, padding, dims)
    x64 = x.astype(np.float64)
    nan, pos = np.isnan(x64), np.isposinf(x64)
    clean = np.where(nan | pos, 0.0, x64)  # their windows are given their limits below
    weights = np.exp(clean - _plane_max(clean, dims))
    den = w.sum(weights)
    out = np.where(den > 0, _safe_div(w.sum(_weighted(weights, clean)), den), w.max(clean))
    if pos.any():  # +inf wins its window (as in poolkit.nn)
        out = np.where(w.max(pos.astype(np.float64)) > 0, np.inf, out)
    if nan.any():  # a NaN decides its window, as through torch's max pool
        out = np.where(w.max(nan.astype(np.float64)) > 0, np.nan, out)
    return out.astype(x.dtype)


def _weighted(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``weights * x``, 0 where the weight is 0: a ``-inf`` value (weight ``e^-inf``) adds
    nothing, the limit of ``x e^x`` (``0 * -inf`` would be NaN)."""
    with np.errstate(invalid="ignore"):
        return np.where(weights > 0, weights * x, 0.0)


def soft_pool_backward(
    grad_output, input, kernel_size=None, stride=None, padding=0, *, dims: int
) -> np.ndarray:
    r""":math:`\nabla x = e \odot ((1 + x) \odot T(g/S) - T(g\,y/S))`, ``T`` the sum pool's
    transpose, :math:`S` the window weight sums."""
    x = _array(input, dims)
    w = _Window(x, kernel_size, stride, padding, dims)
    x64, g = x.astype(np.float64), np.asarray(grad_output, dtype=np.float64)
    weights = np.exp(x64 - _plane_max(x64, dims))
    den = w.sum(weights)
    out = _safe_div(w.sum(_weighted(weights, x64)), den)
    g_over_s = _safe_div(g, den)
    a = w.sum_transpose(g_over_s, x64)
    b = w.sum_transpose(g_over_s * out, x64)
    grad = _weighted(weights, (1.0 + x64) * a - b)  # a -inf value gets no gradient
    underflow = den == 0  # those windows took their max: route their gradient to the winner
    if underflow.any():
        grad += w.max_transpose(np.where(underflow, g, 0.0), x64)
    return grad.astype(x.dtype)


# --- LSE --------------------------------------------------------------------------------------


def lse_pool(input, kernel_size=None, stride=None, padding=0, r: float = 1.0, *, dims: int):
    r"""Log-sum-exp pooling: :math:`y_w = \frac1r \log \frac{1}{|w|}\sum_w e^{r x}`."""
    x = _array(input, dims)
    r = _positive(r, "r")
    w = _Window(x, kernel_size, stride, padding, dims)
    x64 = x.astype(np.float64)
    shift = _plane_max(x64, dims)
    mean = w.mean(np.exp(r * (x64 - shift)))
    with np.errstate(divide="ignore"):
        out = shift + np.log(mean) / r
    if (mean == 0).any():  # every weight of a window underflowed: max - log(|w|)/r
        count = w.sum(np.ones_like(x64))
        out = np.where(mean > 0, out, w.max(x64) - np.log(count) / r)
    return out.astype(x.dtype)


def lse_pool_backward(
    grad_output, input, kernel_size=None, stride=None, padding=0, r: float = 1.0, *, dims: int
):
    r""":math:`\nabla x = e^{r(x - m)} \odot \bar T(g / M)`, :math:`M` the window mean of
    :math:`e^{r(x-m)}`, :math:`\bar T` the mean pool's transpose."""
    x = _array(input, dims)
    r = _positive(r, "r")
    w = _Window(x, kernel_size, stride, padding, dims)
    x64, g = x.astype(np.float64), np.asarray(grad_output, dtype=np.float64)
    weights = np.exp(r * (x64 - _plane_max(x64, dims)))
    mean = w.mean(weights)
    grad = weights * w.mean_transpose(_safe_div(g, mean), x64)
    if (mean == 0).any():
        grad += w.max_transpose(np.where(mean == 0, g, 0.0), x64)
    return grad.astype(x.dtype)


# --- GeM and Lp of |x| ------------------------------------------------------------------------


def gem_pool(
    input, kernel_size=None, stride=None, padding=0, p: float = 3.0, eps: float = 1e-6, *,
    dims: int,
):
    r"""GeM (Radenović et al. 2018):
    :math:`y_w = (\frac{1}{|w|}\sum_w \max(x,\epsilon)^p)^{1/p}`."""
    x = _array(input, dims)
    p, eps = _positive(p, "p"), _positive(eps, "eps")
    w = _Window(x, kernel_size, stride, padding, dims)
    base = np.maximum(x.astype(np.float64), eps)
    return (w.mean(base**p) ** (1.0 / p)).astype(x.dtype)


def gem_pool_backward(
    grad_output, input, kernel_size=None, stride=None, padding=0, p: float = 3.0,
    eps: float = 1e-6, *, dims: int,
):
    r""":math:`\nabla x = [x > \epsilon]\, c^{p-1} \odot \bar T(g\,y / M)`, :math:`M` the window
    mean of :math:`c^p`, :math:`c = \max(x, \epsilon)`."""
    x = _array(input, dims)
    p, eps = _positive(p, "p"), _positive(eps, "eps")
    w = _Window(x, kernel_size, stride, padding, dims)
    x64, g = x.astype(np.float64), np.asarray(grad_output, dtype=np.float64)
    base = np.maximum(x64, eps)
    mean = w.mean(base**p)
    out = mean ** (1.0 / p)
    grad = (x64 > eps) * base ** (p - 1) * w.mean_transpose(_safe_div(g * out, mean), x64)
    return grad.astype(x.dtype)


def lp_abs_pool(input, norm_type: float, kernel_size=None, stride=None, padding=0, *, dims: int):
    r"""Lp pooling of magnitudes: :math:`y_w = (\sum_w |x|^p)^{1/p}` (safe for signed input)."""
    x = _array(input, dims)
    p = _positive(norm_type, "norm_type")
    w = _Window(x, kernel_size, stride, padding, dims)
    return (w.sum(np.abs(x.astype(np.float64)) ** p) ** (1.0 / p)).astype(x.dtype)


def lp_abs_pool_backward(
    grad_output, input, norm_type: float, kernel_size=None, stride=None, padding=0, *, dims: int
):
    r""":math:`\nabla x = \operatorname{sign}(x) |x|^{p-1} \odot T(g\,y / S)`, 0 where
    :math:`x = 0` or the window sum :math:`S` is 0."""
    x = _array(input, dims)
    p = _positive(norm_type, "norm_type")
    w = _Window(x, kernel_size, stride, padding, dims)
    x64, g = x.astype(np.float64), np.asarray(grad_output, dtype=np.float64)
    magnitude = np.abs(x64)
    total = w.sum(magnitude**p)
    out = total ** (1.0 / p)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(magnitude > 0, magnitude ** (p - 1), 0.0) * np.sign(x64)
    return (slope * w.sum_transpose(_safe_div(g * out, total), x64)).astype(x.dtype)


# --- stochastic -------------------------------------------------------------------------------


def _stochastic_noise(x: np.ndarray, noise, generator) -> np.ndarray:
    if noise is None:
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator, got {generator!r}")
        rng = generator if generator is not None else np.random.default_rng()
        return rng.random(x.shape)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.shape != x.shape:
        raise ValueError(f"noise {noise.shape} must have the input's shape {x.shape}")
    return noise


def stochastic_indices(
    input, kernel_size=None, stride=None, padding=0, noise=None, generator=None, *, dims: int
) -> np.ndarray:
    r"""Sampled position per window (flat index per plane), by the Gumbel-max trick in ratio
    form: :math:`\arg\max_i a_i / (-\log u_i)`, :math:`a = \max(x, 0)`, ``u`` = ``noise``."""
    x = _array(input, dims)
    w = _Window(x, kernel_size, stride, padding, dims)
    finfo = np.finfo(np.float64)
    u = np.clip(_stochastic_noise(x, noise, generator), finfo.tiny, 1.0 - finfo.eps / 2)
    keys = np.maximum(x.astype(np.float64), 0.0) / -np.log(u)
    return w.max(keys, return_indices=True)[1]


def _take(x: np.ndarray, index: np.ndarray, dims: int) -> np.ndarray:
    flat = x.reshape(*x.shape[: x.ndim - dims], -1)
    picked = np.take_along_axis(flat, index.reshape(*index.shape[: index.ndim - dims], -1), -1)
    return picked.reshape(index.shape)


def stochastic_pool(
    input, kernel_size=None, stride=None, padding=0, training: bool = True, noise=None,
    generator=None, *, dims: int,
):
    r"""Stochastic pooling (Zeiler & Fergus 2013) of :math:`a = \max(x, 0)`: in training the
    activation sampled with :math:`p_i = a_i / \sum_w a` (``noise`` uniforms of the input's shape,
    or drawn with a ``numpy.random.Generator``); in eval :math:`\sum_w a^2 / \sum_w a`."""
    x = _array(input, dims)
    if training:
        index = stochastic_indices(x, kernel_size, stride, padding, noise, generator, dims=dims)
        return np.maximum(_take(x, index, dims), 0).astype(x.dtype)
    w = _Window(x, kernel_size, stride, padding, dims)
    a = np.maximum(x.astype(np.float64), 0.0)
    return _safe_div(w.sum(a * a), w.sum(a)).astype(x.dtype)


def stochastic_pool_backward(
    grad_output, input, kernel_size=None, stride=None, padding=0, training: bool = True,
    noise=None, generator=None, *, dims: int,
):
    r"""Training: the gradient goes to each window's sampled position (where it is positive);
    needs the forward's ``noise``. Eval: :math:`\nabla a = 2a \odot T(g/S_1) - T(g\,y/S_1)`."""
    x = _array(input, dims)
    g = np.asarray(grad_output, dtype=np.float64)
    w = _Window(x, kernel_size, stride, padding, dims)
    x64 = x.astype(np.float64)
    if training:
        if noise is None:
            raise ValueError(
                "noise is required for the training-mode backward (the forward's draw)"
            )
        index = stochastic_indices(x, kernel_size, stride, padding, noise, dims=dims)
        planes = math.prod(x.shape[: x.ndim - dims])
        contributions = np.where(_take(x64, index, dims) > 0, g, 0.0).reshape(planes, -1)
        grad = np.zeros((planes, math.prod(x.shape[x.ndim - dims:])))
        # overlapping windows may pick the same position: accumulate
        np.add.at(grad, (np.arange(planes)[:, None], index.reshape(planes, -1)), contributions)
        return grad.reshape(x.shape).astype(x.dtype)
    a = np.maximum(x64, 0.0)
    s1 = w.sum(a)
    out = _safe_div(w.sum(a * a), s1)
    g_over_s = _safe_div(g, s1)
    grad = 2 * a * w.sum_transpose(g_over_s, x64) - w.sum_transpose(g_over_s * out, x64)
    return (grad * (x64 > 0)).astype(x.dtype)


# --- mixed ------------------------------------------------------------------------------------


def _alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha ({alpha!r}) must be a number in [0, 1]")
    return float(alpha)


def mixed_pool(input, kernel_size=None, stride=None, padding=0, alpha: float = 0.5, *, dims: int):
    r"""Mixed pooling (Yu et al. 2014):
    :math:`y = \alpha \max_w x + (1-\alpha) \operatorname{mean}_w x` (padding excluded)."""
    x = _array(input, dims)
    alpha = _alpha(alpha)
    w = _Window(x, kernel_size, stride, padding, dims)
    x64 = x.astype(np.float64)
    return (alpha * w.max(x64) + (1 - alpha) * w.mean(x64)).astype(x.dtype)


def mixed_pool_backward(
    grad_output, input, kernel_size=None, stride=None, padding=0, alpha: float = 0.5, *,
    dims: int,
):
    r""":math:`\nabla x = \alpha \max^\top(g) + (1 - \alpha) \bar T(g)` (first maximum wins)."""
    x = _array(input, dims)
    alpha = _alpha(alpha)
    w = _Window(x, kernel_size, stride, padding, dims)
    x64, g = x.astype(np.float64), np.asarray(grad_output, dtype=np.float64)
    grad = alpha * w.max_transpose(g, x64) + (1 - alpha) * w.mean_transpose(g, x64)
    return grad.astype(x.dtype)


# --- k-max ------------------------------------------------------------------------------------


def _kmax_positions(x: np.ndarray, k: int) -> np.ndarray:
    # torch's descending sort: NaN above everything, ties to the earlier position (stable)
    order = np.lexsort((-x, ~np.isnan(x)), axis=-1)[..., :k]
    return np.sort(order, axis=-1)


def kmax_pool1d(input, k: int) -> np.ndarray:
    r"""k-max pooling over the last axis (Kalchbrenner et al. 2014), original order kept; zero
    padded at the end when the axis is shorter than ``k``."""
    x = _array(input, 1)
    k = check_count(k, "k")
    picked = np.take_along_axis(x, _kmax_positions(x, k), -1)
    if x.shape[-1] < k:
        picked = np.concatenate([picked, np.zeros((*x.shape[:-1], k - x.shape[-1]), x.dtype)], -1)
    return picked


def kmax_pool1d_backward(grad_output, input, k: int) -> np.ndarray:
    """Each selected position receives its output's gradient."""
    x = _array(input, 1)
    k = check_count(k, "k")
    positions = _kmax_positions(x, k)
    g = np.asarray(grad_output)[..., : positions.shape[-1]]
    grad = np.zeros_like(x)
    np.put_along_axis(grad, positions, g, -1)
    return grad


# --- spatial pyramid --------------------------------------------------------------------------


def _mode(mode) -> str:
    if mode not in ("max", "avg"):
        raise ValueError(f"mode ({mode!r}) must be one of ('max', 'avg')")
    return mode


def spatial_pyramid_pool(input, levels=(1, 2, 4), mode: str = "max", *, dims: int):
    r"""Spatial pyramid pooling (He et al. 2014): adaptive ``mode`` pooling to :math:`l^{d}`
    bins per level, flattened and concatenated: ``(N, C, sum_l l^d)``."""
    x = _array(input, dims)
    levels, mode = pyramid_levels(levels), _mode(mode)
    parts = [
        _ADAPTIVE[mode][dims](x, level).reshape(*x.shape[: x.ndim - dims], level**dims)
        for level in levels
    ]
    return np.concatenate(parts, axis=-1)


def spatial_pyramid_pool_backward(
    grad_output, input, levels=(1, 2, 4), mode: str = "max", *, dims: int
):
    """Sum over levels of the adaptive pools' backward on each level's slice of the gradient."""
    x = _array(input, dims)
    levels, mode = pyramid_levels(levels), _mode(mode)
    g = np.asarray(grad_output, dtype=np.float64)
    grad = np.zeros(x.shape, dtype=np.float64)
    start = 0
    for level in levels:
        bins = level**dims
        part = g[..., start:start + bins].reshape(*x.shape[: x.ndim - dims], *([level] * dims))
        grad += _ADAPTIVE_BACKWARD[mode][dims](part, x.astype(np.float64), level)
        start += bins
    return grad.astype(x.dtype)


# --- the 1d/2d/3d names -----------------------------------------------------------------------

_FAMILIES = {
    "soft_pool": (soft_pool, soft_pool_backward),
    "lse_pool": (lse_pool, lse_pool_backward),
    "gem_pool": (gem_pool, gem_pool_backward),
    "lp_abs_pool": (lp_abs_pool, lp_abs_pool_backward),
    "stochastic_pool": (stochastic_pool, stochastic_pool_backward),
    "mixed_pool": (mixed_pool, mixed_pool_backward),
    "spatial_pyramid_pool": (spatial_pyramid_pool, spatial_pyramid_pool_backward),
}

__all__ = ["kmax_pool1d", "kmax_pool1d_backward"]
for _stem, (_forward, _backward) in _FAMILIES.items():
    for _d in (1, 2, 3):
        globals()[f"{_stem}{_d}d"] = _bind(_forward, f"{_stem}{_d}d", _d)
        globals()[f"{_stem}{_d}d_backward"] = _bind(_backward, f"{_stem}{_d}d_backward", _d)
        __all__ += [f"{_stem}{_d}d", f"{_stem}{_d}d_backward"]
