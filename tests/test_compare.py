"""compare: the grid runner, resume, summary table and plots, on a tiny fake task (no trainer)."""

from __future__ import annotations

import csv
import json

import pytest

torch = pytest.importorskip("torch")

from poolkit._io import read_jsonl  # noqa: E402
from poolkit.experiments import CompareSpec, Task, TaskData, compare  # noqa: E402
from poolkit.experiments.results import ResultStore  # noqa: E402
from poolkit.experiments.runner import plan_workers  # noqa: E402
from poolkit.experiments.summary import BASE_COLUMNS, summarize  # noqa: E402


# A tiny image task: class 1 images have a bright 2x2 square somewhere, class 0 do not.
def _fake_load(n: int = 96, size: int = 6) -> TaskData:
    generator = torch.Generator().manual_seed(0)
    images = 0.1 * torch.rand(n, 1, size, size, generator=generator)
    labels = torch.arange(n) % 2
    corners = torch.randint(0, size - 1, (n, 2), generator=generator)
    for i in range(n):
        if labels[i] == 1:
            y, x = corners[i].tolist()
            images[i, 0, y : y + 2, x : x + 2] = 1.0
    examples = [{"images": images[i], "labels": int(labels[i])} for i in range(n)]
    return TaskData(
        train=examples[: n // 2],
        dev=examples[n // 2 : 3 * n // 4],
        test=examples[3 * n // 4 :],
        collate_fn=_collate,
        num_classes=2,
    )


def _collate(examples):
    return {
        "images": torch.stack([e["images"] for e in examples]),
        "labels": torch.tensor([e["labels"] for e in examples]),
    }


class _FakeNet(torch.nn.Module):
    def __init__(self, pool: str):
        super().__init__()
        if pool not in ("max", "avg", "broken"):
            raise ValueError(f"pool ({pool!r}) must be max or avg")
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        adaptive = torch.nn.AdaptiveMaxPool2d if pool == "max" else torch.nn.AdaptiveAvgPool2d
        self.pool = adaptive(1)
        self.head = torch.nn.Linear(4, 2)
        self.broken = pool == "broken"

    def forward(self, images):
        if self.broken:
            raise RuntimeError("this pool is broken on purpose")
        return self.head(self.pool(torch.relu(self.conv(images))).flatten(1))


def _fake_build(pool, data):
    return _FakeNet(pool)


def _fake_fit(model, data, train, seed):
    generator = torch.Generator().manual_seed(seed)
    batch = data.collate_fn(list(data.train))
    for _ in range(train.get("epochs", 1) * 10):  # plain SGD: no torch.optim import in workers
        order = torch.randperm(len(data.train), generator=generator)[:16]
        loss = torch.nn.functional.cross_entropy(
            model(images=batch["images"][order]), batch["labels"][order]
        )
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter -= train.get("lr", 0.5) * parameter.grad
    return {"train_time_s": 0.01, "epochs": train.get("epochs", 1)}


FAKE = Task(
    "fake-images",
    "image",
    _fake_load,
    _fake_build,
    description="bright squares vs noise",
    train={"epochs": 3, "lr": 0.5},
    default_pools=("max", "avg"),
    fit=_fake_fit,
)


def _spec(tmp_path, pools=("max", "avg"), seeds=(0, 1), **train):
    return CompareSpec(
        FAKE,
        list(pools),
        list(seeds),
        train=train,
        out_dir=tmp_path / "cmp",
        command="poolkit compare --task fake-images",
    )


def test_tiny_grid_writes_every_file_with_the_right_columns(tmp_path):
    report = compare(_spec(tmp_path), jobs=1, threads=1, progress=False)
    out = tmp_path / "cmp"
    for name in ("results.jsonl", "summary.csv", "summary.md", "accuracy.png", "robustness.png"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    records = read_jsonl(out / "results.jsonl")
    assert len(records) == 4
    required = {
        "task",
        "pool",
        "seed",
        "accuracy",
        "macro_f1",
        "train_time_s",
        "inference_time_s",
        "throughput_samples_s",
        "params",
        "epochs",
        "robustness",
        "versions",
        "status",
    }
    for record in records:
        assert required <= set(record), required - set(record)
        assert record["status"] == "ok"
        assert set(record["robustness"]) == {"shift_1px", "shift_2px", "shift_3px"}
        assert 0.0 <= record["accuracy"] <= 1.0
        assert record["versions"]["torch"] == torch.__version__
    assert {(r["pool"], r["seed"]) for r in records} == {
        ("max", 0),
        ("max", 1),
        ("avg", 0),
        ("avg", 1),
    }
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["pool"] for row in rows].count("max") == 1 and len(rows) == 2
    header = list(rows[0])
    assert header[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert "shift_3px_mean" in header and "shift_3px_std" in header
    assert {row["verdict"] for row in rows} & {"best"}
    markdown = (out / "summary.md").read_text()
    assert "poolkit compare --task fake-images" in markdown
    assert "| rank | pooling | accuracy %" in markdown
    assert "★" in markdown and "| shift 3px |" in markdown
    assert report.to_json()["runs"] == {"total": 4, "ran": 4, "reused": 0, "failed": 0}
    json.dumps(report.to_json())  # serialisable


def test_resume_skips_finished_runs_and_redoes_a_killed_one(tmp_path):
    spec = _spec(tmp_path, pools=("max",), seeds=(0, 1, 2))
    first = compare(spec, jobs=1, threads=1, progress=False)
    assert first.outcome.ran == 3
    path = tmp_path / "cmp" / "results.jsonl"
    lines = path.read_text().splitlines()
    # A run killed mid-way leaves no record: drop seed 1's line and its file in runs/, as if it
    # never finished.
    kept = [line for line in lines if json.loads(line)["seed"] != 1]
    path.write_text("\n".join(kept) + "\n")
    ResultStore(tmp_path / "cmp").run_path(spec.run_key("max", 1)).unlink()
    again = compare(spec, jobs=1, threads=1, progress=False)
    assert (again.outcome.reused, again.outcome.ran) == (2, 1)
    seeds = sorted(r["seed"] for r in read_jsonl(path))
    assert seeds == [0, 1, 2]
    # The reused records are the very same lines (not re-run).
    by_seed = {json.loads(line)["seed"]: line for line in path.read_text().splitlines()}
    assert by_seed[0] in lines and by_seed[2] in lines
    # Nothing left to do: a third call runs nothing.
    third = compare(spec, jobs=1, threads=1, progress=False)
    assert (third.outcome.reused, third.outcome.ran) == (3, 0)


def test_changed_settings_are_a_new_grid_and_old_lines_stay(tmp_path):
    compare(_spec(tmp_path, pools=("max",), seeds=(0,)), jobs=1, threads=1, progress=False)
    other = compare(
        _spec(tmp_path, pools=("max",), seeds=(0,), epochs=1), jobs=1, threads=1, progress=False
    )
    assert other.outcome.ran == 1
    assert len(read_jsonl(tmp_path / "cmp" / "results.jsonl")) == 2


def test_a_failing_pool_is_recorded_and_reported_not_fatal(tmp_path):
    report = compare(
        _spec(tmp_path, pools=("max", "broken"), seeds=(0,)), jobs=1, threads=1, progress=False
    )
    assert report.outcome.failed == 1
    failed = [r for r in report.outcome.records if r["status"] == "failed"]
    assert "broken on purpose" in failed[0]["error"]
    assert "Failed runs" in report.markdown and "broken on purpose" in report.markdown
    assert {row["pool"]: row["verdict"] for row in report.rows}["broken"] == "failed"


def test_parallel_workers_give_the_same_records(tmp_path):
    spec = _spec(tmp_path, pools=("max", "avg"), seeds=(0,))
    report = compare(spec, jobs=2, progress=False)
    assert report.outcome.jobs == 2 and report.outcome.failed == 0
    serial = compare(
        _spec(tmp_path / "serial", pools=("max", "avg"), seeds=(0,)),
        jobs=1,
        threads=1,
        progress=False,
    )
    for a, b in zip(report.outcome.records, serial.outcome.records, strict=True):
        assert a["accuracy"] == pytest.approx(b["accuracy"])


def test_verdicts_are_honest():
    def record(pool, seed, accuracy):
        return {
            "task": "t",
            "pool": pool,
            "seed": seed,
            "status": "ok",
            "accuracy": accuracy,
            "macro_f1": accuracy,
            "params": 10,
            "chance_accuracy": 0.5,
            "robustness": {},
        }

    records = [record("max", s, a) for s, a in enumerate([0.90, 0.91, 0.92])]
    records += [record("avg", s, a) for s, a in enumerate([0.80, 0.81, 0.79])]
    records += [record("lp", s, a) for s, a in enumerate([0.89, 0.93, 0.90])]
    # 1.3 points lower: twice the standard error (1.2) but not Welch-significant with 3 seeds
    records += [record("gem", s, a) for s, a in enumerate([0.88, 0.89, 0.90])]
    records += [record("bad", s, a) for s, a in enumerate([0.50, 0.51, 0.49])]
    rows = {row["pool"]: row for row in summarize(records)}
    assert rows["max"]["verdict"] == "best" and rows["max"]["rank"] == 1
    assert rows["avg"]["verdict"].startswith("loses (-11.0 pp")
    assert rows["lp"]["verdict"] == "tie"
    assert rows["gem"]["verdict"] == "tie"
    assert rows["bad"]["verdict"] == "at chance"
    assert rows["avg"]["accuracy_std"] == pytest.approx(0.01)


def test_welch_by_hand():
    from poolkit.experiments.summary import t_quantile_975, welch_significant

    # gap 0.02, s^2/n = 0.0001/3 each: t = 0.02 / sqrt(2 * 0.0001 / 3) = 2.449, df = 4 -> 2.776
    assert not welch_significant([0.90, 0.91, 0.92], [0.88, 0.89, 0.90])
    # gap 0.03: t = 3.674 > 2.776
    assert welch_significant([0.90, 0.91, 0.92], [0.87, 0.88, 0.89])
    assert t_quantile_975(4) == pytest.approx(2.776, abs=1e-3)
    assert t_quantile_975(0.3) == pytest.approx(12.706, abs=1e-3)  # df < 1 counts as 1
    # Welch's df are fractional: 2.95 is not rounded down to 2 (4.303)
    assert t_quantile_975(2.95) == pytest.approx(3.213, abs=1e-3)
    # seeds 0-2 of a real MR grid: t = 4.28 on 2.95 df, p = 0.024 by scipy's Welch test
    avg = [0.7833020637898687, 0.776735459662289, 0.7795497185741088]
    maximum = [0.7645403377110694, 0.7664165103189493, 0.7542213883677298]
    assert welch_significant(avg, maximum)
    assert welch_significant([0.9, 0.9], [0.8, 0.8])  # no spread at all: the gap is exact
    assert not welch_significant([0.8, 0.9], [0.9, 0.95])  # not lower


@pytest.mark.parametrize(
    "df", [1, 1.05, 1.33, 1.5, 1.7, 2, 2.1, 2.95, 3.7, 5, 9.2, 11, 17, 25, 45, 90, 200, 1e6]
)
def test_t_quantile_fallback_is_close_and_conservative(df, monkeypatch):
    """Without SciPy the table is interpolated in 1/df: within 1% of the exact quantile and
    never below it."""
    import sys

    from poolkit.experiments.summary import t_quantile_975

    exact = t_quantile_975(df)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import fails
    approx = t_quantile_975(df)
    assert exact - 1e-3 <= approx <= exact * 1.01


@pytest.mark.parametrize(
    ("runs", "jobs", "cores", "expected"),
    [(12, None, 2, (2, 1)), (1, None, 8, (1, 8)), (12, 3, 8, (3, 2)), (0, None, 4, (1, 4))],
)
def test_plan_workers_keeps_jobs_times_threads_within_cores(runs, jobs, cores, expected):
    assert plan_workers(runs, jobs, cores) == expected


def test_plan_workers_rejects_bad_jobs():
    with pytest.raises(ValueError, match="jobs"):
        plan_workers(3, 0, 2)


def test_fit_result_coerces_a_fit_dict_and_refuses_other_values():
    """A user's ``fit`` may return a dict (older style): it is made a typed FitResult."""
    from poolkit.experiments.tasks import FitResult

    typed = FitResult(train_time_s=1.5, epochs=3, best_epoch=2, best_dev_score=0.75)
    assert FitResult.coerce(typed) is typed
    old = FitResult.coerce({"train_time_s": 2, "epochs": 4, "best_dev_accuracy": 0.5})
    assert old == FitResult(train_time_s=2.0, epochs=4, best_epoch=None, best_dev_score=0.5)
    assert FitResult.coerce({"train_time_s": 1.0}).epochs is None  # the record uses the config
    with pytest.raises(TypeError, match="FitResult or a dict, got list"):
        FitResult.coerce([1.0, 2])
