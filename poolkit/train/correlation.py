"""Rank correlation in NumPy with bootstrap confidence intervals, for similarity benchmarks.

Spearman's :math:`\\rho` is Pearson's correlation of the ranks (ties get their average rank):

.. math:: \\rho(x, y) = \\frac{\\sum_i (r_i - \\bar r)(s_i - \\bar s)}
          {\\sqrt{\\sum_i (r_i - \\bar r)^2 \\sum_i (s_i - \\bar s)^2}}, \\qquad
          r = \\mathrm{rank}(x),\\ s = \\mathrm{rank}(y)

The confidence intervals are percentile bootstraps over the *examples* (sentence pairs): resample
the n pairs with replacement B times, recompute :math:`\\rho`, take the 2.5% and 97.5%
quantiles. :func:`paired_bootstrap` compares two systems on the *same* resamples, which cancels the
variation that comes from which pairs happen to be in the test set (Koehn 2004; Dror et al. 2018).
Every resample uses one seeded generator, so the numbers are reproducible.

Hand-checkable: ``x = [1, 2, 3, 4]``, ``y = [10, 30, 20, 40]``: ranks ``[1, 2, 3, 4]`` and
``[1, 3, 2, 4]``, :math:`\\sum d^2 = 2`, :math:`\\rho = 1 - 6 \\cdot 2 / (4 \\cdot 15) = 0.8`.

    >>> round(spearman([1, 2, 3, 4], [10, 30, 20, 40]), 6)
    0.8
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["average_ranks", "bootstrap_spearman", "paired_bootstrap", "pearson", "spearman"]


def _vector(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return array


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _vector(x, "x"), _vector(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x ({x.size}) and y ({y.size}) differ in length")
    if x.size < 2:
        raise ValueError(f"a correlation needs at least 2 values, got {x.size}")
    return x, y


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing their average rank (``scipy.stats.rankdata``).

    Works row by row on a 2-d array without a Python loop: sort, mark where runs of equal values
    start and end, and give each element the mean of its run's first and last position.
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, axis=-1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=-1)
    n = values.shape[-1]
    position = np.broadcast_to(np.arange(n), values.shape)
    starts = np.ones(values.shape, dtype=bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    ends = np.ones(values.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, position, n - 1), -1), -1), -1)
    ranks = np.empty(values.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=-1)
    return ranks


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(-1, keepdims=True)
    y = y - y.mean(-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(-1) * (y * y).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(-1) / denominator, 0.0)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's correlation; 0 when either side is constant."""
    x, y = _pair(x, y)
    return float(_rowwise_pearson(x, y))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); 0 when either side is constant."""
    x, y = _pair(x, y)
    return float(_rowwise_pearson(average_ranks(x), average_ranks(y)))


def _resamples(n: int, samples: int, seed: int) -> np.ndarray:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples ({samples!r}) must be a positive integer")
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))  # (B, n)


def _resampled_spearman(x, y, index: np.ndarray, chunk: int = 200) -> np.ndarray:
    values = []
    for start in range(0, len(index), chunk):  # chunks keep memory at chunk * n floats
        rows = index[start : start + chunk]
        values.append(_rowwise_pearson(average_ranks(x[rows]), average_ranks(y[rows])))
    return np.concatenate(values)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level ({level}) must be between 0 and 1, e.g. 0.95")
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def bootstrap_spearman(
    x: Sequence[float], y: Sequence[float], *, samples: int = 1000, level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Spearman's :math:`\\rho` with a percentile bootstrap interval over the examples.

    Returns ``{"spearman", "ci_low", "ci_high"}`` (correlations, not x100).
    """
    x, y = _pair(x, y)
    values = _resampled_spearman(x, y, _resamples(x.size, samples, seed))
    low, high = _interval(values, level)
    return {"spearman": spearman(x, y), "ci_low": low, "ci_high": high}


def paired_bootstrap(
    predictions: Sequence[float], reference: Sequence[float], targets: Sequence[float], *,
    samples: int = 1000, level: float = 0.95, seed: int = 0,
) -> dict[str, float]:
    """Is ``spearman(predictions, targets)`` above ``spearman(reference, targets)``?

    Both systems are scored on the same B resamples of the examples. Returns ``delta`` (the
    difference on the full set), ``ci_low``/``ci_high`` (the interval of the resampled
    differences) and ``p_value``: two-sided, twice the share of resamples on the far side of 0
    (at least ``1 / B``).
    """
    predictions, targets = _pair(predictions, targets)
    reference = _vector(reference, "reference")
    if reference.shape != targets.shape:
        raise ValueError(f"reference ({reference.size}) and targets ({targets.size}) differ")
    index = _resamples(targets.size, samples, seed)
    deltas = _resampled_spearman(predictions, targets, index) - _resampled_spearman(
        reference, targets, index
    )
    low, high = _interval(deltas, level)
    far_side = min((deltas <= 0).mean(), (deltas >= 0).mean())
    return {
        "delta": spearman(predictions, targets) - spearman(reference, targets),
        "ci_low": low,
        "ci_high": high,
        "p_value": float(min(1.0, max(2 * far_side, 1 / samples))),
    }
