"""``poolkit explain``: a pooling op window by window, or why a trained model decided."""

from __future__ import annotations

from pathlib import Path

import typer

from poolkit.cli._app import (
    UsageError,
    app,
    at_run_time,
    print_json,
    stderr_console,
    stdout_console,
)
from poolkit.pools import explained_names

_OPS_HELP = (
    f"Pooling op to explain: {', '.join(explained_names())}; roi_align, roi_pool (one box: "
    "--box); seq:MODE, a SequencePool mode on a masked batch (seq:mean, seq:cls, ...). Omit "
    "with --model."
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


def _parse_ints(text: str | None, option: str):
    """``"2"`` -> 2, ``"2,3"`` (or ``2x3``) -> (2, 3): one int, or one per dimension."""
    if text is None:
        return None
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if not values:
        raise ValueError(f"{option} ({text!r}) must be an int or one int per dim, like 2 or 2,3")
    return values[0] if len(values) == 1 else values


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
    kernel: str | None = typer.Option(
        None, "--kernel", "-k", help="Window size, one int or one per dim: 2 or 2,3 (default 2)."
    ),
    stride: str | None = typer.Option(None, "--stride", "-s", help="Step (default: kernel)."),
    padding: str | None = typer.Option(None, "--padding", help="Implicit padding each side."),
    dilation: str | None = typer.Option(None, "--dilation", help="Spacing of window elements."),
    ceil_mode: bool | None = typer.Option(
        None, "--ceil-mode/--floor-mode", help="Round the output size up (keeps a partial window)."
    ),
    count_include_pad: bool | None = typer.Option(
        None, "--count-include-pad/--no-count-include-pad", help="avg: divide by the padding too."
    ),
    divisor_override: int | None = typer.Option(
        None, "--divisor-override", min=1, help="avg: divide every window by this number."
    ),
    p: float | None = typer.Option(None, "--p", help="Exponent: lp (norm_type), gem, lse (r)."),
    output_size: str | None = typer.Option(
        None, "--output-size", help="adaptive_*, fractional_max: output size, e.g. 2 or 2,3."
    ),
    alpha: float | None = typer.Option(None, "--alpha", help="mixed: weight of max (0..1)."),
    seed: int | None = typer.Option(
        None, "--seed", help="fractional_max, stochastic: seed; gated, tree, lip, attention: "
        "seed of the layer's parameters."
    ),
    k: int | None = typer.Option(None, "--k", help="kmax: values kept (default 2); "
                                 "dynamic_kmax: k_top (default 1)."),
    levels: str | None = typer.Option(None, "--levels", help="spp: pyramid levels (default 1,2)."),
    layer: int | None = typer.Option(None, "--layer", help="dynamic_kmax: layer l (default 1)."),
    num_layers: int | None = typer.Option(
        None, "--num-layers", help="dynamic_kmax: number of layers (default 2)."
    ),
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
    backward: bool = typer.Option(
        False, "--backward", help="Also show where the gradient of each output goes."
    ),
    grad_output: str | None = typer.Option(
        None, "--grad-output", help="--backward: the upstream gradient, a grid of the output's "
        "shape (default: ones)."
    ),
    png: Path | None = typer.Option(None, "--png", help="Also draw the explanation as a PNG."),
    model: Path | None = typer.Option(
        None, "--model", "-m",
        help="A checkpoint folder from `poolkit train` (textcnn, convnet, transformer)."
    ),
    text: str | None = typer.Option(
        None, "--text", help="Text to explain (TextCNN, transformer)."
    ),
    image: Path | None = typer.Option(
        None, "--image", help="Image file (.png, .npy…) to explain (ConvNet)."
    ),
    top: int = typer.Option(5, "--top", min=1, help="TextCNN: strongest filters shown."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON only."),
) -> None:
    """Explain a pooling op on a small grid (formula, output size, every window, the result;
    --backward: where the gradient goes), a sequence pooling mode (seq:MODE), or --model: which
    n-grams (TextCNN), pixels (ConvNet) or tokens (transformer) the pooling used."""
    if model is not None:
        if op is not None:
            raise ValueError(f"give either an op ({op!r}) or --model, not both")
        with at_run_time():  # loading the checkpoint and the input: runtime failures (exit 1)
            _explain_model(model, text, image, top, png, as_json)
        return
    if op is None:
        raise ValueError("give an op to explain (e.g. `poolkit explain max`) or --model")
    if text is not None or image is not None:
        raise ValueError("--text/--image need --model CHECKPOINT")
    if op.startswith("seq:"):
        others = (input, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                  divisor_override, p, output_size, alpha, levels, layer, num_layers, box,
                  spatial_scale, sampling_ratio, aligned, grad_output)
        if backward or any(v is not None for v in others):
            raise ValueError(f"{op} takes only --k (seq:kmax), --seed, --png and --json")
        _explain_sequence(op[len("seq:"):], k, seed, png, as_json)
        return
    if op in _ROI_OPS:
        if backward or grad_output is not None:
            raise ValueError(f"--backward covers the pooling ops (poolkit explain --help), "
                             f"not {op}")
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
        kernel_size=_parse_ints(kernel, "--kernel"),
        stride=_parse_ints(stride, "--stride"),
        padding=_parse_ints(padding, "--padding"),
        dilation=_parse_ints(dilation, "--dilation"),
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
        p=p,
        output_size=_parse_size(output_size),
        alpha=alpha,
        seed=seed,
        k=k,
        levels=_parse_ints(levels, "--levels"),
        layer=layer,
        num_layers=num_layers,
    )
    if grad_output is not None and not backward:
        raise ValueError("--grad-output needs --backward")
    if backward:
        from poolkit.experiments.explain_backward import explain_backward

        explain_backward(explanation, grad_output)
    _show(explanation, plot_op, _render_op, png, as_json)


