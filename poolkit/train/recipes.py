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
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poolkit.data.images import ImageData
from poolkit.data.splits import stratified_kfold, stratified_split
from poolkit.data.text import TextData
from poolkit.data.tokenize import TextEncoder
from poolkit.train.checkpoint import atomic_write_json
from poolkit.train.distributed import set_seed
from poolkit.train.trainer import TrainConfig, Trainer

__all__ = [
    "TEXT_MODELS",
    "IMAGE_MODELS",
    "TextOptions",
    "Prepared",
    "model_kind",
    "prepare",
    "split_dev",
    "fit_and_evaluate",
    "cross_validate",
]

TEXT_MODELS = ("textcnn", "transformer")
IMAGE_MODELS = ("convnet", "metaformer")


@dataclass
class TextOptions:
    """How text becomes token ids (TextCNN; the transformer uses its own tokenizer)."""

    tokenizer: str = "word"  # "word" (Kim's clean_str) or "char" (Chinese)
    min_freq: int = 1
    max_vocab: int | None = None
    max_length: int | None = None
    vectors: str | None = None  # word2vec/GloVe file: initial embeddings (Kim's CNN-static)


@dataclass
class Prepared:
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
    datasets = [
        None if part is None else TextDataset(encoder.encode_all(part.texts), part.labels)
        for part in (train, dev, test)
    ]
    metadata["kind"] = "text"
    metadata["text_encoder"] = {"kind": "transformer"}  # rebuilt from model_config.base_model
    metadata["model_config"] = config_to_dict(model.config)
    return Prepared(model, *datasets, transformer_collate(model.config, encoder=encoder), metadata)


def split_dev(data: TextData | ImageData, dev_fraction: float, seed: int):
    """``(train, dev)`` stratified and seeded; ``dev`` is ``None`` when ``dev_fraction`` is 0."""
    if not dev_fraction:
        return data, None
    train_idx, dev_idx = stratified_split(data.labels, dev_fraction, seed)
    return data.subset(train_idx), data.subset(dev_idx)


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
) -> dict:
    """Train with early stopping on ``dev``, evaluate the best model on ``test``.

    Returns ``{"train": TrainResult dict, "dev": best dev metrics, "test": test metrics or None,
    "model": the trained model, "prepared": Prepared}`` (the last two not JSON).
    """
    train_config = train_config or TrainConfig()
    prepared = prepare(
        model_type, train, dev, test, model_options=model_options, text=text,
        seed=train_config.seed, data_info=data_info,
    )
    trainer = Trainer(
        prepared.model, train_config, prepared.train, prepared.dev, prepared.collate_fn,
        metadata=prepared.metadata,
    )
    result = trainer.fit()
    test_metrics = trainer.evaluate(prepared.test) if prepared.test is not None else None
    if test_metrics is not None and train_config.out_dir and trainer.dist.is_main:
        atomic_write_json(Path(train_config.out_dir) / "test_metrics.json", test_metrics)
    return {
        "train": result.to_dict(),
        "dev": result.best_metrics,
        "test": test_metrics,
        "model": trainer.model,
        "prepared": prepared,
        "trainer": trainer,
    }


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
) -> dict:
    """Stratified k-fold CV: fold ``k`` tests on its part and trains on the rest, of which
    ``dev_fraction`` (stratified) is the dev split for early stopping.

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
    for fold, (train_idx, test_idx) in enumerate(stratified_kfold(data.labels, folds, seed)):
        fold_dir = root / f"fold-{fold + 1:02d}" if root else None
        done = fold_dir / "fold_result.json" if fold_dir else None
        if base.resume and done is not None and done.is_file():
            records.append(json.loads(done.read_text(encoding="utf-8")))
            continue
        train, dev = split_dev(data.subset(train_idx), dev_fraction, seed + fold)
        config = dataclasses.replace(
            base, seed=base.seed + fold, out_dir=str(fold_dir) if fold_dir else None
        )
        outcome = fit_and_evaluate(
            model_type, train, dev, data.subset(test_idx), train_config=config,
            model_options=model_options, text=text,
            data_info={**(data_info or {}), "fold": fold + 1, "folds": folds},
        )
        record = {
            "fold": fold + 1,
            "test_accuracy": outcome["test"]["accuracy"],
            "test_macro_f1": outcome["test"]["macro_f1"],
            "dev_accuracy": outcome["dev"].get("accuracy"),
            "best_epoch": outcome["train"]["best_epoch"],
            "epochs_run": outcome["train"]["epochs_run"],
            "train_time_s": outcome["train"]["train_time_s"],
            "num_train": len(train),
            "num_dev": len(dev) if dev is not None else 0,
            "num_test": len(test_idx),
        }
        if done is not None and outcome["trainer"].dist.is_main:
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
