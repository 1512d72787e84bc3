"""``poolkit explain``: a pooling op window by window, or why a trained model decided."""

from __future__ import annotations

from pathlib import Path

import typer

from poolkit.cli._app import app, print_json, stderr_console, stdout_console

_OPS_HELP = (
    "Pooling op to explain: max, avg, lp, adaptive_max, adaptive_avg, fractional_max, "
    "stochastic, softpool, gem, lse, mixed; roi_align, roi_pool (one box: --box). "
    "Omit with --model."
)
_ROI_OPS = ("roi_align", "roi_pool")


def _parse_box(text: str | None):
    if text is None:
        return None
    try:
        box = tuple(float(p) for p in text.replace(";", ",").split(",") if p.strip())
    except ValueError:
        raise ValueError(f"--box ({text!r}) must be 4 numbers x1,y1,x2,y2") from None
    if len(box) != 4:
        raise ValueError(f"--box ({text!r}) must be 4 numbers x1,y1,x2,y2")
    return box


def _parse_size(text: str | None):
    if text is None:
        return None
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"output_size ({text!r}) must be an int or ints like 2,3") from None
    if not sizes:
        raise ValueError(f"output_size ({text!r}) must be an int or ints like 2,3")
    return sizes[0] if len(sizes) == 1 else sizes


@app.command("explain")
def explain_command(
    op: str | None = typer.Argument(None, metavar="[OP]", help=_OPS_HELP),
    input: str | None = typer.Option(
        None,
        "--input",
        "-i",
        help="Grid, rows split by ';' (default: the 4x4 worked example 1..16). One row: 1-D.",
    ),
    kernel: int | None = typer.Option(None, "--kernel", "-k", help="Window size (default 2)."),
    stride: int | None = typer.Option(None, "--stride", "-s", help="Step (default: kernel)."),
    padding: int | None = typer.Option(None, "--padding", help="Implicit padding each side."),
    dilation: int | None = typer.Option(None, "--dilation", help="Spacing of window elements."),
    ceil_mode: bool | None = typer.Option(
        None, "--ceil-mode/--floor-mode", help="Round the output size up (keeps a partial window)."
    ),
    count_include_pad: bool | None = typer.Option(
        None, "--count-include-pad/--no-count-include-pad", help="avg: divide by the padding too."
    ),
    p: float | None = typer.Option(None, "--p", help="Exponent: lp (norm_type), gem, lse (r)."),
    output_size: str | None = typer.Option(
        None, "--output-size", help="adaptive_*, fractional_max: output size, e.g. 2 or 2,3."
    ),
    alpha: float | None = typer.Option(None, "--alpha", help="mixed: weight of max (0..1)."),
    seed: int | None = typer.Option(None, "--seed", help="fractional_max, stochastic: seed."),
    box: str | None = typer.Option(
        None, "--box", help="roi_*: the box x1,y1,x2,y2 (default 0.5,0.5,3.5,3.5)."
    ),
    spatial_scale: float | None = typer.Option(
        None, "--spatial-scale", help="roi_*: box coordinates to map cells (default 1)."
    ),
    sampling_ratio: int | None = typer.Option(
        None, "--sampling-ratio", help="roi_align: samples per bin and axis (<= 0: adaptive)."
    ),
    aligned: bool | None = typer.Option(
        None, "--aligned/--no-aligned", help="roi_align: the half-pixel offset (default off)."
    ),
    png: Path | None = typer.Option(None, "--png", help="Also draw the explanation as a PNG."),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="A checkpoint folder from `poolkit train` (textcnn/convnet)."
    ),
    text: str | None = typer.Option(None, "--text", help="Text to explain (TextCNN)."),
    image: Path | None = typer.Option(
        None, "--image", help="Image file (.png, .npy…) to explain (ConvNet)."
    ),
    top: int = typer.Option(5, "--top", min=1, help="TextCNN: strongest filters shown."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON only."),
) -> None:
    """Explain a pooling op on a small grid (formula, output size, every window, the result), or
    --model: which n-grams (TextCNN) or pixels (ConvNet) won the pooling and decided."""
    if model is not None:
        if op is not None:
            raise ValueError(f"give either an op ({op!r}) or --model, not both")
        _explain_model(model, text, image, top, png, as_json)
        return
    if op is None:
        raise ValueError("give an op to explain (e.g. `poolkit explain max`) or --model")
    if text is not None or image is not None:
        raise ValueError("--text/--image need --model CHECKPOINT")
    if op in _ROI_OPS:
        _explain_roi(op, input, _parse_box(box), _parse_size(output_size), spatial_scale,
                     sampling_ratio, aligned, png, as_json)
        return
    if any(v is not None for v in (box, spatial_scale, sampling_ratio, aligned)):
        raise ValueError(f"--box/--spatial-scale/--sampling-ratio/--aligned are for "
                         f"{'/'.join(_ROI_OPS)}, not {op!r}")
    from poolkit.experiments.explain_op import explain_op, plot_op

    explanation = explain_op(
        op,
        input,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        p=p,
        output_size=_parse_size(output_size),
        alpha=alpha,
        seed=seed,
    )
    written = plot_op(explanation, png) if png is not None else None
    if as_json:
        payload = explanation.to_json()
        if written is not None:
            payload["png"] = str(written)
        print_json(payload)
        return
    from poolkit.cli.compare import wide_console

    _render_op(explanation, wide_console())
    if written is not None:
        stderr_console().print(f"figure: {written}")


