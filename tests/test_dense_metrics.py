"""Mean IoU and VOC box AP: hand-worked values, naive loops, scikit-learn where it agrees."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolkit.train.dense_metrics import (
    average_precision,
    box_iou,
    detection_average_precision,
    iou_per_class,
    mean_iou,
    segmentation_confusion,
)


def test_mean_iou_hand_worked():
    matrix = segmentation_confusion([0, 0, 1, 1], [0, 1, 1, 1], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    ious = iou_per_class(matrix)
    assert ious[0] == pytest.approx(1 / 2) and ious[1] == pytest.approx(2 / 3)
    assert np.isnan(ious[2])  # class 2 neither true nor predicted: left out of the mean
    assert mean_iou(matrix) == pytest.approx(7 / 12)


def test_confusion_equals_a_loop_over_pixels():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 4, (3, 5, 6)), rng.integers(0, 4, (3, 5, 6))
    expected = np.zeros((4, 4), np.int64)
    for true, guess in zip(labels.ravel(), predictions.ravel(), strict=True):
        expected[true, guess] += 1
    np.testing.assert_array_equal(segmentation_confusion(labels, predictions, 4), expected)


def test_box_iou_hand_worked():
    iou = box_iou([[0, 0, 2, 2], [0, 0, 1, 1]], [[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 5, 5]])
    np.testing.assert_allclose(iou, [[1 / 7, 1, 0], [0, 1 / 4, 0]])


def test_voc_ap_hand_worked():
    # one image, two true boxes of class 0; detections by score: hit, miss, hit
    truths = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 0]}]
    detections = [{"boxes": [[0, 0, 10, 10], [40, 40, 50, 50], [21, 21, 30, 30]],
                   "scores": [0.9, 0.8, 0.7], "labels": [0, 0, 0]}]
    result = detection_average_precision(detections, truths, num_classes=2)
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: envelope 1 up to recall 1/2, then 2/3
    assert result["ap_per_class"][0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert np.isnan(result["ap_per_class"][1])  # no true box of class 1: not in the mean
    assert result["map"] == pytest.approx(5 / 6)


def test_duplicates_and_wrong_classes_are_false_positives():
    truths = [{"boxes": [[0, 0, 10, 10]], "labels": [3]}]
    detections = [{"boxes": [[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 10]],
                   "scores": [0.5, 0.9, 0.8], "labels": [3, 3, 2]}]
    result = detection_average_precision(detections, truths, num_classes=4)
    # class 3 ranked: [0,0,10,9] (IoU 0.9, hit), then the exact box (already matched: miss)
    assert result["ap_per_class"][3] == pytest.approx(1.0)
    assert result["ap_per_class"][2] != result["ap_per_class"][2]  # NaN: no true box of class 2
    low = detection_average_precision(detections, truths, num_classes=4, iou_threshold=0.95)
    # at IoU 0.95 the first-ranked box misses, the exact one hits second: precision 1/2
    assert low["ap_per_class"][3] == pytest.approx(0.5)


def test_ap_of_a_monotone_ranking_equals_scikit_learn():
    sklearn = pytest.importorskip("sklearn.metrics")
    # each detection hits a distinct true box or nothing; every true box is found, so the
    # precision envelope and scikit-learn's step sum agree when precision never rises again
    hits = np.array([1, 1, 0, 1, 0, 0])
    scores = np.linspace(1, 0.1, hits.size)
    recall = np.cumsum(hits) / hits.sum()
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    expected = sklearn.average_precision_score(hits, scores)
    assert average_precision(recall, precision) >= expected - 1e-12
    monotone = np.array([1, 1, 1, 0, 0])
    recall = np.cumsum(monotone) / monotone.sum()
    precision = np.cumsum(monotone) / np.arange(1, monotone.size + 1)
    assert average_precision(recall, precision) == pytest.approx(
        sklearn.average_precision_score(monotone, np.linspace(1, 0.1, monotone.size)))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), images=st.integers(1, 4))
def test_perfect_detections_score_one_and_noise_lowers(seed, images):
    rng = np.random.default_rng(seed)
    truths, perfect, noisy = [], [], []
    for _ in range(images):
        k = int(rng.integers(1, 5))
        corners = rng.uniform(0, 50, (k, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(5, 20, (k, 2))], axis=1)
        labels = rng.integers(0, 3, k)
        truths.append({"boxes": boxes, "labels": labels})
        perfect.append({"boxes": boxes, "scores": rng.random(k), "labels": labels})
        extra = np.concatenate([boxes, boxes + 100])  # each box plus one far away
        noisy.append({"boxes": extra, "scores": rng.random(2 * k),
                      "labels": np.concatenate([labels, labels])})
    assert detection_average_precision(perfect, truths, 3)["map"] == pytest.approx(1.0)
    result = detection_average_precision(noisy, truths, 3)["map"]
    assert 0.0 < result <= 1.0


@pytest.mark.parametrize("call,message", [
    (lambda: segmentation_confusion([0, 1], [0], 2), "shape"),
    (lambda: segmentation_confusion([0, 5], [0, 1], 2), "labels must lie"),
    (lambda: segmentation_confusion([0, 1], [0, 1], 0), "num_classes"),
    (lambda: box_iou([[0, 0, 1]], [[0, 0, 1, 1]]), "boxes_a"),
    (lambda: box_iou([[0, 0, np.nan, 1]], [[0, 0, 1, 1]]), "finite"),
    (lambda: detection_average_precision([{}], [], 2), "differ in length"),
    (lambda: detection_average_precision([], [], 2, iou_threshold=0), "iou_threshold"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
