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

from poolkit.experiments._io import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def plot_accuracy(rows: Sequence[dict[str, Any]], path: str | Path, *, title: str) -> Path:
    """Bar chart of accuracy (%) per pooling type, sorted best first, with seeds as dots."""
    plt = _pyplot()
    rows = [row for row in rows if row["runs"] > 0]
    figure, axes = plt.subplots(figsize=(max(5.0, 0.75 * len(rows) + 2.5), 4.2))
    names = [row["pool"] for row in rows]
    means = [100 * row["accuracy_mean"] for row in rows]
    stds = [100 * row["accuracy_std"] if _finite(row["accuracy_std"]) else 0.0 for row in rows]
    colours = []
    for row in rows:
        verdict = row["verdict"]
        colours.append(
            "#2b8a3e"
            if verdict == "best"
            else "#868e96"
            if verdict.startswith(("loses", "at ch"))
            else "#4c6ef5"
        )
    positions = range(len(rows))
    axes.bar(positions, means, yerr=stds, capsize=4, color=colours, alpha=0.85, zorder=2)
    for x, row in zip(positions, rows, strict=True):
        seeds = [100 * a for a in row.get("_accuracies", [])]
        axes.scatter([x] * len(seeds), seeds, s=12, color="black", zorder=3)
    for x, mean in zip(positions, means, strict=True):
        axes.annotate(
            f"{mean:.1f}",
            (x, mean),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    low_values = [m - s for m, s in zip(means, stds, strict=True)]
    low_values += [100 * a for row in rows for a in row.get("_accuracies", [])]
    chance = [100 * row["chance"] for row in rows if _finite(row.get("chance"))]
    low = min(low_values) if low_values else 0.0
    if chance:
        axes.axhline(
            chance[0],
            color="#e03131",
            linestyle="--",
            linewidth=1,
            label=f"majority class ({chance[0]:.1f}%)",
        )
        axes.legend(loc="lower left", fontsize=8)
        low = min(low, chance[0])
    bottom = max(0.0, math.floor((low - 5) / 5) * 5)
    axes.set_ylim(bottom, 100 if max(means, default=0) + max(stds, default=0) < 98 else 101)
    axes.set_xticks(list(positions), names, rotation=30, ha="right")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(
        title + "\n(mean ± std over seeds; dots = seeds; green = best, grey = loses)", fontsize=10
    )
    axes.grid(axis="y", alpha=0.3, zorder=0)
    return _save(figure, path)


def plot_robustness(
    rows: Sequence[dict[str, Any]], path: str | Path, *, title: str, xlabel: str
) -> Path | None:
    """Accuracy (%) against the perturbation level, one line per pooling type."""
    plt = _pyplot()
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
