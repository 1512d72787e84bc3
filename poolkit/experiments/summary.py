"""Per-pooling summary of a compare grid: mean ± std over seeds, ranks and an honest verdict.

Rows are ranked by the task's score (``score_mean``): its ``metric``, test accuracy for the
classification tasks, mean IoU or box mAP for the dense ones. The verdict compares each pooling
type with the best one (highest mean score):

- ``best``: the highest mean score;
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
    "metric",
    "score_mean",
    "score_std",
    "accuracy_mean",
    "accuracy_std",
    "macro_f1_mean",
    "macro_f1_std",
    "train_time_s_mean",
    "inference_time_s_mean",
    "throughput_samples_s_mean",
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


def robustness_labels(records: Sequence[dict[str, Any]]) -> list[str]:
    labels: list[str] = []
    for record in records:
        for label in record.get("robustness") or {}:
            if label not in labels:
                labels.append(label)
    return labels


def summarize(records: Sequence[dict[str, Any]], pools: Sequence[str] | None = None) -> list[dict]:
    """One row per pooling type (sorted by mean score, best first) with the columns of
    :data:`BASE_COLUMNS` plus ``<perturbation>_mean``/``_std`` for each robustness level.

    A record's score is its ``score`` (records written before there was one: ``accuracy``).
    """
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
            "metric": ok[0].get("metric", "accuracy") if ok else "",
        }
        scores = [_score(r) for r in ok]
        row["score_mean"], row["score_std"] = _mean_std(scores)
        for metric in ("accuracy", "macro_f1"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std([r.get(metric) for r in ok])
        for metric in ("train_time_s", "inference_time_s", "throughput_samples_s"):
            row[f"{metric}_mean"] = _mean_std([r.get(metric) for r in ok])[0]
        row["params"] = int(ok[0]["params"]) if ok else None
        row["trainable_params"] = (
            int(ok[0].get("trainable_params", row["params"] or 0)) if ok else None
        )
        row["epochs"] = _mean_std([r.get("epochs") for r in ok])[0]
        for label in labels:
            values = [(r.get("robustness") or {}).get(label) for r in ok]
            row[f"{label}_mean"], row[f"{label}_std"] = _mean_std(values)
        row["chance"] = _mean_std([r.get("chance_accuracy") for r in ok])[0]
        row["_scores"] = [float(score) for score in scores]
        rows.append(row)
    _rank_and_judge(rows)
    return rows


def _score(record: dict[str, Any]) -> float:
    return record["score"] if "score" in record else record["accuracy"]


def _rank_and_judge(rows: list[dict]) -> None:
    scored = [row for row in rows if row["runs"] > 0]
    scored.sort(key=lambda row: -row["score_mean"])
    for rank, row in enumerate(scored, start=1):
        row["rank"] = rank
    for row in rows:
        if row["runs"] == 0:
            row.update(rank=None, delta_pp=None, verdict="failed")
    if not scored:
        return
    best = scored[0]
    for row in scored:
        delta = 100 * (row["score_mean"] - best["score_mean"])
        row["delta_pp"] = delta
        chance = row.get("chance")
        if chance is not None and math.isfinite(chance) and row["score_mean"] <= chance + 0.02:
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


def score_columns(rows: Sequence[dict]) -> list[tuple[str, str]]:
    """``(header, key)`` of the score columns: the task's metric (``"accuracy %"``,
    ``"mIoU %"``…), then macro-F1 where the runs have one (classification)."""
    metric = next((row["metric"] for row in rows if row.get("metric")), "accuracy")
    found = [(f"{metric} %", "score")]
    if any(math.isfinite(row.get("macro_f1_mean", math.nan)) for row in rows):
        found.append(("macro-F1 %", "macro_f1"))
    return found


def to_markdown(
    rows: Sequence[dict],
    *,
    title: str,
    command: str = "",
    notes: Sequence[str] = (),
    failures: Sequence[dict] = (),
) -> str:
    """The summary as a Markdown page: the command, the table (best row bold), how to read it."""
    labels = [key[: -len("_mean")] for key in columns(rows) if key.endswith("_mean")]
    labels = [label for label in labels if label.startswith(("shift_", "word_dropout_"))]
    scores = score_columns(rows)
    header = ["rank", "pooling", *(name for name, _ in scores)]
    header += [_level_header(label) for label in labels]  # accuracy %, see the note below
    header += ["train s", "infer samples/s", "params", "verdict"]
    lines = [f"# {title}", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += list(notes)
    if notes:
        lines.append("")
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [
            str(row["rank"]) if row.get("rank") else "–",
            f"`{row['pool']}`",
            *(_pct(row.get(f"{key}_mean"), row.get(f"{key}_std")) for _, key in scores),
        ]
        cells += [_pct(row.get(f"{label}_mean"), row.get(f"{label}_std")) for label in labels]
        cells += [
            _num(row.get("train_time_s_mean"), ".1f"),
            _num(row.get("throughput_samples_s_mean"), ",.0f"),
            f"{row['params']:,}" if row.get("params") is not None else "–",
            row["verdict"] + (f" ({row['failed']} failed)" if row.get("failed") else ""),
        ]
        if row["verdict"] == "best":
            cells = [f"**{cell}**" for cell in cells]
            cells[1] = cells[1] + " ★"
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Mean ± sample standard deviation over seeds. **best** = highest mean "
        f"{scores[0][0].removesuffix(' %')}; "
        "**loses** = lower, and Welch's t-test over the seeds (two-sided, 5%) says the gap is "
        "not seed noise (pp = percentage points); **tie** = lower, but not significantly; "
        "**at chance** = within 2 points of always predicting the most frequent class.",
    ]
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
