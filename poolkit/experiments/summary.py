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
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from poolkit._io import atomic_write_text

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


def extra_labels(records: Sequence[dict[str, Any]]) -> list[str]:
    """Keys of the records' ``extra`` dicts (numbers a task's ``evaluate`` adds), in order."""
    labels: list[str] = []
    for record in records:
        for label in record.get("extra") or {}:
            if label not in labels:
                labels.append(label)
    return labels


def summarize(
    records: Sequence[dict[str, Any]], pools: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> list[dict]:
    """One row per pooling type (sorted by mean ``metric``, best first) with the columns of
    :data:`BASE_COLUMNS` (``accuracy`` read as ``metric``) plus ``<perturbation>_mean``/``_std``
    for each robustness level and ``<key>_mean``/``_std`` for each key of the records' ``extra``.
    """
    pools = list(pools) if pools is not None else list(dict.fromkeys(r["pool"] for r in records))
    labels = robustness_labels(records)
    extras = extra_labels(records)
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
        for name in dict.fromkeys((metric, "macro_f1")):
            if name == metric or any(name in r for r in ok):
                row[f"{name}_mean"], row[f"{name}_std"] = _mean_std([r.get(name) for r in ok])
        for name in ("train_time_s", "inference_time_s", "throughput_samples_s"):
            row[f"{name}_mean"] = _mean_std([r.get(name) for r in ok])[0]
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
        for label in extras:
            values = [(r.get("extra") or {}).get(label) for r in ok]
            row[f"{label}_mean"], row[f"{label}_std"] = _mean_std(values)
        _count_paired_wins(row, ok, extras)
        if any(r.get("shift_consistency") is not None for r in ok):
            values = [r.get("shift_consistency") for r in ok]
            row["consistency_mean"], row["consistency_std"] = _mean_std(values)
        row["chance"] = _mean_std([r.get("chance_accuracy") for r in ok])[0]
        row["_scores"] = [float(r[metric]) for r in ok]
        row["_throughputs"] = [
            float(r["throughput_samples_s"]) for r in ok if _finite(r.get("throughput_samples_s"))
        ]
        rows.append(row)
    _rank_and_judge(rows, metric)
    return rows


def _count_paired_wins(row: dict, records: Sequence[dict], extras: Sequence[str]) -> None:
    """For each paired comparison ``vs_<pool>`` with a CI in ``extra``: in how many runs the
    interval lies above 0 (``vs_<pool>_above``) and below 0 (``vs_<pool>_below``)."""
    for label in extras:
        if label.startswith("vs_") and f"{label}_ci_low" in extras:
            lows = [(r.get("extra") or {}).get(f"{label}_ci_low") for r in records]
            highs = [(r.get("extra") or {}).get(f"{label}_ci_high") for r in records]
            row[f"{label}_above"] = sum(1 for low in lows if low is not None and low > 0)
            row[f"{label}_below"] = sum(1 for high in highs if high is not None and high < 0)


def _rank_and_judge(rows: list[dict], metric: str = "accuracy") -> None:
    scored = [row for row in rows if row["runs"] > 0]
    scored.sort(key=lambda row: -row[f"{metric}_mean"])
    for rank, row in enumerate(scored, start=1):
        row["rank"] = rank
    for row in rows:
        if row["runs"] == 0:
            verdict = "failed" if row["failed"] else "not finished"
            row.update(rank=None, delta_pp=None, verdict=verdict)
    if not scored:
        return
    best = scored[0]
    for row in scored:
        delta = 100 * (row[f"{metric}_mean"] - best[f"{metric}_mean"])
        row["delta_pp"] = delta
        chance = row.get("chance")
        if chance is not None and math.isfinite(chance) and row[f"{metric}_mean"] <= chance + 0.02:
            row["verdict"] = "at chance"
        elif row is best:
            row["verdict"] = "best"
        elif row["runs"] < 2 or best["runs"] < 2:
            row["verdict"] = f"lower (1 seed, {delta:+.1f} pp)" if delta < 0 else "tie"
        else:
            significant = welch_significant(best["_scores"], row["_scores"])
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
    """Whether ``mean(best) > mean(other)`` by Welch's t-test (two-sided 5%); needs 2+ each.

    With SciPy, ``scipy.stats.ttest_ind(equal_var=False)``. SciPy is optional (it comes with
    ``poolkit[data]``), so without it the same statistic is computed here and compared with
    :func:`t_quantile_975`'s table, which errs on the conservative side.
    """
    gap = float(np.mean(best) - np.mean(other))
    if gap <= 0:
        return False
    if _var(best) + _var(other) == 0:
        return True  # every seed gave the same accuracy on both sides: the gap is exact
    try:
        from scipy.stats import ttest_ind
    except ImportError:
        t, df = _welch_t(best, other)
        return t > t_quantile_975(df)
    with warnings.catch_warnings():
        # Seeds often score (nearly) the same; SciPy then warns of precision loss in the
        # variance, which the fallback computes the same way. One warning per row is noise.
        warnings.simplefilter("ignore", RuntimeWarning)
        return bool(ttest_ind(best, other, equal_var=False).pvalue < 0.05)


def _welch_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    r"""Welch's :math:`t = (\bar a - \bar b) / \sqrt{s_a^2/n_a + s_b^2/n_b}` and its
    Welch-Satterthwaite degrees of freedom."""
    n_a, n_b = len(a), len(b)
    va, vb = _var(a) / n_a, _var(b) / n_b
    df = (va + vb) ** 2 / ((va**2 / (n_a - 1) if va else 0) + (vb**2 / (n_b - 1) if vb else 0))
    return float(np.mean(a) - np.mean(b)) / math.sqrt(va + vb), df


def _var(values: Sequence[float]) -> float:
    return float(np.var(values, ddof=1)) if len(values) > 1 else 0.0


def accuracy_resolution(n_test: int, accuracy: float) -> dict[str, float]:
    """How finely a test set of ``n_test`` examples measures an accuracy near ``accuracy``, in
    percentage points: ``one_example`` (one example changing its prediction moves accuracy by
    100/n), ``standard_error`` of one accuracy (binomial, :math:`\\sqrt{p(1-p)/n}`) and
    ``detectable`` gap between two pooling types at 95%: :math:`1.96 \\sqrt{2 p (1-p) / n}`.

    Rough: it treats the two accuracies as independent, whereas both come from the same test
    examples (a paired test such as McNemar's can resolve a little less); it is about the test
    sample, not the seeds, which the verdict's Welch test covers.

    Example:
        >>> r = accuracy_resolution(400, 0.9)  # SE = sqrt(0.9 * 0.1 / 400) = 1.5 points
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
    r = accuracy_resolution(int(n_test), best["accuracy_mean"])
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


_SCORE_COLUMNS = ("accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std")


def columns(rows: Sequence[dict], metric: str = "accuracy") -> list[str]:
    """:data:`BASE_COLUMNS` with ``metric`` in the place of accuracy (and macro-F1 only where the
    rows have it), then every other public key of the rows."""
    base: list[str] = []
    for name in BASE_COLUMNS:
        if name == "accuracy_mean" and metric != "accuracy":
            base += [f"{metric}_mean", f"{metric}_std"]
        if name in _SCORE_COLUMNS and rows and not any(name in row for row in rows):
            continue
        base.append(name)
    extra = [key for row in rows for key in row if key not in base]
    extra = [key for key in dict.fromkeys(extra) if not key.startswith("_") and key != "chance"]
    return [*base, *extra]


def to_csv(rows: Sequence[dict], metric: str = "accuracy") -> str:
    names = columns(rows, metric)
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


def format_percent(mean: float, std: float | None = None) -> str:
    """``0.853, 0.011`` -> ``"85.3 ± 1.1"`` (``"–"`` for a missing or non-finite mean)."""
    if mean is None or not math.isfinite(mean):
        return "–"
    if std is None or not math.isfinite(std):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def format_number(value: float | None, fmt: str) -> str:
    """``value`` in format ``fmt`` (``"–"`` when missing or not finite)."""
    return "–" if value is None or not math.isfinite(value) else format(value, fmt)


def level_header(label: str) -> str:
    """A robustness column's header: ``shift_<n>`` -> ``shift <n>``, ``word_dropout_<r>`` ->
    ``drop <r>%``; other labels as they are."""
    if label.startswith("shift_"):
        return f"shift {label[len('shift_') :]}"
    if label.startswith("word_dropout_"):
        return f"drop {label[len('word_dropout_') :]}%"
    return label



def paired_labels(rows: Sequence[dict]) -> list[str]:
    """The paired comparisons in the rows: ``vs_mean`` for rows with ``vs_mean_mean``, its CI
    and its win counts (see :func:`summarize`)."""
    keys = [key for row in rows for key in row]
    return [key[: -len("_above")] for key in dict.fromkeys(keys)
            if key.startswith("vs_") and key.endswith("_above")]


def paired_cells(row: dict, label: str) -> list[str]:
    """``+1.2 ± 0.3 [+0.4, +2.0]`` (x100, CI averaged over seeds) and how many seeds' paired
    bootstrap intervals lie above / below 0."""
    mean, std = row.get(f"{label}_mean"), row.get(f"{label}_std")
    if row.get("pool") == label[len("vs_") :]:
        return ["reference", "–"]
    if mean is None or not math.isfinite(mean):
        return ["–", "–"]
    spread = f" ± {100 * std:.1f}" if std is not None and math.isfinite(std) and std > 0 else ""
    low, high = row.get(f"{label}_ci_low_mean"), row.get(f"{label}_ci_high_mean")
    interval = f" [{100 * low:+.1f}, {100 * high:+.1f}]" if low is not None else ""
    runs, above, below = row["runs"], row.get(f"{label}_above", 0), row.get(f"{label}_below", 0)
    if above == runs:
        verdict = "better" + (f" ({above}/{runs} seeds)" if runs > 1 else "")
    elif below == runs:
        verdict = "worse" + (f" ({below}/{runs} seeds)" if runs > 1 else "")
    elif above or below:
        verdict = f"mixed ({above} better, {below} worse of {runs})"
    else:
        verdict = "not significant"
    return [f"{100 * mean:+.1f}{spread}{interval}", verdict]


def score_headers(rows: Sequence[dict], metric: str, metric_label: str) -> list[str]:
    header = [metric_label]
    if any(f"{metric}_ci_low_mean" in row for row in rows):
        header.append("95% CI")
    if metric == "accuracy" or any("macro_f1_mean" in row for row in rows):
        header.append("macro-F1 %")
    return header


def score_cells(row: dict, metric: str, header: Sequence[str]) -> list[str]:
    cells = [format_percent(row[f"{metric}_mean"], row[f"{metric}_std"])]
    if "95% CI" in header:
        low, high = row.get(f"{metric}_ci_low_mean"), row.get(f"{metric}_ci_high_mean")
        cells.append(f"{format_percent(low)}–{format_percent(high)}")
    if "macro-F1 %" in header:
        cells.append(format_percent(row.get("macro_f1_mean"), row.get("macro_f1_std")))
    return cells


def to_markdown(
    rows: Sequence[dict],
    *,
    title: str,
    command: str = "",
    notes: Sequence[str] = (),
    failures: Sequence[dict] = (),
    metric: str = "accuracy",
    metric_label: str = "accuracy %",
    warnings: Sequence[str] = (),
) -> str:
    """The summary as a Markdown page: the command, the table (best row bold), how to read it."""
    labels = [key[: -len("_mean")] for key in columns(rows, metric) if key.endswith("_mean")]
    labels = [label for label in labels if label.startswith(("shift_", "word_dropout_"))]
    paired = paired_labels(rows)
    score_header = score_headers(rows, metric, metric_label)
    header = ["rank", "pooling", *score_header]
    header += [level_header(label) for label in labels]  # accuracy %, see the note below
    consistent = any("consistency_mean" in row for row in rows)
    header += ["consistency %"] if consistent else []
    header += ["train s", throughput_header(rows), "peak MiB", "params"]
    for label in paired:
        header += [f"Δ vs `{label[3:]}` (95% CI)", f"vs `{label[3:]}` (paired bootstrap)"]
    header.append("verdict")
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
            *score_cells(row, metric, score_header),
        ]
        cells += [
            format_percent(row.get(f"{label}_mean"), row.get(f"{label}_std")) for label in labels
        ]
        if consistent:
            cells.append(format_percent(row.get("consistency_mean"), row.get("consistency_std")))
        cells += [
            format_number(row.get("train_time_s_mean"), ".1f"),
            format_number(row.get("throughput_samples_s_mean"), ",.0f"),
            format_number(row.get("peak_memory_mib"), ".2f"),
            f"{row['params']:,}" if row.get("params") is not None else "–",
        ]
        for label in paired:
            cells += paired_cells(row, label)
        cells.append(row["verdict"] + (f" ({row['failed']} failed)" if row.get("failed") else ""))
        if row["verdict"] == "best":
            cells = [f"**{cell}**" for cell in cells]
            cells[1] = cells[1] + " ★"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_legend(labels, paired, metric, consistent)]
    if failures:
        lines += ["", "Failed runs:", ""]
        lines += [f"- `{f['pool']}` seed {f['seed']}: {f.get('error', '?')}" for f in failures]
    return "\n".join(lines) + "\n"


def _legend(
    labels: Sequence[str], paired: Sequence[str], metric: str, consistent: bool = False
) -> list[str]:
    chance = (
        "; **at chance** = within 2 points of always predicting the most frequent class"
        if metric == "accuracy" else ""
    )
    lines = [
        f"Mean ± sample standard deviation over seeds. **best** = highest mean {metric}; "
        "**loses** = lower, and Welch's t-test over the seeds (two-sided, 5%) says the gap is "
        "not seed noise (pp = percentage points); **tie** = lower, but not significantly"
        f"{chance}.",
        "Cost: samples/s = test examples classified per second (inference, the whole test set, "
        "mean over seeds) with the thread count in the header for every run; peak MiB = the most "
        "memory the tensors of one forward pass over a fixed test batch hold at once (weights "
        "and the input batch not counted; counted op by op, so it does not vary between runs).",
    ]
    for label in paired:
        lines.append(
            f"Δ vs `{label[3:]}`: the difference in {metric} x100 against `{label[3:]}` on the "
            "same test examples, with the 95% interval of a paired bootstrap over the test "
            "examples (1,000 resamples, seeded; the bounds averaged over seeds); **better** / "
            "**worse** = the interval excludes 0 for every seed. 95% CI: the percentile "
            f"bootstrap interval of the {metric} itself."
        )
    if labels and labels[0].startswith("shift_"):
        lines.append(
            "Robustness columns (shift 1-3px): test accuracy in % with every image translated by "
            "that many pixels in a random direction (zero fill), the same shifted images for "
            "every pooling type."
        )
    elif labels:
        lines.append(
            "Robustness columns (drop 10-30%): test accuracy in % with that share of the words "
            "(tokens) of every text deleted at random (seeded; the same texts for every pooling "
            "type)."
        )
    if consistent:
        lines.append(
            "Consistency (Zhang 2019): how often the predicted class of a test image is the same "
            "under two independent random shifts of up to the largest shift above in each "
            "direction (zero fill; the same pairs of shifts for every run); 100% = "
            "shift-invariant predictions, right or wrong."
        )
    return lines


def write_summary(rows, csv_path, md_path, **markdown_args) -> None:
    atomic_write_text(csv_path, to_csv(rows, markdown_args.get("metric", "accuracy")))
    atomic_write_text(md_path, to_markdown(rows, **markdown_args))


def public_rows(rows: Sequence[dict]) -> list[dict]:
    """Rows without private helper keys (for JSON output)."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
