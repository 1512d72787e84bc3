"""``poolkit eval CHECKPOINT --data ...``: accuracy, macro-F1 and the confusion matrix of a trained
model on labelled data.

Examples::

    poolkit eval runs/sst2 --data ../shared/data/sst2            # SST-2's dev split
    poolkit eval runs/mnist --data ../shared/data/mnist --split heldout --json
    poolkit eval runs/reviews --data test.csv --text-column review --label-column stars
    poolkit eval runs/sst2-minilm --data ../shared/data/sst2 --reduce merge:rate=0.15
"""

from __future__ import annotations

import typer

from poolkit.cli._app import app, print_json, stdout_console

SPLITS = ("auto", "train", "dev", "test", "heldout")


@app.command("eval")
def evaluate(
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help="Folder written by train."),
    data: str | None = typer.Option(
        None, "--data", help="Data file or folder (default: the path the model was trained on)."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Data set name or format (default: guessed, else the "
        "training data set's).",
    ),
    split: str = typer.Option(
        "auto", help="auto (test, else dev, else all of --data), train, dev, test, or heldout "
        "(the test split the training run held out with --test-fraction).",
    ),
    text_column: str | None = typer.Option(None, help="Default: as in training."),
    label_column: str | None = typer.Option(None, help="Default: as in training."),
    batch_size: int = typer.Option(256, min=1),
    device: str = typer.Option("auto"),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads."),
    reduce: str | None = typer.Option(
        None, "--reduce", help="transformer (BERT backbones): evaluate with this token-reduction "
        "schedule instead of the checkpoint's (none, merge:rate=0.15, strided:after=2, ...).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a checkpoint on labelled data."""
    from poolkit.data import load_dataset, stratified_subset
    from poolkit.data.catalog import guess_format
    from poolkit.data.splits import stratified_split
    from poolkit.train.inference import Predictor

    if split not in SPLITS:
        raise ValueError(f"split ({split!r}) must be one of {list(SPLITS)}")
    _set_threads(threads)
    predictor = Predictor(checkpoint, device=device)
    if reduce is not None:
        from poolkit.models import reduce_tokens

        reduce_tokens(predictor.model, reduce)
    trained_on = predictor.config.get("data") or {}
    path = data or trained_on.get("path")
    if path is None and dataset is None and not trained_on.get("dataset"):
        raise ValueError("give --data (the checkpoint does not record its training data)")
    name = dataset
    if name is None and path is not None:
        try:
            name = guess_format(path)
        except ValueError:
            name = trained_on.get("dataset")
    elif name is None:
        name = trained_on.get("dataset")
    bundle = load_dataset(
        name, path, text_column=text_column or trained_on.get("text_column", "text"),
        label_column=label_column or trained_on.get("label_column", "label"),
    )
    if split == "heldout":
        fraction = trained_on.get("test_fraction") or 0
        if not fraction or bundle.test is not None:
            raise ValueError(f"checkpoint {checkpoint} held out no test split (--test-fraction)")
        part = bundle.train
        if trained_on.get("limit"):
            part = part.subset(stratified_subset(part.labels, trained_on["limit"],
                                                 trained_on.get("split_seed", 0)))
        _, test_idx = stratified_split(part.labels, fraction, trained_on.get("split_seed", 0))
        part, used = part.subset(test_idx), "heldout"
    elif split == "auto":
        used = "test" if bundle.test is not None else "dev" if bundle.dev is not None else "train"
        part = getattr(bundle, used)
    else:
        part, used = getattr(bundle, split), split
        if part is None:
            raise ValueError(f"data set {bundle.name!r} has no {split} split here")
    metrics = predictor.evaluate(part, batch_size)
    result = {"checkpoint": str(predictor.path), "model_type": predictor.model_type,
              "dataset": bundle.name, "split": used, "label_names": predictor.label_names,
              **metrics}
    if json_output:
        print_json(result)
        return
    from rich.table import Table

    console = stdout_console()
    table = Table(title=f"{predictor.model_type} on {bundle.name} ({used}, {len(part)} examples)")
    table.add_column("true \\ predicted")
    for name_ in predictor.label_names:
        table.add_column(name_, justify="right")
    for name_, row in zip(predictor.label_names, metrics["confusion_matrix"], strict=True):
        table.add_row(name_, *[str(v) for v in row])
    table.caption = (f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
                     f"loss {metrics['loss']:.4f}")
    console.print(table)


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
