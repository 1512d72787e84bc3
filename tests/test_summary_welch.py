"""Welch's test of ``compare``'s verdicts: SciPy's ``ttest_ind(equal_var=False)`` where it is
installed, the hand-written statistic with a quantile table where it is not."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from poolkit.experiments.summary import welch_significant

scipy_stats = pytest.importorskip("scipy.stats")


def _samples(seed: int):
    rng = np.random.default_rng(seed)
    n_a, n_b = rng.integers(2, 6, size=2)
    best = rng.normal(0.85, rng.uniform(0.001, 0.02), n_a)
    other = rng.normal(0.85 - rng.uniform(0, 0.03), rng.uniform(0.001, 0.02), n_b)
    return list(best), list(other)


@pytest.mark.parametrize("seed", range(40))
def test_verdict_is_scipys_welch_test(seed):
    best, other = _samples(seed)
    result = scipy_stats.ttest_ind(best, other, equal_var=False)
    expected = bool(np.mean(best) > np.mean(other) and result.pvalue < 0.05)
    assert welch_significant(best, other) == expected


@pytest.mark.parametrize("seed", range(40))
def test_without_scipy_the_table_agrees_or_is_more_cautious(seed, monkeypatch):
    best, other = _samples(seed)
    with_scipy = welch_significant(best, other)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import fails
    without = welch_significant(best, other)
    assert without <= with_scipy  # never significant where the exact test is not
    t = scipy_stats.ttest_ind(best, other, equal_var=False)
    if abs(t.pvalue - 0.05) > 0.005:  # away from the boundary the two agree
        assert without == with_scipy
