"""``poolkit demo``: worked examples, then compare pooling types on images and text."""

from __future__ import annotations

from pathlib import Path

import typer

from poolkit.cli._app import app, at_run_time, print_json, stderr_console


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder."),
    quick: bool = typer.Option(False, "--quick", help="A tiny version (under a minute)."),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, help="Worker processes (default: one per core)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or notes on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON only."),
) -> None:
    """The main job on data that installs with the package: the worked examples, then every main
    pooling family compared on digits (ConvNet) and Chinese sentiment (TextCNN) over 3 seeds,
    with tables and plots. Under 5 minutes on 2 CPU cores; resumable."""
    from rich.rule import Rule

    from poolkit.cli.compare import render_table, wide_console
    from poolkit.experiments.demo import run_demo

    notes = stderr_console(quiet=quiet)
    steps = iter(range(1, 10))

    def on_step(title, task):
        notes.print(Rule(f"[bold]{next(steps)}. {title}[/bold]"))
        if task is not None and task.description:
            notes.print(f"[dim]{task.description}[/dim]")

    with at_run_time():
        result = run_demo(out, quick=quick, jobs=jobs, progress=not quiet, console=notes,
                          on_step=on_step)
    if as_json:
        print_json(result.to_json())
    else:
        console = wide_console()
        console.print(Rule("[bold]worked examples (4x4 grid 1..16, 2x2, stride 2)[/bold]"))
        from poolkit.experiments.demo import format_output

        for row in result.worked_examples:
            console.print(f"  {row['op']:>15}: {format_output(row['output'])}")
        for note in {n for row in result.worked_examples for n in row["notes"]}:
            console.print(f"  [yellow]note: {note}[/yellow]")
        console.print(Rule("[bold]the NumPy engine's worked examples, checked by hand[/bold]"))
        for row in result.engine:
            mark = "[green]ok[/green]" if row["matches_by_hand"] else "[red]DIFFERS[/red]"
            console.print(f"  {mark} [bold]{row['title']}[/bold]")
            console.print(f"     {row['call']} -> {row['output']}")
            console.print(f"     [dim]by hand: {row['by_hand']}[/dim]", highlight=False)
            if row["note"]:
                console.print(f"     [yellow]note: {row['note']}[/yellow]")
        for report in result.reports:
            console.print(
                Rule(f"[bold]{report.spec.task.name}[/bold]: {report.spec.task.description}")
            )
            render_table(report.rows, console)
            for name in ("summary_md", "accuracy_png", "robustness_png"):
                if name in report.files:
                    console.print(f"  {name:>15}: {report.files[name]}")
        console.print(Rule())
        console.print(f"summary: {result.files['summary_md']}")
        console.print(
            f"worked examples: {result.files['worked_max_png']}, {result.files['worked_avg_png']}"
        )
        console.print(f"done in {result.wall_time_s:.0f} s")
    failed = sum(report.outcome.failed for report in result.reports)
    if failed:
        raise RuntimeError(f"{failed} demo run(s) failed; see the summary files in {out}")
