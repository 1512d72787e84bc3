"""Hugging Face ``datasets``: the labelled splits of a hub data set or of a local copy.

One door, :func:`read_hf_splits`, used by :func:`poolkit.data.load_dataset` (and so by
``poolkit train``, ``eval`` and ``compare``): it takes

- a hub name, ``"stanfordnlp/sst2"``, with a configuration as a last part,
  ``"nyu-mll/glue/sst2"`` (``"glue/sst2"``: the repository ``glue/sst2`` if there is one, else
  the data set ``glue`` with configuration ``sst2``); needs the network unless the data set is in
  the Hugging Face cache;
- a folder written by ``DatasetDict.save_to_disk`` or ``Dataset.save_to_disk`` (offline);
- a local data file (``.csv``, ``.tsv``, ``.json``, ``.jsonl``, ``.parquet``);

each optionally prefixed ``hf:`` (``--data hf:stanfordnlp/sst2``), and returns poolkit's
``train``/``dev``/``test`` from the data set's ``train``/``validation``/``test`` splits.
Class names come from a ``ClassLabel`` feature; other labels are read as in CSV files (integers
``0..K-1`` kept, strings in sorted order). A label of ``-1`` (``ClassLabel``'s "no label", as in
GLUE's test sets) or ``None`` marks an unlabelled row: such rows, and a split with no label at
all, are left out with a warning naming the split and the count, never silently. A data set
with an ``Image`` column and no text column gives images (``ImageData``: MNIST from
``ylecun/mnist``).

Nothing here sets ``HF_HUB_OFFLINE``: a hub name that cannot be reached raises a
``ConnectionError`` that says how to work offline (a ``save_to_disk`` folder).

Example:
    >>> import tempfile, datasets
    >>> folder = tempfile.mkdtemp() + "/reviews"
    >>> datasets.DatasetDict({
    ...     "train": datasets.Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]}),
    ...     "test": datasets.Dataset.from_dict({"text": ["fine"], "label": [-1]}),
    ... }).save_to_disk(folder)
    >>> sorted(read_hf_splits("hf:" + folder))  # the unlabelled test split is left out
    ['train']
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from poolkit.data.images import ImageData
from poolkit.data.text import TextData, encode_labels
from poolkit.errors import DataFormatError

log = logging.getLogger("poolkit.data")

__all__ = ["HF_PREFIX", "SPLIT_NAMES", "strip_prefix", "is_hf_source", "hf_splits",
           "read_hf_splits", "read_hf_split", "read_hf"]

HF_PREFIX = "hf:"
#: The data set's split names that become poolkit's train/dev/test.
SPLIT_NAMES = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev",
               "test": "test"}
_FILE_KINDS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
               ".parquet": "parquet"}
_SAVED_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")


def strip_prefix(source: str | os.PathLike) -> str:
    """``"hf:stanfordnlp/sst2"`` -> ``"stanfordnlp/sst2"``; anything else as it is."""
    text = os.fspath(source)
    return text[len(HF_PREFIX):] if text.startswith(HF_PREFIX) else text


def is_hf_source(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a Hugging Face data set: ``hf:...``, or a ``save_to_disk``
    folder."""
    text = os.fspath(source)
    path = Path(text)
    return text.startswith(HF_PREFIX) or (
        path.is_dir() and any((path / marker).is_file() for marker in _SAVED_MARKERS))


def hf_splits(source: str | os.PathLike, *, config_name: str | None = None) -> dict:
    """``{"train"/"dev"/"test": (the data set's split name, datasets.Dataset)}``: the splits of
    ``source`` as :func:`read_hf_splits` finds them, before any column is read (for readers of
    other shapes of data: :func:`poolkit.data.pairs.load_sentence_pairs`)."""
    source = strip_prefix(source)
    return _named_splits(_load(source, config_name), source)


def read_hf_splits(
    source: str | os.PathLike,
    *,
    config_name: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
) -> dict[str, TextData | ImageData]:
    """``{"train": ..., "dev": ..., "test": ...}``: the labelled splits of ``source`` (a hub
    name ``NAME[/CONFIG]``, a ``save_to_disk`` folder or a data file, ``hf:`` optional).

    ``validation`` (or ``valid``/``dev``) becomes ``dev``; other split names are logged and left
    out; a data set with one split and no ``train`` (a single ``Dataset``) gives ``train`` only.
    ``text_column`` ``"text"`` falls back to ``"sentence"`` (GLUE's name) where there is no
    ``text`` column. Raises :class:`DataFormatError` naming a missing column and the columns
    there are, ``ConnectionError`` for a hub name that cannot be reached.
    """
    source = strip_prefix(source)
    named = hf_splits(source, config_name=config_name)
    text_column = _text_column(named["train"][1], text_column, source)
    parts = {}
    for part_name, (hf_name, dataset) in named.items():
        part = _read_part(dataset, f"{source}[{hf_name}]", text_column, label_column)
        if part is not None:
            parts[part_name] = part
    if "train" not in parts:
        raise DataFormatError(source, None, "the train split has no labelled row; poolkit "
                                            "needs labels to train and score")
    return parts