# ---------------------------------------------------------------------------------------------
# RoI ops


def _explain_roi(op, input, box, output_size, spatial_scale, sampling_ratio, aligned, png,
                 as_json) -> None:
    from poolkit.experiments.explain_roi import explain_roi, plot_roi

    arguments = {"box": box, "output_size": output_size, "spatial_scale": spatial_scale}
    if op == "roi_align":
        arguments.update(sampling_ratio=sampling_ratio, aligned=aligned)
    elif sampling_ratio is not None or aligned is not None:
        raise ValueError("--sampling-ratio/--aligned are roi_align's; roi_pool has neither")
    explanation = explain_roi(op, input, **arguments)
    written = plot_roi(explanation, png) if png is not None else None
    if as_json:
        payload = explanation.to_json()
        if written is not None:
            payload["png"] = str(written)
        print_json(payload)
        return
    from poolkit.cli.compare import wide_console

    _render_roi(explanation, wide_console())
    if written is not None:
        stderr_console().print(f"figure: {written}")


def _render_roi(e, console) -> None:
    from rich.table import Table
    from rich.text import Text

    from poolkit.experiments.explain_op import _fmt

    console.print(Text(e.title, style="bold") + Text(f"   {e.formula}", style="cyan"))
    console.print(Text(f"({e.paper})", style="dim"))
    console.print("arguments: " + ", ".join(f"{k}={v}" for k, v in e.arguments.items()))
    console.print("input:")
    console.print(_grid(e.input, _fmt))
    for step in e.steps:
        console.print(f"  {step}")
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    table.add_column("bin")
    if e.op == "roi_align":
        table.add_column("samples (y, x) -> bilinear value")
    else:
        table.add_column("cells")
        table.add_column("winner")
    table.add_column("result", justify="right")
    for b in e.bins:
        result = Text(_fmt(b["result"]), style="bold green")
        if e.op == "roi_align":
            samples = "  ".join(f"({_fmt(s['y'])}, {_fmt(s['x'])}) -> {_fmt(s['value'])}"
                                for s in b["samples"]) or "no samples"
            table.add_row(str(tuple(b["bin"])), f"{samples}  / {b['count']}", result)
        else:
            (r0, r1), (c0, c1) = b["rows"], b["cols"]
            cells = f"rows {r0}..{r1 - 1}, cols {c0}..{c1 - 1}" if r1 > r0 and c1 > c0 \
                else "empty"
            winner = "-" if b["winner"] is None else str(tuple(b["winner"]))
            table.add_row(str(tuple(b["bin"])), cells, winner, result)
    console.print("bins:")
    console.print(table)
    console.print("output:")
    console.print(_grid(e.output, _fmt, style="bold green"))
    for note in e.notes:
        console.print(Text(f"note: {note}", style="yellow"))


