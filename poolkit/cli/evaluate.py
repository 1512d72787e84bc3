"""``poolkit eval RUN``: accuracy, macro-F1, the confusion matrix, per-class precision/recall/F1
and the expected calibration error (ECE) of a trained model on labelled data it was not trained
on; ``--plot FILE.png`` draws its reliability diagram.

Without ``--data`` it scores the split the training run held out (its test split, else its dev
split), rebuilt from the data path and split settings recorded in the run's
``poolkit_config.json``; it never picks the training rows. With ``--data`` it scores that file
(or a data set folder's test split, else its dev split). Every output names the split and where
its rows come from, and the rows that the model was trained on are counted (a loud warning when
there are any).

Examples::

    poolkit eval runs/reviews                      # the held-out split of the training data
    poolkit eval runs/reviews --data new.csv --predictions scored.csv
    poolkit eval runs/mnist --split test --json
    poolkit eval runs/reviews --plot reliability.png --ece-bins 10
    poolkit eval runs/sst2-minilm --reduce merge:rate=0.15  # off the shelf, fewer tokens
"""

from __future__ import annotations

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
    stderr_console,
    stdout_console,
)

SPLITS = ("auto", "train", "dev", "test", "all", "heldout")


@app.command("eval")
def evaluate(
    checkpoint: str = typer.Argument(..., metavar="RUN", help="Folder written by train."),
    data: str | None = typer.Option(
        None, "--data", help="Labelled data file or folder, or hf:NAME, hf:NAME/CONFIG, "
        "hf:FOLDER (a Hugging Face data set; default: the run's held-out split).",
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Data set name or format of --data (default: guessed, "
        "else the training data set's).",
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="Same as --dataset, for a path (csv, tsv, jsonl, npz), as in "
        "train."
    ),
    split: str = typer.Option(
        "auto", help="auto (test, else dev: never the training rows), train, dev, test, or all "
        "(the whole --data file). heldout = test; validation = dev. A Hugging Face data set's "
        "other splits by their own name (validation_matched...).",
    ),
    text_column: str | None = typer.Option(None, help="Default: as in training."),
    label_column: str | None = typer.Option(None, help="Default: as in training."),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="Also write one CSV row per example: its row in the "
        "source, text, label, predicted label and the probability of each class.",
    ),
    batch_size: int = typer.Option(256, min=1),
    device: str = typer.Option("auto"),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads."),
    encoding: str | None = typer.Option(None, help=ENCODING_HELP),
    skip_bad_lines: bool = typer.Option(False, help=SKIP_HELP),
    reduce: str | None = typer.Option(
        None, "--reduce", help="transformer (BERT backbones): evaluate with this token-reduction "
        "schedule instead of the checkpoint's (none, merge:rate=0.15, strided:after=2, ...).",
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write the reliability diagram (accuracy against confidence, with "
        "the ECE) to this PNG file (needs poolkit[plots]).",
    ),
    ece_bins: int = typer.Option(
        15, "--ece-bins", min=1, max=1000, help="Equal-width confidence bins of the ECE and "
        "the reliability diagram.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notes on stderr (warnings "
                               "stay)."),
    json_output: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a trained model on held-out labelled data."""
    import numpy as np

    from poolkit.train.inference import Predictor
    from poolkit.train.recipes import read_train_fingerprints, row_fingerprints
    from poolkit.train.trainer import metrics_from_logits

    split = {"validation": "dev"}.get(split, split)  # a Hugging Face data set's name for dev
    if not split.strip():
        raise ValueError(f"split ({split!r}) must be one of {list(SPLITS)}")
    if dataset is not None and fmt is not None and dataset != fmt:
        raise ValueError(f"--dataset ({dataset}) and --format ({fmt}) disagree; give one")
    dataset = dataset or fmt
    if plot is not None:
        _check_plot(plot)
    _set_threads(threads)
    with at_run_time():
        predictor = Predictor(checkpoint, device=device)
        if reduce is not None:
            from poolkit.models import reduce_tokens

            try:
                reduce_tokens(predictor.model, reduce)
            except ValueError as exc:  # a schedule this model cannot take: bad usage
                raise UsageError(f"--reduce: {exc}") from exc
        splits, own, dataset_name = _candidate_splits(predictor, data, dataset, text_column,
                                                      label_column, encoding, skip_bad_lines,
                                                      None if split in SPLITS else split)
        chosen = _choose(split, splits, own, predictor.path)
        logits, labels = predictor.logits(chosen.data, batch_size)
        metrics = metrics_from_logits(logits, labels, ece_bins)
        seen = read_train_fingerprints(predictor.path)
    overlap = None if seen is None else int(np.isin(row_fingerprints(chosen.data), seen).sum())
    result = {
        "checkpoint": str(predictor.path), "model_type": predictor.model_type,
        "dataset": dataset_name, "data": chosen.data.source or None,
        "split": chosen.name, "source": chosen.source, "available_splits": list(splits),
        "train_overlap": overlap, "label_names": predictor.label_names, **metrics,
    }
    _warn_overlap(chosen, overlap, len(labels), quiet)
    if plot is not None:
        from poolkit.experiments.plots import plot_reliability

        with at_run_time():
            plot_reliability(result["reliability"], plot, ece=result["ece"], title=(
                f"{predictor.model_type} on the {chosen.name} split of {chosen.source}"))
        result["plot"] = str(plot)
    if predictions is not None:
        _write_predictions(predictions, chosen, logits, labels, predictor.label_names)
        result["predictions_file"] = str(predictions)
    if json_output:
        print_json(result)
    else:
        _print_result(result, predictor.label_names)


def _candidate_splits(predictor, data, dataset, text_column, label_column, encoding=None,
                      skip_bad_lines=False, hf_split=None):
    """``({name: Split}, own, data set name)``: the training run's own splits (``own`` True)
    when ``--data`` is absent or is the path it trained on, else the splits of ``--data``;
    ``hf_split``: only that split of a Hugging Face data set, by its own name."""
    import numpy as np

    from poolkit.data import load_dataset
    from poolkit.data.catalog import guess_format
    from poolkit.models.pretrained import config_file
    from poolkit.train.recipes import Split, run_splits

    trained_on = predictor.config.get("data") or {}
    recorded = trained_on.get("path")
    own = data is None or (recorded is not None and _same_path(data, recorded))
    path = recorded if own else data
    name = dataset
    if name is None and path is not None and not own:
        try:
            name = guess_format(path)
        except ValueError:
            name = trained_on.get("dataset")
    name = name or trained_on.get("dataset")
    if name is None:
        raise UsageError(f"give --data: {config_file(predictor.path)} records no training data")
    if own and path is not None and name != "hf" and not Path(path).exists():
        raise FileNotFoundError(f"the training data {path} recorded in "
                                f"{config_file(predictor.path)} is not there; pass --data")
    if hf_split is not None and name != "hf":
        raise UsageError(f"split ({hf_split!r}) must be one of {list(SPLITS)} (another name "
                         "is a split of a Hugging Face data set, --data hf:...)")
    if hf_split is not None:
        own = False  # one split of the data set, scored whole
    bundle = load_dataset(
        name, path, split=hf_split,
        text_column=text_column or trained_on.get("text_column", "text"),
        label_column=label_column or trained_on.get("label_column", "label"),
        dev_path=trained_on.get("dev_path") if own else None,
        encoding=encoding or trained_on.get("encoding"), skip_bad_lines=skip_bad_lines,
        min_classes=2 if own else 1,  # a file only scored may hold one class
    )
    if own:
        return run_splits(
            bundle, limit=trained_on.get("limit"), split_seed=trained_on.get("split_seed", 0),
            dev_fraction=trained_on.get("dev_fraction") or 0.0,
            test_fraction=trained_on.get("test_fraction") or 0.0,
            fold=trained_on.get("fold"), folds=trained_on.get("folds"),
        ), True, bundle.name
    parts = {"train": bundle.train, "dev": bundle.dev, "test": bundle.test}
    if hf_split is not None:
        parts = {hf_split: bundle.train}
    elif bundle.dev is None and bundle.test is None:
        parts = {"all": bundle.train}
    return {part_name: Split(part_name, part, Path(part.source or str(data)).name,
                             np.arange(len(part)))
            for part_name, part in parts.items() if part is not None}, False, bundle.name


def _same_path(given: str, recorded: str) -> bool:
    from poolkit.data.hf import strip_prefix

    if given == recorded:  # a hub name
        return True
    given, recorded = strip_prefix(given), strip_prefix(recorded)
    return Path(given).exists() and Path(given).resolve() == Path(recorded).resolve()


def _choose(split: str, splits: dict, own: bool, run_dir):
    """The split to score: ``--split``, or for ``auto`` test, else dev (else the whole
    ``--data``), never the training rows of the run."""
    if split == "heldout":
        split = "test"
    if split == "auto":
        order = ("test", "dev") if own else ("test", "dev", "all", "train")
        for name in order:
            if name in splits:
                return splits[name]
        raise UsageError(
            f"the run in {run_dir} held out no data (it trained on every row of "
            f"{splits['train'].source}); pass --data with other labelled data, or --split train "
            "to score the training rows"
        )
    if split not in splits:
        where = "the training run's data" if own else "--data"
        raise UsageError(f"split {split!r} does not exist in {where}; the splits that exist: "
                         f"{', '.join(splits)}")
    return splits[split]


def _check_plot(plot: Path) -> None:
    """Bad usage found before any work: a plot file that is not a PNG; a missing matplotlib
    (exit 1, with its install hint) also stops here, not after the evaluation."""
    if plot.suffix.lower() != ".png":
        raise ValueError(f"--plot ({plot}) must be a .png file")
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ModuleNotFoundError("--plot needs matplotlib", name="matplotlib")


def _warn_overlap(chosen, overlap: int | None, total: int, quiet: bool = False) -> None:
    console = stderr_console()
    if overlap is None:
        if quiet:
            return
        console.print("poolkit: note: this run records no fingerprints of its training rows, "
                      "so overlap with them is not checked", markup=False, highlight=False)
    elif overlap:
        console.print(
            f"poolkit: WARNING: {overlap} of {total} examples scored ({overlap / total:.0%}) are "
            f"texts or images the model was trained on; these scores are not a held-out "
            f"estimate ({chosen.name}: {chosen.source})", style="bold red", markup=False,
            highlight=False,
        )


def _write_predictions(path: Path, chosen, logits, labels, label_names: list[str]) -> None:
    """One CSV row per example; ``labels`` are in the checkpoint's order (as ``logits``)."""
    import csv
    import io

    import torch

    from poolkit.train.checkpoint import atomic_write_text

    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    data = chosen.data
    texts = getattr(data, "texts", None)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", *(["text"] if texts is not None else []), "label", "predicted",
                     *[f"p_{name}" for name in label_names]])
    for i, (row, label, p) in enumerate(zip(chosen.rows, labels, probabilities, strict=True)):
        writer.writerow([int(row), *([texts[i]] if texts is not None else []),
                         label_names[int(label)], label_names[int(p.argmax())],
                         *[f"{v:.6f}" for v in p]])
    atomic_write_text(path, buffer.getvalue())


def _print_result(result: dict, label_names: list[str]) -> None:
    from rich.table import Table

    console = stdout_console()
    what = "all" if result["split"] == "all" else f"the {result['split']} split"
    console.print(f"{result['model_type']} on {what} ({result['num_examples']} examples) of "
                  f"{result['source']}", markup=False, highlight=False)
    table = Table()
    table.add_column("true \\ predicted")
    for name in label_names:
        table.add_column(name, justify="right")
    for name, row in zip(label_names, result["confusion_matrix"], strict=True):
        table.add_row(name, *[str(v) for v in row])
    console.print(table)
    console.print(per_class_table(label_names, result))
    console.print(f"accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  "
                  f"loss {result['loss']:.4f}", markup=False, highlight=False)
    console.print(f"ECE {result['ece']:.4f} ({result['ece_bins']} equal-width bins)",
                  markup=False, highlight=False)
    if result.get("plot"):
        console.print(f"reliability diagram: {result['plot']}", markup=False, highlight=False)
    if result["train_overlap"]:
        console.print(f"{result['train_overlap']} of these examples were training examples",
                      markup=False, highlight=False)


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
