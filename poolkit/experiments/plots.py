"""PNG plots of a compare grid (matplotlib, Agg backend, written atomically).

- :func:`plot_accuracy`: mean test accuracy per pooling type with ±1 std error bars and each
  seed as a dot, best first, the majority-class baseline as a dashed line.
- :func:`plot_robustness`: accuracy against the perturbation level (0 = clean), one line per
  pooling type with ±1 std error bars.
- :func:`plot_pareto`: accuracy against inference throughput with the Pareto front.
- :func:`plot_reliability`: a classifier's reliability diagram (accuracy against confidence per
  equal-width bin) with its expected calibration error.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poolkit._io import atomic_write_bytes


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt



def _save(figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def seed_offsets(count: int, centre: float = 0.2, spread: float = 0.16) -> list[float]:
    """Vertical offsets of ``count`` seed dots: evenly over ``spread`` around ``centre`` (below
    the row's mean marker, on an axis whose y grows downwards), so that seeds with the same
    accuracy, or the mean's, do not hide each other (deterministic, not random jitter).

    Example:
        >>> seed_offsets(3)
        [0.12, 0.2, 0.28]
    """
    if count <= 1:
        return [centre] * count
    return [round(centre + spread * (i / (count - 1) - 0.5), 6) for i in range(count)]


def plot_accuracy(
    rows: Sequence[dict[str, Any]], path: str | Path, *, title: str, metric: str = "accuracy",
    label: str = "test accuracy (%)",
) -> Path:
    """Accuracy (%) per pooling type, best at the top: mean ± std as a point with error bars, each
    seed as a small dot. A dot plot, not bars, because the axis is zoomed to the results (bars on
    a cut axis exaggerate gaps); the majority-class baseline is named in the axis label.
    ``metric``/``label``: another score of the rows (``spearman``, x100), and its axis label."""
    plt = pyplot()
    rows = [row for row in rows if row["runs"] > 0]
    figure, axes = plt.subplots(figsize=(7.0, 0.42 * len(rows) + 1.6))
    colour_of = {"best": "#2b8a3e", "tie": "#4c6ef5"}
    values = []
    for y, row in enumerate(rows):
        mean = 100 * row[f"{metric}_mean"]
        std = 100 * row[f"{metric}_std"] if _finite(row[f"{metric}_std"]) else 0.0
        colour = colour_of.get(row["verdict"], "#868e96" if row["verdict"] != "best" else "")
        seeds = [100 * a for a in row.get("_scores", [])]
        rows_y = [y + offset for offset in seed_offsets(len(seeds))]
        axes.scatter(seeds, rows_y, s=14, color=colour, alpha=0.45, zorder=2)
        axes.errorbar(mean, y, xerr=std, fmt="o", color=colour, capsize=4, markersize=7, zorder=3)
        axes.annotate(
            f"{mean:.1f}  {row['verdict']}",
            (max([mean + std, *seeds]), y),  # right of the error bar and of every seed
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=colour,
        )
        values += [mean - std, mean + std, *seeds]
    low, high = min(values), max(values)
    span = max(high - low, 1.0)
    axes.set_xlim(max(0.0, low - 0.15 * span), min(100.0, high + 0.55 * span))
    axes.set_yticks(range(len(rows)), [row["pool"] for row in rows])
    axes.set_ylim(len(rows) - 0.5, -0.5)  # best on top
    chance = [100 * row["chance"] for row in rows if _finite(row.get("chance"))]
    if chance:
        label += f"; always predicting the majority class: {chance[0]:.1f}%"
        if axes.get_xlim()[0] <= chance[0]:
            axes.axvline(chance[0], color="#e03131", linestyle="--", linewidth=1)
    axes.set_xlabel(label, fontsize=9)
    axes.set_title(
        title + "\n(mean ± std over seeds, faint dots below = single seeds; "
        "green = best, grey = loses)",
        fontsize=9,
    )
    axes.grid(axis="x", alpha=0.3, zorder=0)
    return _save(figure, path)


def plot_robustness(
    rows: Sequence[dict[str, Any]], path: str | Path, *, title: str, xlabel: str
) -> Path | None:
    """Accuracy (%) against the perturbation level, one line per pooling type."""
    plt = pyplot()
    rows = [row for row in rows if row["runs"] > 0]
    labels = [key[: -len("_mean")] for key in rows[0] if key.endswith("_mean")] if rows else []
    labels = [label for label in labels if label.startswith(("shift_", "word_dropout_"))]
    if not labels:
        return None
    levels = [0.0] + [_level_value(label) for label in labels]
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    markers = "osD^v<>ph*X"
    for index, row in enumerate(rows):
        means = [row["accuracy_mean"]] + [row[f"{label}_mean"] for label in labels]
        stds = [row["accuracy_std"]] + [row[f"{label}_std"] for label in labels]
        stds = [100 * s if _finite(s) else 0.0 for s in stds]
        style = "-" if index < 10 else "--"
        axes.errorbar(
            levels,
            [100 * m for m in means],
            yerr=stds,
            label=row["pool"],
            capsize=3,
            marker=markers[index % len(markers)],
            linestyle=style,
            linewidth=1.4,
            markersize=4,
        )
    axes.set_xticks(levels)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="pooling")
    return _save(figure, path)


def _level_value(label: str) -> float:
    if label.startswith("shift_"):
        return float(label[len("shift_") :].rstrip("px"))
    if label.startswith("word_dropout_"):
        return float(label[len("word_dropout_") :])
    return float(label.rsplit("_", 1)[-1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(throughput, accuracy)`` that no other point beats on both
    (higher or equal on both, higher on one), fastest first.

    Example:
        >>> pareto_front([(10, 0.9), (20, 0.8), (5, 0.85), (20, 0.7)])
        [1, 0]
    """
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def plot_pareto(
    rows: Sequence[dict[str, Any]], path: str | Path, *, title: str, xlabel: str
) -> Path | None:
    """Accuracy (%) against inference throughput, one point per row (pooling type, or pooling
    type and setting of a sweep): the mean over seeds, ±1 std of accuracy as the vertical bar,
    the range of the seeds' throughputs as the horizontal one (timings are skewed: a std bar
    would cross zero); the Pareto front (no other row both faster and more accurate) joined by a
    line and labelled in bold. Labels are placed where they overlap no other label."""
    plt = pyplot()
    rows = [r for r in rows if r["runs"] > 0 and _finite(r.get("throughput_samples_s_mean"))]
    if not rows:
        return None
    points = [(r["throughput_samples_s_mean"], 100 * r["accuracy_mean"]) for r in rows]
    front = pareto_front(points)
    figure, axes = plt.subplots(figsize=(7.2, 5.0))
    for index, row in enumerate(rows):
        colour = "#2b8a3e" if index in front else "#868e96"
        x, y = points[index]
        speeds = row.get("_throughputs") or [x]
        yerr = 100 * row["accuracy_std"] if _finite(row["accuracy_std"]) else 0.0
        axes.errorbar(
            x, y, xerr=[[x - min(speeds)], [max(speeds) - x]], yerr=yerr, fmt="o",
            color=colour, capsize=3, markersize=6 if index in front else 5, zorder=3,
        )
    front_points = sorted(points[i] for i in front)
    axes.plot(*zip(*front_points, strict=True), color="#2b8a3e", linewidth=1, alpha=0.6,
              linestyle="--", zorder=2, label="Pareto front (nothing both faster and better)")
    speeds = [x for x, _ in points]
    if min(speeds) > 0 and max(speeds) / min(speeds) > 5:
        from matplotlib.ticker import FuncFormatter

        axes.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:,.0f}")  # 20,000, not 2x10^4
        axes.xaxis.set_major_formatter(plain)
        # label the 2s, 3s and 5s between the powers of ten, not every minor tick (they crowd)
        axes.xaxis.set_minor_formatter(FuncFormatter(
            lambda value, _: f"{value:,.0f}" if f"{value:.0e}"[0] in "235" else ""
        ))
        axes.tick_params(axis="x", which="both", labelsize=8)
    axes.margins(x=0.15, y=0.15)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel("test accuracy (%)", fontsize=9)
    axes.set_title(
        title + "\n(mean over seeds: ±1 std of accuracy, range of throughput; "
        "green = on the Pareto front)", fontsize=9,
    )
    axes.grid(alpha=0.3, zorder=0)
    axes.legend(fontsize=8, loc="best")
    _place_labels(figure, axes, points, [r["pool"] for r in rows], front)
    return _save(figure, path)


