"""Sentence pairs with a similarity score: the STS Benchmark and generic pair files.

Two readers, both returning :class:`SentencePairs` and raising
:class:`poolkit.errors.DataFormatError` naming the file and the 1-based line for a malformed line:

- :func:`read_stsb`: one file of the STS Benchmark (Cer et al., 2017; the original
  ``sts-train.csv`` / ``sts-dev.csv`` / ``sts-test.csv`` from http://ixa2.si.ehu.eus/stswiki).
  UTF-8, tab-separated, no header, *no* CSV quoting (a ``"`` is a literal character):
  ``genre, file, year, id, score, sentence 1, sentence 2``; some lines carry two more columns
  (source ids), which are ignored. The score is a number from 0 to 5.
- :func:`read_sentence_pairs`: a CSV/TSV file with a header naming ``sentence1``,
  ``sentence2`` and ``score`` columns, as the Hugging Face data sets ``sentence-transformers/stsb``
  (scores 0-1) and ``mteb/stsbenchmark-sts`` (scores 0-5) have when saved with
  ``dataset.to_csv(...)``.

:func:`load_sentence_pairs` reads the train/dev/test files of a folder in either layout, or
a Hugging Face data set with those columns (``hf:sentence-transformers/stsb`` on the hub, or a
``save_to_disk`` folder).

Example:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "sts-dev.csv").write_text(
    ...     'main-captions\\tMSRvid\\t2012test\\t0000\\t5.000\\tA man "plays".\\tA man plays.\\n')
    >>> pairs = read_stsb(folder / "sts-dev.csv")
    >>> pairs.sentences1, pairs.scores, pairs.score_max
    (['A man "plays".'], [5.0], 5.0)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from poolkit.data.text import read_lines, read_rows
from poolkit.errors import DataFormatError

__all__ = [
    "STSB_FILES",
    "SentencePairs",
    "load_sentence_pairs",
    "read_pairs_file",
    "read_sentence_pairs",
    "read_stsb",
]

STSB_COLUMNS = 7  # genre, file, year, id, score, sentence 1, sentence 2 (+ optional extras)
STSB_FILES = {"train": "sts-train.csv", "dev": "sts-dev.csv", "test": "sts-test.csv"}
# The split names of the hub data sets saved to files (validation = dev).
_HUB_NAMES = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}


@dataclass
class SentencePairs:
    """Pairs ``(sentences1[i], sentences2[i])`` with a gold similarity ``scores[i]``.

    ``score_max`` is the top of the score scale (5 for the STS Benchmark, 1 for
    ``sentence-transformers/stsb``); ``scores[i] / score_max`` is the target cosine of a
    cosine-similarity loss. ``meta`` holds per-pair extras (``genre`` for STS-B).
    """

    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]
    score_max: float = 5.0
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {len(self.sentences1), len(self.sentences2), len(self.scores)}
        if len(sizes) != 1:
            raise ValueError(
                f"sentences1 ({len(self.sentences1)}), sentences2 ({len(self.sentences2)}) and "
                f"scores ({len(self.scores)}) must have the same length"
            )
        if not (isinstance(self.score_max, (int, float)) and self.score_max > 0):
            raise ValueError(f"score_max ({self.score_max!r}) must be a positive number")

    def __len__(self) -> int:
        return len(self.scores)

    def subset(self, indices: Iterable[int]) -> SentencePairs:
        """The pairs at ``indices``, in that order."""
        indices = [int(i) for i in indices]
        meta = {key: [values[i] for i in indices] for key, values in self.meta.items()}
        return SentencePairs(
            [self.sentences1[i] for i in indices],
            [self.sentences2[i] for i in indices],
            [self.scores[i] for i in indices],
            self.score_max,
            self.source,
            meta,
        )

    @property
    def sentences(self) -> list[str]:
        """Every distinct sentence of both columns, in first-seen order (to embed each once)."""
        return list(dict.fromkeys(self.sentences1 + self.sentences2))


def _score(text: str, path, number: int, score_max: float | None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(path, number, f"score {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (score_max is not None and value > score_max):
        top = "" if score_max is None else f" and {score_max:g}"
        raise DataFormatError(path, number, f"score {text!r} must be between 0{top}")
    return value


def _sentence(text: str, path, number: int, which: str) -> str:
    text = text.strip()
    if not text:
        raise DataFormatError(path, number, f"{which} is empty")
    return text


def read_stsb(path: str | os.PathLike) -> SentencePairs:
    """One STS Benchmark file (``sts-train.csv``, ``sts-dev.csv`` or ``sts-test.csv``).

    Tab-separated without quoting; at least 7 columns (extra trailing ones are ignored); the
    score (column 5) must be a number from 0 to 5 and both sentences non-empty. Blank lines are
    skipped; stray control characters are kept as they are (the train split has a ``0x12`` for
    an apostrophe; tokenizers drop it), a NUL byte is an error. ``meta["genre"]`` holds the
    first column (``main-news``, ``main-captions``…).
    """
    path = Path(path)
    first, second, scores, genres = [], [], [], []
    for number, line in enumerate(read_lines(path, control_characters=True), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < STSB_COLUMNS:
            raise DataFormatError(
                path, number, f"expected at least {STSB_COLUMNS} tab-separated columns (genre, "
                f"file, year, id, score, sentence 1, sentence 2), got {len(columns)}"
            )
        scores.append(_score(columns[4], path, number, 5.0))
        first.append(_sentence(columns[5], path, number, "sentence 1"))
        second.append(_sentence(columns[6], path, number, "sentence 2"))
        genres.append(columns[0])
    if not scores:
        raise DataFormatError(path, None, "file has no sentence pairs")
    return SentencePairs(first, second, scores, 5.0, str(path), {"genre": genres})


def read_sentence_pairs(
    path: str | os.PathLike,
    *,
    sentence1: str = "sentence1",
    sentence2: str = "sentence2",
    score: str = "score",
    delimiter: str | None = None,
    score_max: float | None = None,
) -> SentencePairs:
    """A CSV or TSV file with a header and the columns ``sentence1``, ``sentence2``, ``score``.

    ``delimiter``: tab for ``.tsv``/``.tab`` files, else comma (CSV quoting honoured).
    ``score_max``: the top of the score scale; ``None`` infers 1 when every score is at most
    1 (``sentence-transformers/stsb``), else 5 (``mteb/stsbenchmark-sts``). Scores must be
    numbers from 0 to ``score_max``.
    """
    path = Path(path)
    rows, row_lines, delimiter = read_rows(path, delimiter=delimiter, quoting=True)
    if not rows:
        raise DataFormatError(path, None, "file is empty")
    header = [name.strip() for name in rows[0]]
    wanted = {"sentence1": sentence1, "sentence2": sentence2, "score": score}
    missing = [name for name in wanted.values() if name not in header]
    if missing:
        raise DataFormatError(
            path, 1, f"header {header} has no column {', '.join(map(repr, missing))} "
            "(pass sentence1=, sentence2=, score= to name yours)"
        )
    index = {key: header.index(name) for key, name in wanted.items()}
    first, second, raw_scores = [], [], []
    for number, row in zip(row_lines[1:], rows[1:], strict=True):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise DataFormatError(path, number, f"expected {len(header)} columns, got {len(row)}")
        raw_scores.append((_score(row[index["score"]], path, number, score_max), number))
        first.append(_sentence(row[index["sentence1"]], path, number, sentence1))
        second.append(_sentence(row[index["sentence2"]], path, number, sentence2))
    if not first:
        raise DataFormatError(path, None, "file has no sentence pairs")
    scores = [value for value, _ in raw_scores]
    if score_max is None:
        score_max = 1.0 if max(scores) <= 1 else 5.0
        value, number = max(raw_scores)
        if value > score_max:
            raise DataFormatError(path, number, f"score {value:g} must be between 0 and 5")
    return SentencePairs(first, second, scores, float(score_max), str(path))


def read_pairs_file(path: str | os.PathLike, **columns: str) -> SentencePairs:
    """An STS Benchmark file or a pair file with a header, told apart by the first line: 7 or
    more tab-separated fields and none of the column names -> :func:`read_stsb`, else
    :func:`read_sentence_pairs` (``columns``: its ``sentence1``/``sentence2``/``score``)."""
    path = Path(path)
    lines = read_lines(path, control_characters=True)
    first = next((line for line in lines if line.strip()), "")
    names = {"sentence1", "sentence2", "score", *columns.values()}
    fields = {field.strip() for field in first.split("\t")}
    if len(first.split("\t")) >= STSB_COLUMNS and not names & fields:
        return read_stsb(path)
    return read_sentence_pairs(path, **columns)


def load_sentence_pairs(path: str | os.PathLike) -> dict[str, SentencePairs]:
    """``{"train", "dev", "test"}`` pairs of a folder.

    Either the STS Benchmark's ``sts-train.csv``, ``sts-dev.csv``, ``sts-test.csv``, or files
    named ``train``, ``dev`` or ``validation``, ``test`` with a ``.tsv`` or ``.csv`` suffix (a
    hub data set saved split by split). Every split must be there. A Hugging Face data set
    (``hf:NAME[/CONFIG]``, or a ``save_to_disk`` folder) with ``sentence1``, ``sentence2`` and
    ``score`` columns is read by :func:`poolkit.data.hf.hf_splits` (validation = dev).
    """
    from poolkit.data import hf

    if hf.is_hf_source(path):
        return _hub_pairs(path)
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"STS data folder {folder} does not exist (it needs sts-train.csv, sts-dev.csv and "
            "sts-test.csv, or train/validation/test .tsv/.csv files)"
        )
    splits = {}
    for split, stsb_name in STSB_FILES.items():
        if (folder / stsb_name).is_file():
            splits[split] = read_stsb(folder / stsb_name)
            continue
        found = [folder / f"{stem}{suffix}" for stem in _HUB_NAMES[split]
                 for suffix in (".tsv", ".csv")]
        found = [candidate for candidate in found if candidate.is_file()]
        if not found:
            names = " or ".join(f"{stem}.tsv/.csv" for stem in _HUB_NAMES[split])
            raise FileNotFoundError(f"STS data folder {folder} has no {stsb_name} and no {names}")
        splits[split] = read_sentence_pairs(found[0])
    return splits


def _hub_pairs(source) -> dict[str, SentencePairs]:
    """The train/dev/test pairs of a Hugging Face data set (scores 0-1 or 0-5, as in
    :func:`read_sentence_pairs`)."""
    from poolkit.data import hf

    found = hf.hf_splits(source)
    splits = {}
    for split in STSB_FILES:
        if split not in found:
            raise DataFormatError(hf.strip_prefix(source), None, f"no {split} split (needs "
                                  f"train, validation and test); has {sorted(found)}")
        name, dataset = found[split]
        where = f"{hf.strip_prefix(source)}[{name}]"
        missing = [c for c in ("sentence1", "sentence2", "score") if c not in dataset.column_names]
        if missing:
            raise DataFormatError(where, None, f"no column {', '.join(map(repr, missing))}; the "
                                               f"columns are {dataset.column_names}")
        scores = [float(value) for value in dataset["score"]]
        splits[split] = SentencePairs(
            [str(s).strip() for s in dataset["sentence1"]],
            [str(s).strip() for s in dataset["sentence2"]], scores, source=where,
            score_max=1.0 if max(scores, default=0.0) <= 1 else 5.0)
    top = max(part.score_max for part in splits.values())
    for part in splits.values():
        part.score_max = top  # one scale for every split
    return splits
