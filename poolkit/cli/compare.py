"""``poolkit compare``: which pooling for my task? Train with each, over seeds, and tabulate."""

from __future__ import annotations

from pathlib import Path

import typer

from poolkit.cli._app import app, print_json, stderr_console, stdout_console

_TASK_HELP = (
    "A built-in task (digits, mnist5k, mnist, mr, sst2, chnsenti, rt; mnist-seg, mnist-det: "
    "pools are context modules none,ppm,aspp or RoI layers roi_pool,roi_align,"
    "roi_align_aligned) or your file: "
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


def render_table(rows, console) -> None:
    """The summary as a rich table: best row green, losing rows dim."""
    from rich.table import Table

    from poolkit.experiments.summary import _level_header, _num, _pct, score_columns

    labels = [k[: -len("_mean")] for k in rows[0] if k.endswith("_mean")] if rows else []
    labels = [label for label in labels if label.startswith(("shift_", "word_dropout_"))]
    table = Table(show_lines=False, header_style="bold")
    scores = score_columns(rows)
    for name in (
        "#",
        "pooling",
        *(header for header, _ in scores),
        *[_level_header(x) for x in labels],
        "train s",
        "params",
        "verdict",
    ):
        table.add_column(name, justify="left" if name in ("pooling", "verdict") else "right")
    for row in rows:
        style = (
            "bold green"
            if row["verdict"] == "best"
            else "dim"
            if row["verdict"].startswith(("loses", "at chance", "failed"))
            else None
        )
        table.add_row(
            str(row.get("rank") or "–"),
            row["pool"],
            *(_pct(row.get(f"{key}_mean"), row.get(f"{key}_std")) for _, key in scores),
            *[_pct(row.get(f"{x}_mean"), row.get(f"{x}_std")) for x in labels],
            _num(row.get("train_time_s_mean"), ".1f"),
            f"{row['params']:,}" if row.get("params") is not None else "–",
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
    out_dir = out or Path("runs") / f"compare-{resolved.name.replace(':', '-').replace('/', '_')}"
    spec = CompareSpec(
        resolved,
        pool_names,
        list(range(seeds)),
        train={"epochs": epochs, "batch_size": batch_size, "lr": lr},
        out_dir=out_dir,
        command=command_line(),
    )
    report = compare(spec, jobs=jobs, threads=threads, console=stderr_console())
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
