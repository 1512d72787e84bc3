"""``compare``: train a model with each pooling type over seeds; write results, tables, plots.

Files written in ``out_dir`` (each atomically):

- ``results.jsonl``: one line per run (task, pool, seed, accuracy, macro_f1, train_time_s,
  inference_time_s, throughput_samples_s and the throughput_threads it was timed with,
  peak_memory_bytes, params, epochs, robustness, versions, …), merged from
  ``runs/`` (one file per run, see :mod:`poolkit.experiments.results`);
- ``summary.csv`` and ``summary.md``: per pooling type, mean ± std over seeds, rank and verdict;
- ``accuracy.png`` (``<metric>.png`` for a task scored otherwise, e.g. ``spearman.png``),
  ``robustness.png`` and ``pareto.png`` (accuracy against throughput).

Example:
    >>> from poolkit.experiments import CompareSpec, compare, get_task   # doctest: +SKIP
    >>> spec = CompareSpec(get_task("digits"), ["max", "avg"], [0, 1, 2])  # doctest: +SKIP
    >>> report = compare(spec)  # doctest: +SKIP
    >>> print(report.markdown)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolkit.experiments.plots import plot_accuracy, plot_pareto, plot_robustness
from poolkit.experiments.results import RESULTS_FILE, ResultStore, grid_records
from poolkit.experiments.runner import CompareSpec, GridOutcome, run_grid
from poolkit.experiments.summary import (
    public_rows,
    resolution_notes,
    summarize,
    throughput_header,
    to_markdown,
    write_summary,
)


@dataclass
class CompareReport:
    """What :func:`compare` produced: summary rows, the Markdown table and the file paths."""

    spec: CompareSpec
    outcome: GridOutcome
    rows: list[dict[str, Any]]
    markdown: str
    files: dict[str, Path]
    warnings: list[str] = field(default_factory=list)  # e.g. a test set too small to decide

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.spec.task.name,
            "pools": self.spec.pools,
            "sweep": {axis.name: list(axis.values) for axis in self.spec.sweep},
            "cells": self.spec.cells(),
            "seeds": self.spec.seeds,
            "config_id": self.spec.config_id,
            "train": self.spec.train,
            "out_dir": str(self.spec.out_dir),
            "unfinished": self.outcome.unfinished,
            "shard": "/".join(map(str, self.outcome.shard)) if self.outcome.shard else None,
            "runs": {
                "total": self.outcome.total or len(self.outcome.records),
                "ran": self.outcome.ran,
                "reused": self.outcome.reused,
                "failed": self.outcome.failed,
            },
            "jobs": self.outcome.jobs,
            "threads_per_job": self.outcome.threads,
            "wall_time_s": self.outcome.wall_time_s,
            "summary": public_rows(self.rows),
            "warnings": list(self.warnings),
            "files": {name: str(path) for name, path in self.files.items()},
        }


def _notes(spec: CompareSpec, records: list[dict[str, Any]]) -> list[str]:
    ok = [r for r in records if r.get("status") == "ok"]
    train = spec.train
    notes = []
    total = len(spec.pools) * len(spec.seeds)
    if len(records) < total:
        notes.append(
            f"Partial: {len(records)} of {total} runs finished (the rest are running in another "
            "process or belong to another shard); the same command again updates this table."
        )
    if spec.task.description:
        notes.append(f"Task: {spec.task.description}.")
    if ok and "num_classes" in ok[0]:
        first = ok[0]
        notes.append(
            f"Data: {first['n_train']:,} training, {first['n_dev']:,} dev, "
            f"{first['n_test']:,} test examples, {first['num_classes']} classes; "
            f"majority-class baseline {100 * first['chance_accuracy']:.1f}%."
        )
    elif ok:
        first = ok[0]
        notes.append(
            f"Data: {first['n_train']:,} training, {first['n_dev']:,} dev, "
            f"{first['n_test']:,} test examples; metric: {spec.task.metric_label} on test."
        )
    settings = ", ".join(f"{k}={v}" for k, v in train.items()
                         if k not in ("eval_batch_size", "throughput_threads"))
    notes.append(f"Training: {settings}; seeds {', '.join(map(str, spec.seeds))}.")
    if ok:
        versions = ok[-1].get("versions", {})
        notes.append(
            "Versions: "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + f"; {ok[-1].get('jobs', 1)} job(s) x {ok[-1].get('threads', 1)} thread(s)."
        )
        batch = first.get("memory_batch_size")
        if batch:
            notes.append(f"Peak memory: one forward pass over the first {batch} test examples.")
    return notes


def write_report(spec: CompareSpec, outcome: GridOutcome) -> CompareReport:
    """Write ``summary.csv``, ``summary.md`` and the plots for ``outcome``'s records."""
    records = outcome.records
    task = spec.task
    cells = spec.cells()
    rows = summarize(records, cells, metric=task.metric)
    out = spec.out_dir
    grid = f"{len(spec.pools)} pooling types"
    if spec.sweep:
        grid += f" x {' x '.join(f'{len(a.values)} {a.name}' for a in spec.sweep)}"
        grid += f" ({len(cells)} cells)"
    title = f"Which pooling for `{spec.task.name}`? {grid} x {len(spec.seeds)} seed(s)"
    failures = [r for r in records if r.get("status") != "ok"]
    n_test = next((r.get("n_test") for r in records if r.get("status") == "ok"), None)
    resolution, warnings = resolution_notes(rows, n_test)
    markdown_args = dict(
        title=title,
        command=spec.command,
        notes=_notes(spec, records) + resolution,
        failures=failures,
        warnings=warnings,
        metric=task.metric,
        metric_label=task.metric_label,
    )
    files = {
        "results": out / RESULTS_FILE,
        "summary_csv": out / "summary.csv",
        "summary_md": out / "summary.md",
    }
    write_summary(rows, files["summary_csv"], files["summary_md"], **markdown_args)
    if any(row["runs"] > 0 for row in rows):
        files[f"{task.metric}_png"] = plot_accuracy(
            rows, out / f"{task.metric}.png", title=f"{task.name}: {task.metric} by pooling type",
            metric=task.metric,
            label=f"test {task.metric_label}" if task.metric != "accuracy" else "test accuracy (%)",
        )
        xlabel = (
            "shift (pixels, random direction, zero fill)"
            if spec.task.perturbation == "shift"
            else "share of words (tokens; characters for a character model) dropped (%)"
        )
        robustness = plot_robustness(
            rows,
            out / "robustness.png",
            title=f"{spec.task.name}: accuracy under "
            f"{(spec.task.perturbation or 'perturbation').replace('_', ' ')}",
            xlabel=xlabel,
        )
        if robustness is not None:
            files["robustness_png"] = robustness
        pareto = None if task.metric != "accuracy" else plot_pareto(
            rows,
            out / "pareto.png",
            title=f"{spec.task.name}: accuracy against inference speed",
            xlabel=f"inference throughput, test {throughput_header(rows)}",
        )
        if pareto is not None:
            files["pareto_png"] = pareto
    markdown = to_markdown(rows, **markdown_args)
    return CompareReport(spec, outcome, rows, markdown, files, warnings)


def compare(
    spec: CompareSpec,
    *,
    jobs: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    console=None,
    shard: tuple[int, int] | None = None,
) -> CompareReport:
    """Run the grid of ``spec`` (resuming from what ``spec.out_dir`` holds) and write the report.

    ``jobs`` worker processes (default: one per core, at most one per run) with ``threads`` torch
    threads each (default: cores // jobs). ``shard=(K, N)`` runs the K-th of N slices of the
    grid; any number of processes may share ``spec.out_dir``, and the report covers every run
    finished there so far.
    """
    if spec.task.preload:  # once, here, with every thread; the runs then read its cache
        from poolkit.experiments.runner import load_task_data

        load_task_data(spec.task)
    outcome = run_grid(
        spec, jobs=jobs, threads=threads, progress=progress, console=console, shard=shard
    )
    store = ResultStore(spec.out_dir)
    with store.lock():  # one writer at a time, each from the newest records of every process
        keys = [spec.run_key(pool, seed) for pool, seed in spec.grid()]
        outcome.records = grid_records(store.records(), keys)
        return write_report(spec, outcome)
