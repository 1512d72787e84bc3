"""``poolkit predict CHECKPOINT [INPUT...]``: labels for texts (arguments, stdin lines, or a column
of a csv/tsv/jsonl file) or image files (PNG/JPEG/``.npy``).

Examples::

    poolkit predict runs/mr "a gorgeous , witty , seductive movie ." "dull and tedious"
    cat reviews.txt | poolkit predict runs/mr --json
    poolkit predict runs/mr --data reviews.csv --text-column review --out predictions.csv
    poolkit predict runs/mnist digit.png digit2.npy
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from poolkit._io import dumps
from poolkit.cli._app import UsageError, app, at_run_time, print_json, stdout_console
from poolkit.errors import DataFormatError


@app.command("predict")
def predict(
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help="Folder written by train."),
    inputs: list[str] | None = typer.Argument(
        None, metavar="[INPUT]...", help="Texts (text models) or image files (image models); "
        "none: one per line from stdin.",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Read the texts from a column of a csv, tsv or jsonl file (.txt: "
        "one per line).",
    ),
    text_column: str = typer.Option("text", help="The column of --data with the texts."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write a CSV: row, text, predicted label, probability of "
        "each class.",
    ),
    batch_size: int = typer.Option(256, min=1),
    device: str = typer.Option("auto"),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads."),
    encoding: str = typer.Option("utf-8", help="Text encoding of stdin and --data."),
    json_output: bool = typer.Option(False, "--json", help="Print the predictions as one JSON "
                                     "document."),
    jsonl_output: bool = typer.Option(False, "--jsonl", help="Stream the predictions as JSON "
                                      "lines, one per input."),
) -> None:
    """Predict labels with a trained checkpoint."""
    from poolkit.train.inference import Predictor

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if data is not None and inputs:
        raise ValueError("give inputs as arguments or --data FILE, not both")
    if json_output and jsonl_output:
        raise ValueError("--json (one document) and --jsonl (one line per input) exclude each "
                         "other; give one")
    with at_run_time():
        predictor = Predictor(checkpoint, device=device)
        if data is not None:
            if predictor.kind != "text":
                raise UsageError(f"--data reads texts; {checkpoint} is an image model")
            items = read_texts(data, text_column, encoding)
        else:
            items = list(inputs or []) or _stdin_lines(encoding)
        if not items:
            raise ValueError("nothing to predict: give inputs as arguments, --data or stdin")
        if predictor.kind == "text":
            for number, item in enumerate(items, start=1):
                if not item.strip():
                    print(f"poolkit: warning: input {number} is empty; its prediction shows only "
                          "what the model predicts for no text", file=sys.stderr)
            rows = predictor.predict_texts(items, batch_size)
        else:
            rows = predictor.predict_images(items, batch_size)
    if out is not None:
        _write_csv(out, rows, predictor.label_names)
    if jsonl_output:
        sys.stdout.write("".join(dumps(row) + "\n" for row in rows))
        sys.stdout.flush()
        return
    if json_output:
        print_json({"checkpoint": str(predictor.path), "predictions": rows,
                    **({"out": str(out)} if out is not None else {})})
        return
    if out is not None:
        stdout_console().print(f"{len(rows)} predictions written to {out}", markup=False,
                               highlight=False)
        return
    for row in rows:
        confidence = row["probabilities"][row["label"]]
        source = row.get("text", row.get("file"))
        sys.stdout.write(f"{row['label']}\t{confidence:.3f}\t{source}\n")


def read_texts(path: Path, column: str, encoding: str | None = None) -> list[str]:
    """The ``column`` of a csv/tsv (header line) or jsonl file, or the lines of any other file,
    in file order (an empty text is kept: it is a row of the file). A quote in a tsv file is
    text, as everywhere in poolkit's readers."""
    import csv
    import json

    from poolkit.errors import DataFormatError

    if not path.is_file():
        raise FileNotFoundError(f"--data {path} not found")
    suffix = path.suffix.lower()
    with open(path, encoding=encoding or "utf-8-sig", newline="") as handle:
        if suffix in (".csv", ".tsv", ".tab"):
            quoting = {} if suffix == ".csv" else {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
            reader = csv.DictReader(handle, **quoting)
            if column not in (reader.fieldnames or []):
                raise DataFormatError(path, 1, f"no column {column!r} (columns: "
                                      f"{', '.join(reader.fieldnames or [])}); pass --text-column")
            return [row[column] or "" for row in reader]
        if suffix in (".jsonl", ".json"):
            texts = []
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    texts.append(str(json.loads(line)[column]))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise DataFormatError(path, number, f"expected a JSON object with "
                                          f"{column!r}: {exc}") from None
            return texts
        return [line.rstrip("\r\n") for line in handle if line.strip()]


def _write_csv(path: Path, rows: list[dict], label_names: list[str]) -> None:
    import csv
    import io

    from poolkit.train.checkpoint import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    source = "text" if rows and "text" in rows[0] else "file"
    writer.writerow(["row", source, "label", *[f"p_{name}" for name in label_names]])
    for number, row in enumerate(rows):
        writer.writerow([number, row[source], row["label"],
                         *[f"{row['probabilities'][name]:.6f}" for name in label_names]])
    atomic_write_text(path, buffer.getvalue())


def _stdin_lines(encoding: str | None) -> list[str]:
    """The non-blank lines of stdin, decoded strictly (``--encoding``, else UTF-8)."""
    from poolkit.data.text import decode_lines

    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream (tests, embedding): already decoded
        raw, encoding = sys.stdin.read().encode("utf-8"), "utf-8"
    else:
        raw = stream.read()
    lines, problems = decode_lines(raw, "<stdin>", encoding)
    if problems:
        raise DataFormatError("<stdin>", problems[0][0], problems[0][1])
    return [text.strip() for _, text in lines if text.strip()]