# ---------------------------------------------------------------------------------------------
# Rendering an op


def _render_op(explanation, console) -> None:
    from rich.table import Table
    from rich.text import Text

    from poolkit.experiments.explain_op import _fmt

    e = explanation
    console.print(Text(e.title, style="bold") + Text(f"   {e.formula}", style="cyan"))
    if e.paper:
        console.print(Text(f"({e.paper})", style="dim"))
    arguments = ", ".join(f"{k}={v}" for k, v in e.arguments.items())
    console.print(f"arguments: {arguments}")
    console.print("input:")
    console.print(_grid(e.input, _fmt))
    console.print("output size:")
    for line in e.output_size:
        console.print(f"  {line}")
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    table.add_column("output")
    table.add_column("window (input positions)")
    table.add_column("values")
    table.add_column("result", justify="right")
    extra = next((k for k in ("probabilities", "weights") if k in e.windows[0]), None)
    if extra:
        table.add_column(extra)
    has_eval = "eval_result" in e.windows[0]
    if has_eval:
        table.add_column("eval result", justify="right")
    for window in e.windows:
        values = Text()
        winner = window.get("winner")
        previous_row = None
        for position, value, padded in zip(
            window["positions"], window["values"], window["padding"], strict=True
        ):
            if values:
                new_row = len(position) == 2 and position[0] != previous_row
                values.append(" | " if new_row else " ", style="dim" if new_row else None)
            previous_row = position[0]
            if padded:
                values.append("pad", style="dim")
            elif winner is not None and list(position) == list(winner):
                values.append(f"[{_fmt(value)}]", style="bold red")
            else:
                values.append(_fmt(value))
        row = [
            str(tuple(window["output"])),
            _span(window["positions"]),
            values,
            Text(_fmt(window["result"]), style="bold green"),
        ]
        if extra:
            row.append(" ".join(f"{v:.2f}" if v is not None else "-" for v in window[extra]))
        if has_eval:
            row.append(_fmt(window["eval_result"]))
        table.add_row(*row)
    console.print("windows:")
    console.print(table)
    console.print("output:")
    console.print(_grid(e.output, _fmt, style="bold green"))
    for note in e.notes:
        console.print(Text(f"note: {note}", style="yellow"))


def _span(positions) -> str:
    """``rows 0-1, cols 2-3`` for a window's positions (padding included)."""
    dims = len(positions[0])
    names = ("rows", "cols") if dims == 2 else ("positions",)
    parts = []
    for d in range(dims):
        low = min(p[d] for p in positions)
        high = max(p[d] for p in positions)
        parts.append(f"{names[d]} {low}..{high}" if high > low else f"{names[d]} {low}")
    return ", ".join(parts)


def _grid(array, fmt, style: str | None = None):
    from rich.text import Text

    grid = array if array.ndim == 2 else array[None]
    cells = [[fmt(float(v)) for v in row] for row in grid]
    width = max(len(c) for row in cells for c in row)
    text = Text()
    for number, row in enumerate(cells):
        text.append("  " + " ".join(c.rjust(width) for c in row), style=style)
        if number < len(cells) - 1:
            text.append("\n")
    return text


# ---------------------------------------------------------------------------------------------
# Explaining a model


