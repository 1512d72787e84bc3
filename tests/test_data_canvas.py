"""Digit canvases: boxes and masks exactly where the digits' strokes are, seeded, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from poolkit.data import ImageData, read_mnist
from poolkit.data.canvas import crop_digit, make_canvases


def toy_digits(count: int = 20, seed: int = 0) -> ImageData:
    """Random blobs of 6x5 to 9x9 stroke pixels (values 0.6-1) with faint noise around them."""
    rng = np.random.default_rng(seed)
    images = (rng.random((count, 1, 12, 12)) * 0.3).astype(np.float32)
    for n in range(count):
        height, width = rng.integers(6, 10), rng.integers(5, 10)
        images[n, 0, 1:1 + height, 2:2 + width] = rng.uniform(0.6, 1.0, (height, width))
    return ImageData(images, rng.integers(0, 10, count), [str(d) for d in range(10)], "toy")


def test_hand_worked_crop_and_box():
    image = np.zeros((5, 6), np.float32)
    image[1, 2], image[3, 4], image[2, 3] = 0.9, 0.7, 0.4  # 0.4 is below the threshold
    crop, stroke = crop_digit(image, 0.5)
    assert crop.shape == (3, 3)  # rows 1..3, columns 2..4
    assert stroke.tolist() == [[True, False, False], [False, False, False], [False, False, True]]
    digits = ImageData(image[None, None], np.array([7]), [str(d) for d in range(10)])
    canvas = make_canvases(digits, 1, size=3, min_digits=1, max_digits=1, seed=0)
    # the 3x3 crop fills the 3x3 canvas: box [x1, y1, x2, y2] = [0, 0, 3, 3] (pixel edges)
    assert canvas.boxes[0].tolist() == [[0.0, 0.0, 3.0, 3.0]]
    assert canvas.labels[0].tolist() == [7]
    assert canvas.masks[0].tolist() == [[8, 0, 0], [0, 0, 0], [0, 0, 8]]  # class 1 + digit
    assert canvas.images[0, 0, 1, 1] == pytest.approx(0.4)  # faint pixels stay in the image


@pytest.mark.parametrize("max_overlap", [0.0, 0.3])
def test_boxes_and_masks_follow_the_strokes(max_overlap):
    digits = toy_digits()
    canvases = make_canvases(digits, 30, size=40, max_overlap=max_overlap, seed=3)
    for n in range(len(canvases)):
        boxes, labels = canvases.boxes[n], canvases.labels[n]
        assert 2 <= len(boxes) <= 5 and len(labels) == len(boxes)
        instances, masks = canvases.instances[n], canvases.masks[n]
        np.testing.assert_array_equal(masks > 0, instances > 0)
        for k, (box, label) in enumerate(zip(boxes, labels, strict=True), start=1):
            rows, cols = np.nonzero(instances == k)
            assert np.all(masks[rows, cols] == 1 + label)
            x1, y1, x2, y2 = box
            assert cols.min() >= x1 and cols.max() < x2 and rows.min() >= y1 and rows.max() < y2
            if max_overlap == 0.0:  # nothing covers a digit: its pixels span its box exactly
                assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == tuple(box)
            for other in boxes[:k - 1]:  # each box placed against the ones before it
                width = max(0.0, min(x2, other[2]) - max(x1, other[0]))
                height = max(0.0, min(y2, other[3]) - max(y1, other[1]))
                assert width * height <= max_overlap * (x2 - x1) * (y2 - y1) + 1e-6
        if max_overlap == 0.0:  # strokes are exactly the pixels above the threshold
            np.testing.assert_array_equal(canvases.images[n, 0] > 0.5, masks > 0)


def test_seeded_and_deterministic():
    digits = toy_digits()
    first = make_canvases(digits, 10, size=32, seed=5)
    again = make_canvases(digits, 10, size=32, seed=5)
    other = make_canvases(digits, 10, size=32, seed=6)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.masks, again.masks)
    assert all(np.array_equal(a, b) for a, b in zip(first.boxes, again.boxes, strict=True))
    assert not np.array_equal(first.images, other.images)
    part = first.subset([3, 1])
    np.testing.assert_array_equal(part.masks[1], first.masks[1])
    assert len(part) == 2 and np.array_equal(part.boxes[0], first.boxes[3])


def test_real_mnist_digits(shared_data):
    digits = read_mnist(shared_data / "mnist").subset(range(500))
    canvases = make_canvases(digits, 50, size=64, seed=0)
    assert canvases.images.shape == (50, 1, 64, 64) and canvases.images.dtype == np.float32
    counts = [len(b) for b in canvases.boxes]
    assert min(counts) >= 2 and max(counts) <= 5
    assert set(np.unique(canvases.masks)) <= set(range(11))
    sizes = np.concatenate([b[:, 2:] - b[:, :2] for b in canvases.boxes])
    assert sizes.min() >= 1 and sizes.max() <= 28  # MNIST strokes fit in 28 x 28


@pytest.mark.parametrize("kwargs,message", [
    ({"count": -1}, "count"), ({"size": 0}, "size"), ({"min_digits": 0}, "min_digits"),
    ({"min_digits": 3, "max_digits": 2}, "max_digits"), ({"max_overlap": 1.5}, "max_overlap"),
    ({"threshold": 1.0}, "threshold"), ({"size": 8}, "size"),
    ({"size": 12, "max_digits": 9, "min_digits": 9, "max_overlap": 0.0}, "could not place"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_canvases(toy_digits(), **{"count": 2, **kwargs})
    with pytest.raises(ValueError, match="no pixel above threshold"):
        crop_digit(np.zeros((4, 4)), 0.5)
