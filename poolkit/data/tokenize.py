"""Tokenisers, vocabulary and the text encoder a checkpoint carries.

- :class:`WordTokenizer`: Kim (2014)-style cleaning (``clean_str``: keep letters, digits and a
  little punctuation, split clitics such as ``'s`` and ``n't``, lower-case), then split on spaces.
- :class:`CharTokenizer`: one token per character, whitespace dropped (for Chinese).
- :class:`Vocab`: tokens by frequency (ties alphabetical, so the ids are deterministic), with
  ``min_freq`` and ``max_size``; ``<pad>`` = 0 and ``<unk>`` = 1.
- :class:`TextEncoder`: tokeniser + vocabulary + truncation, serialisable to JSON.

Example:
    >>> tokenizer = WordTokenizer()
    >>> tokenizer("It isn't bad, it's GOOD!")
    ['it', 'is', "n't", 'bad', ',', 'it', "'s", 'good', '!']
    >>> vocab = Vocab.build([["a", "b", "a"], ["a", "c"]], min_freq=2)
    >>> vocab.tokens, vocab.encode(["a", "b"])
    (['<pad>', '<unk>', 'a'], [2, 1])
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = [
    "PAD",
    "UNK",
    "clean_str",
    "WordTokenizer",
    "CharTokenizer",
    "make_tokenizer",
    "Vocab",
    "TextEncoder",
]

PAD = "<pad>"
UNK = "<unk>"

_NOT_KEPT = re.compile(r"[^A-Za-z0-9(),!?'`]")
_CLITICS = re.compile(r"('s|'ve|n't|'re|'d|'ll)\b")
_PUNCTUATION = re.compile(r"([,!?()])")
_SPACES = re.compile(r"\s+")


def clean_str(text: str, lower: bool = True) -> str:
    """Kim (2014)'s cleaning for English sentences: anything but ``A-Za-z0-9(),!?'``` becomes a
    space; clitics (``'s 've n't 're 'd 'll``) and ``, ! ? ( )`` become separate tokens.

    >>> clean_str("Don't panic -- it's fine (really)!")
    "do n't panic it 's fine ( really ) !"
    """
    text = _NOT_KEPT.sub(" ", text)
    text = _CLITICS.sub(r" \1", text)
    text = _PUNCTUATION.sub(r" \1 ", text)
    text = _SPACES.sub(" ", text).strip()
    return text.lower() if lower else text


class WordTokenizer:
    """Split on whitespace after :func:`clean_str` (``clean=False``: only lower-case/split)."""

    kind = "word"

    def __init__(self, lower: bool = True, clean: bool = True):
        self.lower = lower
        self.clean = clean

    def __call__(self, text: str) -> list[str]:
        if self.clean:
            return clean_str(text, lower=self.lower).split()
        return (text.lower() if self.lower else text).split()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lower": self.lower, "clean": self.clean}


class CharTokenizer:
    """One token per character; whitespace is dropped. Suited to Chinese, where a character is
    roughly a morpheme and no word segmenter is needed."""

    kind = "char"

    def __init__(self, lower: bool = True):
        self.lower = lower

    def __call__(self, text: str) -> list[str]:
        text = text.lower() if self.lower else text
        return [c for c in text if not c.isspace()]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lower": self.lower}


def make_tokenizer(spec: str | dict) -> WordTokenizer | CharTokenizer:
    """A tokeniser from its name (``"word"``, ``"char"``) or its :meth:`to_dict`."""
    if isinstance(spec, str):
        spec = {"kind": spec}
    options = dict(spec)
    kind = options.pop("kind", None)
    if kind == "word":
        return WordTokenizer(**options)
    if kind == "char":
        return CharTokenizer(**options)
    raise ValueError(f"tokenizer ({kind!r}) must be one of ['char', 'word']")


class Vocab:
    """Token <-> id table; ``<pad>`` is id 0 and ``<unk>`` id 1."""

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"tokens must start with {[PAD, UNK]}, got {tokens[:2]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens has duplicates")
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}

    pad_id = 0
    unk_id = 1

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Vocabulary of the tokens seen at least ``min_freq`` times, most frequent first
        (ties alphabetical), at most ``max_size`` entries including the two special tokens."""
        if min_freq < 1:
            raise ValueError(f"min_freq ({min_freq}) must be at least 1")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size ({max_size}) must be at least 2 (room for {PAD}, {UNK})")
        counts = Counter(token for tokens in token_lists for token in tokens)
        for special in (PAD, UNK):
            counts.pop(special, None)
        ranked = sorted(
            (token for token, count in counts.items() if count >= min_freq),
            key=lambda token: (-counts[token], token),
        )
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index.get(token, self.unk_id) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


class TextEncoder:
    """Text -> token ids: tokenise, look up, truncate to ``max_length`` (``None``: no limit).

    Serialises with :meth:`to_dict` (tokeniser options + the token list) so that a checkpoint's
    ``poolkit_config.json`` can rebuild it with :meth:`from_dict`.
    """

    def __init__(self, tokenizer, vocab: Vocab, max_length: int | None = None):
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length ({max_length}) must be at least 1 or None")
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.max_length = max_length

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        tokenizer: str | dict = "word",
        min_freq: int = 1,
        max_size: int | None = None,
        max_length: int | None = None,
    ) -> TextEncoder:
        """Build the vocabulary on ``texts`` (the training split only)."""
        tokenize = make_tokenizer(tokenizer)
        vocab = Vocab.build((tokenize(t) for t in texts), min_freq=min_freq, max_size=max_size)
        return cls(tokenize, vocab, max_length)

    @property
    def pad_id(self) -> int:
        return self.vocab.pad_id

    def __call__(self, text: str) -> list[int]:
        ids = self.vocab.encode(self.tokenizer(text))
        if self.max_length is not None:
            ids = ids[: self.max_length]
        return ids

    def encode_all(self, texts: Iterable[str]) -> list[list[int]]:
        return [self(text) for text in texts]

    def to_dict(self) -> dict:
        return {
            "tokenizer": self.tokenizer.to_dict(),
            "max_length": self.max_length,
            "vocab": list(self.vocab.tokens),
        }

    @classmethod
    def from_dict(cls, payload: dict) -> TextEncoder:
        return cls(
            make_tokenizer(payload["tokenizer"]), Vocab(payload["vocab"]), payload.get("max_length")
        )
