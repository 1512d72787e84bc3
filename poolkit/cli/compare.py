"""``poolkit compare``: which pooling for my task? Train with each, over seeds, and tabulate."""

from __future__ import annotations

from pathlib import Path

import typer

from poolkit.cli._app import (
    ENCODING_HELP,
    SKIP_HELP,
    app,
    print_json,
    stderr_console,
    stdout_console,
)

_TASK_HELP = (
    "A built-in task (digits, mnist5k, mnist, mr, sst2, chnsenti, rt, minilm-mr, stsb) or your "
    "file: "
    "csv:PATH, tsv:PATH, jsonl:PATH (with --text-column/--label-column) or images:PATH.npz."
)


def _check_pools(pools: list[str], task) -> None:
    """Unknown pooling names are bad usage (exit 2), before any run starts."""
    from poolkit.experiments.builtin_tasks import build_convnet, build_textcnn, build_transformer

    builder = getattr(task.build_model, "func", task.build_model)
    if task.kind == "pairs" or builder is build_transformer:  # SequencePool modes
        from poolkit.nn.sequence import _parse_mode

        for name in pools:
            _parse_mode(name)  # ValueError listing the valid modes
        return
    if builder not in (build_convnet, build_textcnn):
        return  # a user's task may use names of its own
    from poolkit.nn import pool_info

    for name in pools:
        pool_info(name)  # ValueError listing the valid names


def render_table(rows, console, metric: str = "accuracy", metric_label: str = "accuracy %") -> None:
    """The summary as a rich table: best row green, losing rows dim."""
    from rich.table import Table

    from poolkit.experiments.summary import (
        format_number,
        format_percent,
        level_header,
        paired_cells,
        paired_labels,
        score_cells,
        score_headers,
    )

    labels = [k[: -len("_mean")] for k in rows[0] if k.endswith("_mean")] if rows else []
    labels = [label for label in labels if label.startswith(("shift_", "word_dropout_"))]
    paired = paired_labels(rows)
    score_header = score_headers(rows, metric, metric_label)
    table = Table(show_lines=False, header_style="bold")
    paired_header = [name for label in paired for name in (f"Δ vs {label[3:]}", "paired")]
    for name in (
        "#",
        "pooling",
        *score_header,
        *[level_header(x) for x in labels],
        "train s",
        "params",
        *paired_header,
        "verdict",
    ):
        left = name in ("pooling", "verdict", "paired")
        table.add_column(name, justify="left" if left else "right")
    for row in rows:
        style = (
            "bold green"
            if row["verdict"] == "best"
            else "dim"
            if row["verdict"].startswith(("loses", "at chance", "failed", "not finished"))
            else None
        )
        table.add_row(
            str(row.get("rank") or "–"),
            row["pool"],
            *score_cells(row, metric, score_header),
            *[format_percent(row.get(f"{x}_mean"), row.get(f"{x}_std")) for x in labels],
            format_number(row.get("train_time_s_mean"), ".1f"),
            f"{row['params']:,}" if row.get("params") is not None else "–",
            *[cell for label in paired for cell in paired_cells(row, label)],
            row["verdict"],
            style=style,
        )
    console.print(table)


def wide_console():
    """stdout console; at least 120 columns when stdout is not a terminal (logs, pipes)."""
    console = stdout_console()
    if not console.is_terminal:
        from rich.console import Console

        console = Console(width=120)
    return console


