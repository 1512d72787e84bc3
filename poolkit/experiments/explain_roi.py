"""``poolkit explain roi_align`` / ``roi_pool``: one box on a small feature map, bin by bin.

:func:`explain_roi` returns an :class:`RoIExplanation`: the formula, the arithmetic that turns
the box into bins (scaled corners, the half-pixel offset, bin sizes, samples per bin or the
rounded cells), and for each output bin what it read -- RoI Align's sample points with their
bilinear values, RoI pooling's quantised cells with the winner -- and its result. Every number
comes from :mod:`poolkit.numpy.roi` (the results, the sample coordinates, the bins; a sample's
value is RoI Align of a zero-size box at that point); nothing here re-implements the ops.
:func:`plot_roi` draws RoI pooling's quantised bins beside RoI Align's box, bins and samples.

The default is the worked example of ``docs/detection-segmentation.md``: ``x[h, w] = 10 h + w``
on a 5 x 5 map, the box ``(0.5, 0.5)-(3.5, 3.5)``, a 2 x 2 output, ``sampling_ratio=2``.

Example:
    >>> e = explain_roi("roi_align")
    >>> e.output.tolist()
    [[13.75, 15.25], [28.75, 30.25]]
    >>> e.bins[0]["samples"][0]
    {'y': 0.875, 'x': 0.875, 'value': 9.625}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from poolkit.experiments.explain_op import parse_grid, short_number

ROI_OPS = ("roi_align", "roi_pool")
WORKED_INPUT = "; ".join(" ".join(str(10 * h + w) for w in range(5)) for h in range(5))
_DEFAULTS = {"box": (0.5, 0.5, 3.5, 3.5), "output_size": 2, "spatial_scale": 1.0,
             "sampling_ratio": 2, "aligned": False}
_FORMULAS = {
    "roi_align": ("RoI Align", "He et al., Mask R-CNN, ICCV 2017",
                  "y[i, j] = mean over a g_h x g_w grid of bilinear(x, y_a, x_b), "
                  "y_a = y1' + (i + (a + 0.5) / g_h) * bin_h"),
    "roi_pool": ("RoI pooling", "Girshick, Fast R-CNN, ICCV 2015",
                 "y[i, j] = max of x over the cells [floor(i * bin_h), ceil((i + 1) * bin_h)) "
                 "of the rounded box"),
}


@dataclass
class RoIExplanation:
    """One box through RoI Align or RoI pooling, bin by bin (:func:`explain_roi`'s answer).

    Attributes:
        op: ``"roi_align"`` or ``"roi_pool"`` (:data:`ROI_OPS`).
        title: the op's human name.
        formula: its formula, one line of plain text.
        paper: where it comes from.
        input: the 2-D feature map ``(H, W)`` (float64).
        arguments: the arguments used, defaults filled in: ``box`` ``(x1, y1, x2, y2)``,
            ``output_size``, ``spatial_scale``, and for RoI Align ``sampling_ratio`` and
            ``aligned``.
        steps: the arithmetic that turns the box into bins, one line each (scaled corners,
            the half-pixel offset, bin sizes, samples per bin or the rounded cells).
        bins: one dict per output bin: ``bin`` ``[i, j]`` and ``result``; for RoI Align its
            ``samples`` (``y``, ``x`` and the bilinear ``value`` of each) and their ``count``;
            for RoI pooling the ``rows`` and ``cols`` it covers and the ``winner`` cell (``None``
            when the bin is empty).
        output: the pooled ``(PH, PW)`` grid, computed by :mod:`poolkit.numpy.roi`.
        notes: remarks printed under the result.
    """

    op: str
    title: str
    formula: str
    paper: str
    input: np.ndarray
    arguments: dict[str, Any]
    steps: list[str]  # the box-to-bins arithmetic, one line each
    bins: list[dict[str, Any]]  # per output bin: what it read and its result
    output: np.ndarray
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "title": self.title, "formula": self.formula,
                "paper": self.paper, "input": self.input.tolist(),
                "arguments": dict(self.arguments), "steps": self.steps, "bins": self.bins,
                "output": self.output.tolist(), "notes": self.notes}


def _arguments(op: str, arguments: dict[str, Any]) -> dict[str, Any]:
    if op not in ROI_OPS:
        raise ValueError(f"op ({op!r}) must be one of {ROI_OPS}")
    args = {k: (_DEFAULTS[k] if arguments.get(k) is None else arguments[k]) for k in _DEFAULTS}
    unknown = sorted(set(arguments) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"explain_roi got unexpected argument(s) {unknown}")
    box = tuple(float(v) for v in args["box"])
    if len(box) != 4:
        raise ValueError(f"box ({args['box']!r}) must be 4 numbers x1, y1, x2, y2")
    args["box"] = box
    if op == "roi_pool":
        for name in ("sampling_ratio", "aligned"):
            args.pop(name)
    return args


def explain_roi(op: str, input: str | np.ndarray | None = None, **arguments: Any) -> RoIExplanation:
    """Explain ``op`` (``roi_align`` or ``roi_pool``) for one box on a 2-D grid ``input``
    (a string like ``"1 2; 3 4"``, an array, or ``None`` for the worked example); arguments
    ``box=(x1, y1, x2, y2)``, ``output_size``, ``spatial_scale``, and for RoI Align
    ``sampling_ratio`` and ``aligned``."""
    grid = parse_grid(WORKED_INPUT if input is None else input) if input is None or isinstance(
        input, str) else np.asarray(input, np.float64)
    if grid.ndim != 2:
        raise ValueError(f"input must be a 2-D grid (rows split by ';'), got shape {grid.shape}")
    args = _arguments(op, arguments)
    title, paper, formula = _FORMULAS[op]
    build = _explain_align if op == "roi_align" else _explain_pool
    steps, bins, output, notes = build(grid, args)
    return RoIExplanation(op, title, formula, paper, grid, args, steps, bins, output, notes)


def _call(grid: np.ndarray, box, args: dict[str, Any], op: str, **extra):
    import poolkit.numpy as pnp

    rois = np.array([[0.0, *box]])
    fn = pnp.roi_align if op == "roi_align" else pnp.roi_pool
    return fn(grid[None, None], rois, args["output_size"], args["spatial_scale"], **extra)


def _explain_align(grid: np.ndarray, args: dict[str, Any]):
    from poolkit.geometry import roi_args
    from poolkit.numpy.roi import align_samples, as_rois

    scalar = roi_args(args["output_size"], args["spatial_scale"], args["sampling_ratio"])
    aligned = bool(args["aligned"])
    output = _call(grid, args["box"], args, "roi_align", sampling_ratio=scalar.sampling_ratio,
                   aligned=aligned)[0, 0]
    ys, xs, count = align_samples(as_rois(np.array([[0.0, *args["box"]]]), 1), scalar, aligned)
    (ph, pw), offset = scalar.output_size, 0.5 if aligned else 0.0
    x1, y1, x2, y2 = args["box"]
    s = scalar.spatial_scale
    roi_w, roi_h = (x2 - x1) * s, (y2 - y1) * s
    steps = [
        f"box on the map: ({x1} * {s} - {offset}, {y1} * {s} - {offset}) to "
        f"({x2} * {s} - {offset}, {y2} * {s} - {offset}) = ({x1 * s - offset:g}, "
        f"{y1 * s - offset:g}) to ({x2 * s - offset:g}, {y2 * s - offset:g})"
        + ("  (aligned: pixel centres at i + 0.5)" if aligned else
           "  (aligned=False: no half-pixel shift)"),
        f"size {roi_h:g} x {roi_w:g}" + ("" if aligned else
                                         f", at least 1 x 1: {max(roi_h, 1):g} x "
                                         f"{max(roi_w, 1):g}"),
        f"bins of {ys.shape[1]} x {xs.shape[1]}: "
        f"{(roi_h if aligned else max(roi_h, 1)) / ph:g} x "
        f"{(roi_w if aligned else max(roi_w, 1)) / pw:g} cells",
        f"samples per bin: {_grid_text(scalar.sampling_ratio, roi_h, roi_w, ph, pw, aligned)}"
        f" = {int(count[0])} (the divisor)",
    ]
    bins = []
    for i in range(ph):
        for j in range(pw):
            samples = []
            for y in ys[0, i][~np.isnan(ys[0, i])]:
                for x in xs[0, j][~np.isnan(xs[0, j])]:
                    value = _call(grid, (x + 0.5, y + 0.5, x + 0.5, y + 0.5), {
                        "output_size": 1, "spatial_scale": 1.0}, "roi_align",
                        sampling_ratio=1, aligned=True)[0, 0, 0, 0]
                    samples.append({"y": float(y), "x": float(x), "value": float(value)})
            bins.append({"bin": [i, j], "samples": samples, "count": int(count[0]),
                         "result": float(output[i, j])})
    notes = ["a sample outside [-1, H] x [-1, W] reads 0 but still counts in the divisor; "
             "one in [-1, 0) reads row/column 0"]
    return steps, bins, output, notes


def _grid_text(sampling_ratio, roi_h, roi_w, ph, pw, aligned) -> str:
    if sampling_ratio > 0:
        return f"sampling_ratio {sampling_ratio} x {sampling_ratio}"
    h = roi_h if aligned else max(roi_h, 1)
    w = roi_w if aligned else max(roi_w, 1)
    return f"ceil({h:g} / {ph}) x ceil({w:g} / {pw}) (adaptive)"


def _explain_pool(grid: np.ndarray, args: dict[str, Any]):
    from poolkit.geometry import roi_args
    from poolkit.numpy.roi import as_rois, pool_bins, round_half_away

    scalar = roi_args(args["output_size"], args["spatial_scale"])
    output, index = _call(grid, args["box"], args, "roi_pool", return_indices=True)
    rois = as_rois(np.array([[0.0, *args["box"]]]), 1)
    (hs, he), (ws, we) = pool_bins(rois, scalar, grid.shape)
    x1, y1, x2, y2 = (int(v) for v in round_half_away(rois.boxes[0] * scalar.spatial_scale))
    (ph, pw), s = scalar.output_size, scalar.spatial_scale
    rows, cols = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
    steps = [
        f"corners x {s}, rounded half away from zero: ({x1}, {y1}) to ({x2}, {y2})",
        f"cells: {rows} rows ({y1}..{y2}) x {cols} columns ({x1}..{x2})",
        f"bins of {rows} / {ph} = {rows / ph:g} rows x {cols} / {pw} = {cols / pw:g} columns: "
        "[floor(i * b), ceil((i + 1) * b)) + start, clipped to the map",
    ]
    bins = []
    width = grid.shape[1]
    for i in range(ph):
        for j in range(pw):
            flat = int(index[0, 0, i, j])
            bins.append({"bin": [i, j], "rows": [int(hs[0, i]), int(he[0, i])],
                         "cols": [int(ws[0, j]), int(we[0, j])],
                         "winner": None if flat < 0 else [flat // width, flat % width],
                         "result": float(output[0, 0, i, j])})
    notes = ["an empty bin (outside the map) gives 0 and no gradient"]
    return steps, bins, output[0, 0], notes


# ---------------------------------------------------------------------------------------------
# Picture


def plot_roi(explanation: RoIExplanation, path) -> Any:
    """RoI pooling's quantised bins (left) beside RoI Align's box, bins and sample points
    (right), on the same feature map (pixel ``(r, c)`` is the square ``[c, c+1) x [r, r+1)``).
    PNG, written atomically."""
    import io

    from poolkit._io import atomic_write_bytes
    from poolkit.experiments.plots import pyplot

    plt = pyplot()
    grid, args = explanation.input, dict(explanation.arguments)
    pool = explanation if explanation.op == "roi_pool" else explain_roi(
        "roi_pool", grid, box=args["box"], output_size=args["output_size"],
        spatial_scale=args["spatial_scale"])
    align = explanation if explanation.op == "roi_align" else explain_roi(
        "roi_align", grid, box=args["box"], output_size=args["output_size"],
        spatial_scale=args["spatial_scale"])
    scale = 0.7
    rows, cols = grid.shape
    figure, axes = plt.subplots(1, 2, figsize=(2 * scale * cols + 2, scale * rows + 1.6))
    for ax, part in zip(axes, (pool, align), strict=True):
        _draw_map(ax, grid)
        (_draw_pool if part.op == "roi_pool" else _draw_align)(ax, part, plt)
        ax.set_xlim(-0.3, cols + 0.3)
        ax.set_ylim(rows + 0.3, -0.3)
        ax.set_aspect("equal")
        ax.set_xticks(range(cols + 1))
        ax.set_yticks(range(rows + 1))
        ax.tick_params(labelsize=7)
    figure.suptitle(f"box {args['box']} x {args['spatial_scale']}, output "
                    f"{args['output_size']}", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def _draw_map(ax, grid) -> None:
    from matplotlib.patches import Rectangle

    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="#cccccc",
                                   linewidth=0.8))
            ax.text(c + 0.5, r + 0.5, short_number(grid[r, c]), ha="center", va="center",
                    fontsize=8, color="#777777")


def _draw_pool(ax, e: RoIExplanation, plt) -> None:
    from matplotlib.patches import Rectangle

    colours = plt.get_cmap("tab10").colors
    for number, b in enumerate(e.bins):
        colour = colours[number % len(colours)]
        (r0, r1), (c0, c1) = b["rows"], b["cols"]
        inset = 0.05 + 0.04 * (number % 3)
        if r1 > r0 and c1 > c0:
            ax.add_patch(Rectangle((c0 + inset, r0 + inset), c1 - c0 - 2 * inset,
                                   r1 - r0 - 2 * inset, fill=False, edgecolor=colour, lw=2))
        if b["winner"] is not None:
            r, c = b["winner"]
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=colour, alpha=0.3))
    _draw_box(ax, e.arguments["box"], e.arguments["spatial_scale"])
    ax.set_title("RoI pooling: rounded, quantised bins; winners filled\n"
                 f"output {_rows_text(e.output)}", fontsize=8)


def _draw_align(ax, e: RoIExplanation, plt) -> None:
    colours = plt.get_cmap("tab10").colors
    shift = 0.0 if e.arguments["aligned"] else 0.5  # kernel coordinate + 0.5 = map position
    for number, b in enumerate(e.bins):
        colour = colours[number % len(colours)]
        ys = [s["y"] + 0.5 for s in b["samples"]]
        xs = [s["x"] + 0.5 for s in b["samples"]]
        ax.scatter(xs, ys, s=18, color=colour, zorder=3)
    box = tuple(v * e.arguments["spatial_scale"] for v in e.arguments["box"])
    _draw_bins(ax, box, None if shift else e.output.shape, style="-", colour="black")
    if shift:  # where aligned=False actually samples: the box moved by half a pixel
        moved = tuple(v + shift for v in box)
        _draw_bins(ax, moved, e.output.shape, style="--", colour="#d62728")
    ax.set_title(f"RoI Align (aligned={e.arguments['aligned']}, sampling_ratio="
                 f"{e.arguments['sampling_ratio']}): samples as dots"
                 + ("\nred dashed: the box as sampled, half a pixel off" if shift else "")
                 + f"\noutput {_rows_text(e.output)}", fontsize=8)


def _draw_box(ax, box, scale) -> None:
    x1, y1, x2, y2 = (v * scale for v in box)
    _draw_bins(ax, (x1, y1, x2, y2), None, style="-", colour="black")


def _draw_bins(ax, corners, shape, style: str, colour: str) -> None:
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = corners
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                           linestyle=style, lw=1.5, zorder=4))
    if shape is not None:
        for i in range(1, shape[0]):
            y = y1 + i * (y2 - y1) / shape[0]
            ax.plot([x1, x2], [y, y], style, color=colour, lw=0.8, zorder=4)
        for j in range(1, shape[1]):
            x = x1 + j * (x2 - x1) / shape[1]
            ax.plot([x, x], [y1, y2], style, color=colour, lw=0.8, zorder=4)


def _rows_text(output: np.ndarray) -> str:
    return " / ".join(" ".join(short_number(v) for v in row) for row in output)