def _show(explanation, plot, render, png, as_json) -> None:
    """Draw ``explanation`` to ``png`` (when given) with ``plot``, then print it: one JSON
    document (with the figure's path), or ``render``'s tables and the figure's path on stderr."""
    written = plot(explanation, png) if png is not None else None
    if as_json:
        payload = explanation.to_json()
        if written is not None:
            payload["png"] = str(written)
        print_json(payload)
        return
    from poolkit.cli.compare import wide_console

    render(explanation, wide_console())
    if written is not None:
        stderr_console().print(f"figure: {written}")


# ---------------------------------------------------------------------------------------------
# Sequence pooling modes


def _explain_sequence(mode, k, seed, png, as_json) -> None:
    from poolkit.experiments.explain_sequence import explain_sequence, plot_sequence

    explanation = explain_sequence(mode, k=k, seed=0 if seed is None else seed)
    _show(explanation, plot_sequence, _render_sequence, png, as_json)


def _render_sequence(e, console) -> None:
    from rich.table import Table
    from rich.text import Text

    from poolkit.experiments.explain_op import short_number

    console.print(Text(f"SequencePool({e.mode!r})", style="bold") + Text(f"   {e.formula}",
                                                                          style="cyan"))
    for row in e.rows:
        console.print(Text(f"{row['padding']}-padded row", style="bold") +
                      Text(f"   mask {' '.join(map(str, row['mask']))}"))
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
        for name in ("t", "token", "hidden", "counts"):
            table.add_column(name)
        for t, (token, state, m) in enumerate(zip(row["tokens"], row["hidden"], row["mask"],
                                                  strict=True)):
            table.add_row(str(t), Text(token, style=None if m else "dim"),
                          " ".join(short_number(v) for v in state), _counts(row, t))
        console.print(table)
        result = " ".join(short_number(v) for v in row["result"])
        console.print(Text("  pooled: ") + Text(result, style="bold green"))
        naive = row["ignoring_the_mask"]
        while naive is not None:
            console.print(Text(f"  ignoring the mask, {naive['rule']}: "
                               f"{' '.join(short_number(v) for v in naive['result'])}",
                               style="red" if naive["result"] != row["result"] else "dim"))
            naive = naive.get("also")
    for note in e.notes:
        console.print(Text(f"note: {note}", style="yellow"))


def _counts(row, t) -> str:
    """How token t takes part: its weight, or the features it wins."""
    if not row["mask"][t]:
        return "no (pad)"
    if "weights" in row:
        weight = row["weights"][t]
        return f"weight {weight:.4g}" if weight else "no (weight 0)"
    won = [h for h, positions in enumerate(row["winners"]) if t in positions]
    return f"wins feature(s) {', '.join(map(str, won))}" if won else "yes, wins no feature"


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
    _show(explanation, plot_roi, _render_roi, png, as_json)


