"""Per-pooling summary of a compare grid: mean ± std over seeds, ranks and an honest verdict.

The verdict compares each pooling type with the best one (highest mean accuracy):

- ``best``: the highest mean accuracy;
- ``loses (-x.x pp)``: lower, and Welch's t-test over the seeds says the gap is unlikely to be
  seed noise (two-sided, 5%):

  .. math::
      t = \\frac{\\bar a - \\bar b}{\\sqrt{s_a^2/n_a + s_b^2/n_b}} > t_{0.975,\\,\\nu},
      \\qquad \\nu = \\frac{(s_a^2/n_a + s_b^2/n_b)^2}
      {(s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1)}

  (Welch 1947; with 3 seeds :math:`t_{0.975,\\nu}` is about 3-4, so only clear gaps count);
- ``tie``: lower mean, but not significantly;
- ``at chance``: mean accuracy within 2 points of the majority-class baseline (it did not learn);
- ``lower (1 seed)``: one seed only, no noise estimate.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from poolkit.experiments._io import atomic_write_text

BASE_COLUMNS = (
    "rank",
    "task",
    "pool",
    "runs",
    "failed",
    "accuracy_mean",
    "accuracy_std",
    "macro_f1_mean",
    "macro_f1_std",
    "train_time_s_mean",
    "inference_time_s_mean",
    "throughput_samples_s_mean",
    "throughput_samples_s_std",
    "throughput_threads",
    "peak_memory_mib",
    "params",
    "epochs",
    "delta_pp",
    "verdict",
)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return float("nan"), float("nan")
    array = np.asarray(values)
    std = float(array.std(ddof=1)) if array.size > 1 else float("nan")
    return float(array.mean()), std


def _same_or_mixed(values: Sequence[Any]) -> Any:
    """The one value all runs share, ``"mixed"`` if they differ, ``None`` if none has it."""
    found = set(values)
    if found == {None} or not found:
        return None
    return found.pop() if len(found) == 1 else "mixed"


def throughput_threads(rows: Sequence[dict]) -> int | str | None:
    """The thread count every throughput figure of ``rows`` was timed with (``"mixed"`` when
    runs differ, e.g. results resumed from an older poolkit or another ``--throughput-threads``)."""
    return _same_or_mixed([row.get("throughput_threads") for row in rows if row.get("runs")])


def throughput_header(rows: Sequence[dict]) -> str:
    """``samples/s (1 thread)``: the column header, naming the thread count of the timings."""
    threads = throughput_threads(rows)
    if threads is None or threads == "mixed":
        return "samples/s (threads differ!)" if threads == "mixed" else "samples/s"
    return f"samples/s ({threads} thread{'s' if threads != 1 else ''})"


def robustness_labels(records: Sequence[dict[str, Any]]) -> list[str]:
    labels: list[str] = []
    for record in records:
        for label in record.get("robustness") or {}:
            if label not in labels:
                labels.append(label)
    return labels


def summarize(records: Sequence[dict[str, Any]], pools: Sequence[str] | None = None) -> list[dict]:
    """One row per pooling type (sorted by mean accuracy, best first) with the columns of
    :data:`BASE_COLUMNS` plus ``<perturbation>_mean``/``_std`` for each robustness level."""
    pools = list(pools) if pools is not None else list(dict.fromkeys(r["pool"] for r in records))
    labels = robustness_labels(records)
    rows = []
    for pool in pools:
        mine = [r for r in records if r["pool"] == pool]
        ok = [r for r in mine if r.get("status", "ok") == "ok"]
        row: dict[str, Any] = {
            "task": mine[0]["task"] if mine else "",
            "pool": pool,
            "runs": len(ok),
            "failed": len(mine) - len(ok),
        }
        for metric in ("accuracy", "macro_f1"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std([r[metric] for r in ok])
        for metric in ("train_time_s", "inference_time_s", "throughput_samples_s"):
            row[f"{metric}_mean"] = _mean_std([r.get(metric) for r in ok])[0]
        row["throughput_samples_s_std"] = _mean_std([r.get("throughput_samples_s") for r in ok])[1]
        row["throughput_threads"] = _same_or_mixed([r.get("throughput_threads") for r in ok])
        peak = _mean_std([r.get("peak_memory_bytes") for r in ok])[0]
        row["peak_memory_mib"] = peak / 2**20
        row["params"] = int(ok[0]["params"]) if ok else None
        row["trainable_params"] = (
            int(ok[0].get("trainable_params", row["params"] or 0)) if ok else None
        )
        row["epochs"] = _mean_std([r.get("epochs") for r in ok])[0]
        for label in labels:
            values = [(r.get("robustness") or {}).get(label) for r in ok]
            row[f"{label}_mean"], row[f"{label}_std"] = _mean_std(values)
        if any(r.get("shift_consistency") is not None for r in ok):
            values = [r.get("shift_consistency") for r in ok]
            row["consistency_mean"], row["consistency_std"] = _mean_std(values)
        row["chance"] = _mean_std([r.get("chance_accuracy") for r in ok])[0]
        row["_accuracies"] = [float(r["accuracy"]) for r in ok]
        row["_throughputs"] = [
            float(r["throughput_samples_s"]) for r in ok if _finite(r.get("throughput_samples_s"))
        ]
        rows.append(row)
    _rank_and_judge(rows)
    return rows


def _rank_and_judge(rows: list[dict]) -> None:
    scored = [row for row in rows if row["runs"] > 0]
    scored.sort(key=lambda row: -row["accuracy_mean"])
    for rank, row in enumerate(scored, start=1):
        row["rank"] = rank
    for row in rows:
        if row["runs"] == 0:
            row.update(rank=None, delta_pp=None, verdict="failed")
    if not scored:
        return
    best = scored[0]
    for row in scored:
        delta = 100 * (row["accuracy_mean"] - best["accuracy_mean"])
        row["delta_pp"] = delta
        chance = row.get("chance")
        if chance is not None and math.isfinite(chance) and row["accuracy_mean"] <= chance + 0.02:
            row["verdict"] = "at chance"
        elif row is best:
            row["verdict"] = "best"
        elif row["runs"] < 2 or best["runs"] < 2:
            row["verdict"] = f"lower (1 seed, {delta:+.1f} pp)" if delta < 0 else "tie"
        else:
            significant = welch_significant(best["_accuracies"], row["_accuracies"])
            row["verdict"] = f"loses ({delta:+.1f} pp)" if significant else "tie"
    rows.sort(key=lambda row: (row["rank"] is None, row["rank"] or 0))


# Two-sided 95% quantiles of Student's t by degrees of freedom: the fallback without SciPy.
_T_975 = (
    (1, 12.706),
    (1.1, 10.277),
    (1.2, 8.649),
    (1.3, 7.501),
    (1.4, 6.657),
    (1.5, 6.017),
    (1.6, 5.517),
    (1.8, 4.795),
    (2, 4.303),
    (2.25, 3.875),
    (2.5, 3.575),
    (3, 3.182),
    (3.5, 2.940),
    (4, 2.776),
    (5, 2.571),
    (6, 2.447),
    (7, 2.365),
    (8, 2.306),
    (9, 2.262),
    (10, 2.228),
    (12, 2.179),
    (15, 2.131),
    (20, 2.086),
    (30, 2.042),
    (60, 2.000),
    (120, 1.980),
    (math.inf, 1.960),
)


def t_quantile_975(df: float) -> float:
    """:math:`t_{0.975,\nu}` for ``df`` (Welch's fractional) degrees of freedom.

    Exact with SciPy (installed with scikit-learn); without it, the table above interpolated
    linearly in ``1/df``, which lies slightly above the exact quantile (the quantile is convex
    in ``1/df``), so the test stays conservative. ``df < 1`` (or NaN) takes ``df = 1``.
    """
    df = 1.0 if not df >= 1 else float(df)  # also NaN
    try:
        from scipy.stats import t as student_t
    except ImportError:
        pass
    else:
        return float(student_t.ppf(0.975, df))
    for (df_lo, q_lo), (df_hi, q_hi) in zip(_T_975, _T_975[1:], strict=False):
        if df_lo <= df <= df_hi:
            x, x_lo, x_hi = 1 / df, 1 / df_lo, 1 / df_hi
            return q_hi + (q_lo - q_hi) * (x - x_hi) / (x_lo - x_hi)
    return _T_975[-1][1]


def welch_significant(best: Sequence[float], other: Sequence[float]) -> bool:
    """Whether ``mean(best) > mean(other)`` by Welch's t-test (two-sided 5%); needs 2+ each."""
    n_a, n_b = len(best), len(other)
    gap = float(np.mean(best) - np.mean(other))
    if gap <= 0:
        return False
    va, vb = _var(best) / n_a, _var(other) / n_b
    if va + vb == 0:
        return True  # every seed gave the same accuracy on both sides: the gap is exact
    df = (va + vb) ** 2 / ((va**2 / (n_a - 1) if va else 0) + (vb**2 / (n_b - 1) if vb else 0))
    return gap / math.sqrt(va + vb) > t_quantile_975(df)


def _var(values: Sequence[float]) -> float:
    return float(np.var(values, ddof=1)) if len(values) > 1 else 0.0


def test_set_resolution(n_test: int, accuracy: float) -> dict[str, float]:
    """How finely a test set of ``n_test`` examples measures an accuracy near ``accuracy``, in
    percentage points: ``one_example`` (one example changing its prediction moves accuracy by
    100/n), ``standard_error`` of one accuracy (binomial, :math:`\\sqrt{p(1-p)/n}`) and
    ``detectable`` gap between two pooling types at 95%: :math:`1.96 \\sqrt{2 p (1-p) / n}`.

    Rough: it treats the two accuracies as independent, whereas both come from the same test
    examples (a paired test such as McNemar's can resolve a little less); it is about the test
    sample, not the seeds, which the verdict's Welch test covers.

    Example:
        >>> r = test_set_resolution(400, 0.9)  # SE = sqrt(0.9 * 0.1 / 400) = 1.5 points
        >>> round(r["one_example"], 2), round(r["standard_error"], 2), round(r["detectable"], 2)
        (0.25, 1.5, 4.16)
    """
    if n_test < 1:
        raise ValueError(f"n_test ({n_test}) must be >= 1")
    p = min(max(float(accuracy), 0.0), 1.0)
    error = math.sqrt(p * (1 - p) / n_test)
    return {
        "one_example": 100 / n_test,
        "standard_error": 100 * error,
        "detectable": 100 * 1.96 * math.sqrt(2) * error,
    }


def resolution_notes(rows: Sequence[dict], n_test: int | None) -> tuple[list[str], list[str]]:
    """``(notes, warnings)`` on what the test set can tell apart: a note with its resolution, and
    a warning when the best and the runner-up differ by less than the detectable gap."""
    scored = [row for row in rows if row.get("runs") and _finite(row.get("accuracy_mean"))]
    if not n_test or not scored:
        return [], []
    best = max(scored, key=lambda row: row["accuracy_mean"])
    r = test_set_resolution(int(n_test), best["accuracy_mean"])
    notes = [
        f"Test-set resolution: {n_test:,} test examples; one example is "
        f"{r['one_example']:.2f} points of accuracy, the binomial standard error at "
        f"{100 * best['accuracy_mean']:.1f}% is {r['standard_error']:.2f} points, so two pooling "
        f"types must differ by about {r['detectable']:.1f} points (1.96·√2·SE) before the test "
        "set, rather than the sample of test examples, tells them apart."
    ]
    ordered = sorted(scored, key=lambda row: -row["accuracy_mean"])
    warnings = []
    if len(ordered) > 1:
        gap = 100 * (ordered[0]["accuracy_mean"] - ordered[1]["accuracy_mean"])
        if gap < r["detectable"]:
            warnings.append(
                f"the test set ({n_test:,} examples) is too small to tell the leading pooling "
                f"types apart: {ordered[0]['pool']} leads {ordered[1]['pool']} by {gap:.1f} "
                f"points, under the ~{r['detectable']:.1f} points it can detect (one example = "
                f"{r['one_example']:.2f} points); use a larger --test-size or data set"
            )
    return notes, warnings


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def columns(rows: Sequence[dict]) -> list[str]:
    extra = [key for row in rows for key in row if key not in BASE_COLUMNS]
    extra = [key for key in dict.fromkeys(extra) if not key.startswith("_") and key != "chance"]
    return [*BASE_COLUMNS, *extra]


def to_csv(rows: Sequence[dict]) -> str:
    names = columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in names})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return "" if value is None else value