# Label offsets (points) tried in turn: right above, right below, left above, left below, ...
_LABEL_SPOTS = ((6, 5, "left"), (6, -12, "left"), (-6, 5, "right"), (-6, -12, "right"),
                (6, 16, "left"), (6, -23, "left"), (-6, 16, "right"), (-6, -23, "right"))


def _place_labels(figure, axes, points, labels, front) -> None:
    """Annotate each point at the first of :data:`_LABEL_SPOTS` where its text overlaps no label
    placed before it, nor a marker (the last spot when none is free)."""
    renderer = figure.canvas.get_renderer()
    axes.autoscale_view()  # fix the limits first: marker positions depend on them
    axes.set_xlim(axes.get_xlim())
    axes.set_ylim(axes.get_ylim())
    markers = [axes.transData.transform(point) for point in points]
    taken = []
    for index in sorted(range(len(points)), key=lambda i: (i not in front, i)):
        for dx, dy, align in _LABEL_SPOTS:
            text = axes.annotate(
                labels[index], points[index], xytext=(dx, dy), textcoords="offset points",
                ha=align, fontsize=8, color="#2b8a3e" if index in front else "#868e96",
                fontweight="bold" if index in front else "normal", zorder=4,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
                      "alpha": 0.75},  # readable over the error bars
            )
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            reach = 8 * figure.dpi / 72  # a marker's radius and some air, in pixels
            hits_marker = any(
                box.x0 - reach < x < box.x1 + reach and box.y0 - reach < y < box.y1 + reach
                for j, (x, y) in enumerate(markers)
                if j != index
            )
            if not hits_marker and not any(box.overlaps(other) for other in taken):
                break
            if (dx, dy, align) != _LABEL_SPOTS[-1]:
                text.remove()
        taken.append(box)


