"""Accuracy, macro-F1 and the majority-class baseline from predictions (NumPy only)."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(labels, predictions, num_classes: int | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1 and the majority-class accuracy ("chance") of ``predictions``.

    .. math::
        F1_c = \\frac{2\\,TP_c}{2\\,TP_c + FP_c + FN_c}, \\qquad
        \\text{macro-F1} = \\frac{1}{|C|}\\sum_c F1_c

    over the classes ``C`` that occur in ``labels`` or ``predictions`` (a class absent from both
    has no F1). Empty input gives NaN.

    Example:
        >>> m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
        >>> m["accuracy"], round(m["macro_f1"], 4), m["majority_accuracy"]
        (0.75, 0.7333, 0.5)
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels ({labels.size}) and predictions ({predictions.size}) must have the same length"
        )
    if labels.size == 0:
        nan = float("nan")
        return {"accuracy": nan, "macro_f1": nan, "majority_accuracy": nan}
    size = int(max(labels.max(), predictions.max()) + 1)
    size = max(size, num_classes or 0)
    confusion = np.zeros((size, size), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    true_positive = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # 2TP + FP + FN
    present = denominator > 0
    f1 = 2 * true_positive[present] / denominator[present]
    return {
        "accuracy": float(true_positive.sum() / labels.size),
        "macro_f1": float(f1.mean()),
        "majority_accuracy": float(np.bincount(labels).max() / labels.size),
    }
