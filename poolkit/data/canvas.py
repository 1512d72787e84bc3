"""Canvases of real handwritten digits for detection and segmentation (NumPy only, seeded).

:func:`make_canvases` places 2-5 real MNIST digits on a black canvas (64x64 by default) and keeps,
for each canvas, what a detector and a segmenter learn from:

- ``boxes``: one ``[x1, y1, x2, y2]`` per digit, the tight box of the digit's own stroke pixels
  (intensity above ``threshold``) in pixel-edge coordinates: a digit whose strokes cover columns
  ``3..17`` has ``x1 = 3, x2 = 18`` (pixel ``c`` spans ``[c, c + 1)``, torchvision's convention);
- ``labels``: the digit of each box (0-9);
- ``masks``: the class of every pixel, ``0`` for background and ``1 + digit`` for a stroke pixel
  (11 classes); where two digits overlap, the pixel goes to the brighter one, and the image takes
  the maximum of the two (white strokes on black);
- ``instances``: which digit of the canvas (1, 2, …) owns each pixel (0: background).

Placement is rejection sampling: a digit's box may overlap the boxes already placed by at most
``max_overlap`` of its own area (0: no overlap, the default 0.1: lightly). The same digits, size
and seed give the same canvases, bit for bit.

Example:
    >>> from poolkit.data import load_mnist5k
    >>> canvases = make_canvases(load_mnist5k(), 100, size=64, seed=0)  # doctest: +SKIP
    >>> canvases.images.shape, canvases.masks.shape, canvases.boxes[0].shape  # doctest: +SKIP
    ((100, 1, 64, 64), (100, 64, 64), (3, 4))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poolkit.data.images import ImageData

NUM_SEG_CLASSES = 11  # background + 10 digits
SEG_CLASS_NAMES = ["background", *(str(d) for d in range(10))]
_MAX_TRIES = 100


@dataclass
class Canvases:
    """Canvases with their digits' boxes, labels and pixel masks (see the module doc)."""

    images: np.ndarray  # (N, 1, S, S) float32 in [0, 1]
    masks: np.ndarray  # (N, S, S) int64: 0 background, 1 + digit
    instances: np.ndarray  # (N, S, S) int64: 0 background, k for the k-th digit
    boxes: list[np.ndarray]  # N arrays (K_i, 4) float32 [x1, y1, x2, y2]
    labels: list[np.ndarray]  # N arrays (K_i,) int64 digits 0-9
    source: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> Canvases:
        indices = [int(i) for i in indices]
        return Canvases(self.images[indices], self.masks[indices], self.instances[indices],
                        [self.boxes[i] for i in indices], [self.labels[i] for i in indices],
                        self.source)


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} ({value!r}) must be an int >= {minimum}")
    return int(value)


def crop_digit(image: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(crop, stroke)`` of a ``(H, W)`` digit: the tight box of its pixels above ``threshold``,
    and the boolean stroke mask inside it. A digit with no stroke pixel is a ``ValueError``."""
    stroke = image > threshold
    rows, cols = np.flatnonzero(stroke.any(axis=1)), np.flatnonzero(stroke.any(axis=0))
    if rows.size == 0:
        raise ValueError(f"a digit has no pixel above threshold ({threshold})")
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return image[crop], stroke[crop]


def _overlap_share(box: np.ndarray, placed: list[np.ndarray]) -> float:
    """Largest share of ``box``'s area covered by one of the ``placed`` boxes."""
    if not placed:
        return 0.0
    others = np.stack(placed)
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    return float((width * height).max() / area)


def _one_canvas(digits, rng, size, count, max_overlap, threshold):
    image = np.zeros((size, size), np.float32)
    owner = np.zeros((size, size), np.int64)  # instance id (1-based) of each pixel
    boxes, labels = [], []
    for _ in range(_MAX_TRIES * count):
        if len(boxes) == count:
            break
        index = int(rng.integers(len(digits)))
        crop, stroke = crop_digit(digits.images[index, 0], threshold)
        height, width = crop.shape
        if height > size or width > size:
            raise ValueError(f"size ({size}) must be at least the digits' size ({height}x{width})")
        top, left = int(rng.integers(size - height + 1)), int(rng.integers(size - width + 1))
        box = np.array([left, top, left + width, top + height], np.float32)
        if _overlap_share(box, boxes) > max_overlap:
            continue
        region = (slice(top, top + height), slice(left, left + width))
        # a stroke pixel goes to this digit where it is brighter than what is there
        wins = stroke & (crop > image[region])
        owner[region][wins] = len(boxes) + 1
        image[region] = np.maximum(image[region], crop)
        boxes.append(box)
        labels.append(int(digits.labels[index]))
    if len(boxes) < count:
        raise ValueError(f"could not place {count} digits on a {size}x{size} canvas with "
                         f"max_overlap ({max_overlap}); use a larger size")
    label_array = np.asarray(labels, np.int64)
    mask = np.where(owner > 0, 1 + np.concatenate([[0], label_array])[owner], 0)
    return image, mask, owner, np.stack(boxes), label_array


def make_canvases(
    digits: ImageData,
    count: int,
    *,
    size: int = 64,
    min_digits: int = 2,
    max_digits: int = 5,
    max_overlap: float = 0.1,
    threshold: float = 0.5,
    seed: int = 0,
) -> Canvases:
    """``count`` canvases of ``size x size`` with ``min_digits..max_digits`` digits each, drawn
    (with replacement) from ``digits`` (``(N, 1, H, W)`` in [0, 1], labels 0-9), seeded.

    Raises:
        ValueError: a bad count, size, digit range, ``max_overlap`` outside [0, 1],
            ``threshold`` outside [0, 1), or digits that do not fit.
    """
    count = _check_int(count, "count", 0)
    size = _check_int(size, "size", 1)
    min_digits = _check_int(min_digits, "min_digits", 1)
    max_digits = _check_int(max_digits, "max_digits", min_digits)
    if not 0.0 <= max_overlap <= 1.0:
        raise ValueError(f"max_overlap ({max_overlap!r}) must be in [0, 1]")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold ({threshold!r}) must be in [0, 1)")
    if digits.images.ndim != 4 or digits.images.shape[1] != 1 or len(digits) == 0:
        raise ValueError(f"digits must be (N, 1, H, W) with N >= 1, got {digits.images.shape}")
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 1, size, size), np.float32)
    masks = np.zeros((count, size, size), np.int64)
    instances = np.zeros((count, size, size), np.int64)
    boxes, labels = [], []
    for n in range(count):
        k = int(rng.integers(min_digits, max_digits + 1))
        images[n, 0], masks[n], instances[n], box, label = _one_canvas(
            digits, rng, size, k, max_overlap, threshold)
        boxes.append(box)
        labels.append(label)
    return Canvases(images, masks, instances, boxes, labels, digits.source)
