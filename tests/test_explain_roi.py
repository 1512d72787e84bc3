"""``poolkit explain roi_align`` / ``roi_pool``: the worked example by hand, the CLI, the PNG."""

from __future__ import annotations

import json

import pytest

from poolkit.cli import run
from poolkit.experiments.explain_roi import explain_roi, plot_roi


def test_roi_align_worked_example_by_hand():
    """x = 10 h + w, box (0.5, 0.5)-(3.5, 3.5), 2 x 2 bins of 1.5 cells, 2 x 2 samples each at
    0.5 + 1.5 (i + (a + 0.5) / 2): 0.875, 1.625 | 2.375, 3.125. The map is linear, so a bin is
    its samples' mean position: bin (0, 0) at (1.25, 1.25) -> 12.5 + 1.25 = 13.75."""
    e = explain_roi("roi_align")
    assert e.output.tolist() == [[13.75, 15.25], [28.75, 30.25]]
    first = e.bins[0]
    assert [(s["y"], s["x"]) for s in first["samples"]] == [
        (0.875, 0.875), (0.875, 1.625), (1.625, 0.875), (1.625, 1.625)]
    for s in first["samples"]:
        assert s["value"] == pytest.approx(10 * s["y"] + s["x"])
    assert first["count"] == 4
    aligned = explain_roi("roi_align", aligned=True)  # half a pixel up-left: 5.5 less per bin
    assert aligned.output.tolist() == [[8.25, 9.75], [23.25, 24.75]]


def test_roi_pool_worked_example_by_hand():
    """The same box rounds to (1, 1)-(4, 4): 4 x 4 cells, bins of 2 -> rows/cols [1, 3), [3, 5);
    the maxima sit at each bin's bottom-right cell."""
    e = explain_roi("roi_pool")
    assert e.output.tolist() == [[22, 24], [42, 44]]
    assert e.bins[0]["rows"] == [1, 3] and e.bins[0]["cols"] == [1, 3]
    assert [b["winner"] for b in e.bins] == [[2, 2], [2, 4], [4, 2], [4, 4]]


def test_box_outside_the_map():
    e = explain_roi("roi_pool", box=(10, 10, 12, 12))
    assert e.output.tolist() == [[0, 0], [0, 0]] and all(b["winner"] is None for b in e.bins)
    align = explain_roi("roi_align", box=(10, 10, 12, 12))
    assert all(s["value"] == 0 for b in align.bins for s in b["samples"])


def test_cli_json_text_and_png(tmp_path, capsys):
    assert run(["explain", "roi_align", "--box", "0.5,0.5,3.5,3.5", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["output"] == [[13.75, 15.25], [28.75, 30.25]]
    png = tmp_path / "roi.png"
    assert run(["explain", "roi_pool", "--input", "1 2 3; 4 5 6; 7 8 9", "--box", "0,0,2,2",
                "--output-size", "1", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "RoI pooling" in out and "rows 0..2, cols 0..2" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run(["explain", "roi_align", "--aligned", "--sampling-ratio", "-1"]) == 0
    assert "adaptive" in capsys.readouterr().out
    plot_roi(explain_roi("roi_align", aligned=True), tmp_path / "aligned.png")


@pytest.mark.parametrize("argv, message", [
    (["explain", "roi_align", "--box", "1,2"], "4 numbers"),
    (["explain", "roi_pool", "--aligned"], "roi_align's"),
    (["explain", "max", "--box", "0,0,1,1"], "--box"),
    (["explain", "roi_align", "--output-size", "0"], "output_size"),
    (["explain", "roi_align", "--spatial-scale", "-1"], "spatial_scale"),
    (["explain", "roi_align", "--input", "1 2 3"], "2-D"),
])
def test_cli_errors(argv, message, capsys):
    assert run(argv) == 2
    assert message in capsys.readouterr().err