def read_hf_split(
    source: str | os.PathLike,
    split: str = "train",
    text_column: str = "text",
    label_column: str = "label",
    *,
    config_name: str | None = None,
) -> TextData | ImageData:
    """One split of ``source`` by the data set's own name (``"validation"``, ``"test"``...),
    read like :func:`read_hf_splits` reads each of its splits."""
    source = strip_prefix(source)
    loaded = _load(source, config_name)
    if _is_dict(loaded):
        if split not in loaded:
            raise DataFormatError(source, None, f"no split {split!r}; the data set has "
                                                f"{list(loaded)}")
        loaded = loaded[split]
    text_column = _text_column(loaded, text_column, source)
    part = _read_part(loaded, f"{source}[{split}]", text_column, label_column)
    if part is None:
        raise DataFormatError(source, None, f"split {split!r} has no labelled row")
    return part


def read_hf(
    name_or_path: str,
    split: str = "train",
    text_column: str = "text",
    label_column: str = "label",
    *,
    config_name: str | None = None,
) -> TextData | ImageData:
    """One split of a Hugging Face data set (the reader of earlier versions, kept with its
    arguments): :func:`read_hf_split`."""
    return read_hf_split(name_or_path, split, text_column, label_column, config_name=config_name)


# ---------------------------------------------------------------------------------------------
# Loading


def _datasets():
    try:
        import datasets
    except ImportError as exc:  # optional dependency, imported lazily
        raise ImportError("reading Hugging Face data sets needs `pip install datasets` "
                          "(or `pip install 'poolkit[nlp]'`)") from exc
    return datasets


def _is_dict(loaded) -> bool:
    return isinstance(loaded, _datasets().DatasetDict)


def _load(source: str, config_name: str | None):
    """A ``DatasetDict`` or ``Dataset``: from disk when ``source`` is a local path, else the
    hub."""
    datasets = _datasets()
    path = Path(source).expanduser()
    if path.is_dir():
        if not any((path / marker).is_file() for marker in _SAVED_MARKERS):
            raise DataFormatError(path, None, "is not a folder written by save_to_disk (no "
                                              f"{' or '.join(_SAVED_MARKERS)})")
        return datasets.load_from_disk(str(path))
    if path.is_file():
        kind = _FILE_KINDS.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"data ({source}) has an unknown file type; Hugging Face files "
                             f"may be {', '.join(_FILE_KINDS)}")
        extra = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        return datasets.load_dataset(kind, data_files={"train": str(path)}, **extra)
    if source.startswith((".", "/", "~")) or (os.sep in source and path.parent.is_dir()):
        raise FileNotFoundError(f"data folder {source} does not exist")
    return _load_hub(source, config_name)


def _hub_candidates(source: str, config_name: str | None) -> list[tuple[str, str | None]]:
    """``(repository, configuration)`` readings of ``NAME[/CONFIG]``, most likely first."""
    parts = source.split("/")
    if config_name is not None or len(parts) == 1:
        return [(source, config_name)]
    if len(parts) == 2:  # owner/name, or a namespace-free name with a configuration
        return [(source, None), (parts[0], parts[1])]
    if len(parts) == 3:
        return [("/".join(parts[:2]), parts[2])]
    raise ValueError(f"data ({HF_PREFIX}{source}) must be a hub name NAME, OWNER/NAME, "
                     "NAME/CONFIG or OWNER/NAME/CONFIG, or a local folder")


def _load_hub(source: str, config_name: str | None):
    datasets = _datasets()
    candidates = _hub_candidates(source, config_name)
    for index, (repository, config) in enumerate(candidates):
        try:
            return datasets.load_dataset(repository, config)
        except datasets.exceptions.DatasetNotFoundError:
            if index == len(candidates) - 1:
                raise
        except ConnectionError as exc:
            raise ConnectionError(_offline_message(source, candidates)) from exc
        except ValueError as exc:
            if "config" in str(exc).lower():
                raise ValueError(f"{HF_PREFIX}{source}: {exc} (give one as "
                                 f"{HF_PREFIX}{repository}/CONFIG)") from None
            raise
    raise AssertionError(source)


def _offline_message(source: str, candidates: list[tuple[str, str | None]]) -> str:
    saves = " (or ".join(
        f"`datasets.load_dataset({repository!r}{f', {config!r}' if config else ''})"
        f".save_to_disk('my-data')`" for repository, config in candidates
    ) + ")" * (len(candidates) - 1)
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        why = ("HF_HUB_OFFLINE is set in the environment and the data set is not in the "
               "Hugging Face cache; a hub name needs the network (unset HF_HUB_OFFLINE)")
    else:
        why = ("a hub name needs the network (or a copy in the Hugging Face cache, read "
               "offline with HF_HUB_OFFLINE=1 set in your shell)")
    return (f"cannot load the Hugging Face data set {source!r}: {why}. Offline, save it once "
            f"where there is network, {saves}, and pass the folder: "
            "--data hf:./my-data")