def _render_roi(e, console) -> None:
    from rich.table import Table
    from rich.text import Text

    from poolkit.experiments.explain_op import short_number

    console.print(Text(e.title, style="bold") + Text(f"   {e.formula}", style="cyan"))
    console.print(Text(f"({e.paper})", style="dim"))
    console.print("arguments: " + ", ".join(f"{k}={v}" for k, v in e.arguments.items()))
    console.print("input:")
    console.print(_grid(e.input, short_number))
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
        result = Text(short_number(b["result"]), style="bold green")
        if e.op == "roi_align":
            n = short_number
            samples = "  ".join(f"({n(s['y'])}, {n(s['x'])}) -> {n(s['value'])}"
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
    console.print(_grid(e.output, short_number, style="bold green"))
    for note in e.notes:
        console.print(Text(f"note: {note}", style="yellow"))


# ---------------------------------------------------------------------------------------------
# Rendering an op


def _render_op(explanation, console) -> None:
    from rich.table import Table
    from rich.text import Text

    from poolkit.experiments.explain_op import short_number

    e = explanation
    console.print(Text(e.title, style="bold") + Text(f"   {e.formula}", style="cyan"))
    if e.paper:
        console.print(Text(f"({e.paper})", style="dim"))
    arguments = ", ".join(f"{k}={v}" for k, v in e.arguments.items())
    console.print(f"arguments: {arguments}")
    for name, value in e.parameters.items():
        console.print(f"parameter {name}: {_rounded(value)}")
    console.print("input:")
    console.print(_grid(e.input, short_number))
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
    decided = any(_decision(w) for w in e.windows)
    if decided:
        table.add_column("decided by")
    computed = "divisor" in e.windows[0] or "scale" in e.windows[0]
    if computed:
        table.add_column("sum / n" if "divisor" in e.windows[0] else "(scale * sum x^p)^(1/p)",
                         justify="right")
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
            if padded and value is not None:  # reflect padding (blur): the mirrored value
                values.append(f"({short_number(value)})", style="dim")
            elif padded:
                values.append("pad", style="dim")
            elif winner is not None and list(position) == list(winner):
                values.append(f"[{short_number(value)}]", style="bold red")
            else:
                values.append(short_number(value))
        row = [
            str(tuple(window["output"])),
            _span(window["positions"]),
            values,
            Text(short_number(window["result"]), style="bold green"),
        ]
        if extra:
            row.append(" ".join(f"{v:.2f}" if v is not None else "-" for v in window[extra]))
        if has_eval:
            row.append(short_number(window["eval_result"]))
        if decided:
            row.append(_decision(window))
        if computed:
            row.append(_computation(window, e.arguments, short_number))
        table.add_row(*row)
    console.print("windows:")
    console.print(table)
    console.print("output:")
    console.print(_grid(e.output, short_number, style="bold green"))
    if e.grad_input is not None:
        _render_backward(e, console)
    for note in e.notes:
        console.print(Text(f"note: {note}", style="yellow"))


def _render_backward(e, console) -> None:
    """Each window's upstream gradient and the share reaching each of its cells, then the sum."""
    from rich.table import Table
    from rich.text import Text

    from poolkit.experiments.explain_op import short_number

    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    for name in ("output", "g\\[o]", "share reaching each cell (padding: -)"):
        table.add_column(name, justify="right" if name.startswith("g") else "left")
    for window in e.windows:
        shares = Text()
        for position, share in zip(window["positions"], window["gradient"], strict=True):
            if shares:
                shares.append(" ")
            if share is None:
                shares.append("-", style="dim")
            else:
                cell = f"{tuple(position)}:{short_number(share)}"
                shares.append(cell, style="bold blue" if share else "dim")
        table.add_row(str(tuple(window["output"])), short_number(window["grad_output"]), shares)
    console.print("backward (upstream gradient g\\[o] per output):")
    console.print(_grid(e.grad_output, short_number))
    console.print(table)
    for step in e.grad_steps[:-1] if e.op == "maxblur" else e.grad_steps:
        console.print(f"{step['label']}:")
        console.print(_grid(step["grid"], short_number))
    console.print(f"gradient with respect to {e.grad_input_label}:")
    console.print(_grid(e.grad_input, short_number, style="bold blue"))
    if e.op == "maxblur":  # the input shown is M; the given grid's gradient comes last
        console.print(f"{e.grad_steps[-1]['label']}:")
        console.print(_grid(e.grad_steps[-1]["grid"], short_number, style="bold blue"))


def _rounded(value):
    """Parameters for display: nested lists of floats to 4 digits."""
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return round(value, 4) if isinstance(value, float) else value


def _decision(window) -> str:
    """What decided a family's window besides its values: halves, gates, leaves, level."""
    parts = []
    if "leaves" in window:
        parts.append("v1.x " + ", v2.x ".join(f"{v:.3g}" for v in window["leaves"]))
    if "max" in window:
        parts.append(f"max {window['max']:.4g}, mean {window['mean']:.4g}")
    if "gate" in window:
        parts.append(f"g = sigmoid({window['response']:.3g}) = {window['gate']:.3f}")
    if "half" in window:
        parts.append(f"{window['half']} half")
    if "level" in window:
        parts.append(f"level {window['level']}")
    return "; ".join(parts)


def _computation(window, arguments, fmt) -> str:
    """How the result follows from the values: ``12 / 6`` (avg), ``(1.5 * 66)^(1/2)`` (lp)."""
    if "divisor" in window:
        return f"{fmt(window['sum'])} / {window['divisor']}"
    powered = sum(v ** arguments["p"] for v in window["values"] if v is not None)
    scale = "" if window["scale"] == 1 else f"{fmt(window['scale'])} * "
    return f"({scale}{fmt(powered)})^(1/{fmt(arguments['p'])})"


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
            raise UsageError('a TextCNN checkpoint needs --text "…" (and no --image)')
        from poolkit.data import TextEncoder

        if "text_encoder" not in checkpoint.config:
            raise ValueError(f"checkpoint {model} has no text_encoder in its config")
        encoder = TextEncoder.from_dict(checkpoint.config["text_encoder"])
        result = explain_text(checkpoint.model, encoder, text, labels, top=top)
        if png is not None and not isinstance(result, NoWinners):
            raise UsageError("--png draws win maps of image models; a TextCNN prints a table")
    elif model_type == "convnet":
        if image is None or text is not None:
            raise UsageError("a ConvNet checkpoint needs --image FILE (and no --text)")
        from poolkit.data import read_image_file

        config = checkpoint.model.config
        picture = read_image_file(image, channels=config.in_channels, size=config.size)
        result = explain_image(checkpoint.model, picture, labels)
        if not isinstance(result, NoWinners):
            from poolkit.experiments.explain_model import plot_win_map

            png = png or Path(f"{Path(image).stem}-winmap.png")
            plot_win_map(result, png, title=f"{model.name}: which pixels won the pooling windows")
    elif model_type == "transformer":
        if text is None or image is not None or png is not None:
            raise UsageError('a transformer checkpoint needs --text "…" (and no --image/--png)')
        from poolkit.experiments.explain_transformer import explain_transformer
        from poolkit.models.transformer import transformer_text_encoder

        encoder = transformer_text_encoder(checkpoint.model.config)
        result = explain_transformer(checkpoint.model, encoder, text, labels)
    else:
        raise ValueError(
            "explain --model supports textcnn, convnet and transformer checkpoints, got "
            f"{model_type!r}"
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
    if model_type == "transformer":
        _render_transformer(result, console)
    elif model_type == "textcnn":
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
    shares = result.explained_by == "shares"
    console.print(
        f"pooling over time: {result.pool}: every n-gram's filter activations count 1/L in "
        "its width's features; push = sum over filters of weight x activation / L (its share "
        "of the logit)" if shares else
        f"pooling over time: {result.pool}: each feature is one filter's activation at the "
        f"n-gram that won the pooling; push = activation x classifier weight (logit share)"
    )
    table = Table(header_style="bold")
    columns = ("#", "width", "n-gram", "at", "share 1/L") if shares else (
        "#", "width", "filter", "n-gram", "at", "activation")
    for name in columns:
        table.add_column(name, justify="left" if name == "n-gram" else "right")
    for name in result.label_names:
        table.add_column(f"push {name}", justify="right")
    for feature in result.features:
        pushes = [
            Text(f"{v:+.3f}", style="green" if v > 0 else "red" if v < 0 else None)
            for v in feature["push"].values()
        ]
        gram = Text(feature["ngram_text"] or "(none)", style="bold")
        cells = [str(feature["rank"]), str(feature["width"])]
        if shares:
            cells += [gram, str(feature["position"]), f"{feature['share']:.3g}"]
        else:
            cells += [str(feature["filter"]), gram, str(feature["position"]),
                      f"{feature['activation']:.3f}"]
        table.add_row(*cells, *pushes)
    console.print(table)
    if result.truncated:
        console.print("note: the text was truncated to the model's max length", style="yellow")


def _render_transformer(result, console) -> None:
    """One row per token: its weight or its feature wins in each pooling mode of the head."""
    from rich.table import Table
    from rich.text import Text

    probabilities = ", ".join(f"{name} {p:.2f}" for name, p in
                              zip(result.label_names, result.probabilities, strict=True))
    console.print(Text("prediction: ", style="bold")
                  + Text(result.label_names[result.predicted], style="bold green")
                  + Text(f"   ({probabilities})"))
    console.print(f"pooling head: SequencePool({result.pool!r}) over {len(result.tokens)} tokens")
    table = Table(header_style="bold")
    table.add_column("t", justify="right")
    table.add_column("token")
    for part in result.parts:
        title = "weight" if "weights" in part else f"features won (of {part['features']})"
        table.add_column(f"{part['mode']}: {title}", justify="right")
    for t, token in enumerate(result.tokens):
        cells = []
        for part in result.parts:
            value = part["weights"][t] if "weights" in part else part["wins"][t]
            strongest = value == max(part.get("weights") or part["wins"]) and value
            text = f"{value:.3f}" if "weights" in part else str(value)
            cells.append(Text(text, style="bold green" if strongest else None))
        table.add_row(str(t), token, *cells)
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", style="yellow")


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
