"""``poolkit compare``: which pooling for my task? Train with each, over seeds, and tabulate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from poolkit.cli._app import app, print_json, stderr_console, stdout_console

_TASK_HELP = (
    "A built-in task (digits, mnist5k, mnist, mr, sst2, chnsenti, rt) or your file: "
    "csv:PATH, tsv:PATH, jsonl:PATH (with --text-column/--label-column) or images:PATH.npz."
)


def _check_pools(pools: list[str], task) -> None:
    """Unknown pooling names are bad usage (exit 2), before any run starts."""
    from poolkit.experiments.builtin_tasks import build_convnet, build_textcnn

    builder = getattr(task.build_model, "func", task.build_model)
    if builder not in (build_convnet, build_textcnn):
        return  # a user's task may use names of its own
    from poolkit.nn import pool_info

    for name in pools:
        pool_info(name)  # ValueError listing the valid names


def _table_columns(rows) -> list[tuple[str, Any]]:
    """``(header, cell(row) -> str)`` for each column of the console table."""
    from poolkit.experiments.summary import _level_header, _num, _pct, throughput_header

    def pct(metric):
        return lambda row: _pct(row.get(f"{metric}_mean"), row.get(f"{metric}_std")).replace(
            " ± ", "±"
        )

    labels = [k[: -len("_mean")] for k in rows[0] if k.endswith("_mean")] if rows else []
    labels = [label for label in labels if label.startswith(("shift_", "word_dropout_"))]
    samples, _, threads = throughput_header(rows).partition(" ")
    speed = "throughput_samples_s_mean"
    columns = [
        ("#", lambda row: str(row.get("rank") or "–")),
        ("pooling", lambda row: row["pool"]),
        ("accuracy\n%", pct("accuracy")),
        ("macro-F1\n%", pct("macro_f1")),
    ]
    columns += [(_level_header(x).replace(" ", "\n", 1), pct(x)) for x in labels]
    if any("consistency_mean" in row for row in rows):
        columns.append(("consis-\ntency %", pct("consistency")))
    return columns + [
        ("train\ns", lambda row: _num(row.get("train_time_s_mean"), ".1f")),
        (f"{samples}\n{threads}".rstrip(), lambda row: _num(row.get(speed), ",.0f")),
        ("peak\nMiB", lambda row: _num(row.get("peak_memory_mib"), ".2f")),
        ("params", lambda row: f"{row['params']:,}" if row.get("params") is not None else "–"),
        ("verdict", lambda row: row["verdict"]),
    ]


def render_table(rows, console) -> None:
    """The summary as a rich table: best row green, losing rows dim. Headers take two lines,
    numbers never wrap (a sweep's cell labels wrap at their spaces), and where the table would
    not fit the console, macro-F1 (in summary.md) is left out."""
    from rich.measure import Measurement

    columns = _table_columns(rows)
    table = _rich_table(rows, columns)
    unbounded = console.options.update_width(10_000)  # Measurement clips to the width given
    if Measurement.get(console, unbounded, table).minimum > console.width:
        table = _rich_table(rows, [c for c in columns if not c[0].startswith("macro-F1")])
    console.print(table)


def _rich_table(rows, columns):
    from rich import box
    from rich.table import Table

    # No vertical rules: shift, consistency and cost columns fit beside the accuracy ones.
    table = Table(show_lines=False, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    words = [len(word) for row in rows for word in row["pool"].split(" ")]
    for name, _ in columns:
        left = name in ("pooling", "verdict")
        table.add_column(
            name,
            justify="left" if left else "right",
            no_wrap=not left,
            min_width={"pooling": max(words, default=7), "verdict": 9}.get(name),
        )
    for row in rows:
        style = (
            "bold green"
            if row["verdict"] == "best"
            else "dim"
            if row["verdict"].startswith(("loses", "at chance", "failed"))
            else None
        )
        table.add_row(*(cell(row) for _, cell in columns), style=style)
    return table


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
    sweep: list[str] = typer.Option(
        [],
        "--sweep",
        help="NAME=V1,V2: also vary a model argument (repeatable; the grid is every pooling "
        "type x every combination), e.g. kernel_size=2,3 or stride=1,2 (image pools), "
        "filter_widths=[3,4,5],[2,3] or k=1,2 (TextCNN); ';' separates values that hold commas.",
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the epochs."),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, help="Worker processes (default: one per core)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Torch threads per worker (default: cores // jobs)."
    ),
    throughput_threads: int = typer.Option(
        1,
        "--throughput-threads",
        min=1,
        help="Torch threads for timing inference (samples/s), the same for every run.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output folder (default: runs/compare-TASK). Finished runs "
        "recorded there are not repeated.",
    ),
    data: str | None = typer.Option(
        None, "--data", help="Data path for the task (a folder for mr/sst2/mnist)."
    ),
    text_column: str | None = typer.Option(None, "--text-column", help="Text column (csv:…)."),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column (csv:…)."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="word or char (text tasks)."),
    train_size: int | None = typer.Option(
        None, "--train-size", min=1, help="Use a stratified subset of the training split."
    ),
    test_size: int | None = typer.Option(
        None, "--test-size", min=1, help="Use a stratified subset of the test split."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    lr: float | None = typer.Option(None, "--lr", min=0.0),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON only."),
) -> None:
    """Train the task's model with each pooling type over several seeds; write results.jsonl,
    summary.csv, summary.md and plots (accuracy with error bars, accuracy under shifts or word
    dropout). Resumable: re-run the same command to finish an interrupted grid."""
    from poolkit.experiments import CompareSpec, compare, get_task
    from poolkit.experiments.runner import command_line
    from poolkit.experiments.sweep import parse_sweep
    from poolkit.experiments.tasks import parse_pools

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
    resolved = resolved.with_options(path=data, train_size=train_size, test_size=test_size)
    pool_names = parse_pools(pools, resolved)
    _check_pools(pool_names, resolved)
    axes = parse_sweep(sweep, resolved, pool_names)
    out_dir = out or Path("runs") / f"compare-{resolved.name.replace(':', '-').replace('/', '_')}"
    spec = CompareSpec(
        resolved,
        pool_names,
        list(range(seeds)),
        train={
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "throughput_threads": throughput_threads,
        },
        out_dir=out_dir,
        command=command_line(),
        sweep=axes,
    )
    report = compare(spec, jobs=jobs, threads=threads, console=stderr_console())
    for warning in report.warnings:
        stderr_console().print(f"[yellow]warning:[/yellow] {warning}")
    if as_json:
        print_json(report.to_json())
    else:
        console = wide_console()
        render_table(report.rows, console)
        for name, path in report.files.items():
            console.print(f"{name:>15}: {path}")
        outcome = report.outcome
        console.print(
            f"{outcome.ran} run(s) done, {outcome.reused} reused, {outcome.failed} "
            f"failed in {outcome.wall_time_s:.0f} s ({outcome.jobs} job(s) x "
            f"{outcome.threads} thread(s))"
        )
    if report.outcome.failed:
        failures = [r for r in report.outcome.records if r.get("status") != "ok"]
        first = failures[0]
        raise RuntimeError(
            f"{len(failures)} of {len(report.outcome.records)} runs failed (first: "
            f"{first['pool']} seed {first['seed']}: {first.get('error')}); see "
            f"{report.files['summary_md']}"
        )
