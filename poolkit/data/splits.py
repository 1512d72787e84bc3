"""Seeded, stratified splits and k-fold cross-validation (NumPy only).

Stratified means every class is spread over the parts in proportion: each class's indices are
shuffled with the seed and dealt out, so a part's class counts differ from the exact proportion by
less than one example per class. The same ``(labels, seed)`` always gives the same split.

Example:
    >>> labels = [0] * 6 + [1] * 4
    >>> train, test = stratified_split(labels, test_fraction=0.5, seed=0)
    >>> sorted(labels[i] for i in test)
    [0, 0, 0, 1, 1]
    >>> [len(test) for _, test in stratified_kfold(labels, k=5, seed=0)]
    [2, 2, 2, 2, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["stratified_split", "stratified_kfold", "stratified_subset"]


def _class_indices(labels: Sequence[int], seed: int) -> list[np.ndarray]:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-d, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]


def stratified_split(
    labels: Sequence[int], test_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` with ``round(test_fraction * n_c)`` examples of each class ``c``
    in ``test``. Both sorted ascending."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction ({test_fraction}) must be strictly between 0 and 1")
    train, test = [], []
    for members in _class_indices(labels, seed):
        cut = int(round(test_fraction * len(members)))
        test.append(members[:cut])
        train.append(members[cut:])
    train_idx = np.sort(np.concatenate(train)) if train else np.zeros(0, np.int64)
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    if len(labels) and (len(train_idx) == 0 or len(test_idx) == 0):
        raise ValueError(
            f"test_fraction ({test_fraction}) leaves an empty part for {len(labels)} examples"
        )
    return train_idx, test_idx


def stratified_kfold(
    labels: Sequence[int], k: int = 10, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` pairs ``(train, test)``: the test parts are disjoint and cover every index once,
    each class dealt round-robin over the folds (continuing where the previous class stopped, so
    fold sizes differ by at most one)."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    n = len(labels)
    if k < 2 or k > n:
        raise ValueError(f"k ({k}) must be between 2 and the number of examples ({n})")
    fold_of = np.empty(n, dtype=np.int64)
    start = 0
    for members in _class_indices(labels, seed):
        fold_of[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    folds = []
    for fold in range(k):
        in_fold = fold_of == fold
        folds.append((np.flatnonzero(~in_fold), np.flatnonzero(in_fold)))
    return folds


def stratified_subset(labels: Sequence[int], size: int, seed: int = 0) -> np.ndarray:
    """Exactly ``size`` indices (sorted) keeping the class proportions, for quick runs on part of
    a data set. Each class's shuffled members are ranked by ``(i + 0.5) / n_c`` and the ``size``
    lowest ranks are kept, so a smaller subset is contained in a larger one (same seed)."""
    n = len(labels)
    if not 1 <= size <= n:
        raise ValueError(f"size ({size}) must be between 1 and the number of examples ({n})")
    members = _class_indices(labels, seed)
    order = np.concatenate(members)
    rank = np.concatenate([(np.arange(len(m)) + 0.5) / len(m) for m in members])
    keep = order[np.argsort(rank, kind="stable")[:size]]
    return np.sort(keep)
