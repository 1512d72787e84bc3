"""From a data set to a trained, evaluated classifier in one call: what ``poolkit train`` and
``benchmarks/reproduce_classic.py`` run.

- :func:`prepare` — fit the text encoder on the training split (vocabulary of the training texts
  only), build the torch data sets, the collate function, the model (pool by name) and the
  checkpoint metadata.
- :func:`fit_and_evaluate` — :func:`prepare`, :class:`~poolkit.train.Trainer` ``.fit()`` with early
  stopping on dev, then the test split.
- :func:`cross_validate` — stratified, seeded k-fold CV (Kim 2014 for MR: 10 folds, 10% of each
  training part as dev); per-fold folders under ``out_dir`` and resumable fold by fold.

Example:
    >>> from poolkit.data import load_dataset
    >>> from poolkit.train import TrainConfig
    >>> data = load_dataset("digits").train
    >>> report = cross_validate("convnet", data, folds=2, train_config=TrainConfig(
    ...     epochs=1, progress=False), model_options={"channels": (4,)})  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poolkit.data.catalog import DataBundle
from poolkit.data.images import ImageData
from poolkit.data.splits import stratified_kfold, stratified_split, stratified_subset
from poolkit.data.text import TextData
from poolkit.data.tokenize import TextEncoder
from poolkit.train.checkpoint import atomic_write_json, load_state, save_state
from poolkit.train.distributed import set_seed
from poolkit.train.trainer import TrainConfig, Trainer, TrainResult, check_run_folder

__all__ = [
    "TEXT_MODELS",
    "IMAGE_MODELS",
    "TextOptions",
    "Prepared",
    "model_kind",
    "prepare",
    "Split",
    "run_splits",
    "row_fingerprints",
    "read_train_fingerprints",
    "TRAIN_ROWS_STEM",
    "FitOutcome",
    "fit_and_evaluate",
    "cross_validate",
]

TEXT_MODELS = ("textcnn", "transformer")
IMAGE_MODELS = ("convnet", "metaformer")


@dataclass
class TextOptions:
    """How text becomes token ids (TextCNN; the transformer uses its own tokenizer).

    Attributes:
        tokenizer: ``"word"`` (lower-cased, split after Kim's ``clean_str``) or ``"char"`` (one
            token per character, whitespace dropped: Chinese); default ``"word"``.
        min_freq: keep the training tokens seen at least this many times (default 1, >= 1).
        max_vocab: at most this many vocabulary entries, the most frequent, counting ``<pad>``
            and ``<unk>`` (``None``, the default: no limit; >= 2).
        max_length: cut every text to its first ``max_length`` tokens (``None``: no cut).
        vectors: a word2vec (``.bin``) or GloVe/text file of pretrained vectors for the
            initial embeddings (Kim's CNN-static / non-static); it sets ``embed_dim``
            (``None``: random embeddings).
    """

    tokenizer: str = "word"  # "word" (Kim's clean_str) or "char" (Chinese)
    min_freq: int = 1
    max_vocab: int | None = None
    max_length: int | None = None
    vectors: str | None = None  # word2vec/GloVe file: initial embeddings (Kim's CNN-static)


@dataclass
class Prepared:
    """What :func:`prepare` builds for one run, ready for :class:`~poolkit.train.Trainer`.

    Attributes:
        model: the model built from the registry, data-dependent config fields filled in
            (vocabulary size, classes, image shape), weights seeded by ``prepare``'s ``seed``.
        train: the training split as a torch data set (``TextDataset`` or ``ImageDataset``).
        dev: the dev split as a data set, or ``None``.
        test: the test split as a data set, or ``None``.
        collate_fn: turns a list of examples into a batch (pads token ids for text).
        metadata: what the checkpoint stores beside the weights: ``label_names``, ``data``,
            ``kind`` (``"text"`` or ``"image"``), ``model_config``, and ``text_encoder`` /
            ``image`` / ``vectors`` where they apply.
        encoder: the text encoder fitted on the training texts (TextCNN); ``None`` for images
            and for the transformer, which uses its own tokenizer.
    """

    model: Any
    train: Any
    dev: Any
    test: Any
    collate_fn: Any
    metadata: dict
    encoder: TextEncoder | None = None


def model_kind(model_type: str) -> str:
    if model_type in TEXT_MODELS:
        return "text"
    if model_type in IMAGE_MODELS:
        return "image"
    raise ValueError(f"model ({model_type!r}) must be one of {list(TEXT_MODELS + IMAGE_MODELS)}")


def _check_kind(model_type: str, data) -> None:
    kind = model_kind(model_type)
    if kind == "text" and not isinstance(data, TextData):
        raise ValueError(f"model {model_type!r} needs text data, got images")
    if kind == "image" and not isinstance(data, ImageData):
        raise ValueError(f"model {model_type!r} needs image data, got text")


def prepare(
    model_type: str,
    train: TextData | ImageData,
    dev: TextData | ImageData | None = None,
    test: TextData | ImageData | None = None,
    *,
    model_options: dict | None = None,
    text: TextOptions | None = None,
    seed: int = 0,
    data_info: dict | None = None,
) -> Prepared:
    """Encoder, data sets, collate function, model and checkpoint metadata for one run.

    ``model_options`` are fields of the model's config (``pool``, ``pool_kwargs``, ``embed_dim``,
    ``channels``...); the sizes that follow from the data (vocabulary, classes, image shape) are
    filled in. The model's initial weights depend only on ``seed``.
    """
    from poolkit.data.dataset import ImageDataset, TextCollator, TextDataset, collate_images
    from poolkit.models.registry import build_model, config_to_dict

    _check_kind(model_type, train)
    options = dict(model_options or {})
    metadata: dict[str, Any] = {
        "label_names": list(train.label_names),
        "data": dict(data_info or {}),
    }
    encoder = vectors = None
    if model_type == "transformer":
        return _prepare_transformer(train, dev, test, options, seed, metadata)
    if isinstance(train, TextData):
        text = text or TextOptions()
        encoder = TextEncoder.fit(
            train.texts, tokenizer=text.tokenizer, min_freq=text.min_freq,
            max_size=text.max_vocab, max_length=text.max_length,
        )
        options.setdefault("num_classes", train.num_classes)
        options["vocab_size"] = len(encoder.vocab)
        options.setdefault("padding_idx", encoder.pad_id)
        if text.vectors:
            from poolkit.data.vectors import read_word_vectors

            vectors, found = read_word_vectors(text.vectors, encoder.vocab, seed=seed)
            options["embed_dim"] = vectors.shape[1]
            metadata["vectors"] = {"path": str(text.vectors), "found": found,
                                   "vocab_size": len(encoder.vocab)}

        def encode(part):
            if part is None:
                return None
            return TextDataset.from_texts(part.texts, part.labels, encoder)

        datasets = [encode(part) for part in (train, dev, test)]
        metadata["kind"] = "text"
        metadata["text_encoder"] = encoder.to_dict()
    else:
        channels, height, width = train.image_shape
        options.setdefault("num_classes", train.num_classes)
        options.setdefault("in_channels", channels)
        options.setdefault("image_size", (height, width))
        datasets = [None if p is None else ImageDataset.from_data(p) for p in (train, dev, test)]
        metadata["kind"] = "image"
        metadata["image"] = {"channels": channels, "height": height, "width": width}
    set_seed(seed)
    model = build_model(model_type, options)
    if isinstance(train, TextData) and vectors is not None:
        import torch

        model.load_embeddings(torch.from_numpy(vectors))
    if isinstance(train, TextData):
        widths = getattr(model.config, "filter_widths", (1,))
        collate = TextCollator(pad_id=encoder.pad_id, max_length=encoder.max_length,
                               min_length=max(widths))
    else:
        collate = collate_images
    metadata["model_config"] = config_to_dict(model.config)
    return Prepared(model, *datasets, collate, metadata, encoder)


def _prepare_transformer(train, dev, test, options, seed, metadata) -> Prepared:
    """The transformer pooling-head classifier: its own tokenizer, right/left padding and an
    attention mask (:mod:`poolkit.models.transformer`)."""
    from poolkit.data.dataset import TextDataset
    from poolkit.models.registry import build_model, config_to_dict
    from poolkit.models.transformer import transformer_collate, transformer_text_encoder

    options.setdefault("num_classes", train.num_classes)
    set_seed(seed)
    model = build_model("transformer", options)
    encoder = transformer_text_encoder(model.config)
    model.tokenizer = encoder.tokenizer  # saved with the model: loaded once, not again to save
    datasets = [
        None if part is None else TextDataset(encoder.encode_all(part.texts), part.labels)
        for part in (train, dev, test)
    ]
    metadata["kind"] = "text"
    metadata["text_encoder"] = {"kind": "transformer"}  # rebuilt from model_config.base_model
    metadata["model_config"] = config_to_dict(model.config)
    return Prepared(model, *datasets, transformer_collate(model.config, encoder=encoder), metadata)


@dataclass
class Split:
    """One part of a run's data: the examples, where they come from in words, and their row
    numbers (0-based) among the examples of the file or folder part they were taken from."""

    name: str  # "train", "dev", "test" or "all"
    data: TextData | ImageData
    source: str  # e.g. "reviews.csv, 25% held out by train (--dev-fraction 0.25, split seed 0)"
    rows: np.ndarray  # (N,) int64


def _where(part, fallback: str) -> str:
    return Path(part.source).name if part.source else fallback


def run_splits(
    bundle,
    *,
    limit: int | None = None,
    split_seed: int = 0,
    dev_fraction: float = 0.0,
    test_fraction: float = 0.0,
    fold: int | None = None,
    folds: int | None = None,
    dev_seed: int | None = None,
    dev_as_test: bool = False,
) -> dict[str, Split]:
    """The train/dev/test splits a training run makes of ``bundle`` — what ``poolkit train``
    trains and early-stops on, and what ``poolkit eval`` scores by default.

    In order: a stratified ``limit`` subset of the training part; the test split (the data set's
    own, fold ``fold`` of ``folds`` for cross-validation, else ``test_fraction`` held out); the dev
    split (the data set's own, else ``dev_fraction`` held out, seeded ``split_seed`` (+ fold - 1
    under cross-validation, which uses none of the data set's own dev and test parts)). All are
    seeded, so the same arguments give the same rows.

    ``dev_seed`` seeds the dev split apart from the test split (``poolkit compare`` uses
    ``split_seed + 1``). ``dev_as_test``: a data set with a dev split but no test split (GLUE's
    test labels are hidden) is tested on its dev split, and the dev split for early stopping is
    held out of its training part (``poolkit compare`` needs a test set; ``poolkit train``
    early-stops on the data set's dev split and ``poolkit eval`` scores it).
    """
    origin = _where(bundle.train, bundle.name)
    data, rows = bundle.train, np.arange(len(bundle.train))
    if limit is not None and limit < len(data):
        keep = stratified_subset(data.labels, limit, split_seed)
        data, rows = data.subset(keep), rows[keep]
        origin += f" (stratified subset of {limit}, --limit)"
    splits: dict[str, Split] = {}
    cross_validation = fold is not None and bool(folds)  # the data set's dev/test unused
    own = set() if cross_validation else {name for name in ("dev", "test")
                                          if getattr(bundle, name) is not None}
    bundle_test = bundle.test
    if dev_as_test and own == {"dev"}:
        bundle_test, own = bundle.dev, {"test"}
    dev_seed = split_seed if dev_seed is None else dev_seed
    if cross_validation:
        train_idx, test_idx = stratified_kfold(data.labels, folds, split_seed)[fold - 1]
        where = f"{origin}, fold {fold} of {folds} (--folds {folds}, split seed {split_seed})"
        splits["test"] = Split("test", data.subset(test_idx), where, rows[test_idx])
        data, rows, dev_seed = data.subset(train_idx), rows[train_idx], split_seed + fold - 1
    elif bundle_test is not None:
        splits["test"] = Split("test", bundle_test, _where(bundle_test, f"{bundle.name} test"),
                               np.arange(len(bundle_test)))
    elif test_fraction:
        train_idx, test_idx = stratified_split(data.labels, test_fraction, split_seed)
        splits["test"] = Split("test", data.subset(test_idx), f"{origin}, {test_fraction:.0%} "
                               f"held out by train (--test-fraction {test_fraction}, split seed "
                               f"{split_seed})", rows[test_idx])
        data, rows = data.subset(train_idx), rows[train_idx]
    if "dev" in own:
        splits["dev"] = Split("dev", bundle.dev, _where(bundle.dev, f"{bundle.name} dev"),
                              np.arange(len(bundle.dev)))
    elif dev_fraction:
        train_idx, dev_idx = stratified_split(data.labels, dev_fraction, dev_seed)
        splits["dev"] = Split("dev", data.subset(dev_idx), f"{origin}, {dev_fraction:.0%} held "
                              f"out by train (--dev-fraction {dev_fraction}, split seed "
                              f"{dev_seed})", rows[dev_idx])
        data, rows = data.subset(train_idx), rows[train_idx]
    carved = " and ".join(name for name in ("dev", "test")
                          if name in splits and name not in own)
    splits["train"] = Split("train", data, origin + (f" without the {carved} rows"
                                                     if carved else ""), rows)
    return {name: splits[name] for name in ("train", "dev", "test") if name in splits}


#: Stem of the file of a run folder with a fingerprint of each training example.
TRAIN_ROWS_STEM = "train_rows"


def row_fingerprints(data: TextData | ImageData) -> np.ndarray:
    """One 64-bit hash per example (of the text, or of the image's pixels): the same input gives
    the same number, so that overlap between two data sets is a set intersection."""
    if isinstance(data, TextData):
        items = (text.encode("utf-8") for text in data.texts)
    else:
        items = (np.ascontiguousarray(image, dtype=np.float32).tobytes() for image in data.images)
    return np.asarray([int.from_bytes(hashlib.blake2b(item, digest_size=8).digest(), "little",
                                      signed=True) for item in items], dtype=np.int64)


def _write_train_fingerprints(out_dir: Path, fingerprints: np.ndarray) -> None:
    import torch

    save_state(out_dir / TRAIN_ROWS_STEM, {"fingerprints": torch.from_numpy(fingerprints)})


def read_train_fingerprints(run_dir: str | Path) -> np.ndarray | None:
    """The fingerprints of the examples a run trained on (``None`` for a run from before they
    were recorded)."""
    stem = Path(run_dir) / TRAIN_ROWS_STEM
    if not stem.with_suffix(".safetensors").is_file():
        return None
    return load_state(stem)["fingerprints"].numpy()


@dataclass
class FitOutcome:
    """What :func:`fit_and_evaluate` returns.

    Attributes:
        result: the trainer's :class:`~poolkit.train.trainer.TrainResult` (history, best epoch,
            time).
        dev: the dev metrics of the best epoch ({} without dev data).
        test: the test metrics of the best model (accuracy, macro-F1, per class, confusion
            matrix, loss, ECE and its reliability bins), or None without test data.
        prepared: the :class:`Prepared` inputs (model, encoded data sets, collate function,
            checkpoint metadata); ``prepared.model`` is the trained model.
        trainer: the :class:`~poolkit.train.Trainer` that trained it (``predict_logits``,
            ``evaluate`` on other data).
    """

    result: TrainResult
    dev: dict
    test: dict | None
    prepared: Prepared
    trainer: Trainer

    @property
    def model(self):
        """The trained model (the best epoch's weights)."""
        return self.trainer.model

    def to_dict(self) -> dict:
        """``{"train": TrainResult dict, "dev", "test"}``, JSON-ready."""
        return {"train": self.result.to_dict(), "dev": self.dev, "test": self.test}


def fit_and_evaluate(
    model_type: str,
    train: TextData | ImageData,
    dev: TextData | ImageData | None,
    test: TextData | ImageData | None = None,
    *,
    train_config: TrainConfig | None = None,
    model_options: dict | None = None,
    text: TextOptions | None = None,
    data_info: dict | None = None,
    callbacks: Sequence[Callable] = (),
) -> FitOutcome:
    """Train with early stopping on ``dev``, evaluate the best model on ``test``.

    ``callbacks`` are the :class:`~poolkit.train.Trainer`'s (``fn(trainer, record)`` after each
    epoch, e.g. :class:`~poolkit.train.tensorboard.TensorBoardLogger`).
    """
    train_config = train_config or TrainConfig()
    fingerprints = np.unique(row_fingerprints(train))
    data_info = {**(data_info or {}), "train_rows": {
        "count": len(train),
        "digest": hashlib.blake2b(fingerprints.tobytes(), digest_size=16).hexdigest()}}
    out_dir = Path(train_config.out_dir) if train_config.out_dir else None
    writes = out_dir is not None and int(os.environ.get("RANK", "0")) == 0
    if out_dir is not None and not train_config.resume:
        check_run_folder(train_config)  # in every process, so that all stop together
        if writes:
            _write_train_fingerprints(out_dir, fingerprints)
    prepared = prepare(
        model_type, train, dev, test, model_options=model_options, text=text,
        seed=train_config.seed, data_info=data_info,
    )
    trainer = Trainer(
        prepared.model, train_config, prepared.train, prepared.dev, prepared.collate_fn,
        metadata=prepared.metadata, callbacks=callbacks,
    )
    result = trainer.fit()
    if writes and train_config.resume:  # the model has seen the old rows and these
        old = read_train_fingerprints(out_dir)
        _write_train_fingerprints(out_dir, fingerprints if old is None else
                                  np.union1d(old, fingerprints))
    test_metrics = trainer.evaluate(prepared.test) if prepared.test is not None else None
    if test_metrics is not None and train_config.out_dir and trainer.dist.is_main:
        atomic_write_json(Path(train_config.out_dir) / "test_metrics.json", test_metrics)
    return FitOutcome(result, result.best_metrics, test_metrics, prepared, trainer)


def _summary(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,  # sample std (n - 1)
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def cross_validate(
    model_type: str,
    data: TextData | ImageData,
    *,
    folds: int = 10,
    dev_fraction: float = 0.1,
    seed: int = 0,
    train_config: TrainConfig | None = None,
    model_options: dict | None = None,
    text: TextOptions | None = None,
    data_info: dict | None = None,
    progress_callback=None,
    fold_callbacks: Callable[[int], Sequence[Callable]] | None = None,
) -> dict:
    """Stratified k-fold CV: fold ``k`` tests on its part and trains on the rest, of which
    ``dev_fraction`` (stratified) is the dev split for early stopping. ``fold_callbacks(k)``
    gives the trainer callbacks of fold ``k`` (1-based).

    With ``train_config.out_dir`` each fold trains in ``out_dir/fold-K`` and records
    ``fold_result.json`` when done; ``train_config.resume`` skips finished folds and resumes the
    interrupted one from its last checkpoint. The fold split depends on ``seed`` only; the
    model initialisation and data order of fold ``k`` on ``train_config.seed + k``.

    Returns ``{"folds": [...], "accuracy": {"mean", "std", "min", "max"}, "macro_f1": {...},
    "train_time_s": total, "k": folds}`` (``std`` is the sample standard deviation).
    """
    _check_kind(model_type, data)
    base = train_config or TrainConfig()
    root = Path(base.out_dir) if base.out_dir else None
    records = []
    started = time.perf_counter()
    whole = DataBundle("data", "text" if isinstance(data, TextData) else "image", data)
    for fold in range(folds):
        fold_dir = root / f"fold-{fold + 1:02d}" if root else None
        done = fold_dir / "fold_result.json" if fold_dir else None
        if base.resume and done is not None and done.is_file():
            records.append(json.loads(done.read_text(encoding="utf-8")))
            continue
        splits = run_splits(whole, split_seed=seed, dev_fraction=dev_fraction, fold=fold + 1,
                            folds=folds)
        train, test = splits["train"].data, splits["test"].data
        dev = splits["dev"].data if "dev" in splits else None
        config = dataclasses.replace(
            base, seed=base.seed + fold, out_dir=str(fold_dir) if fold_dir else None
        )
        outcome = fit_and_evaluate(
            model_type, train, dev, test, train_config=config,
            model_options=model_options, text=text,
            data_info={**(data_info or {}), "fold": fold + 1, "folds": folds},
            callbacks=fold_callbacks(fold + 1) if fold_callbacks is not None else (),
        )
        record = {
            "fold": fold + 1,
            "test_accuracy": outcome.test["accuracy"],
            "test_macro_f1": outcome.test["macro_f1"],
            "dev_accuracy": outcome.dev.get("accuracy"),
            "best_epoch": outcome.result.best_epoch,
            "epochs_run": outcome.result.epochs_run,
            "train_time_s": outcome.result.train_time_s,
            "num_train": len(train),
            "num_dev": len(dev) if dev is not None else 0,
            "num_test": len(test),
        }
        if done is not None and outcome.trainer.dist.is_main:
            atomic_write_json(done, record)
        records.append(record)
        if progress_callback is not None:
            progress_callback(record)
    accuracy = [r["test_accuracy"] for r in records]
    return {
        "k": folds,
        "folds": records,
        "accuracy": _summary(accuracy),
        "macro_f1": _summary([r["test_macro_f1"] for r in records]),
        "train_time_s": sum(r["train_time_s"] for r in records),
        "wall_time_s": time.perf_counter() - started,
    }
