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
]


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
