"""Expected calibration error and reliability bins (poolkit.train.metrics) against a hand-worked
example, a naive loop over explicit intervals, and scikit-learn's calibration_curve."""

from __future__ import annotations

import numpy as np
import pytest

from poolkit.train.metrics import (
    calibration_metrics,
    expected_calibration_error,
    reliability_bins,
    softmax,
)


def test_hand_worked_example():
    # confidences 0.9 (right), 0.8 (wrong), 0.6 (right), 0.3 (right); 2 bins (0, .5], (.5, 1]
    probabilities = [[0.9, 0.05, 0.03, 0.02], [0.8, 0.1, 0.05, 0.05],
                     [0.2, 0.6, 0.1, 0.1], [0.3, 0.25, 0.25, 0.2]]
    labels = [0, 1, 1, 0]
    bins = reliability_bins(probabilities, labels, num_bins=2)
    assert bins["count"] == [1, 3]
    assert bins["accuracy"] == pytest.approx([1.0, 2 / 3])
    assert bins["confidence"] == pytest.approx([0.3, (0.9 + 0.8 + 0.6) / 3])
    # 1/4 * |1 - 0.3| + 3/4 * |2/3 - 2.3/3| = 0.175 + 0.075
    assert expected_calibration_error(probabilities, labels, num_bins=2) == pytest.approx(0.25)


def test_a_confidence_on_an_edge_falls_in_the_bin_that_ends_there():
    # 0.6 = 3/5 exactly: bin (0.4, 0.6] (index 2), not (0.6, 0.8]
    bins = reliability_bins([[0.6, 0.4], [0.4, 0.6], [1.0, 0.0]], [0, 0, 0], num_bins=5)
    assert bins["count"] == [0, 0, 2, 0, 1]
    assert bins["accuracy"][2] == 0.5 and bins["accuracy"][0] is None


def _naive_ece(probabilities, labels, num_bins):
    """Explicit intervals (lo, hi], one Python loop per bin."""
    total = 0.0
    n = len(labels)
    for b in range(num_bins):
        lo, hi = b / num_bins, (b + 1) / num_bins
        members = [i for i in range(n)
                   if (lo < max(probabilities[i]) <= hi) or (b == 0 and max(probabilities[i]) == 0)]
        if not members:
            continue
        right = sum(int(np.argmax(probabilities[i]) == labels[i]) for i in members)
        accuracy = right / len(members)
        confidence = sum(max(probabilities[i]) for i in members) / len(members)
        total += len(members) / n * abs(accuracy - confidence)
    return total


@pytest.mark.parametrize("num_bins", [1, 2, 10, 15])
@pytest.mark.parametrize("seed", [0, 1])
def test_against_a_naive_loop_and_scikit_learn(num_bins, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(300, 4)) * 2
    labels = rng.integers(0, 4, size=300)
    probabilities = softmax(logits)
    assert expected_calibration_error(probabilities, labels, num_bins) == pytest.approx(
        _naive_ece(probabilities.tolist(), labels.tolist(), num_bins), abs=1e-12)
    from sklearn.calibration import calibration_curve

    correct = probabilities.argmax(axis=1) == labels
    accuracy, confidence = calibration_curve(correct, probabilities.max(axis=1),
                                             n_bins=num_bins, strategy="uniform")
    bins = reliability_bins(probabilities, labels, num_bins)
    assert [a for a in bins["accuracy"] if a is not None] == pytest.approx(accuracy)
    assert [c for c in bins["confidence"] if c is not None] == pytest.approx(confidence)


def test_calibration_metrics_of_logits_and_extremes():
    logits = np.array([[10.0, -10.0], [-10.0, 10.0]])
    perfect = calibration_metrics(logits, [0, 1])
    assert perfect["ece"] == pytest.approx(0.0, abs=1e-8) and perfect["ece_bins"] == 15
    assert calibration_metrics(logits, [1, 0])["ece"] == pytest.approx(1.0, abs=1e-8)
    assert softmax(np.array([[1000.0, 0.0]])).tolist() == [[1.0, 0.0]]  # no overflow


@pytest.mark.parametrize("probabilities, labels, bins, match", [
    ([[0.5, 0.5]], [0], 0, "num_bins"),
    ([[0.5, 0.5]], [0], 2.5, "num_bins"),
    ([[0.5, 0.5]], [0, 1], 2, "probabilities must be"),
    ([[1.5, -0.5]], [0], 2, r"\[0, 1\]"),
])
def test_bad_arguments_name_what_is_wrong(probabilities, labels, bins, match):
    with pytest.raises(ValueError, match=match):
        reliability_bins(probabilities, labels, bins)
