"""``poolkit compare``: which pooling for my task? Train with each, over seeds, and tabulate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from poolkit.cli._app import (
    ENCODING_HELP,
    SKIP_HELP,
    app,
    at_run_time,
    print_json,
    stderr_console,
    stdout_console,
)

_TASK_HELP = (
    "A built-in task (digits, mnist5k, mnist, mr, sst2, chnsenti, rt, minilm-mr, minilm-sst2, "
    "stsb; "
    "digits-metaformer and mnist-metaformer compare token mixers: pool, attention, identity, "
    "max...; mnist-seg, mnist-det: pools are context modules none, ppm, aspp or RoI layers "
    "roi_pool, roi_align, roi_align_aligned) or your file: "
    "csv:PATH, tsv:PATH, jsonl:PATH (with --text-column/--label-column), images:PATH.npz, or a "
    "Hugging Face text data set: hf:NAME or hf:NAME/CONFIG (hub), hf:FOLDER (save_to_disk)."
)


def _check_pools(pools: list[str], task) -> None:
    """Unknown pooling names are bad usage (exit 2), before any run starts."""
    from poolkit.experiments.builtin_tasks import (
        build_convnet,
        build_metaformer,
        build_textcnn,
        build_transformer,
    )

    builder = getattr(task.build_model, "func", task.build_model)
    if builder is build_metaformer:
        from poolkit.models.metaformer import check_mixer

        for name in pools:
            check_mixer(name)  # ValueError listing the valid mixers
        return
    if task.kind == "pairs" or builder is build_transformer:  # SequencePool modes
        from poolkit.nn.sequence import parse_mode

        for name in pools:
            parse_mode(name)  # ValueError listing the valid modes
        return
    if builder not in (build_convnet, build_textcnn):
        return  # a user's task may use names of its own
    from poolkit.nn import pool_info

    for name in pools:
        pool_info(name)  # ValueError listing the valid names


def _table_columns(rows, metric: str, metric_label: str) -> list[tuple[str, Any]]:
    """``(header, cell(row) -> str)`` for each column of the console table."""
    from poolkit.experiments.summary import (
        format_number,
        format_percent,
        level_header,
        paired_cells,
        paired_labels,
        score_cells,
        score_headers,
        throughput_header,
    )

    def compact(text: str) -> str:
        return text.replace(" ± ", "±")

    def pct(name):
        return lambda row: compact(format_percent(row.get(f"{name}_mean"), row.get(f"{name}_std")))

    def nth_score(index):
        return lambda row: compact(score_cells(row, metric, score_header)[index])

    def nth_paired(label, index):
        return lambda row: paired_cells(row, label)[index]

    labels = [k[: -len("_mean")] for k in rows[0] if k.endswith("_mean")] if rows else []
    labels = [label for label in labels if label.startswith(("shift_", "word_dropout_"))]
    score_header = score_headers(rows, metric, metric_label)
    samples, _, threads = throughput_header(rows).partition(" ")
    speed = "throughput_samples_s_mean"
    columns = [("#", lambda row: str(row.get("rank") or "–")), ("pooling", lambda row: row["pool"])]
    columns += [(name.replace(" ", "\n", 1), nth_score(i)) for i, name in enumerate(score_header)]
    columns += [(level_header(x).replace(" ", "\n", 1), pct(x)) for x in labels]
    if any("consistency_mean" in row for row in rows):
        columns.append(("consis-\ntency %", pct("consistency")))
    columns += [
        ("train\ns", lambda row: format_number(row.get("train_time_s_mean"), ".1f")),
        (f"{samples}\n{threads}".rstrip(), lambda row: format_number(row.get(speed), ",.0f")),
        ("peak\nMiB", lambda row: format_number(row.get("peak_memory_mib"), ".2f")),
        ("params", lambda row: f"{row['params']:,}" if row.get("params") is not None else "–"),
    ]
    for label in paired_labels(rows):
        columns += [(f"Δ vs {label[3:]}", nth_paired(label, 0)), ("paired", nth_paired(label, 1))]
    return columns + [("verdict", lambda row: row["verdict"])]


def render_table(rows, console, metric: str = "accuracy", metric_label: str = "accuracy %") -> None:
    """The summary as a rich table: best row green, losing rows dim. Headers take two lines,
    numbers never wrap (a sweep's cell labels wrap at their spaces), and where the table would
    not fit the console, macro-F1 and then the training time (both in summary.md) are left
    out."""
    from rich.measure import Measurement

    columns = _table_columns(rows, metric, metric_label)
    table = _rich_table(rows, columns)
    unbounded = console.options.update_width(10_000)  # Measurement clips to the width given
    for spare in ("macro-F1", "train\ns"):  # both are in summary.md
        if Measurement.get(console, unbounded, table).minimum <= console.width:
            break
        columns = [column for column in columns if not column[0].startswith(spare)]
        table = _rich_table(rows, columns)
    console.print(table)


def _rich_table(rows, columns):
    from rich import box
    from rich.table import Table

    # No vertical rules: shift, consistency and cost columns fit beside the accuracy ones.
    table = Table(show_lines=False, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    words = [len(word) for row in rows for word in row["pool"].split(" ")]
    for name, _ in columns:
        left = name in ("pooling", "verdict", "paired")
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
            if row["verdict"].startswith(("loses", "at chance", "failed", "not finished"))
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


def default_compare_folder(task_name: str) -> Path:
    """``runs/compare-TASK`` for a built-in task, ``runs/compare-FORMAT-STEM`` for a file task
    (``csv:../data/reviews.csv`` -> ``runs/compare-csv-reviews``): letters, digits, ``.``, ``_``
    and ``-`` only."""
    import re

    kind, sep, path = task_name.partition(":")
    parts = [kind, Path(path).stem or Path(path).name] if sep else [task_name]
    name = "-".join(re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._-") or "x" for part in parts)
    return Path("runs") / f"compare-{name}"


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
        metavar="NAME=V1,V2",
        help="Also vary a model argument (repeatable; the grid is every pooling "
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
        help="Output folder (default: runs/compare-TASK; a file task: runs/compare-FORMAT-STEM, "
        "e.g. runs/compare-csv-reviews). Finished runs recorded there are not repeated.",
    ),
    data: str | None = typer.Option(
        None, "--data", help="Data path for the task (a folder for mr/sst2/mnist/stsb)."
    ),
    text_column: str | None = typer.Option(
        None, "--text-column", help="Text column (csv:…, hf:…)."),
    label_column: str | None = typer.Option(
        None, "--label-column", help="Label column (csv:…, hf:…)."),
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or notes on stderr "
                               "(warnings stay)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON only."),
) -> None:
    """Train the task's model with each pooling type over several seeds; write results.jsonl,
    summary.csv, summary.md and plots (accuracy with error bars, accuracy under shifts or word
    dropout). Resumable: re-run the same command to finish an interrupted grid. Any number of
    compare processes may write to one --out: each run is recorded once, a run in progress
    elsewhere is skipped, and the summary covers every run finished so far."""
    from poolkit.experiments import CompareSpec, compare, get_task
    from poolkit.experiments.runner import command_line, parse_shard, shard_from_env
    from poolkit.experiments.sweep import parse_sweep
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
            raise ValueError("--text-column/--label-column apply to csv:/tsv:/jsonl:/hf: tasks "
                             "only")
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
    axes = parse_sweep(sweep, resolved, pool_names)
    out_dir = out or default_compare_folder(resolved.name)
    if "cache_dir" in resolved.options:  # a task caching encoder outputs: in the output folder
        resolved = resolved.with_options(cache_dir=str(out_dir))
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
    with at_run_time():
        report = compare(spec, jobs=jobs, threads=threads, progress=not quiet,
                         console=stderr_console(quiet=quiet), shard=grid_shard)
    for warning in report.warnings:
        stderr_console().print(f"[yellow]warning:[/yellow] {warning}")
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