def _pct(mean: float, std: float | None = None) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    if std is None or not math.isfinite(std):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, fmt)


def _level_header(label: str) -> str:
    if label.startswith("shift_"):
        return f"shift {label[len('shift_') :]}"
    if label.startswith("word_dropout_"):
        return f"drop {label[len('word_dropout_') :]}%"
    return label


def to_markdown(
    rows: Sequence[dict],
    *,
    title: str,
    command: str = "",
    notes: Sequence[str] = (),
    failures: Sequence[dict] = (),
    warnings: Sequence[str] = (),
) -> str:
    """The summary as a Markdown page: the command, the table (best row bold), how to read it."""
    labels = [key[: -len("_mean")] for key in columns(rows) if key.endswith("_mean")]
    labels = [label for label in labels if label.startswith(("shift_", "word_dropout_"))]
    header = ["rank", "pooling", "accuracy %", "macro-F1 %"]
    header += [_level_header(label) for label in labels]  # accuracy %, see the note below
    consistent = any("consistency_mean" in row for row in rows)
    header += ["consistency %"] if consistent else []
    header += ["train s", throughput_header(rows), "peak MiB", "params", "verdict"]
    lines = [f"# {title}", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += list(notes)
    if notes:
        lines.append("")
    lines += [f"**Warning:** {warning}." for warning in warnings]
    if warnings:
        lines.append("")
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [
            str(row["rank"]) if row.get("rank") else "–",
            f"`{row['pool']}`",
            _pct(row["accuracy_mean"], row["accuracy_std"]),
            _pct(row["macro_f1_mean"], row["macro_f1_std"]),
        ]
        cells += [_pct(row.get(f"{label}_mean"), row.get(f"{label}_std")) for label in labels]
        if consistent:
            cells.append(_pct(row.get("consistency_mean"), row.get("consistency_std")))
        cells += [
            _num(row.get("train_time_s_mean"), ".1f"),
            _num(row.get("throughput_samples_s_mean"), ",.0f"),
            _num(row.get("peak_memory_mib"), ".2f"),
            f"{row['params']:,}" if row.get("params") is not None else "–",
            row["verdict"] + (f" ({row['failed']} failed)" if row.get("failed") else ""),
        ]
        if row["verdict"] == "best":
            cells = [f"**{cell}**" for cell in cells]
            cells[1] = cells[1] + " ★"
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean ± sample standard deviation over seeds. **best** = highest mean accuracy; "
        "**loses** = lower, and Welch's t-test over the seeds (two-sided, 5%) says the gap is "
        "not seed noise (pp = percentage points); **tie** = lower, but not significantly; "
        "**at chance** = within 2 points of always predicting the most frequent class.",
        "Cost: samples/s = test examples classified per second (inference, the whole test set, "
        "mean over seeds) with the thread count in the header for every run; peak MiB = the most "
        "memory the tensors of one forward pass over a fixed test batch hold at once (weights "
        "and the input batch not counted; counted op by op, so it does not vary between runs).",
    ]
    if labels and labels[0].startswith("shift_"):
        lines.append(
            "Robustness columns (shift 1-3px): test accuracy in % with every image translated by "
            "that many pixels in a random direction (zero fill), the same shifted images for "
            "every pooling type."
        )
    if consistent:
        lines.append(
            "Consistency (Zhang 2019): how often the predicted class of a test image is the same "
            "under two independent random shifts of up to the largest shift above in each "
            "direction (zero fill; the same pairs of shifts for every run); 100% = "
            "shift-invariant predictions, right or wrong."
        )
    elif labels:
        lines.append(
            "Robustness columns (drop 10-30%): test accuracy in % with that share of the words "
            "(tokens) of every text deleted at random (seeded; the same texts for every pooling "
            "type)."
        )
    if failures:
        lines += ["", "Failed runs:", ""]
        lines += [f"- `{f['pool']}` seed {f['seed']}: {f.get('error', '?')}" for f in failures]
    return "\n".join(lines) + "\n"


def write_summary(rows, csv_path, md_path, **markdown_args) -> None:
    atomic_write_text(csv_path, to_csv(rows))
    atomic_write_text(md_path, to_markdown(rows, **markdown_args))


def public_rows(rows: Sequence[dict]) -> list[dict]:
    """Rows without private helper keys (for JSON output)."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
