"""compare with many writers: shards, claims, 4 processes into one --out, kill -9 and resume.

The processes run the tiny fake task of test_compare.py (a 4-filter CNN, plain SGD), forked by
tests/forker.py from one process that imported torch once, so each run takes a fraction of a
second.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from poolkit._io import read_jsonl  # noqa: E402
from poolkit.errors import DataFormatError  # noqa: E402
from poolkit.experiments import compare  # noqa: E402
from poolkit.experiments.results import ResultStore  # noqa: E402
from poolkit.experiments.runner import parse_shard, shard_from_env, shard_of  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from forker import Forker  # noqa: E402
from test_compare import _spec  # noqa: E402

FAKE_TASK = """
from test_compare import FAKE
from poolkit.experiments import register_task
register_task(FAKE, overwrite=True)
"""


@pytest.fixture
def forker(tmp_path):
    started = Forker(tmp_path, setup=FAKE_TASK)
    yield started
    started.close()


def _argv(out, seeds=4, epochs=3, *extra):
    return ["compare", "--task", "fake-images", "--pools", "max,avg", "--seeds", str(seeds),
            "--epochs", str(epochs), "--jobs", "1", "--threads", "1", "--out", str(out),
            "--json", *extra]


def _check_once(out, expected_runs):
    """Every run of the grid recorded exactly once, in results.jsonl and in runs/."""
    records = read_jsonl(out / "results.jsonl")
    keys = Counter(r["run_key"] for r in records)
    assert len(keys) == expected_runs and set(keys.values()) == {1}, keys
    files = sorted((out / "runs").glob("*.json"))
    assert len(files) == expected_runs
    assert all(r["status"] == "ok" for r in records)
    return records


# ---------------------------------------------------------------------------------------------
# Shards


def test_parse_shard_and_its_errors():
    assert parse_shard("1/4") == (1, 4) and parse_shard("4/4") == (4, 4)
    for bad in ("0/4", "5/4", "1", "a/b", "1/2/3", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_shard_from_slurm_variables():
    assert shard_from_env({}) is None
    base = {"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}
    assert shard_from_env({**base, "SLURM_ARRAY_TASK_ID": "0"}) == (1, 4)
    assert shard_from_env({**base, "SLURM_ARRAY_TASK_ID": "3"}) == (4, 4)
    # --array=1-4 and --array=10-40:10
    assert shard_from_env({**base, "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_ID": "1"}) == (
        1, 4)
    stepped = {"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10",
               "SLURM_ARRAY_TASK_STEP": "10", "SLURM_ARRAY_TASK_ID": "30"}
    assert shard_from_env(stepped) == (3, 4)
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID='x'"):
        shard_from_env({**base, "SLURM_ARRAY_TASK_ID": "x"})


def test_shards_cover_the_grid_once():
    grid = [(pool, seed) for pool in ("a", "b", "c") for seed in range(5)]
    for count in (1, 2, 4, 7, 20):
        parts = [shard_of(grid, (index, count)) for index in range(1, count + 1)]
        assert sorted(run for part in parts for run in part) == sorted(grid)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard_of(grid, None) == grid


def test_a_shard_writes_a_partial_summary_the_other_completes_it(tmp_path):
    spec = _spec(tmp_path, pools=("max", "avg"), seeds=(0, 1))
    first = compare(spec, jobs=1, threads=1, progress=False, shard=(1, 2))
    assert (first.outcome.ran, first.outcome.unfinished, first.outcome.total) == (2, 2, 4)
    assert first.to_json()["shard"] == "1/2" and first.to_json()["unfinished"] == 2
    assert "Partial: 2 of 4 runs finished" in first.markdown
    second = compare(spec, jobs=1, threads=1, progress=False, shard=(2, 2))
    assert (second.outcome.ran, second.outcome.reused, second.outcome.unfinished) == (2, 0, 0)
    assert "Partial" not in second.markdown
    assert {row["pool"]: row["runs"] for row in second.rows} == {"max": 2, "avg": 2}
    _check_once(tmp_path / "cmp", 4)


def test_a_run_claimed_by_another_process_is_left_to_it(tmp_path):
    spec = _spec(tmp_path, pools=("max",), seeds=(0, 1))
    store = ResultStore(spec.out_dir)
    held = store.claim(spec.run_key("max", 1))  # as if another process trained seed 1
    try:
        report = compare(spec, jobs=1, threads=1, progress=False)
    finally:
        held.release()
    assert (report.outcome.ran, report.outcome.busy, report.outcome.unfinished) == (1, 1, 1)
    assert {row["pool"]: row["runs"] for row in report.rows} == {"max": 1}
    again = compare(spec, jobs=1, threads=1, progress=False)
    assert (again.outcome.ran, again.outcome.reused, again.outcome.unfinished) == (1, 1, 0)


def test_an_older_results_file_is_kept_and_a_broken_run_file_is_named(tmp_path):
    spec = _spec(tmp_path, pools=("max",), seeds=(0,))
    compare(spec, jobs=1, threads=1, progress=False)
    store = ResultStore(spec.out_dir)
    # What poolkit wrote before runs/ existed: only results.jsonl. Its runs are reused.
    for path in store.runs_dir.glob("*.json"):
        path.unlink()
    again = compare(spec, jobs=1, threads=1, progress=False)
    assert (again.outcome.reused, again.outcome.ran) == (1, 0)
    broken = store.run_path(spec.run_key("max", 0))
    broken.write_text('{"run_key": ')
    with pytest.raises(DataFormatError, match=broken.name):
        store.records()


# ---------------------------------------------------------------------------------------------
# Several processes, one --out


def test_four_processes_into_one_out_record_every_run_once(tmp_path, forker):
    out = tmp_path / "shared"
    slurm = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2",
             "SLURM_ARRAY_TASK_MIN": "0"}
    started = [
        forker.start(_argv(out, 4, 10)),
        forker.start(_argv(out, 4, 10)),
        forker.start(_argv(out, 4, 10, "--shard", "1/2")),
        forker.start(_argv(out, 4, 10), **slurm),
    ]
    for pid, _, stderr in started:
        assert forker.wait(pid) == 0, stderr.read_text()
    payloads = [json.loads(stdout.read_text()) for _, stdout, _ in started]
    assert [p["shard"] for p in payloads] == [None, None, "1/2", "2/2"]
    # Each run trained by one process only: claims and shards split the work.
    assert sum(p["runs"]["ran"] for p in payloads) == 8
    _check_once(out, 8)
    # The summary written last covers every run.
    summary = (out / "summary.csv").read_text().splitlines()
    runs_column = summary[0].split(",").index("runs")
    assert sorted(line.split(",")[runs_column] for line in summary[1:]) == ["4", "4"]


def test_kill_9_at_random_moments_then_resume_loses_and_duplicates_nothing(tmp_path, forker):
    out = tmp_path / "killed"
    rng = random.Random(18)
    seen: dict[Path, str] = {}  # run file -> its content when first seen
    for _ in range(12):
        pid, _, _ = forker.start(_argv(out, 4, 20))
        time.sleep(rng.uniform(0.0, 2.5))
        os.kill(pid, signal.SIGKILL)  # a no-op if it has just finished
        assert forker.wait(pid) in (0, -signal.SIGKILL)
        # Whatever the moment, the folder reads cleanly and holds each run at most once.
        records = read_jsonl(out / "results.jsonl")
        assert max(Counter(r["run_key"] for r in records).values(), default=1) == 1
        for path in (out / "runs").glob("*.json") if (out / "runs").is_dir() else []:
            seen.setdefault(path, path.read_text())
        print(f"after a kill: {len(records)} record(s)")
    pid, stdout, stderr = forker.start(_argv(out, 4, 20))
    assert forker.wait(pid) == 0, stderr.read_text()
    assert json.loads(stdout.read_text())["unfinished"] == 0
    _check_once(out, 8)
    # A run recorded before a kill is never run again: its file is unchanged.
    assert all(path.read_text() == text for path, text in seen.items())
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
