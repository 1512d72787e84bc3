"""A Keras 3 TextCNN (Kim 2014) whose pooling over time is any poolkit.keras family.

    KERAS_BACKEND=jax python examples/keras_textcnn.py --data rt-polaritydata --pool max

``--data`` is the MR sentence-polarity folder (rt-polarity.pos / rt-polarity.neg) from
https://www.cs.cornell.edu/people/pabo/movie-review-data/ (rt-polaritydata.tar.gz). The split
is a fixed 90/10 stratified one (seed 0); the script prints the test accuracy.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np

import poolkit.keras as pk
from poolkit.data.text import read_mr
from poolkit.data.tokenize import WordTokenizer


def encode(texts, max_length=56, min_count=1):
    tokenize = WordTokenizer()
    tokens = [tokenize(text)[:max_length] for text in texts]
    counts = {}
    for sentence in tokens:
        for token in sentence:
            counts[token] = counts.get(token, 0) + 1
    vocab = {t: i + 2 for i, t in enumerate(sorted(t for t, c in counts.items() if c >= min_count))}
    ids = np.zeros((len(texts), max_length), np.int32)  # 0 = padding, 1 = unknown
    for row, sentence in enumerate(tokens):
        ids[row, :len(sentence)] = [vocab.get(t, 1) for t in sentence]
    return ids, len(vocab) + 2


def text_cnn(vocab_size, length, pool="max", widths=(3, 4, 5), filters=100, **pool_args):
    inputs = keras.Input((length,), dtype="int32")
    embedded = keras.layers.Embedding(vocab_size, 128)(inputs)
    branches = []
    for width in widths:
        features = keras.layers.Conv1D(filters, width, activation="relu")(embedded)
        branches.append(pk.create_pool(pool, dims=1, **pool_args)(features))  # (N, C*feat_mult)
    merged = keras.layers.Dropout(0.5)(keras.layers.Concatenate()(branches))
    return keras.Model(inputs, keras.layers.Dense(2)(merged))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the rt-polaritydata folder")
    parser.add_argument("--pool", default="max", help="a poolkit pool name (max, kmax, lse...)")
    parser.add_argument("--k", type=int, default=None, help="k for --pool kmax")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="use only this many sentences")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    data = read_mr(args.data)
    texts, labels = list(data.texts), np.array(data.labels)
    order = np.random.default_rng(0).permutation(len(texts))[:args.limit]
    ids, vocab_size = encode([texts[i] for i in order])
    labels = labels[order]
    test = np.zeros(len(order), bool)
    for label in (0, 1):  # a stratified 10% test split
        members = np.flatnonzero(labels == label)
        test[members[: len(members) // 10]] = True
    pool_args = {"k": args.k} if args.k else {}
    model = text_cnn(vocab_size, ids.shape[1], args.pool, **pool_args)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ids[~test], labels[~test], batch_size=50, epochs=args.epochs, verbose=2)
    _, accuracy = model.evaluate(ids[test], labels[test], verbose=0)
    print(f"test accuracy ({args.pool}, {test.sum()} sentences): {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