@app.command("compare")
def compare_command(
    task: str = typer.Option(..., "--task", "-t", help=_TASK_HELP),
    pools: str = typer.Option(
        "", "--pools", "-p", help="Comma-separated pooling names (default: the task's set)."
    ),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per pooling type (0..N-1)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the epochs."),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, help="Worker processes (default: one per core)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Torch threads per worker (default: cores // jobs)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output folder (default: runs/compare-TASK). Finished runs "
        "recorded there are not repeated.",
    ),
    data: str | None = typer.Option(
        None, "--data", help="Data path for the task (a folder for mr/sst2/mnist/stsb)."
    ),
    text_column: str | None = typer.Option(None, "--text-column", help="Text column (csv:…)."),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column (csv:…)."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="word or char (text tasks)."),
    train_size: int | None = typer.Option(
        None, "--train-size", min=1, help="Use a stratified subset of the training split."
    ),
    dev_size: int | None = typer.Option(
        None, "--dev-size", min=1, help="Use a stratified subset of the dev split."
    ),
    test_size: int | None = typer.Option(
        None, "--test-size", min=1, help="Use a stratified subset of the test split."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    lr: float | None = typer.Option(None, "--lr", min=0.0),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="K/N: run only the K-th of N slices of the grid (several machines or a cluster "
        "array job sharing one --out). Default in a SLURM array job: "
        "$SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT.",
    ),
    encoding: str | None = typer.Option(None, "--encoding", help=ENCODING_HELP),
    skip_bad_lines: bool = typer.Option(False, "--skip-bad-lines", help=SKIP_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON only."),
) -> None:
    """Train the task's model with each pooling type over several seeds; write results.jsonl,
    summary.csv, summary.md and plots (accuracy with error bars, accuracy under shifts or word
    dropout). Resumable: re-run the same command to finish an interrupted grid. Any number of
    compare processes may write to one --out: each run is recorded once, a run in progress
    elsewhere is skipped, and the summary covers every run finished so far."""
    from poolkit.experiments import CompareSpec, compare, get_task
    from poolkit.experiments.runner import command_line, parse_shard, shard_from_env
    from poolkit.experiments.tasks import parse_pools

    grid_shard = parse_shard(shard) if shard is not None else shard_from_env()
    file_options = {
        "text_column": text_column,
        "label_column": label_column,
        "tokenizer": tokenizer,
    }
    resolved = get_task(task, **file_options)
    if ":" not in task:
        if text_column or label_column:
            raise ValueError("--text-column/--label-column apply to csv:/tsv:/jsonl: tasks only")
        resolved = resolved.with_options(tokenizer=tokenizer)
    resolved = resolved.with_options(
        path=data, train_size=train_size, dev_size=dev_size, test_size=test_size
    )
    if encoding is not None or skip_bad_lines:
        if resolved.kind != "text":
            raise ValueError("--encoding/--skip-bad-lines apply to text tasks only")
        resolved = resolved.with_options(encoding=encoding, skip_bad_lines=skip_bad_lines or None)
    pool_names = parse_pools(pools, resolved)
    _check_pools(pool_names, resolved)
    out_dir = out or Path("runs") / f"compare-{resolved.name.replace(':', '-').replace('/', '_')}"
    if "cache_dir" in resolved.options:  # a task caching encoder outputs: in the output folder
        resolved = resolved.with_options(cache_dir=str(out_dir))
    spec = CompareSpec(
        resolved,
        pool_names,
        list(range(seeds)),
        train={"epochs": epochs, "batch_size": batch_size, "lr": lr},
        out_dir=out_dir,
        command=command_line(),
    )
    report = compare(spec, jobs=jobs, threads=threads, console=stderr_console(), shard=grid_shard)
    if as_json:
        print_json(report.to_json())
    else:
        console = wide_console()
        render_table(report.rows, console, resolved.metric, resolved.metric_label)
        for name, path in report.files.items():
            console.print(f"{name:>15}: {path}")
        outcome = report.outcome
        console.print(
            f"{outcome.ran} run(s) done, {outcome.reused} reused, {outcome.failed} "
            f"failed in {outcome.wall_time_s:.0f} s ({outcome.jobs} job(s) x "
            f"{outcome.threads} thread(s))"
            + (f"; shard {grid_shard[0]}/{grid_shard[1]}" if grid_shard else "")
            + (f"; {outcome.busy} left to another process" if outcome.busy else "")
            + (f"; {outcome.unfinished} of {outcome.total} not finished yet"
               if outcome.unfinished else "")
        )
    if report.outcome.failed:
        failures = [r for r in report.outcome.records if r.get("status") != "ok"]
        first = failures[0]
        raise RuntimeError(
            f"{len(failures)} of {len(report.outcome.records)} runs failed (first: "
            f"{first['pool']} seed {first['seed']}: {first.get('error')}); see "
            f"{report.files['summary_md']}"
        )
