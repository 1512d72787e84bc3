r"""Metrics of dense prediction in NumPy: mean IoU of a segmentation, box mAP of a detector.

**Segmentation** — with :math:`C` the pixel confusion matrix (rows true class, columns predicted),

.. math::
    \mathrm{IoU}_k = \frac{C_{kk}}{\sum_j C_{kj} + \sum_i C_{ik} - C_{kk}}, \qquad
    \mathrm{mIoU} = \frac{1}{|K|} \sum_{k \in K} \mathrm{IoU}_k

over the classes :math:`K` that occur in the labels or the predictions (background included, as
in PASCAL VOC). Example: labels ``[0, 0, 1, 1]``, predictions ``[0, 1, 1, 1]``: IoU of class 0 =
1 / (2 + 1 - 1) = 1/2, of class 1 = 2 / (2 + 3 - 2) = 2/3, mIoU = 7/12.

**Detection** — PASCAL VOC (2010 onwards) average precision per class at an IoU threshold:
detections of the class, over all images, sorted by score (best first, ties in input order); each
is a true positive when its best-overlapping box of that class in its image has IoU >= threshold
and was not matched by a better-scored detection, otherwise a false positive. With the precision
envelope :math:`\hat p(r) = \max_{r' \ge r} p(r')`, :math:`AP = \sum_n (r_n - r_{n-1})\,\hat
p(r_n)` (area under the envelope, all points); mAP is the mean over the classes that have a true
box. Boxes are ``[x1, y1, x2, y2]`` in pixel-edge coordinates (area ``(x2 - x1)(y2 - y1)``, no
``+ 1``, like torchvision and COCO).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "segmentation_confusion", "iou_per_class", "mean_iou", "box_iou", "average_precision",
    "detection_average_precision",
]


def segmentation_confusion(labels, predictions, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts of pixels by (true class, predicted class); any shapes, equal."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in "
                         "shape")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes ({num_classes!r}) must be an int >= 1")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, got "
                             f"{values.min()}..{values.max()}")
    flat = labels.astype(np.int64).ravel() * num_classes + predictions.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion matrix; NaN for a class neither true nor predicted."""
    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / union, np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean IoU over the classes present in the labels or the predictions."""
    ious = iou_per_class(matrix)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def _boxes(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name} must be (K, 4) [x1, y1, x2, y2], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return array


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """``(N, M)`` IoU of every pair of boxes ``[x1, y1, x2, y2]`` (0 where a union is empty)."""
    a, b = _boxes(boxes_a, "boxes_a"), _boxes(boxes_b, "boxes_b")
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0],
                                                                          b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1],
                                                                           b[None, :, 1]), 0, None)
    inter = width * height
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def average_precision(recall: Sequence[float], precision: Sequence[float]) -> float:
    """Area under the precision envelope (VOC 2010+ all-point interpolation) of a ranked list's
    ``recall``/``precision`` after each detection (recall non-decreasing)."""
    recall = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    precision = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def detection_average_precision(
    detections: Sequence[dict], truths: Sequence[dict], num_classes: int,
    iou_threshold: float = 0.5,
) -> dict:
    """VOC average precision per class and their mean (see the module doc).

    Args:
        detections: per image ``{"boxes": (K, 4), "scores": (K,), "labels": (K,)}``.
        truths: per image ``{"boxes": (M, 4), "labels": (M,)}``.
        num_classes: classes ``0..num_classes - 1`` (no background class).
        iou_threshold: a detection matches a true box at IoU >= this (0.5: mAP@0.5).

    Returns:
        ``{"map": float, "ap_per_class": list (NaN for a class without true boxes)}``.
    """
    if len(detections) != len(truths):
        raise ValueError(f"detections ({len(detections)} images) and truths ({len(truths)}) "
                         "differ in length")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold ({iou_threshold!r}) must be in (0, 1]")
    per_class = [_class_ap(detections, truths, label, iou_threshold)
                 for label in range(num_classes)]
    finite = [ap for ap in per_class if np.isfinite(ap)]
    return {"map": float(np.mean(finite)) if finite else float("nan"), "ap_per_class": per_class}


def _class_ap(detections, truths, label: int, iou_threshold: float) -> float:
    true_boxes, ranked = [], []
    for image, (found, true) in enumerate(zip(detections, truths, strict=True)):
        true_boxes.append(_boxes(true["boxes"], "true boxes")[np.asarray(true["labels"]) == label])
        mine = np.asarray(found["labels"]) == label
        boxes = _boxes(found["boxes"], "detected boxes")[mine]
        scores = np.asarray(found["scores"], np.float64)[mine]
        ranked += [(-score, len(ranked), image, box) for box, score in zip(boxes, scores,
                                                                              strict=True)]
    total = sum(len(boxes) for boxes in true_boxes)
    if total == 0:
        return float("nan")
    ranked.sort(key=lambda item: (item[0], item[1]))  # best score first, ties in input order
    matched = [np.zeros(len(boxes), bool) for boxes in true_boxes]
    hits = np.zeros(len(ranked), bool)
    for rank, (_, _, image, box) in enumerate(ranked):
        if len(true_boxes[image]) == 0:
            continue
        overlaps = box_iou(box[None], true_boxes[image])[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold and not matched[image][best]:
            matched[image][best] = True
            hits[rank] = True
    true_positives = np.cumsum(hits)
    recall = true_positives / total
    precision = true_positives / np.arange(1, len(ranked) + 1)
    return average_precision(recall, precision)
