"""demo --quick: the main job end to end, small enough for the test suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("snownlp")

from poolkit.cli import run  # noqa: E402


def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert run(["demo", "--quick", "--out", str(out), "--json"]) == 0
    json_output = capsys.readouterr().out
    # the same call printed for a person (the finished runs are reused): every example's line,
    # 1-D outputs (kmax, spp, attention) included
    assert run(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kmax:" in printed and "spp:" in printed
    payload = json.loads(json_output)
    examples = {row["op"]: row["output"] for row in payload["worked_examples"]}
    assert examples["max"] == [[6, 8], [14, 16]]
    assert examples["avg"] == [[3.5, 5.5], [11.5, 13.5]]
    engine = {row["name"]: row for row in payload["engine_examples"]}
    assert engine["tutorial_avg"]["output"] == [[[3.5, 5.5], [11.5, 13.5]]]
    assert all(row["matches_by_hand"] for row in engine.values())
    reports = {report["task"]: report for report in payload["compare"]}
    assert set(reports) == {"digits", "chnsenti"}
    for report in reports.values():
        assert report["runs"]["failed"] == 0
        assert {row["pool"] for row in report["summary"]} == {"max", "avg"}
        for name in ("results", "summary_csv", "summary_md", "accuracy_png", "robustness_png"):
            assert Path(report["files"][name]).is_file(), name
    # Even the tiny image runs learn: the best pooling type is far above chance (10%).
    digits = reports["digits"]["summary"]
    assert max(row["accuracy_mean"] for row in digits) > 0.5
    summary = (out / "summary.md").read_text()
    assert "Worked examples" in summary and "digits" in summary and "chnsenti" in summary
    assert "3 5 / 11 13" in summary  # the tutorial's wrong average is called out
    # the short grids say why their ranking may differ from the README's advice
    assert "not as advice" in summary and "catavgmax" in summary
    for png in ("worked-examples/max.png", "worked-examples/avg.png", "digits/accuracy.png",
                "chnsenti/robustness.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
