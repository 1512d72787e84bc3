"""Classification metrics in NumPy: confusion matrix, accuracy, per-class and macro F1.

With :math:`C` the confusion matrix (rows true class, columns predicted),

.. math::

    \\mathrm{accuracy} = \\frac{\\sum_k C_{kk}}{\\sum_{ij} C_{ij}}, \\qquad
    F_1^{(k)} = \\frac{2 C_{kk}}{\\sum_j C_{kj} + \\sum_i C_{ik}}, \\qquad
    \\text{macro-}F_1 = \\frac{1}{|K|} \\sum_{k \\in K} F_1^{(k)}

where :math:`K` are the classes that occur in the labels or the predictions (scikit-learn's
``f1_score(average="macro")``; a class with no true and no predicted example is left out, a class
predicted but never right scores 0).

Example (hand-checkable): labels ``[0, 0, 1, 1]``, predictions ``[0, 1, 1, 1]``: accuracy 3/4;
precision of class 0 = 1/1, of class 1 = 2/3; recall of class 0 = 1/2, of class 1 = 2/2;
F1 of class 0 = 2*1/(2+1) = 2/3, of class 1 = 2*2/(2+3) = 4/5; macro-F1 = (2/3 + 4/5)/2 = 11/15.

    >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), 4)
    0.7333

Calibration (Guo et al., 2017, "On Calibration of Modern Neural Networks"): the confidence of a
prediction is its largest class probability :math:`\\hat p_i`. With :math:`M` equal-width bins,
bin :math:`b` (0-based) holds the confidences in :math:`(b/M, (b+1)/M]` (the first bin also 0),
and

.. math::

    \\mathrm{ECE} = \\sum_{b} \\frac{|B_b|}{n} \\,
    \\bigl|\\mathrm{acc}(B_b) - \\mathrm{conf}(B_b)\\bigr|

where :math:`\\mathrm{acc}(B_b)` is the share of right predictions in the bin and
:math:`\\mathrm{conf}(B_b)` their mean confidence (empty bins add nothing). A reliability diagram
plots acc against conf per bin; a calibrated model lies on the diagonal.

Example (hand-checkable, 2 bins, 4 classes): confidences ``[0.9, 0.8, 0.6, 0.3]`` of
predictions right, wrong, right, right. Bin (0, 0.5] holds 0.3: acc 1, conf 0.3, gap 0.7.
Bin (0.5, 1] holds 0.9, 0.8, 0.6: acc 2/3, conf 0.7667, gap 0.1.
ECE = 1/4 * 0.7 + 3/4 * 0.1 = 0.25.

    >>> probabilities = [[0.9, 0.05, 0.03, 0.02], [0.8, 0.1, 0.05, 0.05],
    ...                  [0.2, 0.6, 0.1, 0.1], [0.3, 0.25, 0.25, 0.2]]
    >>> round(expected_calibration_error(probabilities, [0, 1, 1, 0], num_bins=2), 4)
    0.25
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "confusion_matrix",
    "accuracy",
    "precision_per_class",
    "recall_per_class",
    "f1_per_class",
    "macro_f1",
    "classification_metrics",
    "reliability_bins",
    "expected_calibration_error",
    "calibration_metrics",
    "softmax",
    "ECE_BINS",
]

#: Equal-width confidence bins of the expected calibration error (Guo et al. use 15).
ECE_BINS = 15


def _as_labels(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class ids, got {array.dtype}")
    return array.astype(np.int64)


def confusion_matrix(
    labels: Sequence[int], predictions: Sequence[int], num_classes: int | None = None
) -> np.ndarray:
    """``(K, K)`` counts, row = true class, column = predicted class."""
    labels = _as_labels(labels, "labels")
    predictions = _as_labels(predictions, "predictions")
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels ({labels.shape[0]}) and predictions ({predictions.shape[0]}) differ in length"
        )
    if num_classes is None:
        num_classes = int(max(labels.max(initial=-1), predictions.max(initial=-1))) + 1
    if labels.size and (min(labels.min(), predictions.min()) < 0
                        or max(labels.max(), predictions.max()) >= num_classes):
        raise ValueError(f"class ids must be in [0, num_classes={num_classes})")
    flat = labels * num_classes + predictions
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(labels: Sequence[int], predictions: Sequence[int]) -> float:
    matrix = confusion_matrix(labels, predictions)
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = numerator.astype(np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator > 0)


def precision_per_class(matrix: np.ndarray) -> np.ndarray:
    """``C_kk / sum_i C_ik``: of the examples predicted ``k``, the share that are ``k`` (0 where
    nothing is predicted ``k``, as scikit-learn's ``zero_division=0``)."""
    return _ratio(np.diag(matrix), matrix.sum(axis=0))


def recall_per_class(matrix: np.ndarray) -> np.ndarray:
    """``C_kk / sum_j C_kj``: of the examples of class ``k``, the share predicted ``k``."""
    return _ratio(np.diag(matrix), matrix.sum(axis=1))


def f1_per_class(matrix: np.ndarray) -> np.ndarray:
    """F1 of each class from a confusion matrix (0 where the class never occurs)."""
    true_positive = np.diag(matrix).astype(np.float64)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)  # predicted + actual
    return np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive),
                     where=denominator > 0)


