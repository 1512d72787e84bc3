"""``poolkit predict CHECKPOINT [INPUT...]``: labels for texts (arguments, or stdin lines) or
image files (PNG/JPEG/``.npy``).

Examples::

    poolkit predict runs/mr "a gorgeous , witty , seductive movie ." "dull and tedious"
    cat reviews.txt | poolkit predict runs/mr --json
    poolkit predict runs/mnist digit.png digit2.npy
"""

from __future__ import annotations

import sys

import typer

from poolkit.cli._app import app, print_json, stdout_console
from poolkit.errors import DataFormatError


@app.command("predict")
def predict(
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help="Folder written by train."),
    inputs: list[str] | None = typer.Argument(
        None, metavar="[INPUT]...", help="Texts (text models) or image files (image models); "
        "none: one per line from stdin.",
    ),
    batch_size: int = typer.Option(256, min=1),
    device: str = typer.Option("auto"),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads."),
    encoding: str = typer.Option("utf-8", help="Text encoding of stdin."),
    json_output: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
) -> None:
    """Predict labels with a trained checkpoint."""
    from poolkit.train.inference import Predictor

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    predictor = Predictor(checkpoint, device=device)
    items = list(inputs or [])
    if not items:
        from poolkit.data.text import decode_lines

        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:  # a text stream (tests, embedding): already decoded
            raw, encoding = sys.stdin.read().encode("utf-8"), "utf-8"
        else:
            raw = stream.read()
        lines, problems = decode_lines(raw, "<stdin>", encoding)
        if problems:
            raise DataFormatError("<stdin>", problems[0][0], problems[0][1])
        items = [text.strip() for _, text in lines if text.strip()]
    if not items:
        raise ValueError("nothing to predict: give inputs as arguments or on stdin")
    if predictor.kind == "text":
        for number, item in enumerate(items, start=1):
            if not item.strip():
                print(f"poolkit: warning: input {number} is empty; its prediction shows only "
                      "what the model predicts for no text", file=sys.stderr)
        rows = predictor.predict_texts(items, batch_size)
    else:
        rows = predictor.predict_images(items, batch_size)
    if json_output:
        print_json({"checkpoint": str(predictor.path), "predictions": rows})
        return
    console = stdout_console()
    for row in rows:
        confidence = row["probabilities"][row["label"]]
        source = row.get("text", row.get("file"))
        console.print(f"{row['label']}\t{confidence:.3f}\t{source}", markup=False,
                      highlight=False, soft_wrap=True)