def _named_splits(loaded, source: str) -> dict[str, tuple[str, object]]:
    """``{poolkit split: (data set split, Dataset)}``."""
    if not _is_dict(loaded):
        return {"train": ("train", loaded)}
    named, unused = {}, []
    for hf_name, dataset in loaded.items():
        part = SPLIT_NAMES.get(hf_name.lower())
        if part is None or part in named:
            unused.append(hf_name)
        else:
            named[part] = (hf_name, dataset)
    if "train" not in named and len(loaded) == 1:
        only = next(iter(loaded))
        log.info("%s has one split, %r: read as the data", source, only)
        return {"train": (only, loaded[only])}
    if "train" not in named:
        raise DataFormatError(source, None, f"no train split; the data set has {list(loaded)} "
                                            "(poolkit reads train, validation and test)")
    if unused:
        log.warning("%s: split(s) %s not used (poolkit reads train, validation and test)",
                    source, ", ".join(repr(name) for name in unused))
    return named


# ---------------------------------------------------------------------------------------------
# One split


def _read_part(dataset, where: str, text_column: str, label_column: str):
    """The labelled rows of one split as ``TextData``/``ImageData``; ``None`` when none is."""
    columns = list(dataset.column_names)
    image_column = _image_column(dataset) if text_column not in columns else None
    if image_column is None:
        text_column = _column(text_column, "text_column", columns, where)
    label_column = _column(label_column, "label_column", columns, where)
    feature = dataset.features[label_column]
    _check_types(dataset.features, None if image_column else text_column, label_column, where)
    raw = list(dataset[label_column])
    labelled = [i for i, y in enumerate(raw) if y is not None and y != -1 and str(y).strip()]
    if len(labelled) < len(raw):
        missing = len(raw) - len(labelled)
        if not labelled:
            log.warning("%s: none of its %d rows has a label (-1: GLUE's hidden test labels); "
                        "split left out", where, len(raw))
            return None
        log.warning("%s: %d of %d rows have no label (-1 or empty); left out", where, missing,
                    len(raw))
        dataset = dataset.select(labelled)
        raw = [raw[i] for i in labelled]
    if hasattr(feature, "names"):  # ClassLabel
        labels, names = [int(y) for y in raw], list(feature.names)
    else:
        labels, names = encode_labels([str(y) for y in raw], None, where,
                                      [i + 1 for i in labelled])
    if image_column is not None:
        return ImageData(_images(dataset[image_column], where), np.asarray(labels), names,
                         source=where)
    texts = [str(t).strip() if t is not None else "" for t in dataset[text_column]]
    return TextData(texts, labels, names, source=where)


_STRINGS = ("string", "large_string")
_CLASS_IDS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")


def _check_types(features, text_column: str | None, label_column: str, where: str) -> None:
    """A text column of strings; a label column of class ids or names (a ``ClassLabel``,
    integers or strings): a score (floats) or a multi-label list is refused, naming it."""
    value = _datasets().Value
    text = features[text_column] if text_column is not None else None
    if text is not None and not (isinstance(text, value) and text.dtype in _STRINGS):
        raise DataFormatError(where, None, f"the text column {text_column!r} holds {text}, not "
                                           "strings (--text-column names another)")
    label = features[label_column]
    if hasattr(label, "names"):  # ClassLabel
        return
    if not isinstance(label, value) or label.dtype not in (*_STRINGS, *_CLASS_IDS):
        what = getattr(label, "dtype", type(label).__name__)
        raise DataFormatError(where, None, f"the label column {label_column!r} holds {what} "
                                           "values: poolkit trains single-label classifiers on "
                                           "class ids or names (a score or a list is not a "
                                           "class; --label-column names another)")


def _text_column(dataset, name: str, source: str) -> str:
    """``name``, or GLUE's ``sentence`` for the default ``text`` where there is no ``text``."""
    columns = dataset.column_names
    if name == "text" and name not in columns and "sentence" in columns:
        log.info("%s: no 'text' column; reading 'sentence' (--text-column to choose)", source)
        return "sentence"
    return name


def _column(name: str, option: str, columns: list[str], where: str) -> str:
    if name in columns:
        return name
    flag = "--" + option.replace("_", "-")
    raise DataFormatError(where, None, f"no column {name!r} ({option}, {flag}); the columns "
                                       f"are {columns}")


def _image_column(dataset) -> str | None:
    image = _datasets().Image
    found = [name for name, feature in dataset.features.items() if isinstance(feature, image)]
    return found[0] if found else None


def _images(column, where: str) -> np.ndarray:
    """PIL images -> ``(N, C, H, W)`` float32 in ``[0, 1]``."""
    arrays = [np.asarray(image) for image in column]
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1:
        raise DataFormatError(where, None, f"images of {len(shapes)} different shapes "
                                           f"({sorted(shapes)[:3]}...); poolkit needs one size")
    stacked = np.stack(arrays)
    if stacked.ndim == 3:  # (N, H, W): grey
        stacked = stacked[:, None]
    else:  # (N, H, W, C)
        stacked = stacked.transpose(0, 3, 1, 2)
    scale = 255.0 if stacked.dtype == np.uint8 else 1.0
    return np.ascontiguousarray(stacked, dtype=np.float32) / np.float32(scale)