def _explain_model(model: Path, text, image, top, png, as_json) -> None:
    from poolkit.experiments.explain_model import NoWinners, explain_image, explain_text
    from poolkit.train import load_checkpoint

    checkpoint = load_checkpoint(model)  # FileNotFoundError (exit 1) when there is none
    model_type = checkpoint.model_type
    labels = checkpoint.label_names
    if model_type == "textcnn":
        if text is None or image is not None:
            raise ValueError('a TextCNN checkpoint needs --text "…" (and no --image)')
        from poolkit.data import TextEncoder

        if "text_encoder" not in checkpoint.config:
            raise ValueError(f"checkpoint {model} has no text_encoder in its config.json")
        encoder = TextEncoder.from_dict(checkpoint.config["text_encoder"])
        result = explain_text(checkpoint.model, encoder, text, labels, top=top)
        if png is not None and not isinstance(result, NoWinners):
            raise ValueError("--png draws win maps of image models; a TextCNN prints a table")
    elif model_type == "convnet":
        if image is None or text is not None:
            raise ValueError("a ConvNet checkpoint needs --image FILE (and no --text)")
        from poolkit.data import read_image_file

        config = checkpoint.model.config
        picture = read_image_file(image, channels=config.in_channels, size=config.size)
        result = explain_image(checkpoint.model, picture, labels)
        if not isinstance(result, NoWinners):
            from poolkit.experiments.explain_model import plot_win_map

            png = png or Path(f"{Path(image).stem}-winmap.png")
            plot_win_map(result, png, title=f"{model.name}: which pixels won the pooling windows")
    else:
        raise ValueError(
            f"explain --model supports textcnn and convnet checkpoints, got {model_type!r}"
        )
    if isinstance(result, NoWinners):
        if as_json:
            print_json(result.to_json())
        else:
            stdout_console().print(result.message)
        return
    if as_json:
        payload = result.to_json()
        if model_type == "convnet":
            payload["png"] = str(png)
        print_json(payload)
        return
    from poolkit.cli.compare import wide_console

    console = wide_console()
    if model_type == "textcnn":
        _render_text(result, console)
    else:
        _render_image(result, console, png)


def _render_text(result, console) -> None:
    from rich.table import Table
    from rich.text import Text

    probabilities = ", ".join(
        f"{name} {p:.2f}" for name, p in zip(result.label_names, result.probabilities, strict=True)
    )
    console.print(
        Text("prediction: ", style="bold")
        + Text(result.predicted_label, style="bold green")
        + Text(f"   ({probabilities})")
    )
    tokens = Text("tokens: ")
    for position, token in enumerate(result.tokens):
        tokens.append(token + " ", style="dim" if position in result.unknown else None)
    console.print(tokens)
    console.print(
        f"pooling over time: {result.pool}: each feature is one filter's activation at the "
        f"n-gram that won the pooling; push = activation x classifier weight (logit share)"
    )
    table = Table(header_style="bold")
    for name in ("#", "width", "filter", "n-gram", "at", "activation"):
        table.add_column(name, justify="left" if name == "n-gram" else "right")
    for name in result.label_names:
        table.add_column(f"push {name}", justify="right")
    for feature in result.features:
        pushes = [
            Text(f"{v:+.3f}", style="green" if v > 0 else "red" if v < 0 else None)
            for v in feature["push"].values()
        ]
        table.add_row(
            str(feature["rank"]),
            str(feature["width"]),
            str(feature["filter"]),
            Text(feature["ngram_text"] or "(none)", style="bold"),
            str(feature["position"]),
            f"{feature['activation']:.3f}",
            *pushes,
        )
    console.print(table)
    if result.truncated:
        console.print("note: the text was truncated to the model's max length", style="yellow")


def _render_image(result, console, png) -> None:
    label = result.label_names[result.predicted]
    console.print(
        f"prediction: [bold green]{label}[/] (p = {result.probabilities[result.predicted]:.2f})"
    )
    for layer in result.layers:
        counts = layer["counts"]
        top_rows, top_cols = divmod(int(counts.argmax()), counts.shape[1])
        console.print(
            f"{layer['layer']} ({layer['pool']}): {layer['windows']} windows "
            f"({layer['channels']} channels x {layer['output_size'][0]}x{layer['output_size'][1]})"
            f"; most wins at pixel (row {top_rows}, col {top_cols}): {int(counts.max())}"
        )
    for note in result.notes:
        console.print(f"note: {note}", style="yellow")
    console.print(f"win map: {png}")
