"""Torch data sets and collate functions (the shared batch interface).

A data set yields examples (dicts); a collate function turns a list of them into the batch
``dict[str, Tensor]`` a classifier takes as ``model(**inputs)``, plus ``"labels"``:

- text: ``{"input_ids": LongTensor (B, T), "labels": LongTensor (B,)}`` (right-padded with
  ``pad_id``; optionally ``"attention_mask"`` (B, T), 1 for real tokens)
- images: ``{"images": FloatTensor (B, C, H, W), "labels": LongTensor (B,)}``

Collate functions are module-level classes, so they pickle (DataLoader workers, ``compare``).

Example:
    >>> import torch
    >>> data = TextDataset([[5, 6, 7], [8]], [1, 0])
    >>> batch = TextCollator(pad_id=0, min_length=2)([data[0], data[1]])
    >>> batch["input_ids"].tolist(), batch["labels"].tolist()
    ([[5, 6, 7], [8, 0, 0]], [1, 0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "TextDataset",
    "ImageDataset",
    "TextCollator",
    "ImageCollator",
    "collate_images",
    "pad_sequences",
]


class TextDataset(Dataset):
    """Token-id sequences with labels; ``dataset[i] -> {"input_ids": list[int], "labels": int}``."""

    def __init__(self, input_ids: Sequence[Sequence[int]], labels: Sequence[int]):
        if len(input_ids) != len(labels):
            raise ValueError(
                f"input_ids ({len(input_ids)}) and labels ({len(labels)}) differ in length"
            )
        self.input_ids = [list(ids) for ids in input_ids]
        self.labels = [int(y) for y in labels]
        self.lengths = [len(ids) for ids in self.input_ids]  # for length-grouped batching

    @classmethod
    def from_texts(cls, texts: Sequence[str], labels: Sequence[int], encoder) -> TextDataset:
        """Encode ``texts`` with a :class:`poolkit.data.TextEncoder` (or any ``str -> ids``)."""
        return cls([encoder(t) for t in texts], labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


class ImageDataset(Dataset):
    """Images ``(N, C, H, W)`` with labels;
    ``dataset[i] -> {"images": (C, H, W), "labels": int}``."""

    def __init__(self, images, labels):
        self.images = torch.as_tensor(np.asarray(images, dtype=np.float32))
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"images ({len(self.images)}) and labels ({len(self.labels)}) differ in length"
            )

    @classmethod
    def from_data(cls, data) -> ImageDataset:
        """From a :class:`poolkit.data.ImageData`."""
        return cls(data.images, data.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"images": self.images[index], "labels": self.labels[index]}


def pad_sequences(
    sequences: Sequence[Sequence[int]],
    pad_id: int = 0,
    max_length: int | None = None,
    min_length: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (and truncate to ``max_length``) into ``(ids (B, T), mask (B, T))`` with
    ``T = max(min(longest, max_length), min_length)``; ``mask`` is 1 on real tokens."""
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length ({max_length}) must be at least 1 or None")
    longest = max((len(s) for s in sequences), default=0)
    if max_length is not None:
        longest = min(longest, max_length)
    length = max(longest, min_length, 1)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        sequence = list(sequence[:max_length] if max_length is not None else sequence)
        ids[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask


class TextCollator:
    """Collate text examples into ``{"input_ids": (B, T), "labels": (B,)}``.

    Args:
        pad_id: id written after the end of shorter sequences.
        max_length: truncate longer sequences (``None``: keep all).
        min_length: pad every batch to at least this length (a TextCNN needs its widest filter).
        attention_mask: also return ``"attention_mask"`` (B, T).
    """

    def __init__(
        self,
        pad_id: int = 0,
        max_length: int | None = None,
        min_length: int = 1,
        attention_mask: bool = False,
    ):
        self.pad_id = pad_id
        self.max_length = max_length
        self.min_length = min_length
        self.attention_mask = attention_mask

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        ids, mask = pad_sequences(
            [e["input_ids"] for e in examples], self.pad_id, self.max_length, self.min_length
        )
        batch = {"input_ids": ids, "labels": torch.as_tensor([int(e["labels"]) for e in examples])}
        if self.attention_mask:
            batch["attention_mask"] = mask
        return batch


def collate_images(examples: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Stack image examples into ``{"images": (B, C, H, W), "labels": (B,)}``."""
    return {
        "images": torch.stack([torch.as_tensor(e["images"]) for e in examples]),
        "labels": torch.as_tensor([int(e["labels"]) for e in examples], dtype=torch.long),
    }


class ImageCollator:
    """:func:`collate_images` as a class, for symmetry with :class:`TextCollator`."""

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        return collate_images(examples)
