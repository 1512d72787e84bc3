"""PNG plots of a compare grid (matplotlib, Agg backend, written atomically).

- :func:`plot_accuracy`: mean test accuracy per pooling type with ±1 std error bars and each
  seed as a dot, best first, the majority-class baseline as a dashed line.
- :func:`plot_robustness`: accuracy against the perturbation level (0 = clean), one line per
  pooling type with ±1 std error bars.
"""

from __future__ import annotations

import io
import math
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


# The old private spelling, still used by branches not merged yet; remove once none does.
_pyplot = pyplot


def _save(figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


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
        axes.scatter(seeds, [y] * len(seeds), s=14, color=colour, alpha=0.45, zorder=2)
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
        title + "\n(mean ± std over seeds, faint dots = single seeds; green = best, grey = loses)",
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
