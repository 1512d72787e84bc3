"""Pretrained word vectors (word2vec text or binary, GloVe) for a vocabulary — Kim's CNN-static
and CNN-non-static start from them.

Text format: one word and its numbers per line, separated by spaces, optionally after a
``count dim`` header line (word2vec) — GloVe files have no header. Binary format (``.bin``,
word2vec's GoogleNews vectors): a ``count dim`` header line, then for each word its bytes, a
space and ``dim`` little-endian float32. Only words in the vocabulary are kept; words without a
vector get ``U(-a, a)`` as in Kim's code, ``<pad>`` gets zeros.

Example:
    >>> import pathlib, tempfile
    >>> from poolkit.data.tokenize import Vocab
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.txt"
    >>> _ = path.write_text("good 1 2\\nbad -1 0\\n")
    >>> vectors, found = read_word_vectors(path, Vocab(["<pad>", "<unk>", "good"]))
    >>> vectors.shape, found, vectors[2].tolist()
    ((3, 2), 1, [1.0, 2.0])
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from poolkit.data.text import open_bytes
from poolkit.data.tokenize import Vocab
from poolkit.errors import DataFormatError

__all__ = ["read_word_vectors"]


def read_word_vectors(
    path: str | os.PathLike,
    vocab: Vocab,
    *,
    init_range: float = 0.25,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """``(vectors (len(vocab), dim) float32, number of vocabulary words found)``."""
    path = Path(path)
    raw = open_bytes(path)
    if path.name.lower().removesuffix(".gz").endswith(".bin"):
        found_vectors, dim = _read_binary(raw, path, vocab)
    else:
        found_vectors, dim = _read_text(raw, path, vocab)
    rng = np.random.default_rng(seed)
    vectors = rng.uniform(-init_range, init_range, (len(vocab), dim)).astype(np.float32)
    for index, vector in found_vectors.items():
        vectors[index] = vector
    vectors[vocab.pad_id] = 0.0
    return vectors, len(found_vectors)


def _read_text(raw: bytes, path: Path, vocab: Vocab) -> tuple[dict[int, np.ndarray], int]:
    lines = raw.split(b"\n")
    dim = None
    found: dict[int, np.ndarray] = {}
    for number, line in enumerate(lines, start=1):
        parts = line.rstrip(b"\r").split(b" ")
        parts = [p for p in parts if p]
        if not parts:
            continue
        if number == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            dim = int(parts[1])  # word2vec header "count dim"
            continue
        if dim is None:
            dim = len(parts) - 1
        if len(parts) != dim + 1:
            raise DataFormatError(path, number, f"expected a word and {dim} numbers, got "
                                  f"{len(parts) - 1} numbers")
        try:
            word = parts[0].decode("utf-8")
        except UnicodeDecodeError:
            raise DataFormatError(path, number, "word is not UTF-8") from None
        index = vocab.index.get(word)
        if index is None:
            continue
        try:
            found[index] = np.asarray([float(p) for p in parts[1:]], dtype=np.float32)
        except ValueError:
            raise DataFormatError(path, number, "vector has a value that is not a number") from None
    if dim is None or dim < 1:
        raise DataFormatError(path, None, "no vectors")
    return found, dim


def _read_binary(raw: bytes, path: Path, vocab: Vocab) -> tuple[dict[int, np.ndarray], int]:
    end = raw.find(b"\n")
    header = raw[:end].split()
    if end < 0 or len(header) != 2 or not all(h.isdigit() for h in header):
        raise DataFormatError(path, 1, "binary word2vec needs a 'count dim' header line")
    count, dim = int(header[0]), int(header[1])
    position = end + 1
    found: dict[int, np.ndarray] = {}
    for entry in range(count):
        space = raw.find(b" ", position)
        if space < 0 or space + 1 + 4 * dim > len(raw):
            raise DataFormatError(path, None, f"truncated at vector {entry + 1} of {count}")
        word = raw[position:space].strip().decode("utf-8", errors="replace")
        start = space + 1
        vector = np.frombuffer(raw, dtype="<f4", count=dim, offset=start)
        position = start + 4 * dim
        index = vocab.index.get(word)
        if index is not None:
            found[index] = vector.astype(np.float32)
    return found, dim