def plot_reliability(reliability: dict, path: str | Path, *, title: str, ece: float) -> Path:
    """Reliability diagram from :func:`~poolkit.train.metrics.reliability_bins`: one bar per
    confidence bin at the bin's accuracy, the gap to the bin's mean confidence shaded, the
    diagonal of perfect calibration, and the share of examples per bin below."""
    plt = pyplot()
    edges = reliability["edges"]
    width = edges[1] - edges[0]
    total = max(sum(reliability["count"]), 1)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.2, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="0.5", label="perfect calibration")
    filled = [(left, accuracy, confidence) for left, accuracy, confidence
              in zip(edges[:-1], reliability["accuracy"], reliability["confidence"], strict=True)
              if accuracy is not None]
    if filled:
        lefts, accuracies, confidences = zip(*filled, strict=True)
        top.bar(lefts, accuracies, width=width, align="edge", color="tab:blue",
                edgecolor="black", label="accuracy in bin")
        gaps = [c - a for a, c in zip(accuracies, confidences, strict=True)]
        top.bar(lefts, gaps, bottom=accuracies, width=width, align="edge", facecolor="none",
                edgecolor="tab:red", hatch="//", label="gap to mean confidence")
        top.scatter([left + width / 2 for left in lefts], confidences, marker="_", s=120,
                    color="tab:red", zorder=3, label="mean confidence in bin")
    heading = textwrap.fill(title, 60)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy",
            title=f"{heading}\nECE {100 * ece:.2f}% ({len(edges) - 1} equal-width bins)")
    top.legend(loc="upper left", fontsize="small")
    top.set_aspect("auto")
    bottom.bar(edges[:-1], [count / total for count in reliability["count"]], width=width,
               align="edge", color="0.6", edgecolor="black")
    bottom.set(xlim=(0, 1), xlabel="confidence (largest class probability)",
               ylabel="share of examples")
    figure.tight_layout()
    return _save(figure, path)
