"""``poolkit export-adapter RUN OUT``: a LoRA run as a peft adapter folder + its pooling head."""

from __future__ import annotations

from pathlib import Path

import typer

from poolkit.cli._app import app, at_run_time, print_json, stdout_console


@app.command("export-adapter")
def export_adapter(
    run_folder: Path = typer.Argument(
        ..., metavar="RUN", help="Folder written by 'poolkit train transformer --finetune lora'."
    ),
    out: Path = typer.Argument(..., metavar="OUT", help="New (or empty) folder to write."),
    json_output: bool = typer.Option(False, "--json", help="Print the written files as JSON."),
) -> None:
    """Export a LoRA run as a peft adapter folder plus its pooling head and tokenizer.

    PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), OUT) is then the trained
    backbone, and poolkit.models.load_pooling_head(OUT) its pooling and classifier.

    Example: poolkit export-adapter runs/lora-sst2 adapter
    """
    from poolkit.models.adapter import export_adapter as export

    with at_run_time():
        folder = export(run_folder, out)
    files = sorted(path.name for path in folder.iterdir())
    if json_output:
        print_json({"run": str(run_folder), "out": str(folder), "files": files})
        return
    stdout_console().print(f"peft adapter and pooling head written to {folder}: "
                           f"{', '.join(files)}", markup=False, highlight=False)
