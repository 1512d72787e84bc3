"""compare with a task metric other than accuracy (mIoU, mAP…): the task's ``metric`` key ranks,
tabulates and plots the pools; its ``extra`` numbers are averaged; classification records still
summarise by accuracy."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from poolkit.cli.compare import render_table  # noqa: E402
from poolkit.experiments import CompareSpec, Task, TaskData, compare  # noqa: E402
from poolkit.experiments.summary import summarize, to_markdown  # noqa: E402

SCORES = {"good": 0.8, "bad": 0.5}


def _load() -> TaskData:
    examples = [{"x": torch.zeros(2)} for _ in range(6)]
    return TaskData(examples[:4], None, examples[4:], lambda batch: batch, num_classes=3)


def _build(pool, data):
    model = torch.nn.Linear(2, 2)
    model.pool_name = pool
    return model


def _fit(model, data, train, seed):
    return {"train_time_s": 0.01, "epochs": 1}


def _evaluate(model, data, batch_size):
    # a seed-dependent wobble of 0.01 around each pool's score
    wobble = 0.01 * (torch.initial_seed() % 3)
    return {"miou": SCORES[model.pool_name] + wobble, "n_test": len(data.test),
            "inference_time_s": 0.5, "per_class": [0.1, 0.2],
            "extra": {"pixel_accuracy": 0.9 + wobble}}


def _task() -> Task:
    return Task("toy-dense", "image", _load, _build, description="toy dense task", fit=_fit,
                metric="miou", metric_label="mIoU %", evaluate=_evaluate)


def test_task_metric_ranks_tables_and_plots(tmp_path):
    task = _task()
    assert task.perturbation is None  # no classification perturbation for an evaluate task
    spec = CompareSpec(task, ["bad", "good"], [0, 1, 2], out_dir=tmp_path)
    report = compare(spec, jobs=1, progress=False)
    rows = {row["pool"]: row for row in report.rows}
    assert rows["good"]["verdict"] == "best"
    assert rows["good"]["miou_mean"] == pytest.approx(0.81)
    assert rows["good"]["pixel_accuracy_mean"] == pytest.approx(0.91)
    assert rows["bad"]["verdict"].startswith("loses (-30.0 pp")
    record = report.outcome.records[0]
    assert record["per_class"] == [0.1, 0.2] and record["n_test"] == 2
    assert "accuracy" not in record and "robustness" not in record
    assert "| rank | pooling | mIoU % | train s" in report.markdown  # no macro-F1 column
    assert "highest mean miou" in report.markdown
    assert (tmp_path / "miou.png").stat().st_size > 0
    from rich.console import Console

    console = Console(record=True, width=120)
    render_table(report.rows, console, metric="miou", metric_label="mIoU %")
    text = console.export_text()
    header = [line.split() for line in text.splitlines()[1:3]]  # two-line headers
    assert header[0][0] == "mIoU" and header[1][:3] == ["#", "pooling", "%"]
    assert "81.0±1.0" in text and "51.0±1.0" in text and "macro-F1" not in text


def test_classification_records_summarise_by_accuracy():
    records = [{"task": "t", "pool": p, "seed": s, "status": "ok", "accuracy": a,
                "macro_f1": a, "params": 1, "chance_accuracy": 0.1, "robustness": {}}
               for p, a in (("max", 0.9), ("avg", 0.7)) for s in range(2)]
    rows = summarize(records)
    assert rows[0]["pool"] == "max" and rows[0]["accuracy_mean"] == pytest.approx(0.9)
    markdown = to_markdown(rows, title="t")
    assert "| rank | pooling | accuracy % | macro-F1 %" in markdown
