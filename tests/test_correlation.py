"""Spearman, average ranks and the bootstraps against SciPy and naive loops."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolkit.train.correlation import (
    average_ranks,
    bootstrap_spearman,
    paired_bootstrap,
    pearson,
    spearman,
)

stats = pytest.importorskip("scipy.stats")


def test_hand_worked_values():
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)  # 1 - 6*2/(4*15)
    assert average_ranks(np.array([5.0, 1.0, 5.0, 3.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0  # constant side: 0, not NaN
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)


@given(
    values=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=2, max_size=40)
)
def test_spearman_matches_scipy_with_ties(values):
    x, y = np.array(values, dtype=float).T
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy warns about a constant side
        expected = stats.spearmanr(x, y).statistic
    got = spearman(x, y)
    if np.isnan(expected):  # SciPy: NaN for a constant side
        assert got == 0.0
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_average_ranks_rowwise_matches_scipy():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 6, size=(7, 30)).astype(float)
    np.testing.assert_array_equal(average_ranks(rows), stats.rankdata(rows, axis=1))


def test_bootstrap_matches_a_naive_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    got = bootstrap_spearman(x, y, samples=200, seed=7)
    index = np.random.default_rng(7).integers(0, 50, size=(200, 50))
    naive = [stats.spearmanr(x[rows], y[rows]).statistic for rows in index]
    low, high = np.quantile(naive, [0.025, 0.975])
    assert got["ci_low"] == pytest.approx(low) and got["ci_high"] == pytest.approx(high)
    assert got["ci_low"] < got["spearman"] < got["ci_high"]
    assert bootstrap_spearman(x, y, samples=200, seed=7) == got  # seeded: reproducible


def test_paired_bootstrap_against_naive_loop_and_edge_cases():
    rng = np.random.default_rng(2)
    targets = rng.normal(size=80)
    good = targets + 0.3 * rng.normal(size=80)
    bad = targets + 1.5 * rng.normal(size=80)
    result = paired_bootstrap(good, bad, targets, samples=300, seed=3)
    index = np.random.default_rng(3).integers(0, 80, size=(300, 80))
    rho = stats.spearmanr
    deltas = [rho(good[r], targets[r]).statistic - rho(bad[r], targets[r]).statistic for r in index]
    assert result["ci_low"] == pytest.approx(np.quantile(deltas, 0.025))
    assert result["delta"] == pytest.approx(spearman(good, targets) - spearman(bad, targets))
    assert result["ci_low"] > 0 and result["p_value"] == pytest.approx(1 / 300)
    same = paired_bootstrap(good, good, targets, samples=100)
    assert (same["delta"], same["ci_low"], same["ci_high"], same["p_value"]) == (0, 0, 0, 1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: spearman([1.0], [2.0]), "at least 2"),
        (lambda: spearman([1, 2], [1, 2, 3]), "differ in length"),
        (lambda: spearman([1, float("nan")], [1, 2]), "NaN"),
        (lambda: spearman([[1, 2]], [[1, 2]]), "1-d"),
        (lambda: bootstrap_spearman([1, 2, 3], [1, 2, 3], samples=0), "samples"),
        (lambda: bootstrap_spearman([1, 2, 3], [1, 2, 3], level=95), "level"),
        (lambda: paired_bootstrap([1, 2], [1], [1, 2]), "reference"),
    ],
)
def test_invalid_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
