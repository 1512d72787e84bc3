"""Tokenisers, vocabulary, padding, collate, stratified splits and k-fold."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolkit.data import (
    CharTokenizer,
    TextEncoder,
    Vocab,
    WordTokenizer,
    clean_str,
    stratified_kfold,
    stratified_split,
    stratified_subset,
)
from poolkit.data.dataset import TextCollator, TextDataset, collate_images, pad_sequences
from poolkit.data.vectors import read_word_vectors
from poolkit.errors import DataFormatError


def test_clean_str_like_kim():
    assert clean_str("It's a \"great\" film, isn't it?!") == "it 's a great film , is n't it ? !"
    assert clean_str("We've (really) LOVED   it") == "we 've ( really ) loved it"
    assert clean_str("café") == "caf"  # non-ASCII letters are dropped, as in Kim's code


def test_char_tokenizer_for_chinese():
    assert CharTokenizer()("很 好看！") == ["很", "好", "看", "！"]
    assert WordTokenizer(clean=False)("A b") == ["a", "b"]


def test_vocab_frequency_order_min_freq_and_max_size():
    tokens = [["b", "a", "a"], ["c", "b", "a"], ["d"]]
    vocab = Vocab.build(tokens)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]  # ties alphabetical
    assert Vocab.build(tokens, min_freq=2).tokens == ["<pad>", "<unk>", "a", "b"]
    assert Vocab.build(tokens, max_size=3).tokens == ["<pad>", "<unk>", "a"]
    assert vocab.encode(["a", "zzz", "d"]) == [2, 1, 5]
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(tokens, min_freq=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build(tokens, max_size=1)


def test_text_encoder_round_trip_and_truncation():
    encoder = TextEncoder.fit(["a good film", "a bad film"], max_length=2)
    index = encoder.vocab.index
    assert encoder("a good film") == [index["a"], index["good"]]  # truncated to 2
    again = TextEncoder.from_dict(encoder.to_dict())
    assert again("bad unknown words") == encoder("bad unknown words") == [
        encoder.vocab.index["bad"], 1
    ]


def test_pad_sequences_lengths():
    ids, mask = pad_sequences([[3, 4, 5], [6]], pad_id=0)
    assert ids.tolist() == [[3, 4, 5], [6, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, _ = pad_sequences([[3, 4, 5], [6]], max_length=2)
    assert ids.tolist() == [[3, 4], [6, 0]]
    ids, _ = pad_sequences([[3], []], min_length=5)
    assert ids.shape == (2, 5)
    with pytest.raises(ValueError, match="max_length"):
        pad_sequences([[1]], max_length=0)


def test_collate_shapes_and_dtypes():
    data = TextDataset([[5, 6, 7], [8]], [1, 0])
    batch = TextCollator(attention_mask=True)([data[0], data[1]])
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    assert batch["labels"].dtype == batch["input_ids"].dtype and batch["labels"].shape == (2,)
    images = collate_images([{"images": np.zeros((1, 2, 2), np.float32), "labels": 3}] * 4)
    assert images["images"].shape == (4, 1, 2, 2) and images["labels"].tolist() == [3] * 4


labels_strategy = st.lists(st.integers(0, 3), min_size=12, max_size=80)


@given(labels=labels_strategy, k=st.integers(2, 6), seed=st.integers(0, 5))
def test_kfold_partitions_and_stratifies(labels, k, seed):
    folds = stratified_kfold(labels, k=k, seed=seed)
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests.tolist()) == list(range(len(labels)))  # disjoint and covering
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    counts = Counter(labels)
    for _, test in folds:
        in_fold = Counter(labels[i] for i in test)
        for label, count in counts.items():  # each class within one of its exact share
            assert abs(in_fold[label] - count / k) < 1
    again = stratified_kfold(labels, k=k, seed=seed)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


@given(labels=labels_strategy, fraction=st.floats(0.2, 0.8), seed=st.integers(0, 5))
def test_stratified_split_properties(labels, fraction, seed):
    try:
        train, test = stratified_split(labels, fraction, seed)
    except ValueError:
        return  # a part would be empty: refused, not silently wrong
    assert sorted([*train, *test]) == list(range(len(labels)))
    for label, count in Counter(labels).items():
        assert sum(labels[i] == label for i in test) == round(fraction * count)


@given(labels=labels_strategy, seed=st.integers(0, 3), data=st.data())
def test_stratified_subset_exact_size_and_nested(labels, seed, data):
    small = data.draw(st.integers(1, len(labels)))
    large = data.draw(st.integers(small, len(labels)))
    a, b = stratified_subset(labels, small, seed), stratified_subset(labels, large, seed)
    assert len(a) == small and len(b) == large and set(a) <= set(b)


def test_split_argument_errors():
    with pytest.raises(ValueError, match="k"):
        stratified_kfold([0, 1, 0], k=5)
    with pytest.raises(TypeError, match="k"):
        stratified_kfold([0, 1, 0], k=2.0)
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split([0, 1], 1.5)


def test_word_vectors_text_header_binary_and_errors(tmp_path):
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "rare"])
    (tmp_path / "glove.txt").write_text("good 1 2 3\nbad -1 0 0.5\nother 9 9 9\n")
    vectors, found = read_word_vectors(tmp_path / "glove.txt", vocab, init_range=0.25)
    assert vectors.shape == (5, 3) and found == 2
    assert vectors[2].tolist() == [1, 2, 3] and vectors[3].tolist() == [-1, 0, 0.5]
    assert not vectors[0].any() and np.abs(vectors[4]).max() <= 0.25  # pad zero, rare random
    (tmp_path / "w2v.txt").write_text("2 3\ngood 1 2 3\nbad -1 0 0.5\n")
    assert np.array_equal(read_word_vectors(tmp_path / "w2v.txt", vocab)[0][2:4], vectors[2:4])
    body = b"".join(w + b" " + np.asarray(v, "<f4").tobytes() + b"\n"
                    for w, v in ((b"bad", [-1, 0, 0.5]), (b"good", [1, 2, 3])))
    (tmp_path / "w2v.bin").write_bytes(b"2 3\n" + body)
    binary, found = read_word_vectors(tmp_path / "w2v.bin", vocab)
    assert found == 2 and np.array_equal(binary[2:4], vectors[2:4])
    (tmp_path / "cut.bin").write_bytes(b"2 3\n" + body[:-8])
    with pytest.raises(DataFormatError, match="truncated"):
        read_word_vectors(tmp_path / "cut.bin", vocab)
    (tmp_path / "bad.txt").write_text("good 1 2 3\nbad 1 2\n")
    with pytest.raises(DataFormatError) as info:
        read_word_vectors(tmp_path / "bad.txt", vocab)
    assert info.value.line == 2