def macro_f1(labels: Sequence[int], predictions: Sequence[int]) -> float:
    matrix = confusion_matrix(labels, predictions)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    if not present.any():
        return 0.0
    return float(f1_per_class(matrix)[present].mean())


def classification_metrics(
    labels: Sequence[int], predictions: Sequence[int], num_classes: int | None = None
) -> dict:
    """``{"accuracy", "macro_f1", "precision_per_class", "recall_per_class", "f1_per_class",
    "support_per_class", "confusion_matrix", "num_examples"}`` (lists, JSON-ready; the per-class
    lists are indexed by class id; support = the number of examples of the class)."""
    matrix = confusion_matrix(labels, predictions, num_classes)
    total = int(matrix.sum())
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    per_class = f1_per_class(matrix)
    return {
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "macro_f1": float(per_class[present].mean()) if present.any() else 0.0,
        "precision_per_class": precision_per_class(matrix).tolist(),
        "recall_per_class": recall_per_class(matrix).tolist(),
        "f1_per_class": per_class.tolist(),
        "support_per_class": matrix.sum(axis=1).tolist(),
        "confusion_matrix": matrix.tolist(),
        "num_examples": total,
    }


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of ``logits (N, K)`` in float64 (max subtracted: no overflow)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _check_probabilities(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = _as_labels(labels, "labels")
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(f"probabilities must be (N, K) with N = len(labels) ({labels.shape[0]}), "
                         f"got shape {probabilities.shape}")
    if probabilities.size and not (np.all(probabilities >= 0) and np.all(probabilities <= 1)):
        raise ValueError("probabilities must lie in [0, 1] (softmax the logits first)")
    return probabilities, labels


def reliability_bins(probabilities, labels, num_bins: int = ECE_BINS) -> dict:
    """Per equal-width confidence bin (see the module doc): ``{"edges" (M + 1), "count",
    "confidence" (mean, None where empty), "accuracy" (None where empty)}``, JSON-ready."""
    if not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins ({num_bins!r}) must be a positive integer")
    probabilities, labels = _check_probabilities(probabilities, labels)
    confidence = probabilities.max(axis=1) if probabilities.size else np.zeros(0)
    correct = (probabilities.argmax(axis=1) == labels) if probabilities.size else np.zeros(0)
    edges = np.arange(num_bins + 1) / num_bins  # b / M exactly, not accumulated steps
    # side="left": a confidence equal to an inner edge b/M falls in the bin that ends there
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(index, minlength=num_bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=num_bins)
    correct_sum = np.bincount(index, weights=correct.astype(np.float64), minlength=num_bins)

    def mean(total):
        return [float(t / c) if c else None for t, c in zip(total, count, strict=True)]

    return {"edges": edges.tolist(), "count": count.tolist(),
            "confidence": mean(confidence_sum), "accuracy": mean(correct_sum)}


def expected_calibration_error(probabilities, labels, num_bins: int = ECE_BINS) -> float:
    """ECE with ``num_bins`` equal-width bins (see the module doc); 0 for a perfectly
    calibrated model, at most 1."""
    return _ece(reliability_bins(probabilities, labels, num_bins))


def _ece(bins: dict) -> float:
    total = sum(bins["count"])
    if not total:
        return 0.0
    return float(sum(count / total * abs(accuracy - confidence)
                     for count, accuracy, confidence
                     in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
                     if count))


def calibration_metrics(logits, labels, num_bins: int = ECE_BINS) -> dict:
    """``{"ece", "ece_bins", "reliability"}`` of classifier ``logits (N, K)`` (softmaxed here)
    against ``labels (N,)``: the expected calibration error and its reliability bins."""
    bins = reliability_bins(softmax(logits), labels, num_bins)
    return {"ece": _ece(bins), "ece_bins": num_bins, "reliability": bins}
